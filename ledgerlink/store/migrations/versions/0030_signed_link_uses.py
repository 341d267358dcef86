"""Signed link uses: a one-use link (a card-capture link) claims its nonce here (unique)
before PayTrace stores the card, so two submits of one link store one card. Card-capture
links used before this revision are read from the audit chain (their ``saved`` entry), so a
used link stays used

Revision ID: 0030_signed_link_uses
Revises: 0025_level_three
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0030_signed_link_uses"
down_revision = "0025_level_three"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_link_uses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "outcome",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("claimed_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_link_uses")),
        sa.UniqueConstraint("nonce", name=op.f("uq_signed_link_uses_nonce")),
    )

    _from_audit()


def _from_audit() -> None:
    """One done use for each card-capture link the audit chain says saved a card."""
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    when = ledgerlink.store.types.UTCDateTime(timezone=True)
    audit_log = sa.table(
        "audit_log",
        sa.column("seq", sa.BigInteger()),
        sa.column("at", when),
        sa.column("action", sa.String()),
        sa.column("entity_type", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("after", json),
    )
    uses = sa.table(
        "signed_link_uses",
        sa.column("purpose", sa.String()),
        sa.column("nonce", sa.String()),
        sa.column("status", sa.String()),
        sa.column("outcome", json),
        sa.column("claimed_at", when),
        sa.column("finished_at", when),
    )
    bind = op.get_bind()
    saved = bind.execute(
        sa.select(audit_log.c.at, audit_log.c.entity_id, audit_log.c.after)
        .where(
            audit_log.c.action == "payment.card_capture.saved",
            audit_log.c.entity_type == "card_capture_link",
        )
        .order_by(audit_log.c.seq)
    ).all()
    done: dict[str, dict[str, object]] = {}
    for at, nonce, after in saved:
        if nonce and nonce not in done:
            after = after or {}
            done[nonce] = {
                "purpose": "card",
                "nonce": nonce,
                "status": "done",
                "outcome": {
                    name: after.get(name)
                    for name in ("organisation", "customer_name", "masked_card", "created")
                },
                "claimed_at": at,
                "finished_at": at,
            }
    if done:
        op.bulk_insert(uses, list(done.values()))


def downgrade() -> None:
    op.drop_table("signed_link_uses")
