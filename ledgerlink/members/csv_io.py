"""CSV import and export of members.

Import reads the whole file first and checks every row (member number, names for the
account type, e-mail syntax, phone to E.164, address, level exists, member number not
repeated in the file), reporting each fault as (line, field, reason). The rows that pass
are then written in **one** transaction: a crash or error half-way leaves the registry as
it was. A row equal to what is stored (same normalised content hash) is skipped without
a write or an audit entry, so importing the same file twice changes nothing.

Export writes the same columns in the same normal form, so an exported file re-imports
as a no-op. A cell that a spreadsheet could run as a formula is exported with a leading
``'`` and read back without it (``ledgerlink.csv_cells``). A cell holding what looks like
a card number is refused (line, field), and the number is not repeated in the report.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ledgerlink.csv_cells import SafeCsvWriter, unescape_cell
from ledgerlink.domain.card_numbers import mask_card_numbers
from ledgerlink.domain.members import FieldProblem, Member, MemberInvalid
from ledgerlink.domain.text import control_character_problem
from ledgerlink.identity.principal import Principal
from ledgerlink.members.normalise import DEFAULT_PHONE_REGION
from ledgerlink.members.registry import (
    MemberFields,
    build_member,
    levels_by_code,
    member_fields,
    member_from_row,
    row_values,
    snapshot,
)
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberRow, MembershipLevelRow
from ledgerlink.store.types import utcnow
from ledgerlink.sync import realtime_outbox

COLUMNS: Final = MemberFields.names()
REQUIRED: Final = ("member_number", "membership_level")
MAX_ROWS: Final = 200_000

#: Column headings people commonly use for our columns (compared lower-case, "_" for spaces).
ALIASES: Final[dict[str, str]] = {
    "number": "member_number",
    "member_no": "member_number",
    "member_id": "member_number",
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "organization": "organisation",
    "company": "organisation",
    "e-mail": "email",
    "email_address": "email",
    "telephone": "phone",
    "phone_number": "phone",
    "type": "account_type",
    "level": "membership_level",
    "membership": "membership_level",
    "address": "address_line1",
    "address1": "address_line1",
    "address_line_1": "address_line1",
    "address2": "address_line2",
    "address_line_2": "address_line2",
    "state": "region",
    "province": "region",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "postcode": "postal_code",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """One fault in the file: where (line; 1 is the header), which column, and why."""

    line: int
    field: str
    reason: str
    member_number: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "member_number": self.member_number,
        }


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int
    member: Member


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    sha256: str = ""

    @property
    def rejected_lines(self) -> int:
        return len({e.line for e in self.errors})

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected_lines,
            "dry_run": self.dry_run,
            "sha256": self.sha256,
            "errors": [e.as_dict() for e in self.errors],
        }


class FileRefused(ValueError):
    """The file as a whole cannot be read (encoding, header); nothing was imported."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {e.line}, {e.field}: {e.reason}" for e in errors))


def _heading(name: str) -> str:
    key = "_".join(name.strip().lower().replace("-", "_").split())
    key = key.replace("e_mail", "email")
    return ALIASES.get(key, key)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            [
                RowError(
                    0,
                    "file",
                    f"is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8' and "
                    "upload it again",
                )
            ]
        ) from None


def parse(
    text: str, level_codes: Iterable[str], *, phone_region: str = DEFAULT_PHONE_REGION
) -> tuple[list[ParsedRow], list[RowError], int]:
    """Check every row of ``text``; returns (good rows, errors, rows read).

    Pure: no database. ``level_codes`` are the levels that exist.
    """
    levels = set(level_codes)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused(
            [RowError(1, "file", "is empty; the first line must name the columns")]
        ) from None
    except csv.Error as exc:
        raise FileRefused([RowError(1, "file", f"is not CSV: {exc}")]) from None
    columns = [_heading(h) for h in header]
    problems: list[RowError] = []
    unknown = [h for h, c in zip(header, columns, strict=True) if c not in COLUMNS and h.strip()]
    for heading in unknown:
        problems.append(
            RowError(1, heading, f"is not a known column; use one of {', '.join(COLUMNS)}")
        )
    for required in REQUIRED:
        if required not in columns:
            problems.append(RowError(1, required, "column is missing; add it to the first line"))
    seen_cols = [c for c in columns if c in COLUMNS]
    for dup in sorted({c for c in seen_cols if seen_cols.count(c) > 1}):
        problems.append(RowError(1, dup, "column appears twice; keep one"))
    if problems:
        raise FileRefused(problems)

    good: list[ParsedRow] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    rows = 0
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(start, "file", f"is not valid CSV here: {exc}"))
            break
        line = start
        if not any(v.strip() for v in values):
            continue  # blank lines are not rows
        rows += 1
        if rows > MAX_ROWS:
            raise FileRefused(
                [RowError(line, "file", f"has more than {MAX_ROWS} rows; split it into parts")]
            )
        if len(values) > len(columns):
            errors.append(
                RowError(
                    line,
                    "row",
                    f"has {len(values)} values but the header names {len(columns)} columns; "
                    "quote values that contain commas",
                )
            )
            continue
        data = dict(zip(columns, map(unescape_cell, values), strict=False))  # export's quotes
        number_text = mask_card_numbers(data.get("member_number", "").strip())
        unstorable = _control_characters(line, data, number_text)
        if unstorable:
            errors.extend(unstorable)
            continue
        try:
            member = build_member(MemberFields.from_mapping(data), phone_region=phone_region)
        except MemberInvalid as exc:
            errors.extend(RowError(line, p.field, p.message, number_text) for p in exc.problems)
            continue
        if member.level_code not in levels:
            known = ", ".join(sorted(levels)) or "none yet: create one first"
            errors.append(
                RowError(
                    line,
                    "membership_level",
                    f"{member.level_code!r} is not a membership level; use one of: {known}",
                    member.number,
                )
            )
            continue
        if member.number in first_line:
            errors.append(
                RowError(
                    line,
                    "member_number",
                    f"{member.number} already appears on line {first_line[member.number]}; "
                    "keep one row per member",
                    member.number,
                )
            )
            continue
        first_line[member.number] = line
        good.append(ParsedRow(line, member))
    return good, errors, rows


