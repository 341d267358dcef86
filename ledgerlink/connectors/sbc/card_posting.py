"""How card payments post to SBC: what the payment spec
(``paytrace_transaction_to_sbc_contact_payment``) names the customer, and how its output
reads as the fields a receipt is posted with. The registry descriptor points here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.base import CardPostingRules
from ledgerlink.domain.accounts import ReceiptFields


def receipt_fields(output: Mapping[str, Any]) -> ReceiptFields:
    """A contact payment as the spec mapped it. SBC takes no GL account per payment (the
    bank account is the connection's)."""
    return ReceiptFields(
        date=str(output.get("date") or ""),
        gl_account="",
        reference=str(output.get("reference") or ""),
    )


CARD_POSTING = CardPostingRules(
    customer_field="contact_id",
    customer_link="sbc_contact_id",
    read_receipt=receipt_fields,
    ach_default_method="BANK_TRANSFER",
)
