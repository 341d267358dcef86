"""A scope's expected card fees and alert threshold, over the API and the CLI: viewers
read, admins change them (audited), a bad value is refused with the field named, and the
batches' expected deposits follow the schedule at once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry
from ledgerlink.store.recon_models import ReconBatch
from tests.support.recon import seed_scope
from tests.support.web import make_user


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _net(db: Database, scope_id: int) -> tuple[int, int]:
    with db.read() as session:
        batch = session.scalars(select(ReconBatch).where(ReconBatch.scope_id == scope_id)).one()
        return batch.fees_minor, batch.net_minor


def test_admins_change_the_fee_schedule_and_viewers_read_it(
    client: TestClient, db: Database
) -> None:
    scope_id = seed_scope(db)  # batch 1001: two Visa sales, $75.00 and $25.00
    admin = make_user(db, Role.ADMIN).token
    viewer = make_user(db, Role.VIEWER).token
    url = f"/api/v1/recon/scopes/{scope_id}/settings"

    shown = client.get(url, headers=_auth(viewer)).json()
    assert shown["fee_schedule"]["visa"] == {"percent_bp": 180, "fixed_minor": 10}
    assert shown["alert"] == {"unexplained_breaks": 10, "unexplained_minor": None}
    assert client.patch(url, json={"alert": {}}, headers=_auth(viewer)).status_code == 403

    refused = client.patch(
        url, json={"fee_schedule": {"visa": {"percent_bp": "1.8%"}}}, headers=_auth(admin)
    )
    assert refused.status_code == 422, refused.text
    assert "fee_schedule.visa.percent_bp" in refused.text
    assert "180 is 1.80%" in refused.text
    bad_alert = client.patch(url, json={"alert": {"unexplained_breaks": 0}}, headers=_auth(admin))
    assert bad_alert.status_code == 422
    assert "alert.unexplained_breaks" in bad_alert.text

    changed = client.patch(
        url,
        json={
            "fee_schedule": {"Visa": {"percent_bp": 300, "fixed_minor": 0}},
            "alert": {"unexplained_minor": 50000},
        },
        headers=_auth(admin),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["fee_schedule"]["visa"] == {"percent_bp": 300, "fixed_minor": 0}
    assert changed.json()["fee_schedule"]["amex"] == {"percent_bp": 290, "fixed_minor": 0}
    assert changed.json()["alert"] == {"unexplained_breaks": 10, "unexplained_minor": 50000}
    assert _net(db, scope_id) == (225 + 75, 10000 - 300)  # 3% of each sale

    back = client.patch(url, json={"fee_schedule": {"visa": None}}, headers=_auth(admin))
    assert back.json()["fee_schedule"]["visa"] == {"percent_bp": 180, "fixed_minor": 10}
    assert _net(db, scope_id) == (135 + 10 + 45 + 10, 10000 - 200)
    with db.read() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "recon.scope.settings")
        ).all()
    assert len(entries) == 2


def test_the_cli_shows_and_changes_the_schedule(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerlink.cli import app

    monkeypatch.setenv("LEDGERLINK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_VAULT_KEYS", settings.vault_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("COLUMNS", "200")
    scope_id = seed_scope(db)
    cli = CliRunner()
    result = cli.invoke(
        app,
        ["recon", "settings", "--scope", str(scope_id), "--fee", "visa=2.5%+0.05",
         "--alert-breaks", "3", "--alert-amount", "250.00"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2.50%" in result.output
    assert "Alert at 3 unexplained breaks or $250.00" in result.output
    assert _net(db, scope_id) == (188 + 5 + 63 + 5, 10000 - 261)  # 187.5 → 188, 62.5 → 63
    bad = cli.invoke(app, ["recon", "settings", "--scope", str(scope_id), "--fee", "visa=lots"])
    assert bad.exit_code != 0
    assert "fee_schedule.visa" in bad.output