def _control_characters(line: int, data: dict[str, str], number: str) -> list[RowError]:
    """A NUL or other control character cannot be stored (PostgreSQL refuses NUL and the
    whole import would fail): the row is refused naming the column, the others go on."""
    found = [
        (column, problem)
        for column, value in data.items()
        if column in COLUMNS and (problem := control_character_problem(value))
    ]
    if found and control_character_problem(number):
        number = ""
    return [RowError(line, column, problem, number) for column, problem in found]


def import_csv(
    session: Session,
    principal: Principal,
    data: bytes,
    *,
    dry_run: bool = False,
    phone_region: str = DEFAULT_PHONE_REGION,
) -> ImportReport:
    """Import the good rows of ``data`` in the caller's transaction; report the bad ones.

    Raises :class:`FileRefused` when the file as a whole cannot be used (nothing written).
    """
    text = decode(data)
    levels = levels_by_code(session)
    good, errors, rows = parse(text, levels, phone_region=phone_region)
    report = ImportReport(
        rows=rows, errors=errors, dry_run=dry_run, sha256=hashlib.sha256(data).hexdigest()
    )
    level_code_by_id = {row.id: code for code, row in levels.items()}
    existing: dict[str, MemberRow] = {}
    numbers = [r.member.number for r in good]
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        for row in session.scalars(select(MemberRow).where(MemberRow.number.in_(chunk))):
            existing[row.number] = row

    inserts: list[dict[str, object]] = []
    changes: list[tuple[MemberRow, Member, dict[str, object]]] = []
    for parsed in good:
        values = row_values(parsed.member, levels[parsed.member.level_code].id)
        current = existing.get(parsed.member.number)
        if current is None:
            inserts.append(values)
        elif current.content_hash == values["content_hash"]:
            report.unchanged += 1
        else:
            changes.append((current, parsed.member, values))
    report.created, report.updated = len(inserts), len(changes)
    if dry_run or not (inserts or changes):
        return report

    now = utcnow()
    if inserts:
        session.execute(
            insert(MemberRow), [{**v, "created_at": now, "updated_at": now} for v in inserts]
        )
    befores: list[dict[str, object]] = []
    for row, _member, values in changes:
        befores.append(snapshot(member_from_row(row, level_code_by_id.get(row.level_id, ""))))
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now
    session.flush()
    realtime_outbox.member_changed(session, [row.id for row, _member, _values in changes])
    # Audit last: the chain's head lock is then held only until this transaction commits.
    audit.record(
        session,
        actor=principal.actor,
        action="members.imported",
        entity_type="member_import",
        entity_id=report.sha256[:16],
        after={
            "sha256": report.sha256,
            "rows": rows,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected_lines,
        },
    )
    for parsed in good:
        if parsed.member.number not in existing:
            audit.record(
                session,
                actor=principal.actor,
                action="member.created",
                entity_type="member",
                entity_id=parsed.member.number,
                after=snapshot(parsed.member),
            )
    for (_row, member, _values), before in zip(changes, befores, strict=True):
        audit.record(
            session,
            actor=principal.actor,
            action="member.updated",
            entity_type="member",
            entity_id=member.number,
            before=before,
            after=snapshot(member),
        )
    return report


def export_rows(session: Session) -> Iterator[list[str]]:
    """Every member as a CSV row (header first), by member number, streamed."""
    yield list(COLUMNS)
    codes: dict[int, str] = {
        row.id: row.code
        for row in session.execute(select(MembershipLevelRow.id, MembershipLevelRow.code))
    }
    result = session.scalars(
        select(MemberRow).order_by(MemberRow.number).execution_options(yield_per=1000)
    )
    for row in result:
        fields = member_fields(member_from_row(row, codes.get(row.level_id, "")))
        yield [getattr(fields, c) for c in COLUMNS]


def export_csv(session: Session) -> Iterator[str]:
    """The export as text chunks (about 1,000 rows each) for a streaming response."""
    return csv_text(export_rows(session))


def csv_text(rows: Iterable[list[str]]) -> Iterator[str]:
    """``rows`` as CSV text chunks (about 1,000 rows each). No cell can start a spreadsheet
    formula (``csv_cells``: a member named ``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)``
    and :func:`parse` reads it back without the quote); the phone column, E.164 that
    ledgerlink validated, stays a plain ``+14155550100``."""
    buffer = io.StringIO()
    writer = SafeCsvWriter(
        buffer, lineterminator="\r\n", plain_number_columns=[COLUMNS.index("phone")]
    )
    for count, values in enumerate(rows, start=1):
        writer.writerow(values)
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def problems_as_errors(line: int, problems: list[FieldProblem]) -> list[RowError]:
    return [RowError(line, p.field, p.message) for p in problems]
