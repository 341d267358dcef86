"""Which statement format a file is in, by its content (the file name only breaks ties)."""

from __future__ import annotations

from ledgerlink.recon.statements import bai2, camt053, csv_columns, ofx
from ledgerlink.recon.statements.csv_columns import CsvMapping
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement

FORMATS = ("bai2", "camt053", "ofx", "csv")
_SUPPORTED = "supported: BAI2, CAMT.053 (XML), OFX/QFX, and CSV with a saved column mapping"


def parse_statement(
    data: bytes, filename: str, *, csv_mapping: CsvMapping | None = None
) -> Statement:
    """The statement in ``data``, or :class:`StatementError` saying which line and why.

    Pure: nothing is stored here, so a refused file leaves nothing behind.
    """
    if not data.strip():
        raise StatementError(None, f"{filename or 'the file'} is empty", "export it again")
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    name = filename.lower()
    if head.startswith(b"01,"):
        return bai2.parse(data)
    if ofx.looks_like(head):
        return ofx.parse(data)
    if camt053.looks_like(head):
        return camt053.parse(data)
    if csv_mapping is not None or name.endswith((".csv", ".tsv")):
        if csv_mapping is None:
            raise StatementError(
                None,
                "a CSV statement needs a saved column mapping",
                "save a column mapping for this bank's CSV files, then import again",
            )
        return csv_columns.parse(data, csv_mapping)
    if head.startswith(b"<"):
        raise StatementError(
            1,
            "the XML file is neither a CAMT.053 statement nor OFX",
            f"export the statement in another format ({_SUPPORTED})",
        )
    raise StatementError(
        1,
        f"the format of {filename or 'the file'} is not recognised",
        _SUPPORTED,
    )
