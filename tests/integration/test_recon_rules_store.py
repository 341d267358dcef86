"""The matching rules as versions in the store, on both back-ends: a save, a rollback,
each audited with who and why; a spec that cannot be compiled refused with its line over
the API and the CLI with nothing stored; a run after the amount tolerance is widened
matches what it did not before and records the new version on its matches, and rolling
back gives the old answer again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.recon import match_sets, rule_specs
from ledgerlink.recon.rules import packaged_text
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import AuditEntry
from ledgerlink.store.recon_models import ReconBreak, ReconReceipt, ReconTransaction
from ledgerlink.store.recon_rule_models import ReconRuleSpec
from tests.support.cli import cli
from tests.support.recon import AS_OF, seed_scope
from tests.support.server import server_env
from tests.support.web import make_user, sign_in

ME = cli_principal()
#: One cent of slack on amounts: a receipt keyed $39.99 for a $40.00 sale still matches.
ONE_CENT = packaged_text().replace("amount_minor: 0 ", "amount_minor: 1 ")
#: A receipt key pattern the matcher cannot run (no ``id`` group), on line 32.
NO_ID_GROUP = packaged_text().replace(
    "pattern: '^paytrace:(?P<id>[^:]+):'", "pattern: '^paytrace:([^:]+):'"
)
NO_ID_LINE = packaged_text().splitlines().index("      pattern: '^paytrace:(?P<id>[^:]+):'") + 1


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    rt = Runtime(settings)
    upgrade(rt.db)
    return rt


def _seed_a_cent_off(db: Database) -> int:
    """The shared scope plus a $40.00 sale receipted as $39.99 by its transaction id."""
    scope_id = seed_scope(db)
    with db.transaction() as session:
        session.add_all(
            [
                ReconTransaction(
                    scope_id=scope_id,
                    txn_id="5003",
                    kind="sale",
                    status="approved",
                    amount_minor=4000,
                    currency="USD",
                    created_on=date(2026, 11, 10),
                    batch_number="1002",
                    card_brand="visa",
                ),
                ReconReceipt(
                    scope_id=scope_id,
                    receipt_id="R3",
                    idempotency_key="paytrace:5003:sale",
                    txn_id="5003",
                    kind="receipt",
                    amount_minor=3999,
                    currency="USD",
                    posted_on=date(2026, 11, 10),
                    reversed=False,
                    customer_id="C1",
                    reference="PT5003",
                ),
            ]
        )
    return scope_id


def _run(runtime: Runtime, scope_id: int) -> tuple[str, dict[str, str], set[str]]:
    """Run with the active rules: the version, each match's rule by the receipt it
    matched, and the open breaks."""
    asyncio.run(
        run_scope(
            runtime,
            scope_id,
            ME,
            trigger="cli",
            matcher=default_matcher(runtime.db),
            as_of=AS_OF,
            read=False,
        )
    )
    with runtime.db.read() as session:
        matches = match_sets.current(session, scope_id).to_dicts()
        versions = {m["spec_version"] for m in matches}
        assert len(versions) == 1, versions
        by_receipt = {
            receipt: f"{m['rule']}@{m['spec_version']}"
            for m in matches
            if m["right_side"] == "receipts"
            for receipt in m["right_ids"]
        }
        open_breaks = set(
            session.scalars(
                select(ReconBreak.break_id).where(
                    ReconBreak.status == "open", ReconBreak.present.is_(True)
                )
            )
        )
    return versions.pop(), by_receipt, open_breaks


def _audit(db: Database) -> list[AuditEntry]:
    with db.read() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "recon_rules")
                .order_by(AuditEntry.seq)
            )
        )


def test_a_wider_tolerance_matches_what_it_did_not_and_a_rollback_restores_the_old_answer(
    runtime: Runtime,
) -> None:
    scope_id = _seed_a_cent_off(runtime.db)
    before, matched, breaks = _run(runtime, scope_id)
    assert before.startswith("recon_rules@package:")
    assert "R3" not in matched
    assert "amount_mismatch:R3" in breaks

    with runtime.db.transaction() as session:
        saved = rule_specs.save(session, ME, ONE_CENT, "card receipts keyed a cent short")
    assert saved.version == 1
    version, matched, breaks = _run(runtime, scope_id)
    assert version == "recon_rules@v1"
    assert matched["R3"] == "by_transaction_id@recon_rules@v1"
    assert "amount_mismatch:R3" not in breaks

    with runtime.db.transaction() as session:
        restored = rule_specs.rollback(session, ME, 0, "a cent short is a break after all")
    assert (restored.version, restored.rolled_back_from) == (2, 0)
    version, matched, breaks = _run(runtime, scope_id)
    assert version == "recon_rules@v2"
    assert "R3" not in matched
    assert "amount_mismatch:R3" in breaks


def test_saves_and_rollbacks_are_audited_with_who_and_why_and_need_a_reason(
    runtime: Runtime,
) -> None:
    with runtime.db.transaction() as session:
        rule_specs.save(session, ME, ONE_CENT, "one cent of slack")
    with runtime.db.transaction() as session:
        rule_specs.save(session, ME, packaged_text(), "back to exact")
    with runtime.db.transaction() as session:
        rule_specs.rollback(session, ME, 1, "slack again")
    with pytest.raises(rule_specs.ReasonRequired), runtime.db.transaction() as session:
        rule_specs.save(session, ME, ONE_CENT, "  ")
    with pytest.raises(rule_specs.RuleVersionNotFound), runtime.db.transaction() as session:
        rule_specs.rollback(session, ME, 9, "no such version")
    entries = _audit(runtime.db)
    assert [e.action for e in entries] == [
        "recon.rules_saved",
        "recon.rules_saved",
        "recon.rules_rolled_back",
    ]
    assert all(e.actor == ME.actor for e in entries)
    assert [e.after["reason"] for e in entries] == [
        "one cent of slack",
        "back to exact",
        "slack again",
    ]
    assert entries[0].before["version"].startswith("recon_rules@package:")
    assert entries[2].before["version"] == "recon_rules@v2"
    assert entries[2].after["rolled_back_from"] == 1
    with runtime.db.read() as session:
        active = rule_specs.active(session)
        history = rule_specs.history(session)
    assert (active.label, active.text) == ("recon_rules@v3", ONE_CENT)
    assert [(r.version, r.is_active) for r in history] == [(3, True), (2, False), (1, False)]


def test_the_api_refuses_a_spec_that_cannot_run_with_its_line_and_stores_nothing(
    client: TestClient, db: Database
) -> None:
    admin = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    viewer = {"Authorization": f"Bearer {make_user(db, Role.VIEWER).token}"}

    shown = client.get("/api/v1/recon/rules", headers=viewer)
    assert shown.status_code == 200, shown.text
    assert shown.json()["spec_version"].startswith("recon_rules@package:")
    assert shown.json()["yaml"] == packaged_text()
    body = {"yaml": ONE_CENT, "reason": "a cent of slack"}
    assert client.put("/api/v1/recon/rules", json=body, headers=viewer).status_code == 403

    refused = client.put(
        "/api/v1/recon/rules", json={"yaml": NO_ID_GROUP, "reason": "broken"}, headers=admin
    )
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(NO_ID_LINE, "receipts.keys[1].pattern")]
    assert "group named id" in errors[0]["message"]
    assert client.get("/api/v1/recon/rules/versions", headers=viewer).json() == []
    assert not _audit(db)

    saved = client.put("/api/v1/recon/rules", json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["spec_version"] == "recon_rules@v1"
    back = client.post(
        "/api/v1/recon/rules/rollback", json={"version": 0, "reason": "exact"}, headers=admin
    )
    assert back.status_code == 200, back.text
    assert back.json()["spec_version"] == "recon_rules@v2"
    assert back.json()["yaml"] == packaged_text()
    missing = client.post(
        "/api/v1/recon/rules/rollback", json={"version": 7, "reason": "x"}, headers=admin
    )
    assert missing.status_code == 404
    versions = client.get("/api/v1/recon/rules/versions", headers=viewer).json()
    assert [(v["version"], v["reason"], v["is_active"]) for v in versions] == [
        (2, "exact", True),
        (1, "a cent of slack", False),
    ]


def test_the_portal_shows_the_rules_and_an_admin_saves_and_rolls_back(
    client: TestClient, db: Database
) -> None:
    token = sign_in(client, make_user(db, Role.ADMIN).email)
    page = client.get("/recon/rules")
    assert page.status_code == 200, page.text
    assert "recon_rules@package:" in page.text
    refused = client.post(
        "/recon/rules",
        data={"yaml": NO_ID_GROUP, "reason": "broken", "csrftoken": token},
    )
    assert refused.status_code == 422
    assert f"line {NO_ID_LINE}" in refused.text
    saved = client.post(
        "/recon/rules",
        data={"yaml": ONE_CENT, "reason": "a cent of slack", "csrftoken": token},
    )
    assert saved.status_code == 200, saved.text  # followed the redirect
    assert "Saved recon_rules@v1" in saved.text
    back = client.post(
        "/recon/rules/rollback", data={"version": "0", "reason": "exact", "csrftoken": token}
    )
    assert "recon_rules@v2" in back.text


def test_the_cli_shows_uploads_refuses_with_the_line_and_rolls_back(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    upgrade(db)
    env = {**server_env(settings), "COLUMNS": "400"}
    assert "recon_rules@package:" in cli(["recon", "rules", "show"], env)
    bad = tmp_path / "bad.yaml"
    bad.write_text(NO_ID_GROUP, "utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledgerlink.cli",
            "recon",
            "rules",
            "upload",
            str(bad),
            "--reason",
            "x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    refused = " ".join(done.stderr.split())
    assert f"line {NO_ID_LINE}" in refused
    assert "group named id" in refused
    assert "No saved versions" in cli(["recon", "rules", "history"], env)
    with db.read() as session:
        assert session.scalar(select(ReconRuleSpec)) is None

    good = tmp_path / "cent.yaml"
    good.write_text(ONE_CENT, "utf-8")
    saved = cli(["recon", "rules", "upload", str(good), "--reason", "a cent"], env)
    assert "Saved recon_rules@v1" in saved
    assert "amount_minor: 1" in cli(["recon", "rules", "show"], env)
    back = cli(["recon", "rules", "rollback", "0", "--reason", "exact"], env)
    assert "recon_rules@v2" in back
    history = " ".join(cli(["recon", "rules", "history"], env).split())
    assert "a cent" in history
    assert "exact (restores v0)" in history
