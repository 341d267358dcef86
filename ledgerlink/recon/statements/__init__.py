"""Bank statement import: BAI2, CAMT.053, OFX and CSV files read into one Statement model.

Parsing is pure (bytes in, :class:`Statement` out, or :class:`StatementError` naming the
line): a bad file is refused whole, so the caller stores all of a statement or none of it.
"""

from ledgerlink.recon.statements.csv_columns import CsvMapping
from ledgerlink.recon.statements.detect import parse_statement
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement, StatementLine

__all__ = ["CsvMapping", "Statement", "StatementError", "StatementLine", "parse_statement"]
