"""ACH payments (PayTrace's *checks*): what ledgerlink knows of one, without the account.

PayTrace numbers checks apart from card transactions (``check_transaction_id``), so the
two id ranges may meet. Everywhere ledgerlink keeps a check's id — inbox events, postings,
idempotency keys (``paytrace:ach-9981601:sale``) — it is written with :data:`ACH_PREFIX`,
so a check can never be taken for the card transaction with the same number.

Only the masked account number (``xx3456``) is ever kept; the routing number names the
bank, not the payer, and is not kept either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ledgerlink.domain.money import Money

ACH_PREFIX = "ach-"
#: The payment method of an ACH payment, as the payment specs and settings name it.
ACH = "ach"


def event_id(check_id: str | int) -> str:
    """The id ledgerlink keeps for PayTrace check ``check_id`` (``ach-9981601``)."""
    text = str(check_id)
    return text if text.startswith(ACH_PREFIX) else f"{ACH_PREFIX}{text}"


def check_id(kept_id: str) -> str:
    """PayTrace's ``check_transaction_id`` of an id kept as :func:`event_id` made it."""
    return kept_id.removeprefix(ACH_PREFIX)


def is_ach(kept_id: str) -> bool:
    return kept_id.startswith(ACH_PREFIX)


def mask_account(number: str) -> str:
    """An account number as ledgerlink may show it: its last four digits (``xx3456``)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"xx{digits[-4:]}" if digits else ""


@dataclass(frozen=True, slots=True)
class CheckTransaction:
    """One check as PayTrace's checks export (or a checks call) gives it."""

    id: str  # PayTrace's check_transaction_id (digits, no prefix)
    #: SALE | HOLD | REFUND
    kind: str
    #: H held · P pending settlement · S settled · V voided · D not processed · R returned
    status: str
    amount: Money
    invoice_number: str = ""
    customer_id: str = ""
    masked_account: str = ""
    original_id: str = ""
    return_code: str = ""
    return_reason: str = ""
    created_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None
    #: what PayTrace answered (processed, not processed)
    message: str = ""

    @property
    def declined(self) -> bool:
        return self.status == "D"

    @property
    def voided(self) -> bool:
        return self.status == "V"

    @property
    def returned(self) -> bool:
        return self.status == "R" or bool(self.return_code)

    @property
    def held(self) -> bool:
        return self.status == "H"
