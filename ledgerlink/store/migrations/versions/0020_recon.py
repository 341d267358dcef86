"""reconciliation: scopes, the four sides as read, statements, runs, matches, breaks and
their history, periods

Revision ID: 0020_recon
Revises: 0019
Create Date: 2026-12-07 01:41:24.876977
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0020_recon"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_scopes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "gateway_connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "ledger_connection_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_connection_id"],
            ["connections.id"],
            name=op.f("fk_recon_scopes_gateway_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_connection_id"],
            ["connections.id"],
            name=op.f("fk_recon_scopes_ledger_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_scopes")),
        sa.UniqueConstraint(
            "gateway_connection_id",
            "ledger_connection_id",
            name=op.f("uq_recon_scopes_gateway_connection_id"),
        ),
    )
    op.create_table(
        "recon_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_number", sa.String(length=20), nullable=False),
        sa.Column("settled_on", sa.Date(), nullable=False),
        sa.Column("gross_minor", sa.BigInteger(), nullable=False),
        sa.Column("fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("chargebacks_withheld_minor", sa.BigInteger(), nullable=False),
        sa.Column("net_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("read_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_batches_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_batches")),
        sa.UniqueConstraint("scope_id", "batch_number", name=op.f("uq_recon_batches_scope_id")),
    )
    op.create_table(
        "recon_breaks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("break_id", sa.String(length=80), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column(
            "ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("other_side", sa.String(length=16), nullable=False),
        sa.Column(
            "other_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("expected_minor", sa.BigInteger(), nullable=True),
        sa.Column("actual_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("as_of_days", sa.Integer(), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assigned_to", sa.String(length=254), nullable=True),
        sa.Column("first_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("opened_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=254), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_breaks_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_breaks")),
        sa.UniqueConstraint("scope_id", "break_id", name=op.f("uq_recon_breaks_scope_id")),
    )
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recon_breaks_status", ["scope_id", "status", "type"], unique=False
        )

    op.create_table(
        "recon_periods",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("signed_off_by", sa.String(length=254), nullable=True),
        sa.Column("closed_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.Column("reopened_by", sa.String(length=254), nullable=True),
        sa.Column("reopened_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reopen_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_periods_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_periods")),
        sa.UniqueConstraint("scope_id", "period", name=op.f("uq_recon_periods_scope_id")),
    )
    op.create_table(
        "recon_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("receipt_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("txn_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("posted_on", sa.Date(), nullable=False),
        sa.Column("reversed", sa.Boolean(), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("read_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_receipts_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_receipts")),
        sa.UniqueConstraint("scope_id", "receipt_id", name=op.f("uq_recon_receipts_scope_id")),
    )
    with op.batch_alter_table("recon_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_recon_receipts_txn", ["scope_id", "txn_id"], unique=False)

    op.create_table(
        "recon_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column("spec_version", sa.String(length=160), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "totals",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_runs_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_runs")),
    )
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recon_runs_scope_started", ["scope_id", "started_at"], unique=False
        )

    op.create_table(
        "recon_side_state",
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("cursor", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("read_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_side_state_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope_id", "side", name=op.f("pk_recon_side_state")),
    )
    op.create_table(
        "recon_statements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("opening_minor", sa.BigInteger(), nullable=True),
        sa.Column("closing_minor", sa.BigInteger(), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(length=254), nullable=False),
        sa.Column("imported_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_statements_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_statements")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_recon_statements_fingerprint")),
    )
    op.create_table(
        "recon_transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("txn_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("batch_number", sa.String(length=20), nullable=True),
        sa.Column("card_brand", sa.String(length=20), nullable=False),
        sa.Column("original_txn_id", sa.String(length=40), nullable=True),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("read_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_transactions_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_transactions")),
        sa.UniqueConstraint("scope_id", "txn_id", name=op.f("uq_recon_transactions_scope_id")),
    )
    with op.batch_alter_table("recon_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recon_transactions_batch", ["scope_id", "batch_number"], unique=False
        )

    op.create_table(
        "recon_break_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("break_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["break_pk"],
            ["recon_breaks.id"],
            name=op.f("fk_recon_break_events_break_pk_recon_breaks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_break_events")),
    )
    with op.batch_alter_table("recon_break_events", schema=None) as batch_op:
        batch_op.create_index("ix_recon_break_events_break", ["break_pk", "id"], unique=False)

    op.create_table(
        "recon_matches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("match_id", sa.String(length=80), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("spec_version", sa.String(length=160), nullable=False),
        sa.Column("left_side", sa.String(length=16), nullable=False),
        sa.Column(
            "left_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("right_side", sa.String(length=16), nullable=False),
        sa.Column(
            "right_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_matches_run_id_recon_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_matches")),
    )
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.create_index("ix_recon_matches_run", ["run_id", "left_side"], unique=False)

    op.create_table(
        "recon_statement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "statement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("line_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("value_on", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("type_code", sa.String(length=32), nullable=False),
        sa.Column("bank_ref", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["recon_statements.id"],
            name=op.f("fk_recon_statement_lines_statement_id_recon_statements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_statement_lines")),
        sa.UniqueConstraint("line_id", name=op.f("uq_recon_statement_lines_line_id")),
    )
    with op.batch_alter_table("recon_statement_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recon_statement_lines_statement", ["statement_id", "line_no"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recon_statement_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_statement_lines_statement")

    op.drop_table("recon_statement_lines")
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_matches_run")

    op.drop_table("recon_matches")
    with op.batch_alter_table("recon_break_events", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_break_events_break")

    op.drop_table("recon_break_events")
    with op.batch_alter_table("recon_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_transactions_batch")

    op.drop_table("recon_transactions")
    op.drop_table("recon_statements")
    op.drop_table("recon_side_state")
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_runs_scope_started")

    op.drop_table("recon_runs")
    with op.batch_alter_table("recon_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_receipts_txn")

    op.drop_table("recon_receipts")
    op.drop_table("recon_periods")
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_breaks_status")

    op.drop_table("recon_breaks")
    op.drop_table("recon_batches")
    op.drop_table("recon_scopes")
