"""What an imported bank statement is, whatever file format it came in.

The fingerprint is a hash of the parsed content, not of the bytes: re-reading the same
file (or the same file with other line endings or indentation) gives the same fingerprint,
which is how a statement imported twice is recognised and counted once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from ledgerlink.domain.money import Money


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_no: int  # line/entry number in the file (for messages and drill-down)
    booked_on: date
    value_on: date | None
    amount: Money  # signed: credits > 0, debits < 0
    reference: str  # bank reference / customer reference / memo, as given
    description: str
    type_code: str  # BAI2 type code, CAMT BkTxCd, OFX TRNTYPE, CSV given
    bank_ref: str  # the bank's own id for the entry (FITID, AcctSvcrRef, BAI2 bank ref)


@dataclass(frozen=True, slots=True)
class Statement:
    format: str  # "bai2" | "camt053" | "ofx" | "csv"
    account: str  # account identifier as given (masked to last 4 in display)
    currency: str
    period_start: date
    period_end: date
    opening: Money | None
    closing: Money | None
    lines: tuple[StatementLine, ...]
    fingerprint: str  # sha256 of the normalised content (duplicate import detection)

    @classmethod
    def of(
        cls,
        *,
        format: str,
        account: str,
        currency: str,
        period_start: date,
        period_end: date,
        opening: Money | None,
        closing: Money | None,
        lines: tuple[StatementLine, ...],
    ) -> Statement:
        """A statement with its fingerprint computed from everything else."""
        content = {
            "format": format,
            "account": account,
            "currency": currency,
            "period": [period_start.isoformat(), period_end.isoformat()],
            "opening": _money(opening),
            "closing": _money(closing),
            "lines": [
                [
                    line.line_no,
                    line.booked_on.isoformat(),
                    line.value_on.isoformat() if line.value_on else None,
                    line.amount.minor,
                    line.amount.currency,
                    line.reference.strip(),
                    " ".join(line.description.split()),
                    line.type_code.strip(),
                    line.bank_ref.strip(),
                ]
                for line in lines
            ],
        }
        canonical = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        return cls(
            format=format,
            account=account,
            currency=currency,
            period_start=period_start,
            period_end=period_end,
            opening=opening,
            closing=closing,
            lines=lines,
            fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
        )

    @property
    def masked_account(self) -> str:
        """The account as shown to users: only its last four characters."""
        tail = self.account.replace(" ", "")[-4:]
        return f"••••{tail}" if tail else ""

    @property
    def total_credits(self) -> Money:
        return Money(sum(x.amount.minor for x in self.lines if x.amount.minor > 0), self.currency)

    @property
    def total_debits(self) -> Money:
        return Money(sum(x.amount.minor for x in self.lines if x.amount.minor < 0), self.currency)


def _money(value: Money | None) -> list[object] | None:
    return None if value is None else [value.minor, value.currency]
