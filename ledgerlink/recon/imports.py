"""Import a bank statement into a scope: all of it, once, or nothing.

The file is parsed first (``recon/statements``, pure): a malformed file is refused whole
with the line and the reason. Then one transaction stores the statement and every line,
writes the deposits side's state and an audit entry. A statement whose fingerprint is
already stored is recognised and reported as such, not counted twice. A statement with
lines booked in a closed period is refused (reopen the period first).

A CSV statement needs a column mapping; the one used last is saved with the scope's
deposits side, so the next file of that bank imports with no mapping given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.recon.periods import refuse_if_closed
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.sides import side_state
from ledgerlink.recon.statements.csv_columns import CsvMapping
from ledgerlink.recon.statements.detect import parse_statement
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement
from ledgerlink.store import audit
from ledgerlink.store.recon_models import ReconScope, ReconStatement, ReconStatementLine
from ledgerlink.store.types import utcnow

#: Larger files are refused before parsing (a year of daily deposits is far smaller).
MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImportResult:
    statement_id: int
    format: str
    lines: int
    #: True when this statement had been imported before (nothing was added)
    duplicate: bool
    period_start: str
    period_end: str

    @property
    def message(self) -> str:
        if self.duplicate:
            return (
                f"This {self.format.upper()} statement ({self.period_start} to "
                f"{self.period_end}) was already imported as statement {self.statement_id}; "
                "nothing was added"
            )
        return (
            f"Imported statement {self.statement_id}: {self.lines} lines "
            f"({self.format.upper()}, {self.period_start} to {self.period_end})"
        )


def saved_csv_mapping(session: Session, scope_id: int) -> CsvMapping | None:
    state = side_state(session, scope_id, "deposits")
    saved = (state.state or {}).get("csv_mapping")
    return CsvMapping.model_validate(saved) if saved else None


def parse(data: bytes, filename: str, *, csv_mapping: CsvMapping | None = None) -> Statement:
    """The statement, or :class:`ReconRefused` naming the line and the reason."""
    if len(data) > MAX_BYTES:
        raise ReconRefused(
            "file", f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it by month"
        )
    try:
        return parse_statement(data, filename, csv_mapping=csv_mapping)
    except StatementError as exc:
        raise ReconRefused("file", f"{exc.reason}; {exc.fix}", line=exc.line) from None


def _mask(account: str) -> str:
    account = account.strip()
    return f"…{account[-4:]}" if len(account) > 4 else account


def import_statement(
    session: Session,
    principal: Principal,
    scope: ReconScope,
    data: bytes,
    filename: str,
    *,
    csv_mapping: CsvMapping | None = None,
) -> ImportResult:
    """Parse and store ``data`` in ``session``'s transaction (the caller's unit of work:
    if anything after this fails, nothing of the statement stays)."""
    mapping = csv_mapping or saved_csv_mapping(session, scope.id)
    statement = parse(data, filename, csv_mapping=mapping)
    if statement.currency != scope.currency:
        raise ReconRefused(
            "file",
            f"The statement is in {statement.currency}; this scope reconciles "
            f"{scope.currency}. Import it into the scope of that currency",
        )
    found = session.scalar(
        select(ReconStatement).where(ReconStatement.fingerprint == statement.fingerprint)
    )
    if found is not None:
        if found.scope_id != scope.id:
            raise ReconRefused(
                "file",
                f"This statement was already imported into another scope (statement "
                f"{found.id}); a statement belongs to one scope",
            )
        return ImportResult(
            found.id,
            found.format,
            found.line_count,
            True,
            found.period_start.isoformat(),
            found.period_end.isoformat(),
        )
    for day in sorted({line.booked_on for line in statement.lines}):
        refuse_if_closed(session, scope.id, day, "A line of this statement")
    stored = ReconStatement(
        scope_id=scope.id,
        fingerprint=statement.fingerprint,
        format=statement.format,
        filename=filename[:255],
        account=_mask(statement.account),
        currency=statement.currency,
        period_start=statement.period_start,
        period_end=statement.period_end,
        opening_minor=None if statement.opening is None else statement.opening.minor,
        closing_minor=None if statement.closing is None else statement.closing.minor,
        line_count=len(statement.lines),
        imported_by=principal.actor,
        imported_at=utcnow(),
    )
    session.add(stored)
    session.flush()
    prefix = statement.fingerprint[:12]
    session.add_all(
        ReconStatementLine(
            statement_id=stored.id,
            line_id=f"{prefix}:{line.line_no}",
            line_no=line.line_no,
            booked_on=line.booked_on,
            value_on=line.value_on,
            amount_minor=line.amount.minor,
            currency=line.amount.currency,
            reference=line.reference[:255],
            description=line.description[:500],
            type_code=line.type_code[:32],
            bank_ref=line.bank_ref[:100],
        )
        for line in statement.lines
    )
    state = side_state(session, scope.id, "deposits")
    kept: dict[str, Any] = dict(state.state or {})
    if csv_mapping is not None and statement.format == "csv":
        kept["csv_mapping"] = csv_mapping.model_dump()
    state.state = kept
    state.rows = (state.rows or 0) + len(statement.lines)
    # the cursor is the newest day the bank's statements cover (upstream data, not our clock)
    covered = datetime.combine(statement.period_end, time.min, tzinfo=UTC)
    state.cursor = covered if state.cursor is None else max(state.cursor, covered)
    state.read_at = utcnow()
    audit.record(
        session,
        actor=principal.actor,
        action="recon.statement.import",
        entity_type="recon_statement",
        entity_id=stored.id,
        after={
            "scope_id": scope.id,
            "format": statement.format,
            "filename": filename[:255],
            "fingerprint": statement.fingerprint,
            "lines": len(statement.lines),
            "period": [statement.period_start.isoformat(), statement.period_end.isoformat()],
        },
    )
    return ImportResult(
        stored.id,
        statement.format,
        len(statement.lines),
        False,
        statement.period_start.isoformat(),
        statement.period_end.isoformat(),
    )
