"""reconciliation scopes keep their settings (the expected card fee schedule, the alert
threshold); a batch keeps when it settled (chargebacks are withheld from the next batch);
a break remembers when it was e-mailed (each problem is alerted once)

Revision ID: 0021_recon_fees
Revises: 0020_recon
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0021_recon_fees"
down_revision = "0020_recon"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("recon_scopes") as batch:
        batch.add_column(
            sa.Column("settings", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("recon_batches") as batch:
        batch.add_column(
            sa.Column(
                "settled_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("recon_breaks") as batch:
        batch.add_column(
            sa.Column(
                "alerted_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("recon_batches") as batch:
        batch.drop_column("settled_at")
    with op.batch_alter_table("recon_breaks") as batch:
        batch.drop_column("alerted_at")
    with op.batch_alter_table("recon_scopes") as batch:
        batch.drop_column("settings")
