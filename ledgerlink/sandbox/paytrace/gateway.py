"""The PayTrace JSON API v1 over HTTP: OAuth, transactions, exports, customers, batches.

Every call is ``POST`` with a JSON body carrying ``integrator_id`` and a Bearer token from
``/oauth/token``. Answers follow PayTrace's shapes: ``success``, ``response_code``,
``status_message`` and, on errors, HTTP 400 with ``errors`` keyed by PayTrace error code.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.sandbox.paytrace import codes, settlement
from ledgerlink.sandbox.paytrace.bank import BankFacts, read_check
from ledgerlink.sandbox.paytrace.cards import CardFacts, read_card
from ledgerlink.sandbox.paytrace.clock import Clock, parse_us_date
from ledgerlink.sandbox.paytrace.config import PayTraceConfig
from ledgerlink.sandbox.paytrace.silent_post import SilentPost
from ledgerlink.sandbox.paytrace.store import Row, Store

Body = dict[str, Any]
Errors = dict[str, list[str]]
CURRENCY = "USD"
ENCRYPTED_PREFIX = "sbxenc."
BILLING_FIELDS = ("name", "street_address", "street_address2", "city", "state", "zip", "country")


class PayTraceError(Exception):
    """An answer in PayTrace's error shape (HTTP 400, response_code 1, ``errors`` map)."""

    def __init__(self, errors: Errors, status: int = 400, **extra: Any) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors
        self.status = status
        self.extra = extra

    @classmethod
    def of(cls, code: str, text: str | None = None) -> PayTraceError:
        return cls({code: [text or codes.ERROR_TEXTS[code]]})


def amount_json(minor: int) -> float:
    """Amounts leave as JSON numbers (as PayTrace sends them); formatting only, no arithmetic."""
    return float(Money(minor, CURRENCY).to_decimal())


def plain(minor: int) -> str:
    return Money(minor, CURRENCY).format_plain()


def invalid_token(description: str) -> Response:
    return JSONResponse(
        {"error": "invalid_token", "error_description": description},
        401,
        headers={
            "WWW-Authenticate": f'Bearer realm="PayTrace", error="invalid_token", '
            f'error_description="{description}"'
        },
    )


def error_response(errors: Errors, status: int = 400, **extra: Any) -> Response:
    return JSONResponse(
        {
            "success": False,
            "response_code": codes.ERRORS,
            "status_message": codes.STATUS_MESSAGES[codes.ERRORS],
            "errors": errors,
            **extra,
        },
        status,
    )


#: Endpoints whose error answers carry ``external_transaction_id`` even when the request
#: sent none (recorded: capture and refund errors end with ``"external_transaction_id":""``,
#: void errors do not). Every endpoint echoes the one a request sent.
ERRORS_WITH_EXTERNAL_ID = frozenset(
    {
        "/v1/transactions/authorization/capture",
        "/v1/transactions/refund/for_transaction",
        "/v1/transactions/refund/to_customer",
        "/v1/transactions/refund/keyed",
    }
)


@dataclass(frozen=True, slots=True)
class Caller:
    username: str
    ip: str


Handler = Callable[[Caller, Body], Awaitable[Response]]


