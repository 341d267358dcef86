"""Persistence: SQLAlchemy models, Alembic migrations, the database handle and the audit chain."""
