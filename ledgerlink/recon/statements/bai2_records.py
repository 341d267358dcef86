"""BAI2 records checked one by one before the ``bai2`` library reads them.

The library reads a well-formed file well, but a damaged one makes it fail with Python's
own words ("list index out of range", "invalid literal for int()"), on the line it had
read ahead to. A user needs the line, the record ("the file header (01)") and what is
wrong with it in the bank's terms, so this module checks what the library takes for
granted: each record's number of fields, each field's form, and the order of the records
(01, then groups 02 … 98 of accounts 03, 16 … 49, then 99). What passes here the library
can read; it then checks the control totals and record counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from bai2.constants import AsOfDateModifier, FundsType, GroupStatus, RecordCode, TypeCodes
from bai2.helpers import RecordBuilderFactory
from bai2.utils import parse_date, parse_time

from ledgerlink.domain.money import MoneyError, normalise_currency
from ledgerlink.recon.statements.errors import StatementError

NAMES = {
    "01": "file header",
    "02": "group header",
    "03": "account identifier",
    "16": "transaction detail",
    "49": "account trailer",
    "88": "continuation",
    "98": "group trailer",
    "99": "file trailer",
}
_DAMAGED = "ask the bank for a new export of the statement"


def named(code: str) -> str:
    """A record as finance users know it from the bank's layout: "the file header (01)"."""
    return f"the {NAMES.get(code, 'record')} ({code})"


@dataclass(frozen=True, slots=True)
class Record:
    """One logical record: its first line and continuation (88) lines joined as BAI2 says."""

    line: int
    code: str
    fields: list[str]  # without the record code


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    form: str  # what a good value looks like, for the message
    read: Callable[[str], object] | None = None  # None: free text
    required: bool = False


def _enum(kind: type[Enum]) -> Callable[[str], object]:
    return lambda value: kind(value)


def _type_code(value: str) -> object:
    return TypeCodes[value]


def _currency(value: str) -> object:
    try:
        return normalise_currency(value)
    except MoneyError:
        raise ValueError(value) from None


_DATE = "a date written YYMMDD"
_TIME = "a time written HHMM"
_COUNT = "a whole number"
_AMOUNT = "an amount in whole cents (e.g. 490196 for 4,901.96)"
_FUNDS = "a funds type (0, 1, 2, S, V, D or Z)"
_TYPE_CODE = "a BAI2 type code (e.g. 142 or 475)"
_CCY = "an ISO 4217 currency code such as USD"

_FIXED: dict[str, tuple[_Field, ...]] = {
    "01": (
        _Field("sender id", ""),
        _Field("receiver id", ""),
        _Field("creation date", _DATE, parse_date),
        _Field("creation time", _TIME, parse_time),
        _Field("file id", ""),
        _Field("physical record length", _COUNT, int),
        _Field("block size", _COUNT, int),
        _Field("version number", "2 (BAI version 2)", int),
    ),
    "02": (
        _Field("ultimate receiver id", ""),
        _Field("originator id", ""),
        _Field("group status", "1, 2, 3 or 4", _enum(GroupStatus)),
        _Field("as-of date", _DATE, parse_date, required=True),
        _Field("as-of time", _TIME, parse_time),
        _Field("currency code", _CCY, _currency),
        _Field("as-of date modifier", "1, 2, 3 or 4", _enum(AsOfDateModifier)),
    ),
    "49": (
        _Field("account control total", _AMOUNT, int),
        _Field("number of records", _COUNT, int),
    ),
    "98": (
        _Field("group control total", _AMOUNT, int),
        _Field("number of accounts", _COUNT, int),
        _Field("number of records", _COUNT, int),
    ),
    "99": (
        _Field("file control total", _AMOUNT, int),
        _Field("number of groups", _COUNT, int),
        _Field("number of records", _COUNT, int),
    ),
}
_SUMMARY = (
    _Field("summary type code", _TYPE_CODE, _type_code),
    _Field("summary amount", _AMOUNT, int),
    _Field("item count", _COUNT, int),
    _Field("funds type", _FUNDS, _enum(FundsType)),
)
_DETAIL = (
    _Field("type code", _TYPE_CODE, _type_code, required=True),
    _Field("amount", _AMOUNT, int),
    _Field("funds type", _FUNDS, _enum(FundsType)),
)
# What may follow each record (continuations are already joined to their record).
_NEXT = {
    "01": ("02",),
    "02": ("03",),
    "03": ("16", "49"),
    "16": ("16", "49"),
    "49": ("03", "98"),
    "98": ("02", "99"),
    "99": (),
}


def records(lines: Sequence[tuple[int, str]]) -> list[Record]:
    """The logical records of ``lines`` (numbered, stripped, each starting with a known
    record code), continuation lines joined as the library joins them."""
    result: list[Record] = []
    rows: list[tuple[RecordCode, str]] = []
    first = 0
    for number, text in lines:
        code = RecordCode(text[:2])
        if code is RecordCode.continuation and rows:
            rows.append((code, text[3:]))
            continue
        if rows:
            result.append(_record(first, rows))
        first, rows = number, [(code, text[3:])]
    if rows:
        result.append(_record(first, rows))
    return result