class Gateway:
    def __init__(
        self, store: Store, config: PayTraceConfig, clock: Clock, silent_post: SilentPost
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.silent_post = silent_post
        self._declines = set(config.decline_amounts)
        self._avs_voids = set(config.avs_void_amounts)

    # -- plumbing ---------------------------------------------------------------------------

    def routes(self, extra: dict[str, Handler] | None = None) -> list[Route]:
        """PayTrace's API paths; ``extra`` adds those served by other modules (checks,
        Level 3, hosted fields)."""
        table: dict[str, Handler] = {
            "/v1/transactions/sale/keyed": self.sale_keyed,
            "/v1/transactions/sale/by_customer": self.sale_by_customer,
            "/v1/transactions/sale/by_transaction": self.sale_by_transaction,
            "/v1/transactions/sale/pt_protect": self.sale_pt_protect,
            "/v1/transactions/authorization/keyed": self.authorization_keyed,
            "/v1/transactions/authorization/by_customer": self.authorization_by_customer,
            "/v1/transactions/authorization/pt_protect": self.authorization_pt_protect,
            "/v1/transactions/authorization/by_transaction": self.authorization_by_transaction,
            "/v1/transactions/settle": self.settle_now,
            "/v1/transactions/authorization/capture": self.capture,
            "/v1/transactions/void": self.void,
            "/v1/transactions/refund/for_transaction": self.refund_for_transaction,
            "/v1/transactions/refund/to_customer": self.refund_to_customer,
            "/v1/transactions/refund/keyed": self.refund_keyed,
            "/v1/transactions/export/by_id": self.export_by_id,
            "/v1/transactions/export/by_date_range": self.export_by_date_range,
            "/v1/customer/create": self.customer_create,
            "/v1/customer/update": self.customer_update,
            "/v1/customer/delete": self.customer_delete,
            "/v1/customer/export": self.customer_export,
            "/v1/customer/create_from_transaction": self.customer_from_transaction,
            "/v1/batches/export": self.batches_export,
            "/v1/batches/export_one": self.batches_export_one,
            "/v1/batches/transaction_list": self.batches_transaction_list,
            **(extra or {}),
        }
        routes = [Route("/oauth/token", self.oauth_token, methods=["POST"])]
        routes += [
            Route(path, self._endpoint(h, path), methods=["POST"]) for path, h in table.items()
        ]
        return routes

    def _endpoint(
        self, handler: Handler, path: str = ""
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            caller = self._authenticate(request)
            if isinstance(caller, Response):
                return caller
            body: Body = {}
            try:
                body = _json_object(await request.body())
                integrator = body.get("integrator_id")
                if not isinstance(integrator, str) or not integrator.strip():
                    raise PayTraceError.of(codes.E_INTEGRATOR)
                if self.config.strict_integrator_id and integrator != self.config.integrator_id:
                    raise PayTraceError.of(codes.E_INTEGRATOR)
                if path in self.config.denied_paths:
                    raise PayTraceError.of(codes.E_PERMISSIONS)
                return await handler(caller, body)
            except PayTraceError as exc:
                extra = dict(exc.extra)
                sent = body.get("external_transaction_id")
                if sent is not None:
                    extra["external_transaction_id"] = _text(sent)
                elif path in ERRORS_WITH_EXTERNAL_ID:
                    extra.setdefault("external_transaction_id", "")
                return error_response(exc.errors, exc.status, **extra)

        return endpoint

    def _authenticate(self, request: Request) -> Caller | Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return invalid_token("The access token is missing")
        row = self.store.token(token.strip())
        if row is None:
            return invalid_token("The access token is invalid")
        if row["expires_at"] <= self.clock.now():
            return invalid_token("The access token expired")
        ip = request.client.host if request.client else ""
        return Caller(row["username"], ip)

    async def oauth_token(self, request: Request) -> Response:
        raw = await request.body()
        if "json" in request.headers.get("content-type", ""):
            try:
                form = _json_object(raw)
            except PayTraceError:
                form = {}
        else:
            form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        if form.get("grant_type") != "password":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "The authorization grant type is not supported by "
                    "the authorization server.",
                },
                400,
            )
        if not (
            secrets.compare_digest(str(form.get("username", "")), self.config.username)
            and secrets.compare_digest(str(form.get("password", "")), self.config.password)
        ):
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_description": "The provided authorization grant is invalid, "
                    "expired, revoked, does not match the redirection URI used in the "
                    "authorization request, or was issued to another client.",
                },
                400,
            )
        now = self.clock.now()
        token = ":".join(secrets.token_hex(n) for n in (14, 17, 32))
        lifetime = self.config.token_lifetime_seconds
        self.store.add_token(token, self.config.username, int(now), now + lifetime)
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "created_at": int(now),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # -- sales and authorizations -----------------------------------------------------------

    async def sale_keyed(self, caller: Caller, body: Body) -> Response:
        return self._charge("SALE", caller, body, self._keyed_card(body), "")

    async def authorization_keyed(self, caller: Caller, body: Body) -> Response:
        return self._charge("AUTHORIZATION", caller, body, self._keyed_card(body), "")

    async def sale_by_customer(self, caller: Caller, body: Body) -> Response:
        card, customer = self._customer_card(body)
        return self._charge(
            "SALE", caller, body, card, customer["customer_id"], customer, masked_in_answer=False
        )

    async def authorization_by_customer(self, caller: Caller, body: Body) -> Response:
        card, customer = self._customer_card(body)
        return self._charge(
            "AUTHORIZATION",
            caller,
            body,
            card,
            customer["customer_id"],
            customer,
            masked_in_answer=False,
        )

    async def sale_pt_protect(self, caller: Caller, body: Body) -> Response:
        return self._charge("SALE", caller, body, self._hosted_card(body), "")

    async def authorization_pt_protect(self, caller: Caller, body: Body) -> Response:
        return self._charge("AUTHORIZATION", caller, body, self._hosted_card(body), "")

    async def sale_by_transaction(self, caller: Caller, body: Body) -> Response:
        original = self._find_transaction(body)
        card = _card_of(original)
        return self._charge(
            "SALE", caller, body, card, original["customer_id"], masked_in_answer=False
        )

    async def authorization_by_transaction(self, caller: Caller, body: Body) -> Response:
        original = self._find_transaction(body)
        card = _card_of(original)
        return self._charge(
            "AUTHORIZATION", caller, body, card, original["customer_id"], masked_in_answer=False
        )

    async def settle_now(self, caller: Caller, body: Body) -> Response:
        """PayTrace's sandbox settles on request (``/v1/transactions/settle``), so refunds
        can be tried at once; production settles on the merchant's schedule."""
        summary = settlement.settle(self.store, self.config, self.clock)
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                "batch_number": None if summary is None else summary["batch_number"],
                "transaction_count": 0 if summary is None else summary["transaction_count"],
            }
        )

    def _keyed_card(self, body: Body) -> CardFacts:
        card = body.get("credit_card")
        if not isinstance(card, dict):
            raise PayTraceError.of(codes.E_CARD_NUMBER)
        encrypted = card.get("encrypted_number")
        if isinstance(encrypted, str) and encrypted.startswith(ENCRYPTED_PREFIX):
            token, _, key = encrypted[len(ENCRYPTED_PREFIX) :].partition(".")
            return self._redeem_hosted(token, key)
        facts, errors = read_card(
            card.get("number"),
            card.get("expiration_month"),
            card.get("expiration_year"),
            body.get("csc"),
            today=self.clock.today(),
        )
        if facts is None:
            raise PayTraceError(errors)
        return facts

    def _hosted_card(self, body: Body) -> CardFacts:
        return self._redeem_hosted(str(body.get("hpf_token") or ""), str(body.get("enc_key") or ""))

    def _redeem_hosted(self, token: str, key: str) -> CardFacts:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM hosted_fields WHERE hpf_token = ?", (token,)).fetchone()
            if (
                row is None
                or not secrets.compare_digest(row["enc_key"], key)
                or row["used"]
                or row["expires_at"] < self.clock.now()
            ):
                raise PayTraceError.of(codes.E_HOSTED_FIELDS)
            db.execute("UPDATE hosted_fields SET used = 1 WHERE hpf_token = ?", (token,))
        return CardFacts(
            row["masked"], row["card_type"], row["exp_month"], row["exp_year"], row["csc_response"]
        )

    def _customer_card(self, body: Body) -> tuple[CardFacts, Row]:
        customer_id = body.get("customer_id")
        if not isinstance(customer_id, str) or not customer_id.strip():
            raise PayTraceError.of(codes.E_CUSTOMER_ID)
        customer = self.store.customer(customer_id.strip())
        if customer is None or not customer["masked"]:
            # a profile holding a bank account only is "incomplete" for a card charge
            raise PayTraceError.of(
                codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id.strip())
            )
        card = CardFacts(
            customer["masked"], customer["card_type"], customer["exp_month"], customer["exp_year"]
        )
        return card, customer

    def _charge(
        self,
        kind: str,
        caller: Caller,
        body: Body,
        card: CardFacts,
        customer_id: str,
        customer: Row | None = None,
        *,
        masked_in_answer: bool = True,
    ) -> Response:
        # A $0.00 authorization is a card verification: approved, nothing to capture.
        amount = _amount(body.get("amount"), required=True, zero=kind == "AUTHORIZATION")
        assert amount is not None
        billing = _billing(body)
        if not billing and customer is not None:
            billing = json.loads(customer["billing"])
        invoice_id = _text(body.get("invoice_id"))
        now = self.clock.now()
        shown = plain(amount)
        declined = shown in self._declines
        if declined:
            status, code = codes.STATUS_DECLINED, codes.DECLINED
        elif shown in self._avs_voids:
            status, code = codes.STATUS_VOIDED, codes.AVS_VOIDED
        elif kind == "AUTHORIZATION":
            status, code = codes.STATUS_AUTHORIZED, codes.APPROVED
        else:
            status, code = codes.STATUS_PENDING, codes.APPROVED
        avs = _avs(billing)
        if code == codes.DECLINED:
            approval_message = codes.DECLINE_MESSAGES.get(shown, codes.DECLINE_MESSAGE)
        elif code == codes.AVS_VOIDED:
            approval_message = "  NO  MATCH - Approved and voided by AVS/CSC rules"
            avs = "No Match"
        else:
            approval_message = (
                " EXACT MATCH - Approved and completed"
                if avs == "Full Exact Match"
                else "  NO  MATCH - Approved and completed"
            )
        with self.store.transaction() as db:
            if self.config.duplicate_window_seconds and not declined:
                # PayTrace's Duplicate Transaction Time: same card, amount and invoice by
                # the same user, against approved transactions only. The duplicate is
                # declined (102, recorded as a declined transaction), never charged.
                duplicate = db.execute(
                    "SELECT id FROM transactions WHERE fingerprint = ? AND amount = ? AND "
                    "invoice_id = ? AND created_at >= ? AND type IN ('SALE','AUTHORIZATION') "
                    "AND created_by = ? AND status NOT IN (?, ?) AND response_code != ? "
                    "LIMIT 1",
                    (
                        card.fingerprint,
                        amount,
                        invoice_id,
                        now - self.config.duplicate_window_seconds,
                        caller.username,
                        codes.STATUS_DECLINED,
                        codes.STATUS_VOIDED,
                        codes.AVS_VOIDED,
                    ),
                ).fetchone()
                if duplicate is not None:
                    status, code = codes.STATUS_DECLINED, codes.DECLINED
                    approval_message = codes.DUPLICATE_MESSAGE
            transaction_id = self.store.insert_transaction(
                db,
                {
                    "type": kind,
                    "status": status,
                    "response_code": code,
                    "amount": amount,
                    "authorized_amount": amount,
                    "approval_message": approval_message,
                    "avs_response": avs,
                    "csc_response": card.csc_response,
                    "masked": card.masked,
                    "card_type": card.card_type,
                    "exp_month": card.expiration_month,
                    "exp_year": card.expiration_year,
                    "fingerprint": card.fingerprint,
                    "invoice_id": invoice_id,
                    "customer_id": customer_id,
                    "customer_reference_id": _text(body.get("customer_reference_id")),
                    "email": _text(body.get("email")),
                    "description": _text(body.get("description")),
                    "billing": billing,
                    "created_at": now,
                    "voided_at": now if status == codes.STATUS_VOIDED else None,
                    "created_by": caller.username,
                    "from_ip": caller.ip,
                },
            )
            approval_code = "" if code == codes.DECLINED else f"TAS{transaction_id % 1000:03d}"
            db.execute(
                "UPDATE transactions SET approval_code = ? WHERE id = ?",
                (approval_code, transaction_id),
            )
        self._notify(transaction_id)
        answer: dict[str, Any] = {
            "success": code == codes.APPROVED,
            "response_code": code,
            "status_message": codes.STATUS_MESSAGES[code],
            "transaction_id": transaction_id,
            "approval_code": approval_code,
            "approval_message": approval_message,
            "avs_response": avs,
            "csc_response": card.csc_response,
            "external_transaction_id": _text(body.get("external_transaction_id")),
        }
        if masked_in_answer:  # by_customer / by_transaction answers carry none (recorded)
            answer["masked_card_number"] = card.masked
        return JSONResponse(answer)

    # -- capture, void, refunds -------------------------------------------------------------

    async def capture(self, caller: Caller, body: Body) -> Response:
        with self.store.transaction() as db:
            row = self._locked_transaction(db, body)
            if (
                row["type"] != "AUTHORIZATION"
                or row["status"] != codes.STATUS_AUTHORIZED
                or row["authorized_amount"] == 0  # a card verification: nothing to capture
            ):
                raise PayTraceError.of(codes.E_NOT_CAPTURABLE)
            amount = _amount(body.get("amount"), required=False) or row["amount"]
            if amount > row["authorized_amount"]:
                raise PayTraceError.of(codes.E_AMOUNT_EXCEEDS)
            db.execute(
                "UPDATE transactions SET status = ?, amount = ?, response_code = ? WHERE id = ?",
                (codes.STATUS_PENDING, amount, codes.CAPTURED, row["id"]),
            )
        self._notify(row["id"], event="CAPTURE")
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.CAPTURED,
                "status_message": codes.STATUS_MESSAGES[codes.CAPTURED],
                "transaction_id": row["id"],
                "external_transaction_id": _text(body.get("external_transaction_id")),
            }
        )

    async def void(self, caller: Caller, body: Body) -> Response:
        with self.store.transaction() as db:
            row = self._locked_transaction(db, body)
            if row["status"] not in (codes.STATUS_AUTHORIZED, codes.STATUS_PENDING):
                raise PayTraceError.of(codes.E_NOT_VOIDABLE)
            db.execute(
                "UPDATE transactions SET status = ?, voided_at = ? WHERE id = ?",
                (codes.STATUS_VOIDED, self.clock.now(), row["id"]),
            )
        self._notify(row["id"], event="VOID")
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.VOIDED,
                "status_message": codes.STATUS_MESSAGES[codes.VOIDED],
                "transaction_id": row["id"],
            }
        )

    async def refund_for_transaction(self, caller: Caller, body: Body) -> Response:
        requested = _amount(body.get("amount"), required=False)
        with self.store.transaction() as db:
            original = self._locked_transaction(db, body)
            if original["type"] not in ("SALE", "AUTHORIZATION") or (
                original["status"] != codes.STATUS_SETTLED
            ):
                raise PayTraceError.of(codes.E_NOT_REFUNDABLE)
            remaining = original["amount"] - _refunded(db, original["id"])
            amount = requested if requested is not None else remaining
            if amount <= 0 or amount > remaining:
                raise PayTraceError.of(codes.E_AMOUNT_EXCEEDS)
            refund_id = self._insert_refund(
                db,
                caller,
                body,
                amount,
                _card_of(original),
                original["customer_id"],
                original_id=original["id"],
                invoice_id=original["invoice_id"],
                billing=json.loads(original["billing"]),
            )
        self._notify(refund_id)
        return self._refunded_response(refund_id, original["masked"], body)

    async def refund_to_customer(self, caller: Caller, body: Body) -> Response:
        card, customer = self._customer_card(body)
        amount = _amount(body.get("amount"), required=True)
        assert amount is not None
        with self.store.transaction() as db:
            refund_id = self._insert_refund(
                db,
                caller,
                body,
                amount,
                card,
                customer["customer_id"],
                billing=_billing(body) or json.loads(customer["billing"]),
            )
        self._notify(refund_id)
        return self._refunded_response(refund_id, card.masked, body)

    async def refund_keyed(self, caller: Caller, body: Body) -> Response:
        card = self._keyed_card(body)
        amount = _amount(body.get("amount"), required=True)
        assert amount is not None
        with self.store.transaction() as db:
            refund_id = self._insert_refund(
                db, caller, body, amount, card, "", billing=_billing(body)
            )
        self._notify(refund_id)
        return self._refunded_response(refund_id, card.masked, body)

    def _insert_refund(
        self,
        db: sqlite3.Connection,
        caller: Caller,
        body: Body,
        amount: int,
        card: CardFacts,
        customer_id: str,
        *,
        original_id: int | None = None,
        invoice_id: str | None = None,
        billing: dict[str, str] | None = None,
    ) -> int:
        return self.store.insert_transaction(
            db,
            {
                "type": "REFUND",
                "status": codes.STATUS_PENDING,
                "response_code": codes.REFUNDED,
                "amount": amount,
                "authorized_amount": amount,
                "masked": card.masked,
                "card_type": card.card_type,
                "exp_month": card.expiration_month,
                "exp_year": card.expiration_year,
                "invoice_id": _text(body.get("invoice_id")) or (invoice_id or ""),
                "customer_id": customer_id,
                "customer_reference_id": _text(body.get("customer_reference_id")),
                "email": _text(body.get("email")),
                "description": _text(body.get("description")),
                "billing": billing or {},
                "original_id": original_id,
                "created_at": self.clock.now(),
                "created_by": caller.username,
                "from_ip": caller.ip,
            },
        )

    def _refunded_response(self, refund_id: int, masked: str, body: Body) -> Response:
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.REFUNDED,
                "status_message": codes.STATUS_MESSAGES[codes.REFUNDED],
                "transaction_id": refund_id,
                "external_transaction_id": _text(body.get("external_transaction_id")),
                "masked_card_number": masked,
            }
        )

    def _find_transaction(self, body: Body) -> Row:
        row = self.store.transaction_row(_transaction_id(body))
        if row is None:
            raise PayTraceError.of(codes.E_NOT_FOUND)
        return row

    def _locked_transaction(self, db: sqlite3.Connection, body: Body) -> Row:
        found = db.execute(
            "SELECT * FROM transactions WHERE id = ?", (_transaction_id(body),)
        ).fetchone()
        if found is None:
            raise PayTraceError.of(codes.E_NOT_FOUND)
        return dict(found)

    # -- exports ----------------------------------------------------------------------------

    def export_row(self, row: Row) -> dict[str, Any]:
        """One transaction in PayTrace's export shape."""
        voided = row["status"] == codes.STATUS_VOIDED
        billing = json.loads(row["billing"] or "{}")
        return {
            "transaction_id": row["id"],
            "masked_card_number": row["masked"],
            "card_type": row["card_type"],
            "transaction_type": "VOID" if voided else row["type"],
            "amount": amount_json(row["amount"]),
            "status_code": row["status"],
            "status_message": codes.STATUS_TEXTS[row["status"]],
            "response_code": row["response_code"],
            "approval_code": row["approval_code"],
            "approval_message": row["approval_message"],
            "avs_response": row["avs_response"],
            "csc_response": row["csc_response"],
            "invoice_id": row["invoice_id"],
            "customer_id": row["customer_id"],
            "customer_reference_id": row["customer_reference_id"],
            "email": row["email"],
            "description": row["description"],
            "original_transaction_id": row["original_id"],
            "batch_number": row["batch_number"],
            "settled": self.clock.show(row["settled_at"]),
            "voided": self.clock.show(row["voided_at"]),
            "created": {
                "through": "API",
                "at": self.clock.show(row["created_at"]),
                "by": row["created_by"],
                "from_ip": row["from_ip"],
            },
            "billing_address": {field: billing.get(field, "") for field in BILLING_FIELDS},
        }

    def _exported(self, rows: list[Row], key: str = "transactions", **extra: Any) -> Response:
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                **extra,
                key: [self.export_row(r) for r in rows],
            }
        )

    async def export_by_id(self, caller: Caller, body: Body) -> Response:
        return self._exported([self._find_transaction(body)])

    async def export_by_date_range(self, caller: Caller, body: Body) -> Response:
        start, end = self._date_range(body)
        rows = self.store.all(
            "SELECT * FROM transactions WHERE created_at >= ? AND created_at < ? ORDER BY id",
            (start, end),
        )
        wanted = _text(body.get("transaction_type")).upper()
        if wanted:
            rows = [
                r
                for r in rows
                if ("VOID" if r["status"] == codes.STATUS_VOIDED else r["type"]) == wanted
            ]
        text = _text(body.get("including_text")).lower()
        if text:
            rows = [r for r in rows if text in _searchable(r)]
        return self._exported(rows)

    def _date_range(self, body: Body) -> tuple[float, float]:
        errors: Errors = {}
        start_day = parse_us_date(body.get("start_date"))
        end_day = parse_us_date(body.get("end_date"))
        if start_day is None:
            errors[codes.E_START_DATE] = [codes.ERROR_TEXTS[codes.E_START_DATE]]
        if end_day is None or (start_day is not None and end_day < start_day):
            errors[codes.E_END_DATE] = [codes.ERROR_TEXTS[codes.E_END_DATE]]
        if errors:
            raise PayTraceError(errors)
        assert start_day is not None
        assert end_day is not None
        return self.clock.day_bounds(start_day)[0], self.clock.day_bounds(end_day)[1]

    # -- customers --------------------------------------------------------------------------

    def _customer_json(self, row: Row) -> dict[str, Any]:
        billing = json.loads(row["billing"])
        shown: dict[str, Any] = {"customer_id": row["customer_id"]}
        if row["masked"]:
            shown["credit_card"] = {
                "masked_number": row["masked"],
                "card_type": row["card_type"],
                "expiration_month": f"{row['exp_month']:02d}",
                "expiration_year": str(row["exp_year"]),
            }
        if row["check_account"]:
            shown["check"] = {
                "masked_account_number": row["check_account"],
                "routing_number": row["check_routing"],
            }
        return {
            **shown,
            "billing_address": {field: billing.get(field, "") for field in BILLING_FIELDS},
            "email": row["email"],
            "phone": row["phone"],
            "created": {"at": self.clock.show(row["created_at"])},
            "updated": {"at": self.clock.show(row["updated_at"])},
        }

    def _customer_message(self, code: int, customer_id: str, name: str) -> str:
        verb = {
            codes.CUSTOMER_CREATED: "created",
            codes.CUSTOMER_UPDATED: "updated",
            codes.CUSTOMER_DELETED: "deleted",
        }[code]
        who = f"{customer_id}/{name}" if name else customer_id
        return f"The customer profile for {who} was successfully {verb}."

    def _customer_answer(self, code: int, customer_id: str, name: str, masked: str) -> Response:
        return JSONResponse(
            {
                "success": True,
                "response_code": code,
                "status_message": self._customer_message(code, customer_id, name),
                "customer_id": customer_id,
                "masked_card_number": masked,
            }
        )

    async def customer_create(self, caller: Caller, body: Body) -> Response:
        """A profile holds a card (``credit_card``), a bank account (``check``), or both."""
        customer_id = _customer_id(body)
        bank: BankFacts | None = None
        if isinstance(body.get("check"), dict):
            bank, errors = read_check(body["check"])
            if bank is None:
                raise PayTraceError(errors)
        card = (
            self._keyed_card(body)
            if bank is None or isinstance(body.get("credit_card"), dict)
            else CardFacts("", "", 0, 0)
        )
        billing = _billing(body)
        now = self.clock.now()
        with self.store.transaction() as db:
            if db.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,)
            ).fetchone():
                raise PayTraceError.of(codes.E_CUSTOMER_EXISTS)
            _insert_customer(db, customer_id, card, billing, body, now, bank)
        return self._customer_answer(
            codes.CUSTOMER_CREATED, customer_id, billing.get("name", ""), card.masked
        )

    async def customer_update(self, caller: Caller, body: Body) -> Response:
        customer_id = _customer_id(body)
        existing = self.store.customer(customer_id)
        if existing is None:
            raise PayTraceError.of(
                codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id)
            )
        card = (
            self._keyed_card(body)
            if isinstance(body.get("credit_card"), dict)
            else CardFacts(
                existing["masked"],
                existing["card_type"],
                existing["exp_month"],
                existing["exp_year"],
            )
        )
        bank = BankFacts(existing["check_account"], existing["check_routing"])
        if isinstance(body.get("check"), dict):
            read, errors = read_check(body["check"])
            if read is None:
                raise PayTraceError(errors)
            bank = read
        billing = {**json.loads(existing["billing"]), **_billing(body)}
        with self.store.transaction() as db:
            db.execute(
                "UPDATE customers SET masked = ?, card_type = ?, exp_month = ?, exp_year = ?,"
                " billing = ?, email = ?, phone = ?, updated_at = ?, check_account = ?,"
                " check_routing = ? WHERE customer_id = ?",
                (
                    card.masked,
                    card.card_type,
                    card.expiration_month,
                    card.expiration_year,
                    json.dumps(billing, sort_keys=True),
                    _text(body.get("email")) or existing["email"],
                    _text(body.get("phone")) or existing["phone"],
                    self.clock.now(),
                    bank.masked_account,
                    bank.routing_number,
                    customer_id,
                ),
            )
        return self._customer_answer(
            codes.CUSTOMER_UPDATED, customer_id, billing.get("name", ""), card.masked
        )

    async def customer_delete(self, caller: Caller, body: Body) -> Response:
        customer_id = _customer_id(body)
        with self.store.transaction() as db:
            gone = db.execute("DELETE FROM customers WHERE customer_id = ?", (customer_id,))
            if gone.rowcount == 0:
                raise PayTraceError.of(
                    codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id)
                )
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.CUSTOMER_DELETED,
                "status_message": self._customer_message(codes.CUSTOMER_DELETED, customer_id, ""),
                "customer_id": customer_id,
            }
        )

    async def customer_export(self, caller: Caller, body: Body) -> Response:
        customer_id = _text(body.get("customer_id"))
        if customer_id:
            row = self.store.customer(customer_id)
            if row is None:
                raise PayTraceError.of(
                    codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id)
                )
            rows = [row]
        else:
            rows = self.store.all("SELECT * FROM customers ORDER BY customer_id")
            email = _text(body.get("email")).lower()
            if email:
                rows = [r for r in rows if r["email"].lower() == email]
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                "customers": [self._customer_json(r) for r in rows],
            }
        )

    async def customer_from_transaction(self, caller: Caller, body: Body) -> Response:
        customer_id = _customer_id(body)
        original = self._find_transaction(body)
        billing = _billing(body) or json.loads(original["billing"])
        card = _card_of(original)
        with self.store.transaction() as db:
            if db.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,)
            ).fetchone():
                raise PayTraceError.of(codes.E_CUSTOMER_EXISTS)
            body = {"email": original["email"], **body}
            _insert_customer(db, customer_id, card, billing, body, self.clock.now())
        return self._customer_answer(
            codes.CUSTOMER_CREATED, customer_id, billing.get("name", ""), card.masked
        )

    # -- batches ----------------------------------------------------------------------------

    def batch_json(self, summary: Row) -> dict[str, Any]:
        return {
            "batch_number": summary["batch_number"],
            "settled": self.clock.show(summary["settled_at"]),
            "transaction_count": summary["transaction_count"],
            "net_amount": amount_json(summary["net_amount"]),
            "sales_count": summary["sales_count"],
            "sales_amount": amount_json(summary["sales_amount"]),
            "refund_count": summary["refund_count"],
            "refund_amount": amount_json(summary["refund_amount"]),
            "card_types": [
                {"card_type": name, "count": v["count"], "net_amount": amount_json(v["net"])}
                for name, v in sorted(summary["by_card_type"].items())
            ],
        }

    def _batch(self, body: Body) -> Row:
        try:
            number = int(str(body.get("batch_number")).strip())
        except ValueError:
            raise PayTraceError.of(codes.E_BATCH) from None
        summary = self.store.batch_summary(number)
        if summary is None:
            raise PayTraceError.of(codes.E_BATCH)
        return summary

    async def batches_export(self, caller: Caller, body: Body) -> Response:
        start, end = self._date_range(body)
        numbers = self.store.all(
            "SELECT batch_number FROM batches WHERE settled_at >= ? AND settled_at < ?"
            " ORDER BY batch_number",
            (start, end),
        )
        batches = [self.store.batch_summary(r["batch_number"]) for r in numbers]
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                "batches": [self.batch_json(b) for b in batches if b is not None],
            }
        )

    async def batches_export_one(self, caller: Caller, body: Body) -> Response:
        summary = self._batch(body)
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                "batch": self.batch_json(summary),
            }
        )

    async def batches_transaction_list(self, caller: Caller, body: Body) -> Response:
        summary = self._batch(body)
        rows = self.store.all(
            "SELECT * FROM transactions WHERE batch_number = ? ORDER BY id",
            (summary["batch_number"],),
        )
        return self._exported(rows, batch=self.batch_json(summary))

    # -- push -------------------------------------------------------------------------------

    def _notify(self, transaction_id: int, event: str | None = None) -> None:
        if not self.silent_post.url:
            return
        row = self.store.transaction_row(transaction_id)
        if row is None:
            return
        code = int(row["response_code"])
        kind = event or (
            "VOID"
            if row["status"] == codes.STATUS_VOIDED and code != codes.AVS_VOIDED
            else row["type"]
        )
        self.silent_post.send(
            {
                "TRANSACTIONID": str(row["id"]),
                "TRANXTYPE": kind,
                "ORDERID": row["invoice_id"],
                "CUSTID": row["customer_id"],
                "AMOUNT": plain(row["amount"]),
                "RESPONSECODE": str(code),
                "RESPONSE": f"{code}. {codes.STATUS_MESSAGES.get(code, '')}".strip(),
                "APPCODE": row["approval_code"],
                "APPMSG": row["approval_message"],
                "AVSRESPONSE": row["avs_response"],
                "CSCRESPONSE": row["csc_response"],
                "EMAIL": row["email"],
                "CARDTYPE": row["card_type"],
                "MASKEDCARD": row["masked"],
                "ORIGINALTRANSACTIONID": str(row["original_id"] or ""),
                "STATUS": row["status"],
            }
        )


