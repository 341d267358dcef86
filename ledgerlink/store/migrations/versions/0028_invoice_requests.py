"""Invoice payment requests: each member's choice for new invoices (nothing, an e-mailed
pay link, autopay with the consent it was given), each new invoice's request (unique per
ledger connection and invoice, with its state) and how far each ledger's new invoices
were read (the ledger's own mark)

Revision ID: 0028_invoice_requests
Revises: 0025_level_three
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0028_invoice_requests"
down_revision = "0025_level_three"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = ledgerlink.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_request_settings",
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("consent_method", sa.String(length=200), nullable=False),
        sa.Column("consent_given_on", sa.Date(), nullable=True),
        sa.Column("consent_recorded_by", sa.String(length=200), nullable=False),
        sa.Column("consent_recorded_at", _WHEN, nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_invoice_request_settings_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_invoice_request_settings")),
    )
    op.create_table(
        "invoice_requests",
        sa.Column("id", _ID, nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", _ID, nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", _WHEN, nullable=True),
        sa.Column("charge_key", sa.String(length=80), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("emailed_to", sa.String(length=254), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_invoice_requests_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_invoice_requests_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_requests")),
        sa.UniqueConstraint(
            "connection_id", "invoice_id", name=op.f("uq_invoice_requests_connection_id")
        ),
    )
    op.create_index("ix_invoice_requests_state", "invoice_requests", ["state", "due_date"])
    op.create_table(
        "invoice_feed_cursors",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("mark", sa.String(length=64), nullable=False),
        sa.Column("floor", sa.String(length=64), nullable=False),
        sa.Column(
            "floor_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("read_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_invoice_feed_cursors_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_invoice_feed_cursors")),
    )


def downgrade() -> None:
    op.drop_table("invoice_feed_cursors")
    op.drop_index("ix_invoice_requests_state", table_name="invoice_requests")
    op.drop_table("invoice_requests")
    op.drop_table("invoice_request_settings")
