"""silent posts become hints kept apart from the events they speak of

Before, a silent post was stored under the real key (``<transaction>:<kind>``), so a forged
one could hold the key a real event needed. Now a silent post is a hint (``hint:…``) and
processing it puts PayTrace's record into the inbox under the real key. Stored silent
posts are brought into that model:

* one with a plan, or one that ended posted or ignored, was already read back from
  PayTrace: it *is* PayTrace's record, so it keeps its key and is marked ``read_back``;
* any other (waiting, or in the exceptions queue before it had a plan — among them every
  one PayTrace did not bear out) becomes a hint; worked again, it brings PayTrace's record.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

_EVENTS = sa.table(
    "payment_events",
    sa.column("id", sa.BigInteger),
    sa.column("source", sa.String),
    sa.column("dedup_key", sa.String),
    sa.column("payload", sa.JSON),
    sa.column("verified", sa.Boolean),
    sa.column("status", sa.String),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_EVENTS.c.id, _EVENTS.c.dedup_key, _EVENTS.c.payload, _EVENTS.c.status).where(
            _EVENTS.c.source == "silent_post"
        )
    ).all()
    for row in rows:
        payload = row.payload or {}
        if row.status in ("posted", "ignored") or payload.get("plan"):
            values = {"source": "read_back", "verified": True}
        else:
            values = {"dedup_key": f"hint:{row.dedup_key}", "verified": False}
        connection.execute(sa.update(_EVENTS).where(_EVENTS.c.id == row.id).values(**values))


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        sa.update(_EVENTS)
        .where(_EVENTS.c.source == "silent_post", _EVENTS.c.dedup_key.like("hint:%"))
        .values(dedup_key=sa.func.substr(_EVENTS.c.dedup_key, 6))
    )
