"""The audit chain against signed checkpoints kept outside the database: rewrites that the
plain hash chain cannot see (a truncated log with a rewritten head, an edited entry with
every later hash recomputed) are caught by the portal, the API, the scheduled check and the
CLI; checks are incremental; a full one is an administrator's; checkpoints survive a vault
key rotation. Tampering is done with raw SQL, as someone with database access would."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, text
from typer.testing import CliRunner

from ledgerlink import connections
from ledgerlink.audit_jobs import AuditChainBroken, verify_audit_chain
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.jobs.port import job_queue
from ledgerlink.jobs.registry import JobContext, tasks
from ledgerlink.settings import Settings
from ledgerlink.store import audit, audit_checks
from ledgerlink.store.audit_anchors import AnchorFile, anchor_path
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry
from ledgerlink.vault import Vault, load_vault, new_key, rotate
from tests.integration.test_audit_chain import append, tamper
from tests.support.job_tasks import worker_thread
from tests.support.smtp import smtp_server
from tests.support.waiting import wait_until
from tests.support.web import make_user, sign_in


def job(settings: Settings, db: Database) -> JobContext:
    return JobContext(job_id=1, attempt=1, settings=settings, db=db)


def check(
    settings: Settings, db: Database, *, full: bool = False, vault: Vault | None = None
) -> audit_checks.AuditCheck:
    return audit_checks.check(
        settings,
        db,
        vault or load_vault(settings),
        kind="full" if full else "incremental",
        checked_by="tests",
    )


def truncate_and_rewrite_head(db: Database, keep: int) -> None:
    """Delete every entry after ``keep`` and make the head agree, as an intruder would."""
    tamper(
        db,
        "DELETE FROM audit_log WHERE seq > :keep",
        "UPDATE audit_head SET seq = :keep, "
        "hash = (SELECT hash FROM audit_log WHERE seq = :keep) WHERE id = 1",
        keep=keep,
    )


def edit_and_recompute(db: Database, seq: int) -> None:
    """Change entry ``seq`` and recompute its hash, every later one and the head."""
    with db.engine.begin() as conn:
        rows = conn.execute(
            select(AuditEntry.__table__).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)
        ).all()
        prev = rows[0].prev_hash
        for row in rows:
            after = dict(row.after or {})
            if row.seq == seq:
                after["name"] = "Forged"
            digest = audit.chain_hash(
                prev,
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                entity_type=row.entity_type,
                entity_id=row.entity_id,
                before=row.before,
                after=after,
            )
            conn.execute(
                AuditEntry.__table__.update()
                .where(AuditEntry.seq == row.seq)
                .values(after=after, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


@pytest.fixture
def api(app, client: TestClient, db: Database) -> Iterator[dict[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    viewer = make_user(db, Role.VIEWER)
    admin = make_user(db, Role.ADMIN)
    return {
        "viewer": {"Authorization": f"Bearer {viewer.token}"},
        "admin": {"Authorization": f"Bearer {admin.token}"},
    }


# ---- (a) a truncated log with a rewritten head ------------------------------------------------


def test_a_truncated_log_with_a_rewritten_head_is_caught_by_the_api_the_portal_and_the_schedule(
    settings: Settings,
    db: Database,
    client: TestClient,
    api: dict[str, dict[str, str]],
    log_stream: io.StringIO,
) -> None:
    append(db, 10)
    head = audit.verify_all(db).entries  # the users' entries and these ten
    verify_audit_chain(job(settings, db))  # the quarter-hourly check anchors the head
    truncate_and_rewrite_head(db, keep=head - 4)
    assert audit.verify_all(db).ok, "the hash chain alone cannot tell"
    found = f"signed checkpoint records entry {head}"

    body = client.get("/api/v1/audit/verify", headers=api["viewer"]).json()
    assert body["ok"] is False
    assert found in body["problem"]
    assert "deleted" in body["problem"]

    sign_in(client, "viewer@example.org")
    page = client.get("/audit?verify=1")
    assert page.status_code == 200
    assert found in page.text

    with pytest.raises(AuditChainBroken, match=found):
        verify_audit_chain(job(settings, db))
    logged = log_stream.getvalue()
    assert "error" in logged
    assert "audit.chain_broken" in logged
    with pytest.raises(AuditChainBroken, match=found):
        verify_audit_chain(job(settings, db), full=True)

    # What the schedule found stays visible without anyone running a check.
    page = client.get("/audit")
    assert 'data-testid="audit-state"' in page.text
    assert found in page.text
    dashboard = client.get("/")
    assert 'data-testid="audit-broken"' in dashboard.text
    assert found in dashboard.text
    checks = client.get("/api/v1/audit/checks", headers=api["viewer"]).json()
    assert checks["incremental"]["ok"] is False
    assert checks["full"]["ok"] is False


def test_a_failed_scheduled_check_is_emailed_once(settings: Settings, db: Database) -> None:
    vault = load_vault(settings)
    with smtp_server() as (port, inbox):
        with db.transaction() as session:
            connection = connections.create(
                session,
                vault,
                cli_principal(),
                kind="smtp",
                name="Mail",
                settings={
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "ledgerlink@example.org",
                    "recipients": ["controller@example.org"],
                },
                secrets={},
            )
            connections.update(session, vault, cli_principal(), connection, is_active=True)
        append(db, 5)
        head = audit.verify_all(db).entries
        verify_audit_chain(job(settings, db))
        truncate_and_rewrite_head(db, keep=head - 2)
        for _ in range(2):
            with pytest.raises(AuditChainBroken):
                verify_audit_chain(job(settings, db))
    assert inbox.subjects() == ["ledgerlink: the audit log failed verification"]
    assert f"signed checkpoint records entry {head}" in inbox.body(0)


def test_the_daily_digest_carries_the_newest_checkpoint(settings: Settings, db: Database) -> None:
    import asyncio

    from ledgerlink.payments.notify import run_notifications
    from ledgerlink.runtime import Runtime

    runtime = Runtime(settings)
    with smtp_server() as (port, inbox):
        with db.transaction() as session:
            connection = connections.create(
                session,
                runtime.vault,
                cli_principal(),
                kind="smtp",
                name="Mail",
                settings={
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "ledgerlink@example.org",
                    "recipients": ["controller@example.org"],
                    "digest_at": "00:00",
                },
                secrets={},
            )
            connections.update(session, runtime.vault, cli_principal(), connection, is_active=True)
        append(db, 3)
        anchored = check(settings, db)
        try:
            assert [m.kind for m in asyncio.run(run_notifications(runtime))] == ["digest"]
        finally:
            runtime.close()
    body = inbox.body(0)
    assert f"entry {anchored.entries}, hash {anchored.head_hash}" in body
    assert f"--expect-head {anchored.head_hash}" in body


# ---- (b) an edited entry with every later hash recomputed ------------------------------------


def test_an_entry_edited_with_every_later_hash_recomputed_is_caught(
    settings: Settings, db: Database
) -> None:
    append(db, 10)
    assert check(settings, db).anchored_seq == 10
    append(db, 5, start=11)
    edit_and_recompute(db, 3)
    assert audit.verify_all(db).ok, "the hash chain alone cannot tell"

    incremental = check(settings, db)
    assert (incremental.ok, incremental.first_bad_seq) == (False, 10)
    assert "recomputed" in (incremental.problem or "")
    full = check(settings, db, full=True)
    assert (full.ok, full.first_bad_seq) == (False, 10)
    assert incremental.anchored_seq is None
    assert full.anchored_seq is None
    assert AnchorFile(anchor_path(settings)).newest().seq == 10  # type: ignore[union-attr]


def test_the_cli_verifies_against_the_checkpoints_and_anchors(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerlink.cli import app

    monkeypatch.setenv("LEDGERLINK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_VAULT_KEYS", settings.vault_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("COLUMNS", "200")
    cli = CliRunner()
    append(db, 4)
    anchored = cli.invoke(app, ["audit", "anchor"])
    assert anchored.exit_code == 0, anchored.output
    assert "Checkpoint written" in anchored.output
    assert "entry 4" in anchored.output
    append(db, 2, start=5)
    edit_and_recompute(db, 2)
    result = cli.invoke(app, ["audit", "verify"])
    assert result.exit_code == 3
    assert "TAMPERED" in result.output
    assert "entry 4" in result.output
    quick = cli.invoke(app, ["audit", "verify", "--incremental"])
    assert quick.exit_code == 3


# ---- (c) an untouched chain -------------------------------------------------------------------


def test_an_untouched_chain_verifies_and_gets_a_private_checkpoint_file(
    settings: Settings, db: Database, client: TestClient, api: dict[str, dict[str, str]]
) -> None:
    append(db, 7)
    head = audit.verify_all(db).entries  # the users' entries and these seven
    body = client.get("/api/v1/audit/verify", headers=api["viewer"]).json()
    assert (body["ok"], body["complete"], body["entries"]) == (True, True, head)
    verify_audit_chain(job(settings, db))
    verify_audit_chain(job(settings, db), full=True)
    assert check(settings, db, full=True).ok

    path = anchor_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [head]  # later checks had nothing new to anchor
    assert set(lines[0]) == {"v", "seq", "hash", "at", "kid", "prev", "reason", "mac"}


def test_a_forged_or_edited_checkpoint_is_refused(settings: Settings, db: Database) -> None:
    append(db, 3)
    check(settings, db)
    path = anchor_path(settings)
    line = json.loads(path.read_text())
    forged = {**line, "seq": 2, "hash": "ab" * 32}
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    result = check(settings, db)
    assert not result.ok
    assert "invalid signature" in (result.problem or "")


# ---- (d) incremental ---------------------------------------------------------------------------


def test_an_incremental_check_reads_only_what_was_written_since_the_last_checkpoint(
    settings: Settings, db: Database
) -> None:
    append(db, 1500)
    first = check(settings, db, full=True)
    assert (first.ok, first.rows_read, first.anchored_seq) == (True, 1500, 1500)

    append(db, 3, start=1501)
    later = check(settings, db)
    assert (later.ok, later.entries, later.anchor_seq) == (True, 1503, 1500)
    assert later.rows_read == 4  # the checkpointed entry and the three new ones
    assert check(settings, db).rows_read == 1  # nothing new: the checkpointed entry only
    recorded = audit_checks.last_checks(db).incremental
    assert recorded is not None
    assert (recorded.rows_read, recorded.anchor_seq, recorded.entries) == (1, 1503, 1503)


def test_a_bounded_check_continues_where_the_last_one_stopped(
    settings: Settings, db: Database
) -> None:
    append(db, 25)
    vault = load_vault(settings)

    def bounded() -> audit_checks.AuditCheck:
        return audit_checks.check(
            settings, db, vault, kind="incremental", checked_by="tests", max_rows=10
        )

    runs = [bounded() for _ in range(3)]
    assert [(r.ok, r.complete, r.entries, r.rows_read) for r in runs] == [
        (True, False, 10, 10),
        (True, False, 20, 11),
        (True, True, 25, 6),
    ]


# ---- (e) full checks are an administrator's ----------------------------------------------------


def test_a_viewer_cannot_start_a_full_verification(
    settings: Settings,
    db: Database,
    client: TestClient,
    api: dict[str, dict[str, str]],
) -> None:
    append(db, 3)
    refused = client.post("/api/v1/audit/verify/full", headers=api["viewer"])
    assert refused.status_code == 403

    started = client.post("/api/v1/audit/verify/full", headers=api["admin"])
    assert started.status_code == 202, started.text
    again = client.post("/api/v1/audit/verify/full", headers=api["admin"])
    assert again.status_code == 409  # one at a time: the first is still queued

    verify_audit_chain(job(settings, db), full=True, by="admin@example.org")
    too_soon = client.post("/api/v1/audit/verify/full", headers=api["admin"])
    assert too_soon.status_code == 429
    assert "start another in" in too_soon.json()["detail"]

    checks = client.get("/api/v1/audit/checks", headers=api["viewer"]).json()
    assert checks["full"]["ok"] is True
    assert checks["full"]["checked_by"] == "admin@example.org"

    csrf = sign_in(client, "viewer@example.org")
    page = client.post("/audit/verify/full", data={"csrftoken": csrf}, follow_redirects=False)
    assert page.status_code == 403
    assert "Re-verify everything" not in client.get("/audit").text


def test_an_admins_full_verification_runs_on_the_worker(
    settings: Settings,
    db: Database,
    client: TestClient,
    api: dict[str, dict[str, str]],
) -> None:
    append(db, 3)
    started = client.post("/api/v1/audit/verify/full", headers=api["admin"])
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    queue = job_queue(settings, db)

    def status() -> str | None:
        info = queue.get(job_id)
        return None if info is None else info.status

    with worker_thread(settings):
        wait_until(lambda: status() == "succeeded", timeout=30, what="the full check")
    full = client.get("/api/v1/audit/checks", headers=api["viewer"]).json()["full"]
    assert full["ok"] is True
    assert full["entries"] == audit.verify_all(db).entries


def test_the_schedules_check_quarter_hourly_and_fully_every_night() -> None:
    schedules = {s.name: s for s in tasks.schedules() if s.task == "audit.verify"}
    assert schedules["audit.verify.quarter-hourly"].args == {}
    assert schedules["audit.verify.daily"].args == {"full": True}


# ---- (f) vault key rotation --------------------------------------------------------------------


def test_checkpoints_still_verify_after_the_vault_key_is_rotated(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    settings = Settings(
        var_dir=tmp_path / "keyfile-var", database_url=db_url, vault_keys=None, _env_file=None
    )
    append(db, 6)
    assert check(settings, db).anchored_seq == 6
    old_kid = AnchorFile(anchor_path(settings)).newest().kid  # type: ignore[union-attr]

    report = rotate(settings, db, actor="tests")
    assert report.retired_keys == 1
    assert len(settings.resolved_vault_key_file.read_text().split()) == 1

    newest = AnchorFile(anchor_path(settings)).newest()
    assert newest is not None
    assert newest.kid != old_kid
    assert newest.seq == 6
    assert check(settings, db).ok  # the rotation's audit entry is checked and anchored
    assert check(settings, db, full=True).ok  # older lines vouched for by the newer ones

    truncate_and_rewrite_head(db, keep=4)
    assert not check(settings, db).ok
    assert not check(settings, db, full=True).ok


def test_checkpoints_survive_a_rotation_through_the_environment(
    settings: Settings, db: Database
) -> None:
    append(db, 4)
    check(settings, db)
    old = settings.vault_keys.get_secret_value()  # type: ignore[union-attr]
    fresh = new_key()
    both = settings.model_copy(update={"vault_keys": SecretStr(f"{fresh},{old}")})
    rotate(both, db, actor="tests")
    only_new = Vault([fresh])
    assert check(settings, db, vault=only_new).ok
    assert check(settings, db, vault=only_new, full=True).ok


def test_a_key_replaced_without_rotating_says_how_to_recover(
    settings: Settings, db: Database
) -> None:
    append(db, 2)
    check(settings, db)
    result = check(settings, db, vault=Vault([new_key()]))
    assert not result.ok
    assert "no longer has" in (result.problem or "")
    assert "ledgerlink vault rotate" in (result.problem or "")


def test_a_half_written_checkpoint_line_is_dropped(settings: Settings, db: Database) -> None:
    append(db, 2)
    check(settings, db)
    path = anchor_path(settings)
    with path.open("a") as handle:
        handle.write('{"v":1,"seq":')  # a crash mid-append
    assert check(settings, db).ok
    append(db, 1, start=3)
    assert check(settings, db).anchored_seq == 3
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [2, 3]
    assert os.access(path, os.R_OK)
