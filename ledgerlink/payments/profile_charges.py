"""Charging a stored PayTrace customer profile: its card, or — when the profile holds a
bank account and no card — its bank account by ACH (``/v1/checks/sale/by_customer``).

The operator's *Charge a stored card* (``payments/charges.py``) calls
:func:`charge_profile`; what comes back is the same for both ways of paying: the id
ledgerlink keeps (a card transaction id, or ``ach-<check id>``), whether PayTrace took it,
its words, and the inbox payload the payment is then posted from. No card or account
number passes through here: PayTrace charges what it stores.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerlink.connectors.base import AchGateway, CardGateway
from ledgerlink.domain.accounts import CardCustomer, CardOutcome
from ledgerlink.domain.checks import ACH, event_id
from ledgerlink.domain.money import Money


@dataclass(frozen=True)
class ProfileCharge:
    #: the id ledgerlink keeps: a card transaction id, or ``ach-<check id>``
    transaction_id: str
    approved: bool
    #: PayTrace's words (why it was declined or not processed)
    status_message: str
    #: the inbox event's payload
    payload: dict[str, str]
    #: card or ach
    method: str = "card"

    def message(self, amount: Money) -> str:
        """What the operator is told."""
        what = "the ACH payment of" if self.method == ACH else ""
        if self.approved:
            return (
                f"PayTrace approved {what + ' ' if what else ''}{amount.format_plain()} "
                f"(transaction {self.transaction_id}); it is being posted"
                + (
                    ". An ACH payment can still come back from the payer's bank for a few "
                    "days (a return reverses the receipt)"
                    if self.method == ACH
                    else ""
                )
            )
        if self.method == ACH:
            return f"PayTrace did not process the ACH payment: {self.status_message}"
        return f"PayTrace declined the card: {self.status_message}"


async def charge_profile(
    gateway: CardGateway,
    profile: str,
    stored: CardCustomer,
    amount: Money,
    invoice_number: str,
) -> ProfileCharge:
    """Charge ``profile`` (as ``stored`` describes it) for ``amount``: by card when it holds
    one, else by ACH when it holds a bank account."""
    if not stored.masked_card and isinstance(gateway, AchGateway):
        account = await gateway.bank_account(profile)
        if account:
            check = await gateway.check_sale_by_customer(
                profile, amount, invoice_number=invoice_number
            )
            kept = event_id(check.id)
            payload = {
                "transaction_id": kept,
                "amount": amount.format_plain(),
                "currency": amount.currency,
                "invoice_id": invoice_number,
                "customer_id": profile,
                "response": check.message,
                "masked_account": account,
                "method": ACH,
                "response_code": "102" if check.declined else "",
            }
            return ProfileCharge(
                kept,
                not check.declined,
                check.message,
                {k: v for k, v in payload.items() if v},
                ACH,
            )
    sale = await gateway.sale_by_customer(profile, amount, invoice_number=invoice_number)
    approved = sale.outcome is CardOutcome.APPROVED
    return ProfileCharge(
        sale.id,
        approved,
        sale.status_message,
        {
            "transaction_id": sale.id,
            "amount": amount.format_plain(),
            "currency": amount.currency,
            "invoice_id": invoice_number,
            "customer_id": profile,
            "approval_code": sale.approval_code,
            "response": sale.status_message,
            "response_code": "101" if approved else "102",
            # PayTrace's by_customer answer carries no card (recorded Dec 2024): the
            # profile's masked card is the one charged
            "masked_card": sale.masked_card or stored.masked_card,
        },
    )


__all__ = ["ProfileCharge", "charge_profile"]
