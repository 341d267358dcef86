"""An index on payment charges' status: the minutely settling job looks for the few
charges left 'sending' (a crash) or 'unknown' (PayTrace did not answer) past their lease
among every finished one

Revision ID: 0032_payment_charges_status
Revises: 0031_merge_evening
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0032_payment_charges_status"
down_revision = "0031_merge_evening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payment_charges_status", "payment_charges", ["status", "requested_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_payment_charges_status", table_name="payment_charges")
