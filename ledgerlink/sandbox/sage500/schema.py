"""Create (or drop) the simulated ERP database: Sage 500's tables plus the staging tables."""

from __future__ import annotations

from sqlalchemy import Engine

from ledgerlink.connectors.sage500.tables import metadata


def create_schema(engine: Engine) -> None:
    """Every table the connector reads or writes, with Sage 500's names; idempotent."""
    metadata.create_all(engine)


def drop_schema(engine: Engine) -> None:
    metadata.drop_all(engine)