def _record(line: int, rows: list[tuple[RecordCode, str]]) -> Record:
    built = RecordBuilderFactory[rows[0][0]](rows)
    return Record(line=line, code=rows[0][0].value, fields=list(built.fields))


def check(found: Sequence[Record]) -> None:
    """Refuse the first record whose fields or place in the file are wrong."""
    for record in found:
        _check_fields(record)
    _check_order(found)


def _check_fields(record: Record) -> None:
    code, fields = record.code, record.fields
    if code in _FIXED:
        layout = _FIXED[code]
        _need(record, len(layout), exact=True)
        _read_all(record, layout, fields)
        if code == "01" and fields[7].strip() != "2":
            raise StatementError(
                record.line,
                f"{named(code)} gives BAI version {fields[7] or '(none)'}; only BAI "
                "version 2 can be read",
                "ask the bank for a BAI2 (version 2) export",
            )
    elif code == "03":
        _need(record, 2)
        _read_all(record, (_Field("currency code", _CCY, _currency),), fields[1:2])
        rest = fields[2:]
        while rest and not (len(rest) == 1 and not rest[0]):
            taken = len(fields) - len(rest)
            _need(record, taken + len(_SUMMARY), what="a summary of four fields")
            _read_all(record, _SUMMARY, rest)
            rest = _availability(record, rest[len(_SUMMARY) :], fields, taken + len(_SUMMARY))
    elif code == "16":
        _need(record, len(_DETAIL) + 2)
        _read_all(record, _DETAIL, fields)
        rest = _availability(record, fields[len(_DETAIL) :], fields, len(_DETAIL))
        if len(rest) < 2:
            _too_few(record, len(fields) - len(rest) + 2)


def _availability(record: Record, rest: list[str], fields: list[str], at: int) -> list[str]:
    """``rest`` after the funds availability the funds type (just before ``at``) asks for."""
    funds = fields[at - 1].strip()
    layout: tuple[_Field, ...] = ()
    if funds == FundsType.distributed_availability_simple.value:
        layout = tuple(
            _Field(f"{day} availability", _AMOUNT, int, required=True)
            for day in ("0-day", "1-day", ">1-day")
        )
    elif funds == FundsType.value_dated.value:
        layout = (_Field("value date", _DATE, parse_date), _Field("value time", _TIME, parse_time))
    elif funds == FundsType.distributed_availability.value:
        _need(record, at + 1)
        count_field = _Field("number of distributions", _COUNT, int, required=True)
        _read_all(record, (count_field,), rest)
        count = int(rest[0])
        if count < 0 or count > len(fields):
            raise StatementError(
                record.line,
                f"{named(record.code)} gives {count} funds distributions, more than it holds",
                _DAMAGED,
            )
        distributions = (
            field
            for n in range(1, count + 1)
            for field in (
                _Field(f"distribution {n} days", ""),
                _Field(f"distribution {n} amount", _AMOUNT, int, required=True),
            )
        )
        layout = (count_field, *distributions)
    _need(record, at + len(layout))
    _read_all(record, layout, rest)
    return rest[len(layout) :]


def _need(record: Record, count: int, *, exact: bool = False, what: str = "") -> None:
    if len(record.fields) < count:
        _too_few(record, count, exact=exact, what=what)


def _too_few(record: Record, count: int, *, exact: bool = False, what: str = "") -> None:
    has = len(record.fields) + 1  # a bank's layout counts the record code as field 1
    wanted = f"{count + 1}" if exact else f"at least {count + 1}"
    detail = f" ({what})" if what else ""
    raise StatementError(
        record.line,
        f"{named(record.code)} has {has} fields; a BAI2 {record.code} record has {wanted}"
        f"{detail} — the file is truncated or not BAI2",
        _DAMAGED,
    )


def _read_all(record: Record, layout: Sequence[_Field], values: Sequence[str]) -> None:
    for field, value in zip(layout, values, strict=False):
        if not value:
            if field.required:
                raise StatementError(
                    record.line,
                    f"{named(record.code)} has no {field.name}",
                    f"the {field.name} must be {field.form}; {_DAMAGED}",
                )
            continue
        if field.read is None:
            continue
        try:
            field.read(value)
        except (ValueError, KeyError, TypeError, OverflowError):
            raise StatementError(
                record.line,
                f"{named(record.code)} gives {field.name} {value!r}, which is not {field.form}",
                _DAMAGED,
            ) from None


def _check_order(found: Sequence[Record]) -> None:
    previous: Record | None = None
    for record in found:
        allowed = _NEXT[previous.code] if previous is not None else ("01",)
        if record.code not in allowed:
            raise StatementError(
                record.line,
                _out_of_place(record, previous, allowed),
                "records are missing or out of order; ask the bank for the complete file",
            )
        previous = record


def _out_of_place(record: Record, previous: Record | None, allowed: Sequence[str]) -> str:
    if previous is None:
        return "a BAI2 file must start with the file header (01)"
    if not allowed:
        return f"{named(record.code)} comes after the file trailer (99), which ends the file"
    expected = " or ".join(named(code) for code in allowed)
    return (
        f"{named(record.code)} cannot follow {named(previous.code)} on line "
        f"{previous.line}; BAI2 expects {expected} there"
    )
