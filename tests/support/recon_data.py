"""Generated reconciliation data with known breaks, for the property tests and
``bench/recon.py``: sales (some split over invoices, partly or fully refunded, voided,
charged back), their ledger receipts keyed in every way the rules know (transaction id
with stray zeros and prefixes, idempotency key, reference), settlement batches net of
fees and withheld chargebacks, and the bank deposits paying them (by reference, split in
two, unreferenced by amount, several batches of a day in one credit).

Breaks of every type are injected at ``break_rate``; each is recorded as
``(type, sorted ids on the break's side)``, which is exactly what the engine must report,
no more and no less. Everything follows from ``seed``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.frames import SCHEMAS, SideName, Sides, check

BASE_DAY = dt.date(2026, 3, 2)
TXN_BREAKS = (
    BreakType.missing_receipt,
    BreakType.orphan_receipt,
    BreakType.receipt_for_reversed,
    BreakType.amount_mismatch,
    BreakType.duplicate_receipt,
)
BATCH_BREAKS = (
    BreakType.batch_ledger_mismatch,
    BreakType.deposit_mismatch,
    BreakType.deposit_in_transit,
    BreakType.unknown_credit,
)

Expected = tuple[str, tuple[str, ...]]


@dataclass
class _Columns:
    """Column lists for one side (faster than a dict per row at a million rows)."""

    side: SideName
    data: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = {name: [] for name in SCHEMAS[self.side]}

    def add(self, *values: Any) -> None:
        for column, value in zip(self.data.values(), values, strict=True):
            column.append(value)

    def frame(self) -> pl.DataFrame:
        return check(self.side, pl.DataFrame(self.data, schema=SCHEMAS[self.side]))


@dataclass(frozen=True)
class Generated:
    sides: Sides
    expected: frozenset[Expected]
    as_of: dt.date
    #: How many breaks of each type were injected.
    injected: dict[str, int]


def generate(
    sales: int,
    *,
    seed: int = 1,
    break_rate: float = 0.005,
    per_batch: int = 33,
    batches_per_day: int = 40,
) -> Generated:
    """``sales`` card sales (plus their refunds, voids and chargebacks) with receipts,
    batches of about ``per_batch`` transactions and their deposits."""
    rng = random.Random(seed)
    txns, receipts = _Columns("transactions"), _Columns("receipts")
    batches, deposits = _Columns("batches"), _Columns("deposits")
    expected: set[Expected] = set()
    txn_no = 100_000_000
    receipt_no = 0
    line_no = 0
    used_nets: set[int] = set()
    combined_days: dict[dt.date, list[tuple[str, int]]] = {}
    unknown_credits: list[tuple[dt.date, str]] = []

    def next_txn() -> str:
        nonlocal txn_no
        txn_no += 1
        return str(txn_no)

    def next_receipt() -> str:
        nonlocal receipt_no
        receipt_no += 1
        return f"R{receipt_no:08d}"

    def next_line() -> str:
        nonlocal line_no
        line_no += 1
        return f"stmt00000001:{line_no}"

    def receipt(
        txn: str,
        amount: int,
        on: dt.date,
        *,
        kind: str = "receipt",
        rev: bool = False,
        key_kind: str = "sale",
    ) -> str:
        rid = next_receipt()
        style = rng.randrange(4)
        txn_col: str | None = None
        key: str | None = None
        reference = f"Card payment {rid}"
        if style == 0:
            txn_col = txn
        elif style == 1:
            txn_col = f" 00{txn} " if rng.random() < 0.5 else f"PT-{txn}"
        elif style == 2:
            key = f"paytrace:{txn}:{key_kind}"
        else:
            reference = f"Card PT#{txn} inv {rng.randrange(1, 99999)}"
        receipts.add(rid, "1", key, txn_col, kind, amount, "USD", on, rev, "C1", reference)
        return rid

    batch_count = -(-sales // per_batch)
    remaining = sales
    for b in range(batch_count):
        size = min(per_batch, remaining)
        remaining -= size
        batch_number = str(1000 + b)
        settled = BASE_DAY + dt.timedelta(days=b // batches_per_day)
        created = settled - dt.timedelta(days=1)
        gross = 0
        withheld = 0
        count = 0
        for _ in range(size):
            sale = next_txn()
            amount = rng.randrange(100, 200_000)
            roll = rng.random()
            injected = rng.random() < break_rate * len(TXN_BREAKS)
            kind_of_break = rng.choice(TXN_BREAKS) if injected else None
            count += 1
            if kind_of_break is BreakType.receipt_for_reversed:
                txns.add(
                    sale, "sale", "approved", amount, "USD", created, batch_number, "VISA", None
                )
                if rng.random() < 0.5:
                    void = next_txn()
                    txns.add(
                        void, "void", "approved", amount, "USD", created, batch_number, "VISA", sale
                    )
                else:
                    refund = next_txn()
                    txns.add(
                        refund,
                        "refund",
                        "approved",
                        amount,
                        "USD",
                        created,
                        batch_number,
                        "VISA",
                        sale,
                    )
                count += 1
                rid = receipt(sale, amount, created)
                expected.add((kind_of_break.value, (rid,)))
                continue
            txns.add(sale, "sale", "approved", amount, "USD", created, batch_number, "VISA", None)
            if kind_of_break is BreakType.missing_receipt:
                gross += amount
                expected.add((kind_of_break.value, (sale,)))
                continue
            if kind_of_break is BreakType.amount_mismatch:
                gross += amount
                rid = receipt(sale, amount - rng.randrange(1, 50), created)
                expected.add((kind_of_break.value, (rid,)))
                continue
            if kind_of_break is BreakType.duplicate_receipt:
                gross += amount
                receipt(sale, amount, created)
                rid = receipt(sale, amount, created + dt.timedelta(days=1))
                expected.add((kind_of_break.value, (rid,)))
                continue
            if kind_of_break is BreakType.orphan_receipt:
                ghost = str(900_000_000 + rng.randrange(10_000_000)) + sale[-4:]
                receipts.add(
                    next_receipt(),
                    "1",
                    f"paytrace:{ghost}:sale",
                    None,
                    "receipt",
                    rng.randrange(100, 5000),
                    "USD",
                    created,
                    False,
                    "C1",
                    "",
                )
                expected.add((kind_of_break.value, (receipts.data["receipt_id"][-1],)))
                kind_of_break = None  # the sale itself is a normal one
            if roll < 0.70:  # plain: one receipt
                gross += amount
                receipt(sale, amount, created)
            elif roll < 0.80:  # split over invoices
                gross += amount
                part = rng.randrange(1, amount)
                receipt(sale, part, created)
                receipt(sale, amount - part, created)
            elif roll < 0.86:  # partly refunded: refund receipt keyed on the refund
                gross += amount
                receipt(sale, amount, created)
                refund = next_txn()
                back = rng.randrange(1, amount)
                txns.add(
                    refund, "refund", "approved", back, "USD", created, batch_number, "VISA", sale
                )
                count += 1
                gross -= back
                receipt(refund, back, created, kind="refund", key_kind="refund")
            elif roll < 0.90:  # fully refunded on both sides
                receipt(sale, amount, created)
                refund = next_txn()
                txns.add(
                    refund, "refund", "approved", amount, "USD", created, batch_number, "VISA", sale
                )
                count += 1
                receipt(refund, amount, created, kind="refund", key_kind="refund")
            elif roll < 0.93:  # voided after posting, the receipt reversed
                void = next_txn()
                txns.add(
                    void, "void", "approved", amount, "USD", created, batch_number, "VISA", sale
                )
                count += 1
                receipt(sale, amount, created, rev=True)
            elif roll < 0.95:  # voided before any receipt
                void = next_txn()
                txns.add(
                    void, "void", "approved", amount, "USD", created, batch_number, "VISA", sale
                )
                count += 1
            elif roll < 0.97:  # charged back, the receipt reversed by a reversal receipt
                gross += amount
                withheld += amount
                receipt(sale, amount, created)
                chargeback = next_txn()
                txns.add(
                    chargeback,
                    "chargeback",
                    "approved",
                    amount,
                    "USD",
                    created,
                    batch_number,
                    "VISA",
                    sale,
                )
                count += 1
                receipt(sale, amount, created, kind="reversal", key_kind="chargeback")
            else:  # a declined attempt first, then the approved sale
                gross += amount
                txns.add(
                    next_txn(),
                    "sale",
                    "declined",
                    amount,
                    "USD",
                    created,
                    batch_number,
                    "VISA",
                    None,
                )
                receipt(sale, amount, created)

        fees = (gross * 29) // 1000 + 30 * count
        batch_break = (
            rng.choice(BATCH_BREAKS) if rng.random() < break_rate * len(BATCH_BREAKS) else None
        )
        stated_gross = gross
        if batch_break is BreakType.batch_ledger_mismatch:
            stated_gross = gross + rng.choice([-1, 1]) * rng.randrange(1, 5000)
            expected.add((batch_break.value, (batch_number,)))
        net = stated_gross - fees - withheld
        while net in used_nets or net <= 0:  # keep nets distinct: amount pairing is exact
            fees -= 1
            net = stated_gross - fees - withheld
        used_nets.add(net)
        batches.add(batch_number, settled, stated_gross, fees, withheld, net, "USD", count)

        if batch_break is BreakType.deposit_in_transit:
            expected.add((batch_break.value, (batch_number,)))
            continue
        if batch_break is BreakType.unknown_credit:
            unknown_credits.append((settled, f"ACH CREDIT {rng.randrange(10**6)}"))
        how = rng.random()
        booked = settled + dt.timedelta(days=rng.randrange(0, 3))
        reference = f"PAYTRACE BATCH {int(batch_number):07d}"
        if batch_break is BreakType.deposit_mismatch:
            line = next_line()
            off = rng.randrange(1, 3000) * (1 if net <= 3000 or rng.random() < 0.5 else -1)
            deposits.add(line, "stmt00000001", booked, net + off, "USD", reference, f"B{line_no}")
            expected.add((batch_break.value, (line,)))
        elif how < 0.80 or net < 2:
            line = next_line()
            deposits.add(line, "stmt00000001", booked, net, "USD", reference, f"B{line_no}")
        elif how < 0.88:  # one batch in two deposits
            first = rng.randrange(1, net)
            for part in (first, net - first):
                line = next_line()
                deposits.add(
                    line,
                    "stmt00000001",
                    booked,
                    part,
                    "USD",
                    f"BATCH:{batch_number}",
                    f"B{line_no}",
                )
        elif how < 0.96:  # no reference: paired by amount and date
            line = next_line()
            deposits.add(
                line, "stmt00000001", booked, net, "USD", "PAYTRACE DEPOSIT", f"B{line_no}"
            )
        else:  # paid with the day's other combined batches
            combined_days.setdefault(settled, []).append((batch_number, net))

    # N:1 groups: their batches are moved to a day of their own so that nothing else is
    # open on it; a group of one is paid like any unreferenced deposit.
    _combine(batches, deposits, combined_days, next_line, rng, used_nets, expected)
    as_of = BASE_DAY + dt.timedelta(days=batch_count // batches_per_day + 5)
    day_sums = _day_sums(batches)
    for settled, reference in unknown_credits:
        amount = 1_000_000_007 + rng.randrange(10**6)
        while amount in used_nets or amount in day_sums:
            amount += 1
        line = next_line()
        deposits.add(line, "stmt00000001", settled, amount, "USD", reference, f"B{line_no}")
        expected.add((BreakType.unknown_credit.value, (line,)))
    injected: dict[str, int] = {}
    for kind, _ids in expected:
        injected[kind] = injected.get(kind, 0) + 1
    return Generated(
        sides=Sides(
            transactions=txns.frame(),
            receipts=receipts.frame(),
            batches=batches.frame(),
            deposits=deposits.frame(),
        ),
        expected=frozenset(expected),
        as_of=as_of,
        injected=injected,
    )


def _combine(
    batches: _Columns,
    deposits: _Columns,
    groups: dict[dt.date, list[tuple[str, int]]],
    next_line: Any,
    rng: random.Random,
    used_nets: set[int],
    expected: set[Expected],
) -> None:
    """Move each group's batches to a settlement day of their own (day + offset, in the
    far future, one per group) and pay the group in one unreferenced deposit."""
    numbers = batches.data["batch_number"]
    settled_col = batches.data["settled_on"]
    index = {number: i for i, number in enumerate(numbers)}
    for offset, (_, members) in enumerate(sorted(groups.items())):
        day = BASE_DAY + dt.timedelta(days=3_000 + 7 * offset)
        for number, _net in members:
            settled_col[index[number]] = day
        total = sum(net for _, net in members)
        if len(members) > 1 and total in used_nets:
            # would be ambiguous with a single batch: left in transit (rare)
            expected.update(
                (BreakType.deposit_in_transit.value, (number,)) for number, _ in members
            )
            continue
        line = next_line()
        deposits.add(
            line,
            "stmt00000001",
            day + dt.timedelta(days=rng.randrange(0, 2)),
            total,
            "USD",
            "ACH DEPOSIT PAYTRACE",
            f"N{line}",
        )


def _day_sums(batches: _Columns) -> set[int]:
    sums: dict[dt.date, int] = {}
    for day, net in zip(batches.data["settled_on"], batches.data["net_minor"], strict=True):
        sums[day] = sums.get(day, 0) + net
    return set(sums.values())


def expected_breaks(result_breaks: pl.DataFrame) -> frozenset[Expected]:
    """The engine's breaks in the generator's form, for comparing."""
    return frozenset(
        (kind, tuple(ids))
        for kind, ids in zip(
            result_breaks.get_column("type").to_list(),
            result_breaks.get_column("ids").to_list(),
            strict=True,
        )
    )
