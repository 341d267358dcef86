"""ACH payments in a payments world (``tests/support/payments.py``): a payer's bank account
debited through PayTrace's checks API, a stored bank-account profile, and the payer's bank
returning a payment with an R-code (the PayTrace sandbox's ``/_sandbox/checks/return``)."""

from __future__ import annotations

from typing import Any

import httpx

from ledgerlink import connections
from ledgerlink.store.models import Connection
from tests.support.payments import ME, PaymentsWorld

#: A test bank account (PayTrace's sandbox takes any 4-17 digits and a routing number
#: with a valid ABA check digit; 325070760 is the one PayTrace's own tests use).
ACCOUNT = "123456789012"
ROUTING = "325070760"


def ach_sale(world: PaymentsWorld, amount: str, invoice: str, *, customer_id: str = "") -> str:
    """An ACH payment of ``amount`` for ``invoice``; the id ledgerlink keeps (``ach-…``)."""
    if customer_id:
        body = world.paytrace(
            "/v1/checks/sale/by_customer",
            {"customer_id": customer_id, "amount": amount, "invoice_id": invoice},
        )
    else:
        body = world.paytrace(
            "/v1/checks/sale/by_account",
            {
                "amount": amount,
                "check": {"account_number": ACCOUNT, "routing_number": ROUTING},
                "billing_address": {"name": "Test Payer"},
                "invoice_id": invoice,
            },
        )
    assert body.get("success"), body
    return f"ach-{body['check_transaction_id']}"


def bank_profile(world: PaymentsWorld, customer_id: str) -> None:
    """A PayTrace customer profile holding a bank account (no card)."""
    body = world.paytrace(
        "/v1/customer/create",
        {
            "customer_id": customer_id,
            "check": {"account_number": ACCOUNT, "routing_number": ROUTING},
            "billing_address": {"name": "Bank Payer"},
        },
    )
    assert body.get("success"), body


def return_check(world: PaymentsWorld, kept_id: str, code: str = "R01") -> dict[str, Any]:
    """The payer's bank returns the ACH payment with ``code``."""
    response = httpx.post(
        f"{world.paytrace_url}/_sandbox/checks/return",
        json={"check_transaction_id": int(kept_id.removeprefix("ach-")), "return_code": code},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def map_ach(world: PaymentsWorld, entry: dict[str, Any]) -> None:
    """Set the ledger connection's ACH payment method (``payment_methods.ach``) as an
    administrator saving the connection would."""
    with world.runtime.db.transaction() as session:
        connection = session.get(Connection, world.ledger_id)
        assert connection is not None
        methods = dict(connection.settings.get("payment_methods") or {})
        methods["ach"] = entry
        connections.update(
            session, world.runtime.vault, ME, connection, settings={"payment_methods": methods}
        )


def only_bank_account(world: PaymentsWorld, customer_id: str) -> None:
    """Replace ``customer_id``'s PayTrace profile by one holding a bank account, no card."""
    assert world.paytrace("/v1/customer/delete", {"customer_id": customer_id}).get("success")
    bank_profile(world, customer_id)
