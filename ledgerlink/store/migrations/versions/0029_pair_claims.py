"""Pair claims: the payments waiting in the inbox, by integration pair (PayTrace
connection), so a drain takes each pair's oldest without reading past another pair's
backlog (a slow pair's thousands must not make every claim slower). Partial: only waiting
events (received, processing) are in it, so it stays as small as the backlog.

Revision ID: 0029_pair_claims
Revises: 0025_level_three
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_pair_claims"
down_revision = "0025_level_three"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('received', 'processing')")


def upgrade() -> None:
    op.create_index(
        "ix_payment_events_pair_waiting",
        "payment_events",
        ["connection_id", "id"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_payment_events_pair_waiting", table_name="payment_events")
