"""A local simulator of Sage 500 ERP: its tables, seed data and import procedure.

Sage 500 has no API: integrations read its SQL Server tables and write through staging
tables that the ERP's import validates and posts. The simulator creates the same tables
(SQLite by default, or any SQLAlchemy URL such as PostgreSQL), seeds a company with
customers and open invoices, and runs an import processor over the staging tables and,
in flat-file mode, over CSV files in an inbox folder. See docs/sandbox-sage500.md.
"""

from __future__ import annotations

from ledgerlink.sandbox.sage500.admin import create_admin_app
from ledgerlink.sandbox.sage500.config import Sage500Config
from ledgerlink.sandbox.sage500.database import simulator_engine
from ledgerlink.sandbox.sage500.processor import ImportProcessor, ImportSummary
from ledgerlink.sandbox.sage500.schema import create_schema, drop_schema
from ledgerlink.sandbox.sage500.seed import invoice_tran_id, seed

__all__ = [
    "ImportProcessor",
    "ImportSummary",
    "Sage500Config",
    "create_admin_app",
    "create_schema",
    "invoice_tran_id",
    "reset",
    "seed",
    "simulator_engine",
]


def reset(url: str) -> None:
    """Drop every simulator table of the database at ``url``; the next start re-seeds."""
    engine = simulator_engine(url)
    try:
        drop_schema(engine)
    finally:
        engine.dispose()
