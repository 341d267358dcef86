"""Real-time synchronisation: the feed of real-time writes, when each member and ledger
last agreed, the outbox of registry changes not yet written, and the per-connection
switch for writing registry changes at once

Revision ID: 0026_realtime_outbound
Revises: 0025_level_three
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledgerlink.store.types

revision = "0026_realtime_outbound"
down_revision = "0025_level_three"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = ledgerlink.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "realtime_writes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", _WHEN, nullable=False),
        sa.Column("written_at", _WHEN, nullable=False),
        sa.Column("lag_ms", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_realtime_writes_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realtime_writes")),
    )
    op.create_index("ix_realtime_writes_written", "realtime_writes", ["written_at"], unique=False)
    op.create_table(
        "member_agreement",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("agreed_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_member_agreement_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_agreement_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "member_id", name=op.f("pk_member_agreement")),
    )
    op.create_table(
        "realtime_outbox",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", _WHEN, nullable=False),
        sa.Column("last_changed_at", _WHEN, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("taken_seq", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_realtime_outbox_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "member_id", name=op.f("pk_realtime_outbox")),
    )
    op.create_table(
        "realtime_settings",
        sa.Column("connection_id", _ID, nullable=False),
        sa.Column("outbound_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_realtime_settings_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_realtime_settings")),
    )


def downgrade() -> None:
    op.drop_table("realtime_settings")
    op.drop_table("realtime_outbox")
    op.drop_table("member_agreement")
    op.drop_index("ix_realtime_writes_written", table_name="realtime_writes")
    op.drop_table("realtime_writes")
