"""member registry and member-customer links

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "membership_levels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("annual_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_levels")),
        sa.UniqueConstraint("code", name=op.f("uq_membership_levels_code")),
    )
    op.create_table(
        "bulk_link_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column(
            "selection",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("linked_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_bulk_link_runs_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_link_runs")),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "number",
            sa.String(length=20).with_variant(sa.String(length=20, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("account_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("level_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("organisation", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("address_line1", sa.String(length=200), nullable=False),
        sa.Column("address_line2", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column(
            "first_key",
            sa.String(length=100).with_variant(sa.String(length=100, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "last_key",
            sa.String(length=100).with_variant(sa.String(length=100, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "org_key",
            sa.String(length=100).with_variant(sa.String(length=100, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sort_key",
            sa.String(length=210).with_variant(sa.String(length=210, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "email_key",
            sa.String(length=254).with_variant(sa.String(length=254, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "phone_rev",
            sa.String(length=20).with_variant(sa.String(length=20, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["level_id"],
            ["membership_levels.id"],
            name=op.f("fk_members_level_id_membership_levels"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("number", name=op.f("uq_members_number")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_email_key", ["email_key"], unique=False)
        batch_op.create_index("ix_members_first_key", ["first_key"], unique=False)
        batch_op.create_index("ix_members_last_key", ["last_key", "first_key"], unique=False)
        batch_op.create_index("ix_members_level_id", ["level_id"], unique=False)
        batch_op.create_index("ix_members_org_key", ["org_key"], unique=False)
        batch_op.create_index("ix_members_phone_rev", ["phone_rev"], unique=False)
        batch_op.create_index("ix_members_sort_key", ["sort_key", "id"], unique=False)
        batch_op.create_index("ix_members_status", ["status"], unique=False)

    op.create_table(
        "bulk_link_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_bulk_link_items_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bulk_link_runs.id"],
            name=op.f("fk_bulk_link_items_run_id_bulk_link_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_link_items")),
        sa.UniqueConstraint("run_id", "member_id", name=op.f("uq_bulk_link_items_run_id")),
    )
    with op.batch_alter_table("bulk_link_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bulk_link_items_run_status", ["run_id", "status", "position"], unique=False
        )

    op.create_table(
        "member_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("customer_number", sa.String(length=100), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("created_customer", sa.Boolean(), nullable=False),
        sa.Column("linked_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("linked_by", sa.String(length=254), nullable=False),
        sa.Column("unlinked_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unlinked_by", sa.String(length=254), nullable=True),
        sa.Column("unlink_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_member_links_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_links_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_links")),
    )
    with op.batch_alter_table("member_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_member_links_member", ["member_id", "connection_id"], unique=False
        )
        batch_op.create_index(
            "uq_member_links_active_customer",
            ["connection_id", "customer_id"],
            unique=True,
            sqlite_where=sa.text("unlinked_at IS NULL"),
            postgresql_where=sa.text("unlinked_at IS NULL"),
        )
        batch_op.create_index(
            "uq_member_links_active_member",
            ["member_id", "connection_id"],
            unique=True,
            sqlite_where=sa.text("unlinked_at IS NULL"),
            postgresql_where=sa.text("unlinked_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("member_links", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_member_links_active_member",
            sqlite_where=sa.text("unlinked_at IS NULL"),
            postgresql_where=sa.text("unlinked_at IS NULL"),
        )
        batch_op.drop_index(
            "uq_member_links_active_customer",
            sqlite_where=sa.text("unlinked_at IS NULL"),
            postgresql_where=sa.text("unlinked_at IS NULL"),
        )
        batch_op.drop_index("ix_member_links_member")

    op.drop_table("member_links")
    with op.batch_alter_table("bulk_link_items", schema=None) as batch_op:
        batch_op.drop_index("ix_bulk_link_items_run_status")

    op.drop_table("bulk_link_items")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_status")
        batch_op.drop_index("ix_members_sort_key")
        batch_op.drop_index("ix_members_phone_rev")
        batch_op.drop_index("ix_members_org_key")
        batch_op.drop_index("ix_members_level_id")
        batch_op.drop_index("ix_members_last_key")
        batch_op.drop_index("ix_members_first_key")
        batch_op.drop_index("ix_members_email_key")

    op.drop_table("members")
    op.drop_table("bulk_link_runs")
    op.drop_table("membership_levels")
