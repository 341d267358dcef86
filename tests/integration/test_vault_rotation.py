"""The key file and key rotation, against the real filesystem and both databases."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from ledgerlink import vault as vault_module
from ledgerlink.settings import Settings
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry, Connection, ConnectionSecret
from ledgerlink.vault import Vault, VaultError, load_vault, new_key, rotate

SECRETS = {"client_secret": "sbc-client-secret", "refresh_token": "sbc-refresh-token"}


def file_settings(tmp_path: Path, db_url: str = "") -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        vault_keys=None,
        _env_file=None,
    )


def key_file_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def store_secrets(db: Database, vault: Vault, secrets: dict[str, str]) -> None:
    """Two connections sharing the given secrets, as the connections module stores them."""
    with db.transaction() as session:
        for name, kind in (("Sage cloud", "sbc"), ("Sage cloud (test)", "sbc")):
            connection = Connection(kind=kind, name=name, settings={})
            session.add(connection)
            session.flush()
            for secret_name, value in secrets.items():
                connection.secrets.append(
                    ConnectionSecret(name=secret_name, ciphertext=vault.encrypt(value))
                )


def stored_ciphertexts(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(ConnectionSecret.ciphertext)))


def stored_plaintexts(db: Database, vault: Vault) -> list[str]:
    return sorted(vault.decrypt(token) for token in stored_ciphertexts(db))


# ---- the key file -----------------------------------------------------------------------


def test_the_key_file_is_created_private_on_first_use_and_reused(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    path = settings.resolved_vault_key_file
    token = load_vault(settings).encrypt("s3cret")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key_file_lines(path)) == 1
    assert load_vault(settings).decrypt(token) == "s3cret"
    assert len(key_file_lines(path)) == 1


def test_the_key_file_directory_is_created(tmp_path: Path) -> None:
    settings = Settings(
        vault_key_file=tmp_path / "deep" / "keys" / "ledgerlink.key",
        vault_keys=None,
        _env_file=None,
    )
    load_vault(settings)
    assert settings.resolved_vault_key_file.is_file()


def test_processes_starting_together_end_up_with_one_key(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            tokens.append(load_vault(settings).encrypt("x"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    only_key = key_file_lines(settings.resolved_vault_key_file)
    assert len(only_key) == 1
    assert all(Vault(only_key).decrypt(t) == "x" for t in tokens)
    assert sorted(p.name for p in settings.resolved_vault_key_file.parent.iterdir()) == [
        "vault.key"
    ]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_file_other_users_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    settings = file_settings(tmp_path)
    load_vault(settings)
    path = settings.resolved_vault_key_file
    path.chmod(mode)
    with pytest.raises(VaultError) as caught:
        load_vault(settings)
    assert f"chmod 600 {path}" in str(caught.value)


def test_a_damaged_key_file_names_the_line_without_echoing_it(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    path = settings.resolved_vault_key_file
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, f"{new_key()}\nnot-a-key-xyz\n".encode())
    os.close(fd)
    with pytest.raises(VaultError) as caught:
        load_vault(settings)
    assert "line 2" in str(caught.value)
    assert "not-a-key-xyz" not in str(caught.value)


def test_an_empty_key_file_is_not_silently_replaced(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    path = settings.resolved_vault_key_file
    path.parent.mkdir(parents=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with pytest.raises(VaultError, match="holds no keys; restore it from backup"):
        load_vault(settings)


# ---- rotation with the key file ---------------------------------------------------------


def test_rotation_re_encrypts_every_secret_and_retires_the_old_key(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    settings = file_settings(tmp_path, db_url)
    path = settings.resolved_vault_key_file
    store_secrets(db, load_vault(settings), SECRETS)
    [old_key] = key_file_lines(path)
    before = stored_ciphertexts(db)

    report = rotate(settings, db)

    assert report.re_encrypted == 4
    assert report.retired_keys == 1
    assert report.next_step is None
    [new] = key_file_lines(path)
    assert new != old_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = stored_ciphertexts(db)
    assert set(after).isdisjoint(before)
    expected = sorted(list(SECRETS.values()) * 2)
    assert stored_plaintexts(db, Vault([new])) == expected
    for token in after:
        with pytest.raises(VaultError, match="missing"):
            Vault([old_key]).decrypt(token)
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [
        "vault.key"
    ]


def test_rotation_is_recorded_in_the_audit_chain(db: Database, db_url: str, tmp_path: Path) -> None:
    settings = file_settings(tmp_path, db_url)
    store_secrets(db, load_vault(settings), SECRETS)
    rotate(settings, db, actor="cli:ops")
    with db.read() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "vault.rotated")
        ).one()
        assert entry.actor == "cli:ops"
        assert entry.after is not None
        assert entry.after["re_encrypted"] == 4
        assert audit.verify(session).ok


def test_a_running_server_follows_a_rotation_done_elsewhere(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    settings = file_settings(tmp_path, db_url)
    server_vault = load_vault(settings)
    store_secrets(db, server_vault, SECRETS)

    rotate(settings, db)

    [new] = key_file_lines(settings.resolved_vault_key_file)
    assert stored_plaintexts(db, server_vault) == sorted(list(SECRETS.values()) * 2)
    assert Vault([new]).decrypt(server_vault.encrypt("later")) == "later"


def test_rotating_twice_keeps_everything_readable(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    settings = file_settings(tmp_path, db_url)
    store_secrets(db, load_vault(settings), SECRETS)
    rotate(settings, db)
    rotate(settings, db)
    keys = key_file_lines(settings.resolved_vault_key_file)
    assert len(keys) == 1
    assert stored_plaintexts(db, Vault(keys)) == sorted(list(SECRETS.values()) * 2)


def test_a_secret_no_key_can_read_stops_the_rotation_before_anything_is_lost(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    """The failure lands between step 1 (file holds new + old keys) and step 3: nothing
    is re-encrypted, no key is retired, every readable secret stays readable."""
    settings = file_settings(tmp_path, db_url)
    store_secrets(db, load_vault(settings), SECRETS)
    with db.transaction() as session:
        connection = Connection(kind="paytrace", name="Orphaned", settings={})
        session.add(connection)
        session.flush()
        connection.secrets.append(
            ConnectionSecret(
                name="password", ciphertext=Vault([new_key()]).encrypt("orphan-plaintext")
            )
        )
    [old_key] = key_file_lines(settings.resolved_vault_key_file)
    before = stored_ciphertexts(db)

    with pytest.raises(VaultError) as caught:
        rotate(settings, db)

    message = str(caught.value)
    assert "'password' of connection 'Orphaned'" in message
    assert "changed nothing" in message
    assert "orphan-plaintext" not in message
    assert stored_ciphertexts(db) == before
    keys = key_file_lines(settings.resolved_vault_key_file)
    assert keys[1:] == [old_key]
    readable = [t for t in before if Vault([old_key]).can_decrypt(t)]
    assert len(readable) == 4
    assert all(load_vault(settings).can_decrypt(t) for t in readable)
    with db.read() as session:
        assert (
            session.scalar(select(AuditEntry).where(AuditEntry.action == "vault.rotated")) is None
        )


def test_two_rotations_cannot_interleave(db: Database, db_url: str, tmp_path: Path) -> None:
    settings = file_settings(tmp_path, db_url)
    load_vault(settings)
    with (
        vault_module._rotation_lock(settings.resolved_vault_key_file),
        pytest.raises(VaultError, match="another `ledgerlink vault rotate` is running"),
    ):
        rotate(settings, db)


# ---- rotation with LEDGERLINK_VAULT_KEYS ------------------------------------------------


def test_env_rotation_re_encrypts_under_the_first_key_and_asks_to_remove_the_rest(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    old_key, new = new_key(), new_key()
    store_secrets(db, Vault([old_key]), SECRETS)
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        vault_keys=SecretStr(f"{new},{old_key}"),
        _env_file=None,
    )

    report = rotate(settings, db)

    assert report.re_encrypted == 4
    assert report.key_source == "LEDGERLINK_VAULT_KEYS"
    assert report.next_step is not None
    assert "Remove the other 1 key(s) from LEDGERLINK_VAULT_KEYS" in report.next_step
    assert "Remove the other 1 key(s)" in str(report)
    assert stored_plaintexts(db, Vault([new])) == sorted(list(SECRETS.values()) * 2)
    for token in stored_ciphertexts(db):
        with pytest.raises(VaultError):
            Vault([old_key]).decrypt(token)
    assert not settings.resolved_vault_key_file.exists()  # no key file was made or touched


def test_env_rotation_with_a_single_key_explains_how_to_rotate(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    only = new_key()
    store_secrets(db, Vault([only]), SECRETS)
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        vault_keys=SecretStr(only),
        _env_file=None,
    )
    report = rotate(settings, db)
    assert report.re_encrypted == 4
    assert report.next_step is not None
    assert "put a new key first" in report.next_step
