"""An in-flight posting checkpointed before the upgrade resumes after it: the plan stored
on the event (a plain dict, as earlier versions wrote it) is executed as it stands, once,
through the PayTrace and Sage 500 simulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentEvent
from tests.support.payments import PaymentsWorld, profiles, sage500_world


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def test_a_plan_stored_before_the_upgrade_is_posted_as_it_was_planned(
    world: PaymentsWorld,
) -> None:
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]
    balance = int(invoice["Balance"] * 100)
    sale = world.pay(customer, f"{invoice['Balance']:.2f}", invoice["TranID"])
    world.poll()
    event = world.event(sale)
    # What the pre-typed code checkpointed on the event before a crash, key for key. The
    # odd mapping version proves the stored plan is posted, not a plan made afresh.
    stored: dict[str, Any] = {
        "action": "receipt",
        "ledger_connection_id": world.ledger_id,
        "system": "sage500",
        "key": f"paytrace:{sale}:sale",
        "transaction_id": sale,
        "original_transaction_id": "",
        "customer_id": str(invoice["CustKey"]),
        "invoice_id": str(invoice["InvcKey"]),
        "invoice_number": invoice["TranID"],
        "amount_minor": balance,
        "apply_minor": balance,
        "currency": "USD",
        "date": event.received_at.date().isoformat(),
        "gl_account": "1010-00",
        "reference": f"PayTrace {sale} checkpointed",
        "mapping_version": "paytrace_transaction_to_sage500_cash_receipt@before-upgrade",
    }
    with world.runtime.db.transaction() as session:
        session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id == event.id)
            .values(payload={**event.payload, "plan": stored})
        )

    world.process()

    event = world.event(sale)
    assert event.status == "posted", event.message
    assert event.payload["plan"] == stored
    [posting] = world.postings()
    assert (posting.idempotency_key, posting.applied_minor, posting.mapping_version) == (
        f"paytrace:{sale}:sale",
        balance,
        "paytrace_transaction_to_sage500_cash_receipt@before-upgrade",
    )
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    [payment] = world.erp_payments()
    assert payment["TranCmnt"] == f"PayTrace {sale} checkpointed"
