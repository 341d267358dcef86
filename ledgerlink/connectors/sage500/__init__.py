"""Sage 500 ERP: reads from its tables with SQLAlchemy Core (any URL: ``mssql+pymssql``
in production, PostgreSQL or SQLite for the sandbox); writes through staging tables and
the ERP's own import, never into posted tables."""
