"""What a settlement batch should deposit: gross less the expected card fees and the
chargebacks withheld from it.

PayTrace's batch export gives a batch's gross (sales - refunds) and its card-brand split,
not what reaches the bank: the processor keeps its discount fees and withholds
chargebacks first, and those figures are only on the merchant statement. So each scope
keeps an *expected* fee schedule (its ``settings["fee_schedule"]``), per card brand a
percentage in basis points plus a fixed amount in minor units, and the batch side is
completed from it: ``net = gross - fees - withheld``. A deposit that differs from that net
beyond the rules spec's tolerance is a ``deposit_mismatch``.

Rounding (the processor's rule, which the PayTrace sandbox follows, so its deposits agree
to the cent): every approved sale in the batch pays ``percent_bp`` of its own amount,
rounded half up to the minor unit on its own, plus ``fixed_minor``; the fees of a batch
are the sum. Refunds pay no fee and get none back. That is why fees are computed from the
batch's transactions by brand and not from the per-brand totals: rounding a total is not
the sum of rounded sales.

Withheld: each chargeback is withheld in full from the first batch settled at or after
the moment it was read (as the processor withholds every open dispute from its next
deposit), and from that batch only.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.recon_models import ReconBatch, ReconScope, ReconTransaction

OTHER = "other"
#: What a US merchant account typically pays (interchange plus the processor's margin);
#: the PayTrace sandbox charges the same unless told otherwise.
DEFAULT_FEES: dict[str, tuple[int, int]] = {
    "visa": (180, 10),
    "mastercard": (190, 10),
    "amex": (290, 0),
    "discover": (200, 5),
    OTHER: (290, 30),
}
MAX_PERCENT_BP = 10_000
MAX_FIXED_MINOR = 100_00
_ALIASES = {"americanexpress": "amex", "mc": "mastercard", "": OTHER, "unknown": OTHER}
_RATE = re.compile(
    r"^\s*(?:(?P<pct>\d{1,3}(?:\.\d{1,2})?)\s*%)?\s*(?:\+?\s*(?P<fixed>\d+(?:\.\d{1,2})?))?\s*$"
)


def brand_key(card_type: str) -> str:
    """A card brand as the schedule names it: ``"AMEX"``, ``"American Express"`` → amex."""
    key = "".join(ch for ch in card_type.casefold() if ch.isalnum())
    return _ALIASES.get(key, key)


@dataclass(frozen=True, slots=True)
class BrandFee:
    """``percent_bp`` basis points of a sale (180 = 1.80%) plus ``fixed_minor``."""

    percent_bp: int
    fixed_minor: int = 0

    def of(self, amount_minor: int) -> int:
        """The fee of one sale: the percentage rounded half up on its own, plus fixed."""
        share = (2 * abs(amount_minor) * self.percent_bp + MAX_PERCENT_BP) // (2 * MAX_PERCENT_BP)
        return share + self.fixed_minor

    def text(self) -> str:
        percent = f"{self.percent_bp // 100}.{self.percent_bp % 100:02d}%"
        return f"{percent}+{self.fixed_minor // 100}.{self.fixed_minor % 100:02d}"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee per card brand; a brand not named pays the ``other`` rate."""

    brands: dict[str, BrandFee] = field(default_factory=dict)

    def rate(self, card_type: str) -> BrandFee:
        key = brand_key(card_type)
        return self.brands.get(key) or self.brands.get(OTHER) or BrandFee(*DEFAULT_FEES[OTHER])

    def fee(self, card_type: str, amount_minor: int) -> int:
        return self.rate(card_type).of(amount_minor)

    def as_settings(self) -> dict[str, dict[str, int]]:
        return {
            brand: {"percent_bp": fee.percent_bp, "fixed_minor": fee.fixed_minor}
            for brand, fee in sorted(self.brands.items())
        }


def default_schedule() -> FeeSchedule:
    return FeeSchedule({brand: BrandFee(*rate) for brand, rate in DEFAULT_FEES.items()})


def schedule_of(scope: ReconScope) -> FeeSchedule:
    """The scope's schedule: the defaults, with the brands its settings name replaced."""
    stored = (scope.settings or {}).get("fee_schedule") or {}
    return FeeSchedule({**default_schedule().brands, **checked_schedule(stored).brands})


