"""payments posting

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_poll_state",
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("cursor", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_found", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "batches_seen",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_payment_poll_state_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_payment_poll_state")),
    )
    op.create_table(
        "payment_exceptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("opened_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=254), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("alerted_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["payment_events.id"],
            name=op.f("fk_payment_exceptions_event_id_payment_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_exceptions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_payment_exceptions_event_id")),
    )
    with op.batch_alter_table("payment_exceptions", schema=None) as batch_op:
        batch_op.create_index("ix_payment_exceptions_status", ["status", "id"], unique=False)

    op.create_table(
        "payment_postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ledger_connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("ledger_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("original_transaction_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("applied_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("mapping_version", sa.String(length=160), nullable=False),
        sa.Column("replayed", sa.Boolean(), nullable=False),
        sa.Column("posted_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["payment_events.id"],
            name=op.f("fk_payment_postings_event_id_payment_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_connection_id"],
            ["connections.id"],
            name=op.f("fk_payment_postings_ledger_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_postings")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payment_postings_idempotency_key")),
    )
    with op.batch_alter_table("payment_postings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_postings_transaction", ["transaction_id", "action"], unique=False
        )

    with op.batch_alter_table("payment_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "claimed_until", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "not_before", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_events", schema=None) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("claimed_until")

    with op.batch_alter_table("payment_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_postings_transaction")

    op.drop_table("payment_postings")
    with op.batch_alter_table("payment_exceptions", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_exceptions_status")

    op.drop_table("payment_exceptions")
    op.drop_table("payment_poll_state")
