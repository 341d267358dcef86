"""The four sides of a reconciliation as polars frames, with exactly the columns the
contract fixes (``work/brief/recon_contract.md``), and the checks that keep bad data out
of the matcher: a missing column is named, an amount that is not an integer number of
minor units (a float above all) is refused, a required id left empty is refused with its
row. The store (R4) builds the frames with :func:`from_rows`; the engine only ever sees
frames that passed :func:`check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import polars as pl

SideName = Literal["transactions", "receipts", "batches", "deposits"]
SIDES: Final[tuple[SideName, ...]] = ("transactions", "receipts", "batches", "deposits")

SCHEMAS: Final[dict[SideName, dict[str, pl.DataType]]] = {
    "transactions": {
        "txn_id": pl.String(),
        "kind": pl.String(),  # sale | refund | void | chargeback
        "status": pl.String(),  # approved | declined | voided
        "amount_minor": pl.Int64(),  # positive
        "currency": pl.String(),
        "created_on": pl.Date(),
        "batch_number": pl.String(),  # null until settled
        "card_brand": pl.String(),
        "original_txn_id": pl.String(),  # refund/void/chargeback -> the sale
    },
    "receipts": {
        "receipt_id": pl.String(),
        "ledger": pl.String(),
        "idempotency_key": pl.String(),
        "txn_id": pl.String(),
        "kind": pl.String(),  # receipt | reversal | refund
        "amount_minor": pl.Int64(),  # positive
        "currency": pl.String(),
        "posted_on": pl.Date(),
        "reversed": pl.Boolean(),
        "customer_id": pl.String(),
        "reference": pl.String(),
    },
    "batches": {
        "batch_number": pl.String(),
        "settled_on": pl.Date(),
        "gross_minor": pl.Int64(),
        "fees_minor": pl.Int64(),
        "chargebacks_withheld_minor": pl.Int64(),
        "net_minor": pl.Int64(),
        "currency": pl.String(),
        "transaction_count": pl.Int64(),
    },
    "deposits": {
        "line_id": pl.String(),
        "statement_id": pl.String(),
        "booked_on": pl.Date(),
        "amount_minor": pl.Int64(),  # signed: credits > 0
        "currency": pl.String(),
        "reference": pl.String(),
        "bank_ref": pl.String(),
    },
}

#: Columns that may hold nulls; every other column must be filled on every row.
NULLABLE: Final[dict[SideName, frozenset[str]]] = {
    "transactions": frozenset({"batch_number", "original_txn_id", "card_brand"}),
    "receipts": frozenset({"txn_id", "idempotency_key", "customer_id", "reference", "ledger"}),
    "batches": frozenset(),
    "deposits": frozenset({"reference", "bank_ref", "statement_id"}),
}

#: The id column of each side: what matches and breaks list.
ID_COLUMN: Final[dict[SideName, str]] = {
    "transactions": "txn_id",
    "receipts": "receipt_id",
    "batches": "batch_number",
    "deposits": "line_id",
}

_ALLOWED: Final[dict[tuple[SideName, str], frozenset[str]]] = {
    ("transactions", "kind"): frozenset({"sale", "refund", "void", "chargeback"}),
    ("transactions", "status"): frozenset({"approved", "declined", "voided"}),
    ("receipts", "kind"): frozenset({"receipt", "reversal", "refund"}),
}

_INTEGER_TYPES: Final = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


class FrameError(ValueError):
    """A side that cannot be reconciled as given: names the side, the column, the reason
    and the fix."""

    def __init__(self, side: str, column: str, reason: str, fix: str) -> None:
        super().__init__(f"{side}.{column}: {reason}. {fix}")
        self.side = side
        self.column = column
        self.reason = reason
        self.fix = fix


def check(side: SideName, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with exactly the contract's columns, in order and with their types, or
    :class:`FrameError` naming the first thing wrong. Integer columns of a narrower type
    are widened; floats are refused (money is never a float); extra columns are dropped."""
    schema = SCHEMAS[side]
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise FrameError(
            side,
            missing[0],
            "is missing" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""),
            f"give every {side} row the columns {', '.join(schema)}",
        )
    casts: list[pl.Expr] = []
    for name, want in schema.items():
        have = frame.schema[name]
        if have == want:
            casts.append(pl.col(name))
        elif isinstance(want, pl.Int64) and have.is_float():
            raise FrameError(
                side,
                name,
                f"is a floating-point column ({have})",
                "amounts are integer minor units (cents): give 1250 for 12.50, never 12.5",
            )
        elif isinstance(want, pl.Int64) and isinstance(have, _INTEGER_TYPES):
            casts.append(pl.col(name).cast(pl.Int64))
        elif isinstance(have, pl.Null):
            casts.append(pl.col(name).cast(want))
        else:
            raise FrameError(side, name, f"is {have}, not {want}", f"give {name} as {want}")
    out = frame.select(casts)
    for name in schema:
        if name in NULLABLE[side]:
            continue
        nulls = out.get_column(name).is_null()
        if nulls.any():
            row = int(nulls.arg_true()[0])
            raise FrameError(
                side, name, f"is empty on row {row + 1}", f"every {side} row needs a {name}"
            )
    if out.height:
        bad_currency = ~out.get_column("currency").str.contains(r"^[A-Z]{3}$")
        if bad_currency.any():
            row = int(bad_currency.arg_true()[0])
            raise FrameError(
                side,
                "currency",
                f"is {out.get_column('currency')[row]!r} on row {row + 1}",
                "give the ISO 4217 code in capitals, e.g. USD",
            )
        for (of_side, column), allowed in _ALLOWED.items():
            if of_side != side:
                continue
            wrong = ~out.get_column(column).is_in(sorted(allowed))
            if wrong.any():
                row = int(wrong.arg_true()[0])
                raise FrameError(
                    side,
                    column,
                    f"is {out.get_column(column)[row]!r} on row {row + 1}",
                    f"allowed: {', '.join(sorted(allowed))}",
                )
    return out


