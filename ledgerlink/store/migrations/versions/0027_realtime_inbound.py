"""Real-time reads from the ledgers: per connection, whether and how often customers are
polled, the poll cursor (the ledger's own clock), the live poll chain and its cost

Revision ID: 0027_realtime_inbound
Revises: 0025_level_three
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledgerlink.store.types

revision = "0027_realtime_inbound"
down_revision = "0025_level_three"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtime_polls",
        sa.Column(
            "connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("ledger_until", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("chain", sa.BigInteger(), nullable=False),
        sa.Column("next_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "last_polled_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_requests", sa.Integer(), nullable=False),
        sa.Column("effective_seconds", sa.Integer(), nullable=False),
        sa.Column("last_outcome", sa.String(length=500), nullable=False),
        sa.Column("agreed_run_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_realtime_polls_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_realtime_polls")),
    )


def downgrade() -> None:
    op.drop_table("realtime_polls")
