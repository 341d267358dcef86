"""reconciliation matching rules are versioned in the database (saved, audited, rolled
back); without an active version runs use the shipped default

Revision ID: 0022_recon_rule_specs
Revises: 0021_recon_fees
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledgerlink.store.types

revision = "0022_recon_rule_specs"
down_revision = "0021_recon_fees"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_rule_specs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("rolled_back_from", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_rule_specs")),
        sa.UniqueConstraint("version", name=op.f("uq_recon_rule_specs_version")),
    )
    with op.batch_alter_table("recon_rule_specs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_recon_rule_specs_active",
            ["is_active"],
            unique=True,
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )


def downgrade() -> None:
    with op.batch_alter_table("recon_rule_specs", schema=None) as batch_op:
        batch_op.drop_index("uq_recon_rule_specs_active")
    op.drop_table("recon_rule_specs")
