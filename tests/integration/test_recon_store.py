"""Reconciliation's product layer on both back-ends: runs kept and rerun, statements
imported once and whole, breaks explained and assigned with their history, periods
closed and reopened. The sides are stored rows (as the readers leave them); the matching
is the real engine."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon import resolutions
from ledgerlink.recon.imports import import_statement
from ledgerlink.recon.periods import close_period, reopen_period
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import get_scope
from ledgerlink.recon.views import BreakFilter, break_detail, break_rows, summary
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import AuditEntry
from ledgerlink.store.recon_models import (
    ReconStatement,
    ReconStatementLine,
)
from tests.support.recon import AS_OF, OFX, seed_scope

ME = cli_principal()


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    rt = Runtime(settings)
    upgrade(rt.db)
    return rt


@pytest.fixture
def scope_id(runtime: Runtime) -> int:
    return seed_scope(runtime.db)


def _run(runtime: Runtime, scope_id: int) -> dict[str, int]:
    outcome = asyncio.run(
        run_scope(
            runtime, scope_id, ME, trigger="cli", matcher=default_matcher(), as_of=AS_OF, read=False
        )
    )
    return outcome.counts


def _open(runtime: Runtime, scope_id: int) -> dict[str, str]:
    with runtime.db.read() as session:
        return {r.break_id: r.type for r in break_rows(session, scope_id, BreakFilter())}


def test_a_sale_with_no_receipt_is_a_missing_receipt_and_a_rerun_gives_the_same_answer(
    runtime: Runtime, scope_id: int
) -> None:
    first = _run(runtime, scope_id)
    breaks = _open(runtime, scope_id)
    assert "missing_receipt" in breaks.values()
    assert first["matches"] >= 1
    again = _run(runtime, scope_id)
    assert _open(runtime, scope_id) == breaks
    assert again["new_breaks"] == 0
    assert again["matches"] == first["matches"]
    with runtime.db.read() as session:
        shown = summary(session, get_scope(session, scope_id))
    assert shown.matched_count == first["matches"]
    assert shown.run is not None
    assert shown.run.spec_version.startswith("recon_rules@")
    assert any(t.type == "missing_receipt" and t.amount_minor == 2500 for t in shown.breaks_by_type)


def test_a_statement_is_imported_whole_once_and_its_unknown_credit_is_a_break(
    runtime: Runtime, scope_id: int
) -> None:
    with runtime.db.transaction() as session:
        first = import_statement(session, ME, get_scope(session, scope_id), OFX, "nov.ofx")
    with runtime.db.transaction() as session:
        again = import_statement(session, ME, get_scope(session, scope_id), OFX, "copy.ofx")
    assert not first.duplicate
    assert first.lines == 2
    assert again.duplicate
    assert again.statement_id == first.statement_id
    assert "already imported" in again.message
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReconStatement)) == 1
        assert session.scalar(select(func.count()).select_from(ReconStatementLine)) == 2
    _run(runtime, scope_id)
    breaks = _open(runtime, scope_id)
    assert "unknown_credit" in breaks.values()
    assert "deposit_in_transit" not in breaks.values()  # batch 1001 was deposited


def test_a_malformed_statement_is_refused_with_its_line_and_nothing_is_kept(
    runtime: Runtime, scope_id: int
) -> None:
    broken = OFX.replace(b"<TRNAMT>500.00", b"<TRNAMT>five hundred")
    with pytest.raises(ReconRefused) as refused, runtime.db.transaction() as session:
        import_statement(session, ME, get_scope(session, scope_id), broken, "bad.ofx")
    assert refused.value.field == "file"
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReconStatement)) == 0
        assert session.scalar(select(func.count()).select_from(ReconStatementLine)) == 0


def test_a_break_explained_and_assigned_keeps_its_history_and_is_audited(
    runtime: Runtime, scope_id: int
) -> None:
    _run(runtime, scope_id)
    break_id = next(b for b, t in _open(runtime, scope_id).items() if t == "missing_receipt")
    with runtime.db.transaction() as session:
        resolutions.assign(session, ME, scope_id, break_id, "ann@example.org")
    with runtime.db.transaction() as session, pytest.raises(ReconRefused, match="Say why"):
        resolutions.explain(session, ME, scope_id, break_id, "  ")
    with runtime.db.transaction() as session:
        resolutions.explain(session, ME, scope_id, break_id, "cash sale keyed as card")
    assert break_id not in _open(runtime, scope_id)
    _run(runtime, scope_id)  # still unmatched: the explanation stands
    with runtime.db.read() as session:
        detail = break_detail(session, scope_id, break_id)
        assert detail is not None
        assert detail.row.status == "explained"
        assert detail.row.reason == "cash sale keyed as card"
        assert detail.row.assigned_to == "ann@example.org"
        assert [h.action for h in detail.history] == ["found", "assigned", "explained"]
        assert [t["txn_id"] for t in detail.transactions] == ["5002"]
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"recon.break.assigned", "recon.break.explained", "recon.run"} <= actions


def test_a_closed_period_is_signed_off_locked_and_reopened_with_a_reason(
    runtime: Runtime, scope_id: int
) -> None:
    _run(runtime, scope_id)
    with runtime.db.transaction() as session, pytest.raises(ReconRefused, match="open break"):
        close_period(session, ME, get_scope(session, scope_id), "2026-11")
    for break_id in _open(runtime, scope_id):
        with runtime.db.transaction() as session:
            resolutions.explain(session, ME, scope_id, break_id, "checked with the bank")
    with runtime.db.transaction() as session:
        closed = close_period(session, ME, get_scope(session, scope_id), "2026-11")
        assert closed.signed_off_by == ME.actor
    with runtime.db.transaction() as session, pytest.raises(ReconRefused, match=r"2026-11.*closed"):
        import_statement(session, ME, get_scope(session, scope_id), OFX, "late.ofx")
    with runtime.db.transaction() as session, pytest.raises(ReconRefused, match="Say why"):
        reopen_period(session, ME, get_scope(session, scope_id), "2026-11", reason="")
    with runtime.db.transaction() as session:
        reopen_period(session, ME, get_scope(session, scope_id), "2026-11", reason="late deposit")
    with runtime.db.transaction() as session:
        assert not import_statement(
            session, ME, get_scope(session, scope_id), OFX, "x.ofx"
        ).duplicate
    with runtime.db.read() as session:
        actions = list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("recon.period.%"))
            )
        )
    assert actions == ["recon.period.close", "recon.period.reopen"]


def test_a_period_is_named_as_a_month(runtime: Runtime, scope_id: int) -> None:
    with runtime.db.transaction() as session, pytest.raises(ReconRefused, match="YYYY-MM"):
        close_period(session, ME, get_scope(session, scope_id), "November")
