"""connection auth status

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"  # a branch beside 0002; "heads" upgrades both
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(
            sa.Column(
                "auth_status", sa.String(length=32), nullable=False, server_default="not_connected"
            )
        )
        batch.add_column(sa.Column("auth_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("auth_detail")
        batch.drop_column("auth_status")
