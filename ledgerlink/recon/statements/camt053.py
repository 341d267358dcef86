"""CAMT.053 (ISO 20022 bank-to-customer statement) read with lxml against the published schema.

No maintained CAMT.053 parser on PyPI keeps amounts exact and reports lines, so the
document is validated with lxml against ISO 20022's own XSD of its version (shipped in
``schemas/``: camt.053.001.02, .03, .04 and .08) and then read with namespaces; every
element keeps its source line, so a refusal names it. Checked beyond the schema: each
entry's amount is in the statement currency, the transaction summary (TxsSummry) agrees
with the entries, and the opening balance plus the booked entries gives the closing
balance. Entries not booked (PDNG, INFO) are left out; balances in another currency than
the account's are ignored.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement, StatementLine
from ledgerlink.recon.statements.reading import currency_code, decode, money

FORMAT = "camt053"
_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d\d)$")
_XML_ENCODING = re.compile(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9_.-]+)[\"']", re.IGNORECASE)
_OPENING = ("OPBD", "PRCD")
_CLOSING = ("CLBD",)
_BOOKED = "BOOK"
_SCHEMAS = Path(__file__).with_name("schemas")
Element = Any  # lxml's _Element; typed loosely because lxml ships partial stubs


@cache
def _schema(version: str) -> Any:
    path = _SCHEMAS / f"camt.053.001.{version}.xsd"
    return etree.XMLSchema(etree.parse(str(path))) if path.exists() else None


def looks_like(head: bytes) -> bool:
    return b"camt.053" in head


def parse(data: bytes) -> Statement:
    """A CAMT.053 document as a :class:`Statement`, or :class:`StatementError` with the line."""
    declared = _XML_ENCODING.search(data[:512])
    decode(data, declared.group(1).decode("ascii") if declared else "utf-8", what="CAMT.053 file")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise StatementError(
            exc.lineno or None,
            f"the XML is not well formed ({exc.msg})",
            "the file is damaged or truncated; ask the bank for the complete file",
        ) from None
    namespace = etree.QName(root).namespace or ""
    version = _NAMESPACE.match(namespace)
    if version is None or etree.QName(root).localname != "Document":
        raise StatementError(
            root.sourceline,
            f"the document is not a camt.053 statement (namespace {namespace or 'none'!r})",
            "import a camt.053 bank-to-customer statement (camt.052/054 are not statements)",
        )
    schema = _schema(version.group(1))
    if schema is None:
        raise StatementError(
            root.sourceline,
            f"camt.053.001.{version.group(1)} is not a version ledgerlink reads",
            "ask the bank for camt.053.001.02 or camt.053.001.08",
        )
    if not schema.validate(root):
        error = schema.error_log[0]
        raise StatementError(
            error.line or None,
            f"the statement does not follow the camt.053.001.{version.group(1)} schema: "
            f"{error.message}",
            "ask the bank for a valid export",
        )
    reader = _Reader(namespace)
    statements = reader.all(root, "BkToCstmrStmt", "Stmt")
    if not statements:
        raise StatementError(
            root.sourceline,
            "the document holds no statement (BkToCstmrStmt/Stmt)",
            "export the statement again",
        )
    return reader.statement(statements)


class _Reader:
    def __init__(self, namespace: str) -> None:
        self.ns = {"c": namespace}

    def all(self, element: Element, *path: str) -> list[Element]:
        return list(element.xpath("/".join(f"c:{p}" for p in path), namespaces=self.ns))

    def first(self, element: Element, *path: str) -> Element | None:
        found = self.all(element, *path)
        return found[0] if found else None

    def text(self, element: Element, *path: str) -> str:
        found = self.first(element, *path)
        return (found.text or "").strip() if found is not None else ""

    def day(self, element: Element | None) -> date | None:
        if element is None:
            return None
        raw = self.text(element, "Dt") or self.text(element, "DtTm")[:10]
        if not raw:
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            raise StatementError(
                element.sourceline, f"{raw!r} is not a date (YYYY-MM-DD)", "export again"
            ) from None

    # -- statement ----------------------------------------------------------------------------

    def statement(self, statements: list[Element]) -> Statement:
        accounts = {self.account(stmt) for stmt in statements}
        if len(accounts) > 1:
            raise StatementError(
                statements[1].sourceline,
                f"the file holds statements of {len(accounts)} accounts",
                "import one account per file",
            )
        account = accounts.pop()
        currency = self.currency(statements[0])
        lines: list[StatementLine] = []
        starts: list[date] = []
        ends: list[date] = []
        opening: Money | None = None
        closing: Money | None = None
        for stmt in statements:
            if self.currency(stmt) != currency:
                raise StatementError(
                    stmt.sourceline,
                    "the statements in this file are in different currencies",
                    "import one currency account per file",
                )
            entries = self.entries(stmt, currency)
            self.check_summary(stmt, currency)
            first, last = (
                self.balance(stmt, currency, _OPENING),
                self.balance(stmt, currency, _CLOSING),
            )
            self.check_continuity(stmt, first, last, entries)
            if opening is None and first is not None:
                opening = first[0]
            if last is not None:
                closing = last[0]
            lines.extend(entries)
            period = self.first(stmt, "FrToDt")
            if period is not None:
                start = self.text(period, "FrDtTm")[:10] or self.text(period, "FrDt")
                end = self.text(period, "ToDtTm")[:10] or self.text(period, "ToDt")
                if start and end:
                    starts.append(date.fromisoformat(start))
                    ends.append(date.fromisoformat(end))
        days = [line.booked_on for line in lines]
        if not starts and not days:
            raise StatementError(
                statements[0].sourceline,
                "the statement has neither a period (FrToDt) nor booked entries",
                "export a statement with a date range",
            )
        return Statement.of(
            format=FORMAT,
            account=account,
            currency=currency,
            period_start=min(starts or days),
            period_end=max(ends or days),
            opening=opening,
            closing=closing,
            lines=tuple(lines),
        )

    def account(self, stmt: Element) -> str:
        value = self.text(stmt, "Acct", "Id", "IBAN") or self.text(stmt, "Acct", "Id", "Othr", "Id")
        if not value:
            where = self.first(stmt, "Acct")
            raise StatementError(
                (where if where is not None else stmt).sourceline,
                "the statement names no account (Acct/Id/IBAN or Acct/Id/Othr/Id)",
                "export the statement again",
            )
        return value

    def currency(self, stmt: Element) -> str:
        code = self.text(stmt, "Acct", "Ccy")
        if not code:
            amount = self.first(stmt, "Ntry", "Amt")
            code = amount.get("Ccy", "") if amount is not None else ""
        if not code:
            raise StatementError(
                stmt.sourceline,
                "the statement has no currency (Acct/Ccy, or Ccy on the entries)",
                "export the statement again",
            )
        return currency_code(code, stmt.sourceline)

    def signed(self, element: Element, currency: str, *, what: str) -> Money | None:
        """The signed amount of an element holding ``Amt`` and ``CdtDbtInd``; None when the
        amount is in another currency."""
        amount = self.first(element, "Amt")
        if amount is None or not (amount.text or "").strip():
            raise StatementError(
                element.sourceline,
                f"the {what} has no amount (Amt)",
                "the file is incomplete; ask the bank for a new export",
            )
        code = amount.get("Ccy", "")
        if not code:
            raise StatementError(
                amount.sourceline, f"the {what} amount has no currency (Ccy)", "export again"
            )
        if currency_code(code, amount.sourceline) != currency:
            return None
        value = money(amount.text or "", currency, amount.sourceline, field=f"{what} amount")
        direction = self.text(element, "CdtDbtInd")
        if direction not in ("CRDT", "DBIT"):
            raise StatementError(
                element.sourceline,
                f"the {what} has no direction (CdtDbtInd is {direction or 'missing'}; "
                "CRDT or DBIT)",
                "export the statement again",
            )
        return value if direction == "CRDT" else -value

    def entries(self, stmt: Element, currency: str) -> list[StatementLine]:
        lines = []
        for entry in self.all(stmt, "Ntry"):
            amount = self.signed(entry, currency, what="entry (Ntry)")
            if amount is None:
                raise StatementError(
                    entry.sourceline,
                    f"the entry is not in the statement currency {currency}",
                    "import one currency account per file",
                )
            status = self.text(entry, "Sts", "Cd") or self.text(entry, "Sts")
            if status and status != _BOOKED:
                continue
            booked = self.day(self.first(entry, "BookgDt"))
            if booked is None:
                raise StatementError(
                    entry.sourceline,
                    "the booked entry has no booking date (BookgDt)",
                    "export the statement again",
                )
            lines.append(
                StatementLine(
                    line_no=entry.sourceline,
                    booked_on=booked,
                    value_on=self.day(self.first(entry, "ValDt")),
                    amount=amount,
                    reference=self.reference(entry),
                    description=self.description(entry),
                    type_code=self.type_code(entry),
                    bank_ref=self.text(entry, "AcctSvcrRef"),
                )
            )
        return lines

    def reference(self, entry: Element) -> str:
        details = ("NtryDtls", "TxDtls")
        for path in (
            (*details, "Refs", "EndToEndId"),
            (*details, "RmtInf", "Strd", "CdtrRefInf", "Ref"),
            ("NtryRef",),
            (*details, "Refs", "AcctSvcrRef"),
        ):
            value = self.text(entry, *path)
            if value and value.upper() != "NOTPROVIDED":
                return value
        return ""

    def description(self, entry: Element) -> str:
        parts = [self.text(entry, "AddtlNtryInf")]
        parts += [
            (e.text or "").strip() for e in self.all(entry, "NtryDtls", "TxDtls", "RmtInf", "Ustrd")
        ]
        return " ".join(p for p in parts if p)

    def type_code(self, entry: Element) -> str:
        domain = self.text(entry, "BkTxCd", "Domn", "Cd")
        if domain:
            family = self.text(entry, "BkTxCd", "Domn", "Fmly", "Cd")
            sub = self.text(entry, "BkTxCd", "Domn", "Fmly", "SubFmlyCd")
            return "/".join(p for p in (domain, family, sub) if p)
        return self.text(entry, "BkTxCd", "Prtry", "Cd")

    # -- totals -------------------------------------------------------------------------------

    def balance(
        self, stmt: Element, currency: str, codes: tuple[str, ...]
    ) -> tuple[Money, Element] | None:
        for bal in self.all(stmt, "Bal"):
            code = self.text(bal, "Tp", "CdOrPrtry", "Cd")
            if code in codes:
                amount = self.signed(bal, currency, what=f"{code} balance")
                if amount is not None:
                    return amount, bal
        return None

    def check_summary(self, stmt: Element, currency: str) -> None:
        summary = self.first(stmt, "TxsSummry", "TtlNtries")
        if summary is None:
            return
        entries = self.all(stmt, "Ntry")
        count = self.text(summary, "NbOfNtries")
        if count and count.isdigit() and int(count) != len(entries):
            raise StatementError(
                summary.sourceline,
                f"the summary (TxsSummry/TtlNtries) counts {count} entries but the "
                f"statement holds {len(entries)}",
                "the file is incomplete or altered; ask the bank for a new export",
            )
        total = self.text(summary, "Sum")
        if total:
            expected = money(total, currency, summary.sourceline, field="TtlNtries/Sum")
            found = sum(
                abs((self.signed(e, currency, what="entry (Ntry)") or Money(0, currency)).minor)
                for e in entries
            )
            if found != expected.minor:
                raise StatementError(
                    summary.sourceline,
                    f"the summary (TxsSummry/TtlNtries/Sum) is {expected.format_plain()} but "
                    f"the entries add up to {Money(found, currency).format_plain()}",
                    "the file is incomplete or altered; ask the bank for a new export",
                )

    def check_continuity(
        self,
        stmt: Element,
        opening: tuple[Money, Element] | None,
        closing: tuple[Money, Element] | None,
        entries: list[StatementLine],
    ) -> None:
        if opening is None or closing is None:
            return
        net = sum((line.amount.minor for line in entries), 0)
        if opening[0].minor + net != closing[0].minor:
            raise StatementError(
                closing[1].sourceline,
                f"the opening balance {opening[0].format_plain()} plus the booked entries "
                f"{Money(net, opening[0].currency).format_plain()} does not give the closing "
                f"balance {closing[0].format_plain()}",
                "the file is incomplete or altered; ask the bank for a new export",
            )
