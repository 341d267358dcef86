"""A rolling upgrade: the new version's `ledgerlink migrate` commits first, then the old
processes are replaced one by one. Until they are, the old web processes must stay ready
(the schema only expanded), while a database *behind* the code is still not ready."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from ledgerlink.store.db import Database

#: A revision this version does not know: what a newer release's migration leaves behind.
NEWER_RELEASE = "0999_newer_release"


def _set_schema_revision(db: Database, *revisions: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        for revision in revisions:
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:r)"), {"r": revision}
            )


def test_readiness_follows_the_schema_through_a_rolling_upgrade(
    client: TestClient, db: Database
) -> None:
    _set_schema_revision(db, NEWER_RELEASE)

    newer = client.get("/readyz")

    assert newer.status_code == 200, newer.text
    assert newer.json()["checks"]["database"]["ok"] is True

    _set_schema_revision(db, "0025_level_three")  # an older release's schema

    behind = client.get("/readyz")

    assert behind.status_code == 503
    assert "run `ledgerlink migrate`" in behind.json()["checks"]["database"]["detail"]
