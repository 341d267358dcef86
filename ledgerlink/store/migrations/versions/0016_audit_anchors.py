"""audit anchors: the latest audit chain checks

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledgerlink.store.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_checks",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("checked_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("entries", _BIG, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=True),
        sa.Column("head_seq", _BIG, nullable=False),
        sa.Column("rows_read", _BIG, nullable=False),
        sa.Column("anchor_seq", _BIG, nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("first_bad_seq", _BIG, nullable=True),
        sa.Column("checked_by", sa.String(length=254), nullable=True),
        sa.Column(
            "running_since", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("alerted_problem", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_audit_checks")),
    )


def downgrade() -> None:
    op.drop_table("audit_checks")
