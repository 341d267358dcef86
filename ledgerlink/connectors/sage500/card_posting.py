"""How card payments post to Sage 500: what the payment spec
(``paytrace_transaction_to_sage500_cash_receipt``) names the customer, how its output (a
``StgCashRcpt`` staging row) reads as the fields a receipt is posted with, and how
ledgerlink names PayTrace profiles after Sage 500 customers (``CustID``). The registry
descriptor points here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.base import CardPostingRules
from ledgerlink.domain.accounts import ReceiptFields
from ledgerlink.mapping.transforms.customer_ids import harmonise


def receipt_fields(output: Mapping[str, Any]) -> ReceiptFields:
    return ReceiptFields(
        date=str(output.get("TranDate") or ""),
        gl_account=str(output.get("GLAcctNo") or ""),
        reference=str(output.get("TranCmnt") or ""),
    )


def customer_number_of_profile(profile_id: str) -> str | None:
    """The CustID a PayTrace profile id stands for (ledgerlink names profiles after it);
    None when the id is not in that form."""
    try:
        return harmonise(profile_id, "paytrace", "sage500").value
    except ValueError:
        return None


def profile_of_customer_number(number: str) -> str | None:
    """The PayTrace profile id ledgerlink gives the customer with this CustID."""
    try:
        return harmonise(number, "sage500", "paytrace").value
    except ValueError:
        return None


CARD_POSTING = CardPostingRules(
    customer_field="CustID",
    customer_link="sage500_cust_key",
    read_receipt=receipt_fields,
    customer_number_of_profile=customer_number_of_profile,
    profile_of_customer_number=profile_of_customer_number,
    ach_default_method="ACH",
    account_is_gl_account=True,
)
