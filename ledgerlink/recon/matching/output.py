"""The shape of what the matcher reports: match and break rows built from any level's
frame, and amounts written as money in the sentences a finance user reads."""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal, TypeVar

import polars as pl

from ledgerlink.domain.money import MoneyError, minor_digits
from ledgerlink.recon.breaks import BreakType

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: polars 2.1's default (streaming) engine panicked here on string expressions inside
#: when/then ("assertion failed: i < self.len()", binview); the in-memory engine is the
#: one measured and tested.
ENGINE: Final[Literal["in-memory"]] = "in-memory"

IDS = pl.List(pl.String())
NO_IDS = pl.lit([], dtype=IDS)

MATCH_SCHEMA: Final[dict[str, pl.DataType]] = {
    "match_id": pl.String(),
    "rule": pl.String(),
    "spec_version": pl.String(),
    "left_side": pl.String(),
    "left_ids": IDS,
    "right_side": pl.String(),
    "right_ids": IDS,
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
    #: What the rows on each side of the match add up to (they differ within tolerance).
    "left_minor": pl.Int64(),
    "right_minor": pl.Int64(),
}

BREAK_SCHEMA: Final[dict[str, pl.DataType]] = {
    "break_id": pl.String(),
    "type": pl.String(),
    "side": pl.String(),
    "ids": IDS,
    "other_side": pl.String(),
    "other_ids": IDS,
    "amount_minor": pl.Int64(),
    "expected_minor": pl.Int64(),
    "actual_minor": pl.Int64(),
    "currency": pl.String(),
    "as_of_days": pl.Int64(),
    "detail": pl.String(),
}


def match_rows(
    frame: Frame,
    *,
    rule: pl.Expr,
    left_side: str,
    left_first: pl.Expr,
    left_ids: pl.Expr,
    right_side: str,
    right_ids: pl.Expr,
    amount: pl.Expr,
    currency: pl.Expr,
    left_minor: pl.Expr,
    right_minor: pl.Expr,
    spec_version: str,
) -> Frame:
    """One match per row of ``frame``. ``left_first`` is the left row that names the
    match (``match_id = <left_side>:<left_first>``): unique, since a row is in one match."""
    return frame.select(
        match_id=pl.format(f"{left_side}:{{}}", left_first),
        rule=rule,
        spec_version=pl.lit(spec_version),
        left_side=pl.lit(left_side),
        left_ids=left_ids.cast(IDS),
        right_side=pl.lit(right_side),
        right_ids=right_ids.cast(IDS),
        amount_minor=amount.cast(pl.Int64),
        currency=currency,
        left_minor=left_minor.cast(pl.Int64),
        right_minor=right_minor.cast(pl.Int64),
    )


def break_rows(
    frame: Frame,
    kind: BreakType,
    as_of: dt.date,
    *,
    ids: pl.Expr,
    other_side: str,
    other_ids: pl.Expr,
    expected: pl.Expr,
    actual: pl.Expr,
    currency: pl.Expr,
    on: pl.Expr,
    detail: pl.Expr,
) -> Frame:
    """One break per row of ``frame``; ``break_id`` is the type and the break's first id
    (plus how many more), stable across reruns."""
    listed = ids.cast(IDS).list.sort()
    return (
        frame.select(
            type=pl.lit(kind.value),
            side=pl.lit(kind.side),
            ids=listed,
            other_side=pl.lit(other_side),
            other_ids=other_ids.cast(IDS).list.sort(),
            amount_minor=(expected - actual).abs().cast(pl.Int64),
            expected_minor=expected.cast(pl.Int64),
            actual_minor=actual.cast(pl.Int64),
            currency=currency,
            as_of_days=(pl.lit(as_of) - on).dt.total_days().cast(pl.Int64),
            detail=detail,
        )
        .with_columns(
            break_id=pl.format("{}:{}", pl.col("type"), pl.col("ids").list.first())
            + pl.when(pl.col("ids").list.len() > 1)
            .then(pl.format("+{}", pl.col("ids").list.len() - 1))
            .otherwise(pl.lit(""))
        )
        .select(list(BREAK_SCHEMA))
    )


def empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema=MATCH_SCHEMA)


def empty_breaks() -> pl.DataFrame:
    return pl.DataFrame(schema=BREAK_SCHEMA)


class MoneyText:
    """Amount columns as ``1234.50 USD`` text, by each currency's minor digits."""

    def __init__(self, currencies: set[str]) -> None:
        self.digits: dict[str, int] = {}
        for code in currencies:
            try:
                self.digits[code] = minor_digits(code)
            except MoneyError:
                self.digits[code] = 2

    def __call__(self, amount: pl.Expr, currency: pl.Expr) -> pl.Expr:
        by_digits: dict[int, list[str]] = {}
        for code, count in self.digits.items():
            by_digits.setdefault(count, []).append(code)
        magnitude = amount.abs()
        sign = pl.when(amount < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        out: pl.Expr = pl.format("{}{}", amount, pl.lit(" (minor units)"))
        for count, codes in sorted(by_digits.items()):
            if count == 0:
                text = pl.format("{}{} {}", sign, magnitude, currency)
            else:
                scale = 10**count
                text = pl.format(
                    "{}{}.{} {}",
                    sign,
                    magnitude // scale,
                    (magnitude % scale).cast(pl.String).str.zfill(count),
                    currency,
                )
            out = pl.when(currency.is_in(codes)).then(text).otherwise(out)
        return out
