"""OFX (1.x SGML and 2.x XML) bank and card statements read with ``ofxparse``.

``ofxparse`` (MIT) reads both OFX generations and gives amounts as Decimal; this module
decodes by the header's charset first (so a bad byte is named with its line and offset),
refuses a truncated file or a statement without transactions, and keeps amounts exact.
(``ofxtools`` would also write OFX, but it is GPL-3.0-only; the sandbox writes OFX from a
template that this parser reads back.)
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import date, datetime
from typing import Any

from ofxparse import OfxParser
from ofxparse.ofxparse import OfxParserException

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement, StatementLine
from ledgerlink.recon.statements.reading import currency_code, decode, money

FORMAT = "ofx"
_SGML_HEADER = re.compile(rb"^\s*OFXHEADER\s*:\s*100", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9_.-]+)[\"']", re.IGNORECASE)
_CHARSET = re.compile(rb"^CHARSET\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_ENCODING = re.compile(rb"^ENCODING\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_STMTTRN = re.compile(r"<STMTTRN>", re.IGNORECASE)
_DTPOSTED = re.compile(r"<DTPOSTED>\s*(\d{8})", re.IGNORECASE)
# A well-formed tag (<NAME>, </NAME>) or an XML/OFX processing instruction or comment.
_TAG = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9.:_-]*>|\?[^>]*\?>|!--.*?-->)", re.DOTALL)
#: What a Python error (not ofxparse's own refusal) says; never shown to a user.
_PYTHON_WORDS = re.compile(
    r"index out of range|invalid literal|NoneType|object|argument|unconverted data|"
    r"does not match format|not supported|unexpected|expected",
    re.IGNORECASE,
)
_ANY_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9.:_-]*)>")


def looks_like(head: bytes) -> bool:
    upper = head.upper()
    return bool(_SGML_HEADER.match(head)) or b"<OFX>" in upper or b"<?OFX" in upper


def parse(data: bytes) -> Statement:
    """An OFX statement as a :class:`Statement`, or :class:`StatementError` with the line."""
    text = decode(data, _encoding_of(data), what="OFX file")
    _check_shape(text)
    # ofxparse decodes by the SGML header only (an XML file, or one with a blank line
    # before the header, is read as ASCII): hand it the text already decoded here, with
    # any non-ASCII character as a character reference, which it reads back as that
    # character whatever it thinks the encoding is.
    payload = text.lstrip().encode("ascii", "xmlcharrefreplace")
    try:
        with warnings.catch_warnings():
            # bs4 says it reads OFX with its HTML parser; that is how ofxparse reads SGML.
            warnings.simplefilter("ignore")
            ofx = OfxParser.parse(io.BytesIO(payload), fail_fast=True)
    except Exception as exc:
        # _check_shape and _check_tags refuse what they can name. ofxparse's own refusals
        # ("Invalid Transaction Amount: 'five hundred'") are in the bank's terms and kept;
        # anything else it raises (AttributeError, IndexError, a wrapped strptime error on
        # a missing or damaged element) is Python's words: say what is known instead.
        said = str(exc) if isinstance(exc, OfxParserException) else ""
        if not said or _PYTHON_WORDS.search(said):
            said = (
                "an element it needs (such as STATUS, BANKACCTFROM, STMTTRN with TRNAMT and "
                "DTPOSTED, or LEDGERBAL) is missing or damaged"
            )
        raise StatementError(
            None,
            f"the OFX statement cannot be read: {said}",
            "export the statement again from the bank (OFX/QFX, 'Quicken' or 'Money' format)",
        ) from None
    accounts = list(getattr(ofx, "accounts", []) or [])
    if len(accounts) != 1:
        raise StatementError(
            None,
            f"the file holds {len(accounts)} account statements",
            "export one account per file",
        )
    return _statement(accounts[0], text)


def _encoding_of(data: bytes) -> str:
    head = data[:1024]
    if _SGML_HEADER.match(head):
        encoding = _ENCODING.search(head)
        if encoding and encoding.group(1).upper().replace(b"-", b"") == b"UTF8":
            return "utf-8"
        charset = _CHARSET.search(head)
        value = charset.group(1).decode("ascii", "replace").upper() if charset else "1252"
        if value in ("1252", "NONE"):
            return "cp1252"
        if value in ("ISO-8859-1", "8859-1"):
            return "latin-1"
        return "cp1252" if value.isdigit() else value
    declared = _XML_ENCODING.search(head)
    return declared.group(1).decode("ascii") if declared else "utf-8"


def _check_shape(text: str) -> None:
    lines = text.splitlines()
    if not re.search(r"</OFX>", text, re.IGNORECASE):
        raise StatementError(
            len(lines) or None,
            "the file ends before </OFX>: it is truncated",
            "ask the bank for the complete file",
        )
    if not re.search(r"<(CC)?STMTRS>", text, re.IGNORECASE):
        raise StatementError(
            None,
            "the OFX file holds no bank or card statement (STMTRS or CCSTMTRS)",
            "export an account statement, not a sign-on or investment file",
        )
    _check_tags(text)
    if not _STMTTRN.search(text):
        listing = re.search(r"<BANKTRANLIST>", text, re.IGNORECASE)
        raise StatementError(
            _line_at(text, listing.start()) if listing else None,
            "the OFX statement has no transactions (no STMTTRN)",
            "pick a date range with transactions when exporting",
        )


def _check_tags(text: str) -> None:
    """Refuse a tag cut short and an aggregate closed out of turn, with the line.

    OFX 1.x leaves leaf elements (<TRNAMT>-6.60) unclosed, so only elements that are
    closed somewhere in the file (aggregates such as STMTTRN) must nest properly.
    """
    start = text.find("<")
    while start != -1:
        tag = _TAG.match(text, start)
        if tag is None:
            shown = text[start : start + 20].split("\n")[0]
            raise StatementError(
                _line_at(text, start),
                f"the tag {shown!r} is cut short or damaged",
                "the file was altered or truncated; export it again from the bank",
            )
        start = text.find("<", tag.end())
    closed = {m[2].upper() for m in _ANY_TAG.finditer(text) if m[1]}
    open_tags: list[tuple[str, int]] = []
    for found in _ANY_TAG.finditer(text):
        name = found[2].upper()
        if name not in closed:
            continue
        if not found[1]:
            open_tags.append((name, found.start()))
            continue
        if not open_tags or open_tags[-1][0] != name:
            inside = f"<{open_tags[-1][0]}> is still open" if open_tags else "nothing is open"
            raise StatementError(
                _line_at(text, found.start()),
                f"</{name}> closes an element that is not open here ({inside})",
                "the file was altered or truncated; export it again from the bank",
            )
        open_tags.pop()
    if open_tags:
        name, at = open_tags[-1]
        raise StatementError(
            _line_at(text, at),
            f"<{name}> is never closed",
            "the file was altered or truncated; export it again from the bank",
        )


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _statement(account: Any, text: str) -> Statement:
    statement = account.statement
    currency = currency_code(str(getattr(account, "curdef", "") or "USD"), None)
    starts = [m.start() for m in _STMTTRN.finditer(text)]
    positions = [_line_at(text, start) for start in starts]
    # ofxparse turns DTPOSTED into UTC, which moves a late-evening posting to the next
    # day; the statement date is the bank's own, the first eight digits as written.
    written = [
        _DTPOSTED.search(text, start, end)
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True)
    ]
    lines: list[StatementLine] = []
    for index, txn in enumerate(statement.transactions):
        number = positions[index] if index < len(positions) else positions[-1]
        if txn.amount is None or txn.date is None:
            raise StatementError(
                number, "the transaction has no TRNAMT or DTPOSTED", "export the file again"
            )
        memo = str(txn.memo or "").strip()
        checknum = str(txn.checknum or "").strip()
        reference = checknum if checknum not in ("", "0") else memo
        description = str(txn.payee or "").strip()
        lines.append(
            StatementLine(
                line_no=number,
                booked_on=_written_day(written, index) or _day(txn.date),
                value_on=_day(txn.user_date) if txn.user_date else None,
                amount=money(txn.amount, currency, number, field="TRNAMT"),
                reference=reference,
                description=description,
                type_code=str(txn.type or "").upper(),
                bank_ref=str(txn.id or ""),
            )
        )
    if not lines:
        raise StatementError(
            None,
            "the OFX statement has no transactions inside its BANKTRANLIST",
            "pick a date range with transactions when exporting",
        )
    days = [line.booked_on for line in lines]
    start = getattr(statement, "start_date", None)
    end = getattr(statement, "end_date", None)
    balance = getattr(statement, "balance", None)
    closing: Money | None = None
    if balance is not None and str(balance) != "":
        closing = money(balance, currency, None, field="LEDGERBAL BALAMT")
    return Statement.of(
        format=FORMAT,
        account=str(getattr(account, "account_id", "") or getattr(account, "number", "")),
        currency=currency,
        period_start=_day(start) if start else min(days),
        period_end=_day(end) if end else max(days),
        opening=None,
        closing=closing,
        lines=tuple(lines),
    )


def _written_day(written: list[re.Match[str] | None], index: int) -> date | None:
    found = written[index] if index < len(written) else None
    if found is None:
        return None
    try:
        return datetime.strptime(found.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value
