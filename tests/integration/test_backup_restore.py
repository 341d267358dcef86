"""``ledgerlink backup`` / ``ledgerlink restore`` on both back-ends: what was there when
the backup was taken comes back (members, credentials that still decrypt, the audit chain
that still verifies), what came later is gone, and a restore over live data or with the
wrong vault key says so instead of going quietly wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from ledgerlink import connections
from ledgerlink.identity.principal import cli_principal
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberRow
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.vault import load_vault
from tests.support.cli import _invoke as invoke
from tests.support.cli import cli, cli_fails
from tests.support.members import add_levels, add_member
from tests.support.server import run_cli, server_env

ERP_URL = "mssql+pymssql://ledgerlink:backed-up-secret@sqlserver:1433/MAS500_app"


def _members(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(MemberRow.number)))


def _erp_url(db: Database, settings: Settings) -> str | None:
    with db.read() as session:
        connection = session.scalars(select(Connection).where(Connection.name == "ERP")).one()
        return connections.read_secret(load_vault(settings), connection, "database_url")


@pytest.mark.slow  # a real `ledgerlink backup` process, and 10 s of commands in all
def test_a_restore_brings_back_the_backup_and_only_the_backup(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = server_env(settings)
    add_levels(db)
    add_member(db, "M-1", "Ada", "Lovelace")
    with db.transaction() as session:
        connections.create(
            session,
            load_vault(settings),
            cli_principal(),
            kind="sage500",
            name="ERP",
            settings={"company_id": "SOA"},
            secrets={"database_url": ERP_URL},
        )
    cli(["audit", "verify"], env)  # a signed checkpoint at the head of the chain
    backup_file = tmp_path / "backups" / "ledgerlink.backup"
    backup_file.parent.mkdir()

    said = run_cli(["backup", str(backup_file)], env)  # the installed command, for real

    assert "Backed up" in said
    assert "vault key is not in it" in " ".join(said.split())
    assert backup_file.stat().st_mode & 0o777 == 0o600
    assert "already" in cli_fails(["backup", str(backup_file)], env)

    # Life goes on after the backup: a new member, a changed credential, a newer checkpoint.
    add_member(db, "M-2", "Grace", "Hopper")
    with db.transaction() as session:
        erp = session.scalars(select(Connection).where(Connection.name == "ERP")).one()
        connections.update(
            session,
            load_vault(settings),
            cli_principal(),
            erp,
            secrets={"database_url": "mssql+pymssql://ledgerlink:newer@sqlserver/MAS500_app"},
        )
    cli(["audit", "verify"], env)

    refused = cli_fails(["restore", str(backup_file)], env)
    assert "holds data already" in refused
    assert "--replace" in refused
    assert _members(db) == {"M-1", "M-2"}  # nothing was touched

    db.dispose()
    said = " ".join(cli(["restore", "--replace", str(backup_file)], env).split())

    assert "Restored" in said
    assert "audit checkpoints named entries newer than the restored chain" in said
    assert _members(db) == {"M-1"}
    assert _erp_url(db, settings) == ERP_URL
    with db.read() as session:
        newest = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert newest is not None
    assert newest.action == "database.restored"
    assert "OK" in cli(["audit", "verify"], env)


def test_a_restore_of_an_older_release_with_another_vault_key_says_what_to_do(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    with db.transaction() as session:
        connections.create(
            session,
            load_vault(settings),
            cli_principal(),
            kind="sage500",
            name="ERP",
            settings={"company_id": "SOA"},
            secrets={"database_url": ERP_URL},
        )
    with db.engine.begin() as connection:  # as an older release left the schema
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0025_level_three')"))
    backup_file = tmp_path / "ledgerlink.backup"
    cli(["backup", str(backup_file)], server_env(settings))
    db.dispose()
    other_key = {**server_env(settings), "LEDGERLINK_VAULT_KEYS": Fernet.generate_key().decode()}

    code, stdout, stderr = invoke(["restore", "--replace", str(backup_file)], other_key, None)

    assert code == 3
    said = " ".join(stderr.split())
    assert "1 stored secret(s) cannot be decrypted" in said, said
    assert "ERP: database_url" in said
    assert "backed-up-secret" not in said + stdout
    assert "run `ledgerlink migrate`" in " ".join(stdout.split())
    with db.read() as session:  # an older schema's audit log is not written to
        actions = set(session.scalars(select(AuditEntry.action)))
    assert "database.restored" not in actions
