"""What the ledgers and the card gateway hold, as ledgerlink sees it.

Connectors translate each system's records into these types and back; nothing above
the connectors sees an SBC JSON body, a Sage 500 row or a PayTrace response. Amounts
are :class:`Money`; identifiers are strings (Sage 500 keys are integers upstream).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ledgerlink.domain.money import Money


@dataclass(frozen=True, slots=True)
class Address:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2


@dataclass(frozen=True, slots=True)
class CustomerAccount:
    """A customer in a ledger: an SBC contact or a Sage 500 customer."""

    system: str
    id: str  # SBC contact id, Sage 500 CustKey
    number: str  # SBC reference, Sage 500 CustID: what users see and type
    name: str
    email: str = ""
    phone: str = ""
    address: Address = field(default_factory=Address)
    currency: str = "USD"
    balance: Money | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class CustomerDraft:
    """A customer to create or update in a ledger."""

    number: str
    name: str
    email: str = ""
    phone: str = ""
    address: Address = field(default_factory=Address)
    currency: str = "USD"


class InvoiceStatus(StrEnum):
    UNPAID = "unpaid"
    PART_PAID = "part_paid"
    PAID = "paid"
    VOID = "void"
    DRAFT = "draft"


@dataclass(frozen=True, slots=True)
class Invoice:
    system: str
    id: str  # SBC sales invoice id, Sage 500 InvcKey
    number: str  # SBC invoice_number, Sage 500 TranID
    customer_id: str
    date: dt.date
    due_date: dt.date | None
    total: Money
    outstanding: Money
    status: InvoiceStatus
    updated_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return not self.outstanding.is_zero and self.status is not InvoiceStatus.VOID


@dataclass(frozen=True, slots=True)
class Application:
    """Part of a receipt (or refund) applied to one invoice."""

    invoice_id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class ReceiptRequest:
    """A cash receipt to post. ``idempotency_key`` is derived from the source event
    (PayTrace transaction id + kind), so posting it twice finds the first one."""

    idempotency_key: str
    customer_id: str
    date: dt.date
    amount: Money
    applications: tuple[Application, ...] = ()
    reference: str = ""  # shown to users in the ledger (e.g. "PayTrace 123456")
    memo: str = ""
    payment_method: str = "card"
    #: the GL cash account the mapping chose (Sage 500); empty: the connection's default
    gl_account: str = ""
    #: the ledger's own payment method and bank account for this receipt, where the
    #: connection maps ``payment_method`` to one (ACH); empty: the connection's card default
    payment_method_id: str = ""
    bank_account_id: str = ""

    @property
    def applied(self) -> Money:
        total = Money.zero(self.amount.currency)
        for application in self.applications:
            total = total + application.amount
        return total


@dataclass(frozen=True, slots=True)
class PostedReceipt:
    system: str
    id: str  # SBC contact payment id, Sage 500 CustPmtKey
    idempotency_key: str
    amount: Money
    applied: Money
    #: True when the ledger already had it (a retry found the earlier post).
    replayed: bool = False

    @property
    def unapplied(self) -> Money:
        return self.amount - self.applied


@dataclass(frozen=True, slots=True)
class ReceiptReversal:
    """Undo a posted receipt (a card void or chargeback). Ledgers differ in how: one
    deletes the receipt (SBC), another posts ``undoing`` against it (Sage 500: a refund or
    chargeback entry that re-opens the invoice). Either way the invoice is open again."""

    #: the ledger's id of the receipt (SBC contact payment id, Sage 500 CustPmtKey)
    receipt_id: str
    #: the entry that undoes it, for ledgers that post one; its key makes a retry safe
    undoing: RefundRequest


@dataclass(frozen=True, slots=True)
class ReceiptFields:
    """What a ledger's payment spec chose for one receipt, read from the spec's output by
    the ledger's connector ("" where the spec left a field out)."""

    date: str = ""  # ISO date
    gl_account: str = ""
    reference: str = ""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Money going back to a customer (a card refund or a chargeback)."""

    idempotency_key: str
    customer_id: str
    date: dt.date
    amount: Money
    applications: tuple[Application, ...] = ()  # invoices the refund re-opens
    reference: str = ""
    memo: str = ""
    gl_account: str = ""
    #: a chargeback is posted as such where the ledger tells them apart (Sage 500)
    chargeback: bool = False
    #: the bank account the money leaves from, where the ledger names one (SBC); empty:
    #: the connection's receipts account
    bank_account_id: str = ""


@dataclass(frozen=True, slots=True)
class LedgerPayment:
    """A customer receipt or refund as the ledger holds it (its history, not our posting).

    Sync shows these in a member's history; reconciliation matches them against PayTrace
    and our own postings (which know the ledger id and the idempotency key)."""

    id: str  # SBC contact payment id, Sage 500 CustPmtKey
    kind: str  # "receipt" | "refund"
    customer_id: str
    on: dt.date
    amount: Money  # positive
    unallocated: Money
    reference: str  # where our postings carry the PayTrace transaction / key
    applied: tuple[tuple[str, Money], ...] = ()  # (invoice id, amount applied)
    deleted: bool = False  # with changed_since: gone since (SBC deletes on reversal)
    #: when the ledger last changed it (None where the ledger keeps no change date)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerCreditNote:
    """A sales credit note (SBC) or AR credit memo (Sage 500): credit a customer holds."""

    id: str  # SBC sales credit note id, Sage 500 InvcKey
    customer_id: str
    number: str  # what users see (SBC credit_note_number, Sage 500 TranID)
    on: dt.date
    amount: Money  # positive
    unallocated: Money  # credit not yet applied
    status: str  # the ledger's status in words ("void", "applied", "open", ...)
    deleted: bool = False  # voided (SBC) or gone since ``changed_since``
    updated_at: datetime | None = None


class CardTransactionKind(StrEnum):
    SALE = "sale"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"


class CardOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    APPROVED_THEN_VOIDED = "approved_then_voided"  # PayTrace 103: AVS/CSC rules voided it


@dataclass(frozen=True, slots=True)
class CardTransaction:
    """One card gateway transaction; never holds a card number beyond the masked form."""

    id: str
    kind: CardTransactionKind
    outcome: CardOutcome
    amount: Money
    masked_card: str = ""
    approval_code: str = ""
    invoice_number: str = ""
    customer_id: str = ""  # PayTrace customer profile id
    status_message: str = ""
    created_at: datetime | None = None
    settled_at: datetime | None = None
    voided: bool = False
    original_id: str = ""  # for refunds and voids: the transaction they act on
    card_type: str = ""  # the card brand as the gateway names it ("Visa", "AMEX", ...)


@dataclass(frozen=True, slots=True)
class CardCustomer:
    customer_id: str
    name: str
    email: str = ""
    phone: str = ""
    address: Address = field(default_factory=Address)
    masked_card: str = ""


@dataclass(frozen=True, slots=True)
class BatchCardBrand:
    """One card brand's part of a settlement batch, as the gateway reports it."""

    card_type: str  # "Visa", "MasterCard", "Amex", "Discover", ...
    count: int
    net: Money  # sales - refunds of this brand


@dataclass(frozen=True, slots=True)
class Batch:
    """A settlement batch as the gateway reports it. ``net`` is sales - refunds (PayTrace's
    net_amount), before the processor's fees and withheld chargebacks: those are not in
    the gateway's API but on the merchant/bank statement, so the deposit can be less."""

    number: str
    settled_at: datetime | None
    count: int
    net: Money
    sales: Money | None = None  # gross: approved sales (and captures) settled in the batch
    refunds: Money | None = None
    sales_count: int = 0
    refund_count: int = 0
    card_brands: tuple[BatchCardBrand, ...] = ()
