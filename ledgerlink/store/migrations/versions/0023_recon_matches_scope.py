"""reconciliation matches are kept as Parquet segments per scope (a full run's base,
each incremental run's additions and removals) instead of a row per match; breaks keep
a digest of their values; indexes for the daily run's checks (rows read again since,
reversed receipts)

The matches of each scope's latest run move into a base segment, so nothing is lost;
the ``recon_matches`` table goes.

Revision ID: 0023_recon_matches_scope
Revises: 0022_recon_rule_specs
Create Date: 2026-12-07
"""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ledgerlink.store.types

revision = "0023_recon_matches_scope"
down_revision = "0022_recon_rule_specs"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_IDS = pl.List(pl.String())
#: The engine's match columns (recon/matching/output.py's MATCH_SCHEMA at this revision).
_MATCH_SCHEMA: dict[str, Any] = {
    "match_id": pl.String(),
    "rule": pl.String(),
    "spec_version": pl.String(),
    "left_side": pl.String(),
    "left_ids": _IDS,
    "right_side": pl.String(),
    "right_ids": _IDS,
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
    "left_minor": pl.Int64(),
    "right_minor": pl.Int64(),
}


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _ids(value: Any) -> list[str]:
    listed = json.loads(value) if isinstance(value, str) else value
    return [str(i) for i in listed or []]


def upgrade() -> None:
    op.create_table(
        "recon_match_segments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("scope_id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("base", sa.Boolean(), nullable=False),
        sa.Column("added_count", sa.Integer(), nullable=False),
        sa.Column("removed_count", sa.Integer(), nullable=False),
        sa.Column("added", sa.LargeBinary(), nullable=False),
        sa.Column("removed", sa.LargeBinary(), nullable=False),
        sa.Column("written_at", ledgerlink.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_match_segments_run_id_recon_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scope_id"],
            ["recon_scopes.id"],
            name=op.f("fk_recon_match_segments_scope_id_recon_scopes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_match_segments")),
    )
    with op.batch_alter_table("recon_match_segments", schema=None) as batch_op:
        batch_op.create_index("ix_recon_match_segments_scope", ["scope_id", "id"], unique=False)

    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digest", sa.String(length=64), nullable=False, server_default="")
        )
    with op.batch_alter_table("recon_transactions", schema=None) as batch_op:
        batch_op.create_index("ix_recon_transactions_read", ["scope_id", "read_at"])
    with op.batch_alter_table("recon_batches", schema=None) as batch_op:
        batch_op.create_index("ix_recon_batches_read", ["scope_id", "read_at"])
    with op.batch_alter_table("recon_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_recon_receipts_read", ["scope_id", "read_at"])
        batch_op.create_index("ix_recon_receipts_reversed", ["scope_id", "reversed"])

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT r.scope_id, m.run_id, m.match_id, m.rule, m.spec_version, m.left_side, "
            "m.left_ids, m.right_side, m.right_ids, m.amount_minor, m.currency "
            "FROM recon_matches m JOIN recon_runs r ON r.id = m.run_id ORDER BY m.id"
        )
    ).all()
    by_scope: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for scope_id, run_id, *match in rows:
        names = ("match_id", "rule", "spec_version", "left_side", "left_ids", "right_side")
        record = dict(zip(names, match[:6], strict=True))
        record.update(
            left_ids=_ids(record["left_ids"]),
            right_ids=_ids(match[6]),
            amount_minor=int(match[7]),
            currency=match[8],
            left_minor=int(match[7]),
            right_minor=int(match[7]),
        )
        by_scope.setdefault((int(scope_id), int(run_id)), []).append(record)
    segments = sa.table(
        "recon_match_segments",
        sa.column("scope_id"),
        sa.column("run_id"),
        sa.column("base"),
        sa.column("added_count"),
        sa.column("removed_count"),
        sa.column("added"),
        sa.column("removed"),
        sa.column("written_at", ledgerlink.store.types.UTCDateTime(timezone=True)),
    )
    for (scope_id, run_id), records in by_scope.items():
        frame = pl.DataFrame(records, schema=_MATCH_SCHEMA)
        op.execute(
            segments.insert().values(
                scope_id=scope_id,
                run_id=run_id,
                base=True,
                added_count=frame.height,
                removed_count=0,
                added=_parquet(frame),
                removed=_parquet(pl.DataFrame(schema={"match_id": pl.String()})),
                written_at=ledgerlink.store.types.utcnow(),
            )
        )
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_matches_run")
    op.drop_table("recon_matches")


def downgrade() -> None:
    with op.batch_alter_table("recon_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_receipts_reversed")
        batch_op.drop_index("ix_recon_receipts_read")
    with op.batch_alter_table("recon_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_batches_read")
    with op.batch_alter_table("recon_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_transactions_read")
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.drop_column("digest")
    # The table comes back empty: the scope's next run stores its matches again.
    op.create_table(
        "recon_matches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("match_id", sa.String(length=80), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("spec_version", sa.String(length=160), nullable=False),
        sa.Column("left_side", sa.String(length=16), nullable=False),
        sa.Column(
            "left_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("right_side", sa.String(length=16), nullable=False),
        sa.Column(
            "right_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_matches_run_id_recon_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_matches")),
    )
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.create_index("ix_recon_matches_run", ["run_id", "left_side"], unique=False)
    with op.batch_alter_table("recon_match_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_match_segments_scope")
    op.drop_table("recon_match_segments")
