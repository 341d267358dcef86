"""Bank statements of the PayTrace sandbox's deposits, in BAI2, CAMT.053 and OFX.

The sandbox's ``/_sandbox/deposits`` says what the processor paid into the bank for each
settled batch; this module turns those deposits into the files a bank would send, with
chosen anomalies (a missing deposit, a fee difference, a late deposit, an unknown credit)
so reconciliation has something to find. BAI2 is written with the ``bai2`` library (the
same one that reads it), CAMT.053 with lxml and checked against ISO 20022's schema before
it is returned, and OFX 2.2 from a template (``ofxparse`` only reads; ``ofxtools`` writes
but is GPL-3.0-only). ``ledgerlink.recon.statements`` reads every file written here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from xml.sax.saxutils import escape

import httpx
import typer
from rich.console import Console

from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.sandbox.supervisor import addresses
from ledgerlink.settings import Settings

FORMATS = ("bai2", "camt053", "ofx")
DEPOSIT_REFERENCE = "PAYTRACE BATCH {batch}"
DEPOSIT_DESCRIPTION = "MERCHANT DEPOSIT PAYTRACE"
UNKNOWN_DESCRIPTION = "ACH CREDIT UNKNOWN ORIGINATOR"
_BAI2_CREDIT = "165"  # Preauthorized ACH Credit
_BAI2_DEBIT = "455"  # Preauthorized ACH Debit
_CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


@dataclass(frozen=True, slots=True)
class BankLine:
    """One entry on the statement: signed minor units (credits > 0)."""

    booked_on: date
    amount_minor: int
    reference: str
    description: str
    bank_ref: str


@dataclass(frozen=True, slots=True)
class BankStatement:
    account: str
    currency: str
    period_start: date
    period_end: date
    opening_minor: int
    lines: tuple[BankLine, ...]
    created_at: datetime = field(default_factory=lambda: datetime.now(dt.UTC))

    @property
    def closing_minor(self) -> int:
        return self.opening_minor + sum(line.amount_minor for line in self.lines)

    def balance_before(self, day: date) -> int:
        return self.opening_minor + sum(x.amount_minor for x in self.lines if x.booked_on < day)


@dataclass(frozen=True, slots=True)
class Anomalies:
    """What to get wrong on purpose, by PayTrace batch number."""

    missing: frozenset[str] = frozenset()
    fee_difference: dict[str, int] = field(default_factory=dict)  # minor units less deposited
    late: dict[str, int] = field(default_factory=dict)  # days later than due
    unknown_credits: tuple[int, ...] = ()  # minor units, booked on the last day


def deposit_lines(
    deposits: Iterable[dict[str, Any]],
    anomalies: Anomalies,
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[BankLine], date, date]:
    """The statement lines of ``deposits`` (``/_sandbox/deposits`` rows) from ``start`` to
    ``end`` (default: the first and last deposit, as due or as booked), with ``anomalies``
    applied, and the period they cover.

    A deposit of zero is not on a statement (a bank books no empty credit); a negative one
    (chargebacks above the batch) is a debit. A late deposit that falls after ``end`` is
    left off: it is in transit.
    """
    lines: list[BankLine] = []
    due: list[date] = []
    for deposit in deposits:
        batch = str(deposit["batch_number"])
        due.append(date.fromisoformat(str(deposit["deposit_on"])))
        if batch in anomalies.missing:
            continue
        amount = Money.parse(str(deposit["net"]), str(deposit.get("currency") or "USD")).minor
        amount -= anomalies.fee_difference.get(batch, 0)
        booked = date.fromisoformat(str(deposit["deposit_on"]))
        booked += timedelta(days=anomalies.late.get(batch, 0))
        if amount == 0:
            continue
        lines.append(
            BankLine(
                booked_on=booked,
                amount_minor=amount,
                reference=DEPOSIT_REFERENCE.format(batch=batch),
                description=DEPOSIT_DESCRIPTION,
                bank_ref=f"DEP{batch}",
            )
        )
    days = due + [line.booked_on for line in lines]
    first = start or (min(days) if days else dt.datetime.now(dt.UTC).date())
    last = end or (max(days) if days else first)
    kept = [line for line in lines if first <= line.booked_on <= last]
    for index, amount in enumerate(anomalies.unknown_credits, start=1):
        kept.append(
            BankLine(last, amount, f"UNKNOWN {index}", UNKNOWN_DESCRIPTION, f"UNK{index:04d}")
        )
    kept.sort(key=lambda line: (line.booked_on, line.bank_ref))
    return kept, first, last


# -- BAI2 ----------------------------------------------------------------------------------------


def write_bai2(statement: BankStatement) -> bytes:
    """One group per day with entries (and for the first and last day of the period), each
    with its opening (010) and closing (015) ledger balance; control totals by the library."""
    # imported here: the CLI loads this module at start-up, the writers only when used
    from bai2 import bai2 as bai2_io
    from bai2 import models as bai2_models
    from bai2.constants import AsOfDateModifier, FundsType, GroupStatus, TypeCodes

    codes = TypeCodes
    created = statement.created_at
    days = sorted(
        {line.booked_on for line in statement.lines}
        | {statement.period_start, statement.period_end}
    )
    file = bai2_models.Bai2File()
    file.header = bai2_models.Bai2FileHeader(
        sender_id="LLSANDBOX",
        receiver_id="LEDGERLINK",
        creation_date=created.date(),
        creation_time=created.time().replace(second=0, microsecond=0),
        file_id=created.strftime("%y%m%d%H%M"),
        physical_record_length=80,
        block_size=None,
        version_number=2,
    )
    for day in days:
        todays = [line for line in statement.lines if line.booked_on == day]
        opening = statement.balance_before(day)
        closing = opening + sum(line.amount_minor for line in todays)
        details = [
            bai2_models.TransactionDetail(
                type_code=codes[_BAI2_CREDIT if line.amount_minor > 0 else _BAI2_DEBIT],
                amount=abs(line.amount_minor),
                funds_type=FundsType.immediate_availability,
                bank_reference=line.bank_ref,
                customer_reference=line.reference,
                text=line.description,
            )
            for line in todays
        ]
        account = bai2_models.Account(
            header=bai2_models.AccountIdentifier(
                customer_account_number=statement.account,
                currency=statement.currency,
                summary_items=[
                    bai2_models.Summary(type_code=codes["010"], amount=opening),
                    bai2_models.Summary(type_code=codes["015"], amount=closing),
                ],
            ),
            children=details,
        )
        group = bai2_models.Group(
            header=bai2_models.GroupHeader(
                ultimate_receiver_id="LEDGERLINK",
                originator_id="LLSANDBOX",
                group_status=GroupStatus.update,
                as_of_date=day,
                as_of_time=dt.time.max,
                currency=statement.currency,
                as_of_date_modifier=AsOfDateModifier.final_previous_day,
            ),
            children=[account],
        )
        file.children.append(group)
    return (str(bai2_io.write(file)) + "\n").encode("ascii")


# -- CAMT.053 ------------------------------------------------------------------------------------


def write_camt053(statement: BankStatement) -> bytes:
    """camt.053.001.02, validated against ISO 20022's schema before it is returned."""
    # deferred: lxml (0.3 s) loads only when a CAMT.053 is written, not at every CLI start
    from lxml import etree
    from lxml.builder import ElementMaker

    from ledgerlink.recon.statements.camt053 import _schema  # deferred: lxml, as above

    c = ElementMaker(namespace=_CAMT_NS, nsmap={None: _CAMT_NS})
    ccy = statement.currency

    def amount(minor: int) -> Any:
        return c.Amt(Money(abs(minor), ccy).format_plain(), Ccy=ccy)

    def direction(minor: int) -> Any:
        return c.CdtDbtInd("DBIT" if minor < 0 else "CRDT")

    def balance(code: str, minor: int, day: date) -> Any:
        return c.Bal(
            c.Tp(c.CdOrPrtry(c.Cd(code))),
            amount(minor),
            direction(minor),
            c.Dt(c.Dt(day.isoformat())),
        )

    def entry(line: BankLine) -> Any:
        parts: list[Any] = [
            amount(line.amount_minor),
            direction(line.amount_minor),
            c.Sts("BOOK"),
            c.BookgDt(c.Dt(line.booked_on.isoformat())),
            c.ValDt(c.Dt(line.booked_on.isoformat())),
            c.AcctSvcrRef(line.bank_ref),
            c.BkTxCd(
                c.Domn(
                    c.Cd("PMNT"),
                    c.Fmly(c.Cd("RCDT" if line.amount_minor > 0 else "RDDT"), c.SubFmlyCd("ACDT")),
                )
            ),
        ]
        if line.reference:
            parts.append(c.NtryDtls(c.TxDtls(c.Refs(c.EndToEndId(line.reference)))))
        if line.description:
            parts.append(c.AddtlNtryInf(line.description))
        return c.Ntry(*parts)

    created = statement.created_at.replace(microsecond=0).isoformat()
    lines = statement.lines
    document = c.Document(
        c.BkToCstmrStmt(
            c.GrpHdr(c.MsgId(f"LLSANDBOX{statement.created_at:%Y%m%d%H%M%S}"), c.CreDtTm(created)),
            c.Stmt(
                c.Id(f"{statement.account}-{statement.period_end:%Y%m%d}"),
                c.CreDtTm(created),
                c.FrToDt(
                    c.FrDtTm(f"{statement.period_start.isoformat()}T00:00:00"),
                    c.ToDtTm(f"{statement.period_end.isoformat()}T23:59:59"),
                ),
                c.Acct(c.Id(c.Othr(c.Id(statement.account))), c.Ccy(ccy)),
                balance("OPBD", statement.opening_minor, statement.period_start),
                balance("CLBD", statement.closing_minor, statement.period_end),
                c.TxsSummry(
                    c.TtlNtries(
                        c.NbOfNtries(str(len(lines))),
                        c.Sum(Money(sum(abs(x.amount_minor) for x in lines), ccy).format_plain()),
                    )
                ),
                *[entry(line) for line in lines],
            ),
        )
    )
    data: bytes = etree.tostring(
        document, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    schema = _schema("02")
    if not schema.validate(etree.fromstring(data)):
        raise ValueError(f"the CAMT.053 written is not schema-valid: {schema.error_log[0]}")
    return data


# -- OFX -----------------------------------------------------------------------------------------


_OFX_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


def write_ofx(statement: BankStatement) -> bytes:
    """OFX 2.2 (XML) bank statement: one STMTTRN per line, reference in MEMO."""
    ccy = statement.currency

    def tag(name: str, value: str) -> str:
        return f"<{name}>{escape(value)}</{name}>" if value else ""

    def when(day: date) -> str:
        return f"{day:%Y%m%d}120000"

    created = statement.created_at.strftime("%Y%m%d%H%M%S")
    out = [
        _OFX_HEAD,
        "<OFX>\n<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>",
        f"<DTSERVER>{created}</DTSERVER><LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>\n",
        "<BANKMSGSRSV1><STMTTRNRS><TRNUID>1</TRNUID>",
        "<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>\n<STMTRS>",
        f"<CURDEF>{ccy}</CURDEF><BANKACCTFROM><BANKID>121000248</BANKID>",
        f"{tag('ACCTID', statement.account)}<ACCTTYPE>CHECKING</ACCTTYPE></BANKACCTFROM>\n",
        f"<BANKTRANLIST><DTSTART>{when(statement.period_start)}</DTSTART>",
        f"<DTEND>{when(statement.period_end)}</DTEND>\n",
    ]
    for line in statement.lines:
        out.append(
            "<STMTTRN>"
            f"<TRNTYPE>{'CREDIT' if line.amount_minor > 0 else 'DEBIT'}</TRNTYPE>"
            f"<DTPOSTED>{when(line.booked_on)}</DTPOSTED>"
            f"<TRNAMT>{Money(line.amount_minor, ccy).format_plain()}</TRNAMT>"
            f"{tag('FITID', line.bank_ref)}{tag('NAME', line.description)}"
            f"{tag('MEMO', line.reference)}</STMTTRN>\n"
        )
    out.append(
        "</BANKTRANLIST><LEDGERBAL>"
        f"<BALAMT>{Money(statement.closing_minor, ccy).format_plain()}</BALAMT>"
        f"<DTASOF>{when(statement.period_end)}</DTASOF></LEDGERBAL>"
        "</STMTRS></STMTTRNRS></BANKMSGSRSV1>\n</OFX>\n"
    )
    return "".join(out).encode("utf-8")


WRITERS: dict[str, Callable[[BankStatement], bytes]] = {
    "bai2": write_bai2,
    "camt053": write_camt053,
    "ofx": write_ofx,
}


# -- the CLI command (registered in sandbox/commands.py) ---------------------------------------


def _pairs(values: Sequence[str], option: str, what: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        batch, sep, number = value.partition(":")
        try:
            if not sep or not batch.strip():
                raise ValueError
            found[batch.strip()] = int(number)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r}: write BATCH:{what}, e.g. 1004:{7 if what == 'DAYS' else 250}",
                param_hint=option,
            ) from None
    return found