# -- helpers ---------------------------------------------------------------------------------


def _json_object(raw: bytes) -> Body:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise PayTraceError.of(codes.E_REQUEST) from None
    if not isinstance(value, dict):
        raise PayTraceError.of(codes.E_REQUEST)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _amount(value: Any, *, required: bool, zero: bool = False) -> int | None:
    if value is None or value == "":
        if required:
            raise PayTraceError.of(codes.E_AMOUNT)
        return None
    try:
        money = Money.parse(value if isinstance(value, (Decimal, int)) else str(value), CURRENCY)
    except MoneyError:
        raise PayTraceError.of(codes.E_AMOUNT) from None
    if money.minor < 0 or (money.minor == 0 and not zero):
        raise PayTraceError.of(codes.E_AMOUNT)
    return money.minor


def _transaction_id(body: Body, field: str = "transaction_id") -> int:
    """A missing, empty or non-numeric id is error 58; any number, 0 included, is looked
    up (an unknown one is 811, as PayTrace answers for id 0)."""
    value = body.get(field)
    if isinstance(value, bool) or value is None:
        raise PayTraceError.of(codes.E_TRANSACTION_ID)
    try:
        return int(str(value).strip())
    except ValueError:
        raise PayTraceError.of(codes.E_TRANSACTION_ID) from None


