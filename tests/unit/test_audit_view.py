"""Audit entries in words: what each kind of entry shows a finance user as its change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledgerlink.audit_view import FieldChange, view
from ledgerlink.store.models import AuditEntry


def _entry(action: str, entity_type: str, entity_id: str | None, **docs: Any) -> AuditEntry:
    return AuditEntry(
        seq=1,
        at=datetime(2026, 12, 7, tzinfo=UTC),
        actor="alice@example.org",
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=docs.get("before"),
        after=docs.get("after"),
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def test_a_payment_resolution_reads_open_to_its_outcome_and_links_the_queue() -> None:
    shown = view(
        _entry(
            "payment.exception.apply_to_invoice",
            "payment_exception",
            "12",
            after={"transaction_id": "T-9", "invoice_number": "INV-4", "note": ""},
        )
    )
    assert shown.what == "Payment exception apply to invoice"
    assert shown.object_href == "/payments/exceptions"
    assert shown.changes[0] == FieldChange("Exception", "open", "applied to an invoice")
    assert FieldChange("Invoice number", "—", "INV-4") in shown.changes
    assert all(change.field != "Note" for change in shown.changes)  # empty says nothing


def test_a_period_close_reads_open_to_closed_and_links_its_reconciliation() -> None:
    shown = view(
        _entry(
            "recon.period.close",
            "recon_period",
            "7",
            after={"scope_id": 3, "period": "2026-11", "note": "signed off"},
        )
    )
    assert shown.what == "Reconciliation period closed"
    assert shown.object_href == "/recon/3"
    assert shown.changes[0] == FieldChange("Period", "open", "closed")


def test_a_password_change_reads_changed_and_never_a_value() -> None:
    shown = view(
        _entry(
            "user.password_changed",
            "user",
            "4",
            after={"sessions_ended": 2, "api_tokens_revoked": 0},
        )
    )
    assert shown.changes[0] == FieldChange("Password", "set", "changed", secret=True)


def test_a_deleted_member_reads_what_was_removed_and_links_nowhere() -> None:
    shown = view(
        _entry(
            "member.deleted",
            "member",
            "M1",
            before={"first_name": "Jane", "last_name": "Doe", "email": "j@example.org"},
        )
    )
    assert shown.object_name == "Jane Doe"
    assert shown.object_href is None
    assert FieldChange("Email", "j@example.org", "(removed)") in shown.changes


def test_a_secret_caught_by_the_safety_net_is_never_shown() -> None:
    shown = view(
        _entry(
            "connection.updated",
            "connection",
            "2",
            before={"settings": {"client_secret": "••••••••", "region": "eu"}},
            after={"settings": {"client_secret": "••••••••", "region": "us"}},
        )
    )
    assert shown.changes == (FieldChange("Settings: Region", "eu", "us"),)
