"""merge the mapping (0002) and connection/members (0003, 0004) branches

Revision ID: 0006
Revises: 0002, 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0006"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