def empty(side: SideName) -> pl.DataFrame:
    """A side with no rows (and the right columns)."""
    return pl.DataFrame(schema=SCHEMAS[side])


def from_rows(side: SideName, rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """A checked frame from Python rows (dicts keyed by column name). A column absent from
    every row, or an amount given as a float, is refused by name (:class:`FrameError`)."""
    listed = list(rows)
    if not listed:
        return empty(side)
    columns = {name for row in listed for name in row}
    schema = SCHEMAS[side]
    for name in schema:
        if name not in columns:
            raise FrameError(
                side, name, "is missing", f"give every {side} row the columns {', '.join(schema)}"
            )
    data: dict[str, list[Any]] = {name: [row.get(name) for row in listed] for name in schema}
    for name, want in schema.items():
        if isinstance(want, pl.Int64):
            for index, value in enumerate(data[name]):
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise FrameError(
                        side,
                        name,
                        f"is {value!r} on row {index + 1}, not an integer",
                        "amounts are integer minor units (cents): give 1250 for 12.50",
                    )
    return check(side, pl.DataFrame(data, schema=schema, strict=False))


@dataclass(frozen=True)
class Sides:
    """The four sides of one reconciliation, each a checked frame."""

    transactions: pl.DataFrame
    receipts: pl.DataFrame
    batches: pl.DataFrame
    deposits: pl.DataFrame

    @classmethod
    def of(
        cls,
        *,
        transactions: pl.DataFrame | None = None,
        receipts: pl.DataFrame | None = None,
        batches: pl.DataFrame | None = None,
        deposits: pl.DataFrame | None = None,
    ) -> Sides:
        """Checked sides; a side not given is empty."""
        given = {
            "transactions": transactions,
            "receipts": receipts,
            "batches": batches,
            "deposits": deposits,
        }
        checked = {
            name: empty(name) if frame is None else check(name, frame)
            for name, frame in ((n, given[n]) for n in SIDES)
        }
        return cls(**checked)

    @classmethod
    def from_rows(cls, **rows: Iterable[Mapping[str, Any]]) -> Sides:
        """Checked sides from Python rows, e.g. ``Sides.from_rows(transactions=[...])``."""
        unknown = sorted(set(rows) - set(SIDES))
        if unknown:
            raise FrameError(unknown[0], "", "is not a side", f"sides are {', '.join(SIDES)}")
        return cls(
            **{name: from_rows(name, rows[name]) if name in rows else empty(name) for name in SIDES}
        )

    def side(self, name: SideName) -> pl.DataFrame:
        frame: pl.DataFrame = getattr(self, name)
        return frame

    def concat(self, other: Sides) -> Sides:
        """These rows followed by ``other``'s (both already checked)."""
        return Sides(**{name: pl.concat([self.side(name), other.side(name)]) for name in SIDES})
