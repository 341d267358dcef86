"""What the processor pays out for a settled batch: card-brand fees, withheld chargebacks.

PayTrace's API reports a batch's sales, refunds and net amount (sales - refunds) by card
brand, but not what reaches the bank: the processor keeps its discount fees and withholds
chargebacks before it deposits the rest. Those figures appear on the merchant statement
and on the bank statement, not in the API, so the simulator keeps them beside the batch
and shows them only under ``/_sandbox/deposits``, which stands for the bank.

Fees: each approved sale (and capture) in a batch pays ``percent`` of its amount plus a
fixed amount for its card brand; the percentage part of each sale is rounded half up to
the cent on its own, then all fees are summed (refunds pay no fee and get none back).
Chargebacks: every dispute not yet withheld is withheld in full from the next batch's
deposit. Net deposit = (sales - refunds) - fees - withheld; it can be negative, and is
then a debit on the bank statement.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from ledgerlink.domain.money import Money

if TYPE_CHECKING:
    from ledgerlink.sandbox.paytrace.clock import Clock
    from ledgerlink.sandbox.paytrace.config import PayTraceConfig
    from ledgerlink.sandbox.paytrace.store import Row, Store

_FEE = re.compile(
    r"^\s*(?:(?P<pct>\d+(?:\.\d+)?)\s*%)?\s*(?:\+?\s*(?P<fixed>\d+(?:\.\d{1,2})?))?\s*$"
)
DEFAULT_CARD_FEES = {
    "Visa": "1.80%+0.10",
    "MasterCard": "1.90%+0.10",
    "Amex": "2.90%",
    "Discover": "2.00%+0.05",
}
OTHER = "other"  # the key of the rate for brands the schedule does not name
DEFAULT_OTHER_FEE = "2.90%+0.30"


@dataclass(frozen=True, slots=True)
class CardFee:
    """``percent`` of a sale plus ``fixed_minor`` cents."""

    percent: Decimal
    fixed_minor: int = 0

    @classmethod
    def parse(cls, text: str) -> CardFee:
        """``"1.80%+0.10"``, ``"2.9%"`` or ``"0.25"`` (dollars)."""
        match = _FEE.match(text)
        if not text.strip() or match is None or not (match["pct"] or match["fixed"]):
            raise ValueError(f"{text!r}: write a fee as percent plus fixed, e.g. 1.80%+0.10")
        fixed = Money.parse(match["fixed"], "USD").minor if match["fixed"] else 0
        return cls(Decimal(match["pct"] or "0"), fixed)

    def of(self, amount_minor: int) -> int:
        share = (Decimal(amount_minor) * self.percent / 100).quantize(Decimal(1), ROUND_HALF_UP)
        return int(share) + self.fixed_minor

    def __str__(self) -> str:
        return f"{self.percent}%+{Money(self.fixed_minor, 'USD').format_plain()}"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee per card brand; brands not named pay the ``other`` rate."""

    brands: dict[str, CardFee] = field(default_factory=dict)
    other: CardFee = field(default_factory=lambda: CardFee.parse(DEFAULT_OTHER_FEE))

    @classmethod
    def from_config(cls, rates: dict[str, str]) -> FeeSchedule:
        parsed = {brand: CardFee.parse(rate) for brand, rate in rates.items()}
        other = parsed.pop(OTHER, CardFee.parse(DEFAULT_OTHER_FEE))
        return cls({brand.casefold(): fee for brand, fee in parsed.items()}, other)

    def fee(self, brand: str, amount_minor: int) -> int:
        return self.brands.get(brand.casefold(), self.other).of(amount_minor)


def record_deposit(
    db: sqlite3.Connection, batch_number: int, schedule: FeeSchedule, deposit_on: date
) -> None:
    """Work out and keep what the processor deposits for ``batch_number`` (same transaction
    as the settlement, so a batch never exists without its deposit)."""
    rows = db.execute(
        "SELECT type, card_type, amount FROM transactions WHERE batch_number = ? ORDER BY id",
        (batch_number,),
    ).fetchall()
    gross = 0
    fees_by_brand: dict[str, int] = {}
    for kind, brand, amount in rows:
        if kind == "REFUND":
            gross -= amount
            continue
        gross += amount
        name = brand or "Unknown"
        fees_by_brand[name] = fees_by_brand.get(name, 0) + schedule.fee(name, amount)
    disputes = db.execute(
        "SELECT id, amount FROM disputes WHERE id NOT IN (SELECT dispute_id FROM withholdings)"
        " ORDER BY id"
    ).fetchall()
    withheld = sum(amount for _, amount in disputes)
    db.executemany(
        "INSERT INTO withholdings (dispute_id, batch_number, amount) VALUES (?, ?, ?)",
        [(dispute_id, batch_number, amount) for dispute_id, amount in disputes],
    )
    fees = sum(fees_by_brand.values())
    db.execute(
        "INSERT OR REPLACE INTO deposits (batch_number, gross, fees, withheld, net, deposit_on,"
        " fees_by_brand) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            batch_number,
            gross,
            fees,
            withheld,
            gross - fees - withheld,
            deposit_on.isoformat(),
            json.dumps(fees_by_brand, sort_keys=True),
        ),
    )


def settle(store: Store, config: PayTraceConfig, clock: Clock) -> Row | None:
    """Settle the open batch now and record its deposit (None when no card transaction is
    pending); checks pending settlement settle too."""
    schedule = FeeSchedule.from_config(config.card_fees)
    now = clock.now()
    deposit_on = clock.local(now).date() + timedelta(days=config.deposit_delay_days)
    store.settle_checks(now)  # checks leave in the same end-of-day run (their NACHA file)
    return store.settle(
        now, on_settled=lambda db, number: record_deposit(db, number, schedule, deposit_on)
    )


def deposits_json(store: Store, clock: Clock, start: date | None, end: date | None) -> list[Row]:
    """The deposits booked from ``start`` to ``end`` (inclusive), oldest first."""
    rows = store.all(
        "SELECT d.*, b.settled_at FROM deposits d JOIN batches b USING (batch_number)"
        " WHERE d.deposit_on >= ? AND d.deposit_on <= ? ORDER BY d.deposit_on, d.batch_number",
        ((start or date.min).isoformat(), (end or date.max).isoformat()),
    )
    held = store.all("SELECT dispute_id, batch_number, amount FROM withholdings ORDER BY 1")
    return [
        {
            "batch_number": row["batch_number"],
            "settled_on": clock.local(row["settled_at"]).date().isoformat(),
            "deposit_on": row["deposit_on"],
            "currency": "USD",
            "gross": _plain(row["gross"]),
            "fees": _plain(row["fees"]),
            "chargebacks_withheld": _plain(row["withheld"]),
            "net": _plain(row["net"]),
            "fees_by_card_type": {
                brand: _plain(minor) for brand, minor in json.loads(row["fees_by_brand"]).items()
            },
            "withheld_disputes": [
                {"case_number": f"CB{h['dispute_id']:07d}", "amount": _plain(h["amount"])}
                for h in held
                if h["batch_number"] == row["batch_number"]
            ],
        }
        for row in rows
    ]


def _plain(minor: int) -> str:
    return Money(minor, "USD").format_plain()
