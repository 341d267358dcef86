"""the guided tour: the installation's switch (off unless the demo or an administrator
turns it on) and each user's progress (steps done, dismissed)

Revision ID: 0024_tour_progress
Revises: 0023_recon_matches_scope
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0024_tour_progress"
down_revision = "0023_recon_matches_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tour_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=254), nullable=False),
        sa.Column("changed_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tour_settings")),
    )
    op.create_table(
        "tour_progress",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "done",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("dismissed_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_tour_progress_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_tour_progress")),
    )


def downgrade() -> None:
    op.drop_table("tour_progress")
    op.drop_table("tour_settings")
