"""merge the branches built side by side from 0025: real-time writes (0026) and reads
(0027), invoice payment requests (0028), fair claims between integration pairs (0029) and
one-use signed links (0030)

Revision ID: 0031_merge_evening
Revises: 0026_realtime_outbound, 0027_realtime_inbound, 0028_invoice_requests,
    0029_pair_claims, 0030_signed_link_uses
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0031_merge_evening"
down_revision = (
    "0026_realtime_outbound",
    "0027_realtime_inbound",
    "0028_invoice_requests",
    "0029_pair_claims",
    "0030_signed_link_uses",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
