"""payment charges

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledgerlink.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_charges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=80), nullable=False),
        sa.Column(
            "gateway_connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("paytrace_customer_id", sa.String(length=50), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column(
            "requested_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("finished_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_connection_id"],
            ["connections.id"],
            name=op.f("fk_payment_charges_gateway_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_charges")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payment_charges_idempotency_key")),
    )


def downgrade() -> None:
    op.drop_table("payment_charges")
