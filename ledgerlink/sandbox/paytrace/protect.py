"""PayTrace Protect (hosted payment fields), played by the sandbox.

The flow PayTrace documents, and which ledgerlink's pay-by-link page follows:

1. The merchant's server asks for a short-lived *client key*:
   ``POST /v1/payment_fields/token/create`` (Bearer token, empty body) →
   ``{"success": true, "clientKey": "…"}``.
2. The payer's browser loads the sandbox's ``/js/protect.min.js`` and calls
   ``PTPayment.setup({authorization: {clientKey}})``: the card fields are drawn in an iframe
   served by the *sandbox* (``/protect/fields``), so the merchant's page never sees a card
   number. ``PTPayment.process()`` makes the iframe post the card straight to the sandbox
   (``/protect/tokenize``) and resolves with ``{success: true, message: {hpf_token,
   enc_key}}``; ``PTPayment.validate(cb)`` calls ``cb(errors)`` first.
3. The merchant's server charges or stores with the token: ``/v1/transactions/sale/
   pt_protect``, ``/authorization/pt_protect`` or ``/v1/customer/pt_protect_create``
   (``…_update``) with ``hpf_token`` + ``enc_key``. A token works once and expires.

Only the masked number, card type, expiry and CSC result are kept (as for keyed cards).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledgerlink.sandbox.paytrace import codes
from ledgerlink.sandbox.paytrace.cards import CardFacts, read_card
from ledgerlink.sandbox.paytrace.gateway import (
    Body,
    Caller,
    Gateway,
    Handler,
    PayTraceError,
    _billing,
    _customer_id,
    _insert_customer,
    _text,
    error_response,
)

CLIENT_KEY_LIFETIME_SECONDS = 900
HOSTED_FIELDS_LIFETIME_SECONDS = 900
_ASSETS = Path(__file__).with_name("protect_assets")


class Protect:
    """Client keys, the hosted-fields script and page, and the token exchanges."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.clock = gateway.clock

    def table(self) -> dict[str, Handler]:
        """API paths (Bearer token and ``integrator_id``, as every other call)."""
        return {
            "/v1/customer/pt_protect_create": self.customer_create,
            "/v1/customer/pt_protect_update": self.customer_update,
        }

    def routes(self) -> list[Route]:
        """Paths outside the JSON API's usual rules: the client-key call takes an empty
        body (no ``integrator_id``), the browser assets and the tokenizer take no Bearer."""
        return [
            Route("/v1/payment_fields/token/create", self.client_key, methods=["POST"]),
            Route("/js/protect.min.js", self.script, methods=["GET"]),
            Route("/protect.min.js", self.script, methods=["GET"]),
            Route("/protect/fields", self.fields, methods=["GET"]),
            Route("/protect/tokenize", self.tokenize, methods=["POST"]),
        ]

    # -- step 1: the merchant's server ---------------------------------------------------------

    async def client_key(self, request: Request) -> Response:
        caller = self.gateway._authenticate(request)
        if isinstance(caller, Response):
            return caller
        key = "ck_" + secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            db.execute("DELETE FROM client_keys WHERE expires_at < ?", (self.clock.now(),))
            db.execute(
                "INSERT INTO client_keys (client_key, username, expires_at) VALUES (?, ?, ?)",
                (key, caller.username, self.clock.now() + CLIENT_KEY_LIFETIME_SECONDS),
            )
        return JSONResponse(
            {"success": True, "clientKey": key, "expires_in": CLIENT_KEY_LIFETIME_SECONDS},
            headers={"Cache-Control": "no-store"},
        )

    # -- step 2: the payer's browser ----------------------------------------------------------

    async def script(self, request: Request) -> Response:
        text = (_ASSETS / "protect.js").read_text(encoding="utf-8")
        return Response(
            text,
            media_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
        )

    async def fields(self, request: Request) -> Response:
        """The card fields, in the sandbox's own origin; any merchant page may frame it."""
        text = (_ASSETS / "fields.html").read_text(encoding="utf-8")
        return Response(
            text,
            media_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'self'; script-src 'self' "
                "'unsafe-inline'; style-src 'self' 'unsafe-inline'; frame-ancestors *",
                "Cache-Control": "no-store",
            },
        )

    async def tokenize(self, request: Request) -> Response:
        """The iframe's post: ``{clientKey, number, expiration_month, expiration_year,
        csc}`` → ``{hpf_token, enc_key, masked_card_number, card_type}`` or PayTrace's
        error shape. The number is validated, masked and forgotten."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return error_response({codes.E_REQUEST: [codes.ERROR_TEXTS[codes.E_REQUEST]]})
        key = str(body.get("clientKey") or "")
        found = self.store.one("SELECT * FROM client_keys WHERE client_key = ?", (key,))
        if found is None or found["expires_at"] < self.clock.now():
            return error_response({codes.E_HOSTED_FIELDS: [CLIENT_KEY_TEXT]}, 401)
        facts, errors = read_card(
            body.get("number"),
            body.get("expiration_month"),
            body.get("expiration_year"),
            body.get("csc"),
            today=self.clock.today(),
        )
        if facts is None:
            return error_response(errors)
        token, enc_key = self.mint(facts)
        return JSONResponse(
            {
                "hpf_token": token,
                "enc_key": enc_key,
                "masked_card_number": facts.masked,
                "card_type": facts.card_type,
            },
            headers={"Cache-Control": "no-store"},
        )

    def mint(self, facts: CardFacts) -> tuple[str, str]:
        token = "hpf_" + secrets.token_urlsafe(24)
        enc_key = secrets.token_urlsafe(24)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO hosted_fields (hpf_token, enc_key, masked, card_type, exp_month,"
                " exp_year, csc_response, expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    token,
                    enc_key,
                    facts.masked,
                    facts.card_type,
                    facts.expiration_month,
                    facts.expiration_year,
                    facts.csc_response,
                    self.clock.now() + HOSTED_FIELDS_LIFETIME_SECONDS,
                ),
            )
        return token, enc_key

    # -- step 3: the merchant's server stores the card ----------------------------------------

    async def customer_create(self, caller: Caller, body: Body) -> Response:
        customer_id = _customer_id(body)
        with self.store.transaction() as db:
            if db.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,)
            ).fetchone():
                raise PayTraceError.of(codes.E_CUSTOMER_EXISTS)
        card = self.gateway._hosted_card(body)
        billing = _billing(body)
        with self.store.transaction() as db:
            _insert_customer(db, customer_id, card, billing, body, self.clock.now())
        return self.gateway._customer_answer(
            codes.CUSTOMER_CREATED, customer_id, billing.get("name", ""), card.masked
        )

    async def customer_update(self, caller: Caller, body: Body) -> Response:
        """A new card for an existing profile (and any billing, e-mail, phone change)."""
        customer_id = _customer_id(body)
        existing = self.store.customer(customer_id)
        if existing is None:
            raise PayTraceError.of(
                codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id)
            )
        card = self.gateway._hosted_card(body)
        billing: dict[str, Any] = {**json.loads(existing["billing"]), **_billing(body)}
        with self.store.transaction() as db:
            db.execute(
                "UPDATE customers SET masked = ?, card_type = ?, exp_month = ?, exp_year = ?,"
                " billing = ?, email = ?, phone = ?, updated_at = ? WHERE customer_id = ?",
                (
                    card.masked,
                    card.card_type,
                    card.expiration_month,
                    card.expiration_year,
                    json.dumps(billing, sort_keys=True),
                    _text(body.get("email")) or existing["email"],
                    _text(body.get("phone")) or existing["phone"],
                    self.clock.now(),
                    customer_id,
                ),
            )
        return self.gateway._customer_answer(
            codes.CUSTOMER_UPDATED, customer_id, billing.get("name", ""), card.masked
        )


CLIENT_KEY_TEXT = (
    "The clientKey is missing, unknown or expired; ask for a new one with "
    "/v1/payment_fields/token/create."
)
