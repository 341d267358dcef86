"""merge the security branches: audit anchors (0016), sign-in throttle (0017) and inbound
hints (0018)

Revision ID: 0019
Revises: 0016, 0017, 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "0019"
down_revision = ("0016", "0017", "0018")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