def statement_command(
    format: Annotated[str, typer.Option("--format", help="bai2, camt053 or ofx.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD); default: first deposit.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD); default: last deposit.")
    ] = None,
    missing_deposit: Annotated[
        list[str] | None,
        typer.Option("--missing-deposit", help="Leave this batch's deposit off (repeatable)."),
    ] = None,
    fee_difference: Annotated[
        list[str] | None,
        typer.Option(
            "--fee-difference",
            help="BATCH:MINOR: deposit MINOR cents less than the batch net (repeatable).",
        ),
    ] = None,
    late: Annotated[
        list[str] | None,
        typer.Option("--late", help="BATCH:DAYS: book this deposit DAYS later (repeatable)."),
    ] = None,
    unknown_credit: Annotated[
        list[str] | None,
        typer.Option("--unknown-credit", help="AMOUNT (e.g. 125.00): an unexplained credit."),
    ] = None,
    account: Annotated[str, typer.Option(help="Account number on the statement.")] = "000123456789",
    opening: Annotated[str, typer.Option(help="Opening balance (e.g. 10000.00).")] = "0.00",
    url: Annotated[
        str | None, typer.Option(help="PayTrace simulator base URL (default: the configured one).")
    ] = None,
) -> None:
    """Write a bank statement of the PayTrace sandbox's deposits (net of fees and withheld
    chargebacks), with chosen anomalies for reconciliation to find."""
    if format not in FORMATS:
        raise typer.BadParameter(f"{format!r}: use bai2, camt053 or ofx", param_hint="--format")
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError:
        raise typer.BadParameter("write dates as YYYY-MM-DD", param_hint="--from/--to") from None
    try:
        credits = tuple(Money.parse(v, "USD").minor for v in unknown_credit or [])
        opening_minor = Money.parse(opening, "USD").minor
    except MoneyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--unknown-credit/--opening") from None
    anomalies = Anomalies(
        missing=frozenset(b.strip() for b in missing_deposit or []),
        fee_difference=_pairs(fee_difference or [], "--fee-difference", "MINOR"),
        late=_pairs(late or [], "--late", "DAYS"),
        unknown_credits=credits,
    )
    if url is None:
        url = addresses(Settings())["paytrace"].base_url
    try:
        response = httpx.get(f"{url.rstrip('/')}/_sandbox/deposits", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        Console(stderr=True).print(
            f"[red]The PayTrace simulator at {url} did not answer: {exc}[/red]"
        )
        raise typer.Exit(1) from None
    lines, period_start, period_end = deposit_lines(
        response.json()["deposits"], anomalies, first, last
    )
    statement = BankStatement(
        account=account,
        currency="USD",
        period_start=period_start,
        period_end=period_end,
        opening_minor=opening_minor,
        lines=tuple(lines),
    )
    out.write_bytes(WRITERS[format](statement))
    Console().print(
        f"Wrote {format} statement {out}: {len(lines)} entries, {period_start} to {period_end}"
    )