def _customer_id(body: Body) -> str:
    value = _text(body.get("customer_id"))
    if not value or len(value) > 50:
        raise PayTraceError.of(codes.E_CUSTOMER_ID)
    return value


def _billing(body: Body) -> dict[str, str]:
    raw = body.get("billing_address")
    if not isinstance(raw, dict):
        return {}
    return {field: _text(raw.get(field)) for field in BILLING_FIELDS if _text(raw.get(field))}


def _avs(billing: dict[str, str]) -> str:
    if billing.get("street_address") and billing.get("zip"):
        return "Full Exact Match"
    if billing.get("zip"):
        return "Zip Match"
    return "No Match"


def _card_of(row: Row) -> CardFacts:
    return CardFacts(row["masked"], row["card_type"], row["exp_month"] or 0, row["exp_year"] or 0)


def _refunded(db: sqlite3.Connection, original_id: int) -> int:
    total = db.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE original_id = ?"
        " AND type = 'REFUND' AND status != ?",
        (original_id, codes.STATUS_VOIDED),
    ).fetchone()[0]
    return int(total)


def _searchable(row: Row) -> str:
    return " ".join(
        str(row[k])
        for k in ("invoice_id", "customer_id", "description", "email", "masked", "billing")
    ).lower()


def _insert_customer(
    db: sqlite3.Connection,
    customer_id: str,
    card: CardFacts,
    billing: dict[str, str],
    body: Body,
    now: float,
    bank: BankFacts | None = None,
) -> None:
    db.execute(
        "INSERT INTO customers (customer_id, masked, card_type, exp_month, exp_year, billing,"
        " email, phone, created_at, updated_at, check_account, check_routing)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            customer_id,
            card.masked,
            card.card_type,
            card.expiration_month,
            card.expiration_year,
            json.dumps(billing, sort_keys=True),
            _text(body.get("email")),
            _text(body.get("phone")),
            now,
            now,
            bank.masked_account if bank else "",
            bank.routing_number if bank else "",
        ),
    )
