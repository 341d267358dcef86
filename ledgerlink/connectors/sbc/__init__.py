"""Sage Business Cloud Accounting (API v3.1): OAuth with rotating refresh tokens, typed
reads with paging and incremental cursors, idempotent writes."""

from ledgerlink.connectors.sbc.ledger import SbcLedger
from ledgerlink.connectors.sbc.oauth import SbcOAuth, TokenVault

__all__ = ["SbcLedger", "SbcOAuth", "TokenVault"]
