"""A push delivery that arrives while ledgerlink's database is not answering (PostgreSQL
restarting or unreachable): nothing can be stored, so the sender is told to send again —
503 with Retry-After — not that its delivery caused a server error (the soak saw 500s
during its PostgreSQL restart)."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from ledgerlink.settings import Settings
from ledgerlink.web.app import create_app
from tests.support.postgres import _free_port


def test_a_silent_post_while_the_database_is_down_is_answered_503_with_retry_after(
    tmp_path: Path,
) -> None:
    nobody_listens = _free_port()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"postgresql+psycopg://ledgerlink@127.0.0.1:{nobody_listens}/ledgerlink",
        vault_keys=Fernet.generate_key().decode(),
        log_format="console",
        _env_file=None,  # type: ignore[call-arg]
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.post(
            "/inbound/paytrace/1/silent-post",
            data={"parmList": "TRANSACTIONID~180000001|TRANXTYPE~SALE|AMOUNT~10.00|"},
        )
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"] == "application/problem+json"
    assert "nothing was stored" in answer.json()["detail"]


def test_an_api_call_while_the_database_is_down_is_answered_503_not_500(tmp_path: Path) -> None:
    nobody_listens = _free_port()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"postgresql+psycopg://ledgerlink@127.0.0.1:{nobody_listens}/ledgerlink",
        vault_keys=Fernet.generate_key().decode(),
        log_format="console",
        _env_file=None,  # type: ignore[call-arg]
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/members", headers={"Authorization": "Bearer llk_x"})
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
