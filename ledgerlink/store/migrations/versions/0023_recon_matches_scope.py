"""reconciliation matches belong to their scope (a run writes only the matches that
changed, not every match again under its own run id)

Revision ID: 0023_recon_matches_scope
Revises: 0022_recon_rule_specs
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_recon_matches_scope"
down_revision = "0022_recon_rule_specs"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_id", _ID, nullable=True))
    op.execute(
        "UPDATE recon_matches SET scope_id = "
        "(SELECT r.scope_id FROM recon_runs r WHERE r.id = recon_matches.run_id)"
    )
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.alter_column("scope_id", existing_type=_ID, nullable=False)
        batch_op.create_foreign_key(
            op.f("fk_recon_matches_scope_id_recon_scopes"),
            "recon_scopes",
            ["scope_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_index("ix_recon_matches_run")
        batch_op.create_index(
            "ix_recon_matches_scope", ["scope_id", "left_side", "match_id"], unique=False
        )


def downgrade() -> None:
    # before 0023 a scope's matches were those of its latest run
    op.execute(
        "UPDATE recon_matches SET run_id = "
        "(SELECT max(r.id) FROM recon_runs r WHERE r.scope_id = recon_matches.scope_id)"
    )
    with op.batch_alter_table("recon_matches", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_matches_scope")
        batch_op.create_index("ix_recon_matches_run", ["run_id", "left_side"], unique=False)
        batch_op.drop_constraint(op.f("fk_recon_matches_scope_id_recon_scopes"), type_="foreignkey")
        batch_op.drop_column("scope_id")
