"""sync runs record mapping versions; baselines keep the ledger's side

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(
            sa.Column("mapping_versions", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("sync_baselines") as batch:
        batch.add_column(sa.Column("ledger_values", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_baselines") as batch:
        batch.drop_column("ledger_values")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("mapping_versions")
