"""A Sage 500 connection whose SQL Server cannot be reached, or whose URL names a driver
that is not there, says where it looked and what to change (Test connection / Save)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from tests.support.web import make_user

#: Nothing listens on this loopback port (one of this test file's own): refused at once.
CLOSED_PORT = 9530
PASSWORD = "s3cret-Sage-pw"


def _activate(client: TestClient, db: Database, url: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    created = client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "sage500",
            "name": "Sage 500 production",
            "settings": {"company_id": "SOA", "receipt_gl_account": "1010-00"},
            "secrets": {"database_url": url},
        },
    )
    assert created.status_code == 201, created.text
    response = client.patch(
        f"/api/v1/connections/{created.json()['id']}", headers=headers, json={"is_active": True}
    )
    assert response.status_code == 409, response.text
    problem: dict[str, object] = response.json()
    return problem


def test_a_closed_sql_server_port_names_the_server_the_driver_and_the_fix(
    client: TestClient, db: Database
) -> None:
    url = f"mssql+pymssql://ledgerlink:{PASSWORD}@127.0.0.1:{CLOSED_PORT}/MAS500_app"

    problem = _activate(client, db, url)

    error = problem["errors"][0]  # type: ignore[index]
    assert error["field"] == "checks.reachable"
    message = error["message"]
    assert f"127.0.0.1:{CLOSED_PORT}/MAS500_app (driver pymssql)" in message, message
    assert "Connection refused" in message, message
    assert "SQL Server is running and accepts TCP/IP connections" in message, message
    assert "DB-Lib" not in message, message
    assert "b'" not in message, message
    assert PASSWORD not in response_text(problem)


def test_an_unknown_driver_names_it_and_the_url_to_use(client: TestClient, db: Database) -> None:
    url = f"mssql+tdsdriver://ledgerlink:{PASSWORD}@sqlserver:1433/MAS500_app"

    problem = _activate(client, db, url)

    error = problem["errors"][0]  # type: ignore[index]
    assert error["field"] == "checks.configuration"
    message = error["message"]
    assert "'mssql+tdsdriver'" in message, message
    assert "mssql+pymssql://user:password@sqlserver:1433/MAS500_app" in message, message
    assert PASSWORD not in response_text(problem)


def response_text(problem: dict[str, object]) -> str:
    return repr(problem)
