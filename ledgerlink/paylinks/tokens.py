"""Signed pay-link tokens: what a link names (connections, customer, invoice, expiry).

A token is ``<claims>.<signature>``, both base64url: the claims as JSON and an HMAC-SHA256
under a secret derived from the vault's key (``pay-links``), so ledgerlink needs no table to
know a link is its own, and a changed character anywhere makes it unusable. The claims are
not secret (invoice number, ids), only unforgeable. A key rotation invalidates links signed
under a key no longer configured, which is acceptable for links that expire in days.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from ledgerlink.vault import Vault

PURPOSE = "pay-links"
PAY = "pay"
CARD = "card"


@dataclass(frozen=True)
class LinkClaims:
    """What a pay link names. ``nonce`` is the link's own id (audit, charge keys)."""

    gateway_connection_id: int
    ledger_connection_id: int
    customer_id: str
    invoice_number: str
    nonce: str
    expires_at: datetime
    #: What the link is for: ``pay`` (an invoice) or ``card`` (save a card on file, no
    #: payment). Signed with the rest, so one kind of link never opens as the other.
    purpose: str = "pay"


class BadToken(ValueError):
    """The token was not signed by this installation, or was changed."""


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def sign(vault: Vault, claims: LinkClaims) -> str:
    fields: dict[str, object] = {
        "g": claims.gateway_connection_id,
        "l": claims.ledger_connection_id,
        "c": claims.customer_id,
        "i": claims.invoice_number,
        "n": claims.nonce,
        "x": int(claims.expires_at.timestamp()),
    }
    if claims.purpose != PAY:  # pay links made before purposes existed carry none
        fields["p"] = claims.purpose
    body = json.dumps(
        fields,
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    encoded = _b64(body)
    return f"{encoded}.{_b64(_mac(vault.derive_secret(PURPOSE), encoded))}"


def verify(vault: Vault, token: str, purpose: str = PAY) -> LinkClaims:
    """The claims of a token this installation signed for ``purpose``; :class:`BadToken`
    otherwise (a card-capture link is no pay link, and the other way round). Expiry is the
    caller's to check (it decides what "now" is)."""
    encoded, dot, signature = token.partition(".")
    if not dot or not encoded or not signature or len(token) > 1000:
        raise BadToken("not a pay link")
    try:
        given = _unb64(signature)
    except ValueError:
        raise BadToken("not a pay link") from None
    if not any(
        hmac.compare_digest(given, _mac(secret, encoded))
        for secret in vault.derive_secrets(PURPOSE)
    ):
        raise BadToken("signature does not match")
    try:
        raw = json.loads(_unb64(encoded))
        claims = LinkClaims(
            gateway_connection_id=int(raw["g"]),
            ledger_connection_id=int(raw["l"]),
            customer_id=str(raw["c"]),
            invoice_number=str(raw["i"]),
            nonce=str(raw["n"]),
            expires_at=datetime.fromtimestamp(int(raw["x"]), UTC),
            purpose=str(raw.get("p", PAY)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadToken("claims unreadable") from None
    if claims.purpose != purpose:
        raise BadToken(f"a {claims.purpose} link, not a {purpose} link")
    return claims


def _mac(secret: bytes, encoded: str) -> bytes:
    return hmac.new(secret, encoded.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
