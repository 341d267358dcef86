"""Level 3 outcomes: what became of each sale's Level 3 data (sent, refused with the
reason, failed, not applicable), by PayTrace transaction id

Revision ID: 0025_level_three
Revises: 0024_tour_progress
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0025_level_three"
down_revision = "0024_tour_progress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_level_three",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "gateway_connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=120), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column(
            "sent",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_connection_id"],
            ["connections.id"],
            name=op.f("fk_payment_level_three_gateway_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_level_three")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_payment_level_three_transaction_id")),
    )


def downgrade() -> None:
    op.drop_table("payment_level_three")