def _whole(value: Any, where: str, low: int, high: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ReconRefused(where, f"{value!r} is not a whole number from {low} to {high} ({unit})")
    return value


def checked_schedule(data: Any) -> FeeSchedule:
    """A fee schedule from settings or an API body, refused with the field that is wrong
    (``fee_schedule.visa.percent_bp``) and what to write instead."""
    if not isinstance(data, Mapping):
        raise ReconRefused(
            "fee_schedule",
            'give an object of card brands, e.g. {"visa": {"percent_bp": 180, "fixed_minor": 10}}',
        )
    brands: dict[str, BrandFee] = {}
    for name, rate in data.items():
        key = brand_key(str(name))
        where = f"fee_schedule.{key or name}"
        if not key or not key.isalnum() or len(key) > 32:
            raise ReconRefused(where, f"{name!r} is not a card brand; write visa, amex, other, …")
        if not isinstance(rate, Mapping) or set(rate) - {"percent_bp", "fixed_minor"}:
            raise ReconRefused(
                where,
                'give {"percent_bp": <basis points>, "fixed_minor": <cents>} and nothing else',
            )
        brands[key] = BrandFee(
            _whole(
                rate.get("percent_bp", 0),
                f"{where}.percent_bp",
                0,
                MAX_PERCENT_BP,
                "basis points: 180 is 1.80%",
            ),
            _whole(
                rate.get("fixed_minor", 0),
                f"{where}.fixed_minor",
                0,
                MAX_FIXED_MINOR,
                "minor units: 10 is $0.10",
            ),
        )
    return FeeSchedule(brands)


def parse_rate(text: str, where: str) -> BrandFee:
    """``"1.80%+0.10"``, ``"2.9%"`` or ``"0.25"`` (the form the sandbox's ``card_fees``
    takes) as a fee; refused with ``where`` named."""
    match = _RATE.match(text)
    if not text.strip() or match is None or not (match["pct"] or match["fixed"]):
        raise ReconRefused(where, f"{text!r}: write a fee as percent plus fixed, e.g. 1.80%+0.10")
    pct, _, frac = (match["pct"] or "0").partition(".")
    dollars, _, cents = (match["fixed"] or "0").partition(".")
    percent_bp = int(pct) * 100 + int((frac + "00")[:2])
    fixed_minor = int(dollars) * 100 + int((cents + "00")[:2])
    if percent_bp > MAX_PERCENT_BP or fixed_minor > MAX_FIXED_MINOR:
        raise ReconRefused(where, f"{text!r} is more than 100% or $100.00 a sale")
    return BrandFee(percent_bp, fixed_minor)


# -- a batch's expected deposit ------------------------------------------------------------


def batch_fees(transactions: Iterable[Mapping[str, Any]], schedule: FeeSchedule) -> int:
    """The expected fees of a batch: each approved sale's fee by its card brand."""
    return sum(
        schedule.fee(str(t.get("card_brand") or ""), int(t["amount_minor"]))
        for t in transactions
        if t["kind"] == "sale" and t["status"] == "approved"
    )


def withheld_by_batch(
    batches: Iterable[tuple[str, datetime]], chargebacks: Iterable[tuple[datetime, int]]
) -> dict[str, int]:
    """Chargeback amounts withheld per batch: each from the first batch settled at or
    after the moment it was read; a chargeback after the last batch waits for the next.
    PayTrace gives a batch's settlement time to the second: a chargeback read in the very
    second a batch settled is taken to be after it (the processor settles once a day, so
    such a tie is rare; its deposit mismatch then names the chargeback's amount)."""
    ordered = sorted(batches, key=lambda b: (b[1], _number_order(b[0])))
    moments = [settled for _, settled in ordered]
    held = {number: 0 for number, _ in ordered}
    for at, amount in chargebacks:
        index = bisect.bisect_left(moments, at)
        if index < len(ordered):
            held[ordered[index][0]] += amount
    return held


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def _number_order(number: str) -> tuple[int, str]:
    return (int(number), "") if number.isdigit() else (0, number)


def refresh_expected(session: Session, scope: ReconScope, numbers: Iterable[str] | None) -> int:
    """Write fees, withheld chargebacks and net of the scope's batches (``numbers``, or
    every batch when None, e.g. after the schedule changed); returns batches changed.
    Withheld is worked out over all batches, as one chargeback moves between them."""
    schedule = schedule_of(scope)
    batches = list(session.scalars(select(ReconBatch).where(ReconBatch.scope_id == scope.id)))
    wanted = None if numbers is None else set(numbers)
    fees: dict[str, int] = {}
    members = select(ReconTransaction).where(
        ReconTransaction.scope_id == scope.id,
        ReconTransaction.kind == "sale",
        ReconTransaction.status == "approved",
    )
    if wanted is None:
        rows = session.scalars(members.where(ReconTransaction.batch_number.is_not(None)))
    else:
        chunk = sorted(wanted)
        rows = session.scalars(members.where(ReconTransaction.batch_number.in_(chunk)))
    for t in rows:
        number = str(t.batch_number)
        fees[number] = fees.get(number, 0) + schedule.fee(t.card_brand or "", t.amount_minor)
    # a chargeback is read when its dispute report is imported (the inbox event's time);
    # a batch read before its settlement time was kept counts as settled at its day's end
    chargebacks = session.execute(
        select(ReconTransaction.created_on, ReconTransaction.amount_minor, PaymentEvent.received_at)
        .outerjoin(
            PaymentEvent,
            (PaymentEvent.transaction_id == ReconTransaction.original_txn_id)
            & (PaymentEvent.kind == "chargeback")
            & (PaymentEvent.connection_id == scope.gateway_connection_id),
        )
        .where(
            ReconTransaction.scope_id == scope.id,
            ReconTransaction.kind == "chargeback",
            ReconTransaction.status == "approved",
        )
    )
    held = withheld_by_batch(
        ((b.batch_number, b.settled_at or _end_of(b.settled_on)) for b in batches),
        ((at or _end_of(on), amount) for on, amount, at in chargebacks),
    )
    changed = 0
    for batch in batches:
        fee = batch.fees_minor
        if wanted is None or batch.batch_number in wanted:
            fee = fees.get(batch.batch_number, 0)
        withheld = held.get(batch.batch_number, 0)
        net = batch.gross_minor - fee - withheld
        if (batch.fees_minor, batch.chargebacks_withheld_minor, batch.net_minor) != (
            fee,
            withheld,
            net,
        ):
            batch.fees_minor, batch.chargebacks_withheld_minor, batch.net_minor = fee, withheld, net
            changed += 1
    return changed
