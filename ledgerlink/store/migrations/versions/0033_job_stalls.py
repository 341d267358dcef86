"""Count the runs of a job whose worker died under it (SIGKILL, out of memory): a
resumable job's (a sync run, a bulk link run) are handed back without counting an
attempt, so they are counted apart, against their own limit

Revision ID: 0033_job_stalls
Revises: 0032_payment_charges_status
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033_job_stalls"
down_revision = "0032_payment_charges_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("jobs", "job_errors"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("stalls", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("jobs", "job_errors"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("stalls")
