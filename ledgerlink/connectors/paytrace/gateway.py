"""The PayTrace card gateway."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.errors import Misconfigured, NotFound, UpstreamError
from ledgerlink.connectors.http import RetryPolicy, UpstreamClient
from ledgerlink.connectors.paytrace.checks_api import PayTraceChecks
from ledgerlink.connectors.paytrace.errors import body_of, classify
from ledgerlink.connectors.paytrace.level_three_api import PayTraceLevelThree
from ledgerlink.domain.accounts import (
    Address,
    Batch,
    BatchCardBrand,
    CardCustomer,
    CardOutcome,
    CardTransaction,
    CardTransactionKind,
)
from ledgerlink.domain.money import Money

SYSTEM = "paytrace"
RENEW_MARGIN = 120.0  # seconds before expiry
APPROVED = frozenset({101, 106, 109, 112, 160, 161, 162, 100})
DECLINED = 102
APPROVED_THEN_VOIDED = 103
_KINDS = {
    "SALE": CardTransactionKind.SALE,
    "AUTHORIZATION": CardTransactionKind.AUTHORIZATION,
    "CAPTURE": CardTransactionKind.CAPTURE,
    "REFUND": CardTransactionKind.REFUND,
    "VOID": CardTransactionKind.VOID,
}
_DATETIME_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class PayTraceOptions:
    api_base_url: str
    username: str
    password: str
    integrator_id: str
    currency: str = "USD"  # PayTrace settles in one currency per merchant account
    max_connections: int = 32


@dataclass
class _Token:
    value: str
    expires_at: float  # time.monotonic()


_tokens: dict[tuple[str, str], _Token] = {}
_tokens_guard = threading.Lock()


class PayTraceAuth:
    """Password-grant tokens, cached per process and account; PayTrace has no refresh
    token, so a new one is requested shortly before expiry and once on ``invalid_token``."""

    def __init__(self, options: PayTraceOptions, transport: httpx.AsyncBaseTransport | None):
        self.options = options
        self._key = (options.api_base_url, options.username)
        self._client = UpstreamClient(
            SYSTEM,
            options.api_base_url,
            classify=classify,
            transport=transport,
            policy=RetryPolicy(attempts=3),
        )
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        with _tokens_guard:
            token = _tokens.get(self._key)
        if token is None or not _fresh(token):
            token = await self._fetch(stale=token)
        return {"Authorization": f"Bearer {token.value}"}

    async def renew(self) -> None:
        with _tokens_guard:
            stale = _tokens.get(self._key)
        await self._fetch(stale=stale)

    async def _fetch(self, stale: _Token | None) -> _Token:
        async with self._lock:
            with _tokens_guard:
                current = _tokens.get(self._key)
            if current is not None and current is not stale and _fresh(current):
                return current  # renewed by someone else while we waited
            response = await self._client.request(
                "POST",
                "/oauth/token",
                data={
                    "grant_type": "password",
                    "username": self.options.username,
                    "password": self.options.password,
                },
                idempotent=True,
                authenticate=False,
            )
            body = body_of(response)
            if not body.get("access_token"):
                raise Misconfigured(SYSTEM, "PayTrace sent no access token; check the API user")
            token = _Token(
                str(body["access_token"]),
                time.monotonic() + float(body.get("expires_in") or 7200),
            )
            with _tokens_guard:
                _tokens[self._key] = token
            return token

    async def aclose(self) -> None:
        await self._client.aclose()


def _fresh(token: _Token) -> bool:
    return token.expires_at - RENEW_MARGIN > time.monotonic()


def forget_tokens() -> None:
    """Drop cached tokens (credentials changed)."""
    with _tokens_guard:
        _tokens.clear()


def parse_paytrace_time(value: Any) -> datetime | None:
    """PayTrace writes times like ``"5/14/2026 3:07:55 PM"`` (Pacific time upstream; the
    export gives no zone, so we keep it naive-as-UTC and compare with a tolerance)."""
    if not value:
        return None
    text = str(value).strip()
    for pattern in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class PayTraceGateway(PayTraceChecks, PayTraceLevelThree):
    """Card calls here; the checks (ACH) calls come from :class:`PayTraceChecks`, the
    Level 3 call from :class:`PayTraceLevelThree`."""

    system = SYSTEM

    def __init__(
        self,
        options: PayTraceOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        if not options.integrator_id:
            raise Misconfigured(
                SYSTEM,
                "PayTrace needs an integrator id; set it under Accounting Integration → PayTrace",
            )
        self.options = options
        self.auth = PayTraceAuth(options, transport)
        self.client = UpstreamClient(
            SYSTEM,
            options.api_base_url,
            classify=classify,
            auth=self.auth,
            policy=policy,
            transport=transport,
            max_connections=options.max_connections,
        )

    async def __aenter__(self) -> PayTraceGateway:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.auth.aclose()

    async def _post(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        response = await self.client.request(
            "POST",
            path,
            json={**body, "integrator_id": self.options.integrator_id},
            idempotent=idempotent,
        )
        parsed = json.loads(response.content, parse_float=Decimal)
        if not isinstance(parsed, dict):
            return {}
        if parsed.get("success") is False and parsed.get("errors"):
            # PayTrace's error shape can come with HTTP 200 too: it is an error (naming
            # the field), never a decline.
            error = classify(httpx.Response(400, json=_plain_json(parsed)))
            if error is not None:
                raise error
        return parsed

    def _money(self, value: Any) -> Money:
        return Money.parse(
            Decimal(str(value or "0")).quantize(Decimal("0.01")), self.options.currency
        )

    def _result(
        self,
        body: dict[str, Any],
        kind: CardTransactionKind,
        amount: Money | None,
        original_id: str = "",
    ) -> CardTransaction:
        code = int(body.get("response_code") or 0)
        outcome = (
            CardOutcome.APPROVED
            if code in APPROVED
            else CardOutcome.APPROVED_THEN_VOIDED
            if code == APPROVED_THEN_VOIDED
            else CardOutcome.DECLINED
        )
        message = str(body.get("status_message") or "")
        reason = str(body.get("approval_message") or "").strip()
        if outcome is CardOutcome.DECLINED and reason:
            # "Your transaction was not approved." says nothing a user can act on; the
            # processor's reason does ("EXPIRED CARD - Expired card", and a duplicate
            # declined by PayTrace's duplicate filter says so here).
            message = f"{message} {' '.join(reason.split())}".strip()
        return CardTransaction(
            id=str(body.get("transaction_id") or ""),
            kind=kind,
            outcome=outcome,
            amount=amount if amount is not None else self._money(body.get("amount")),
            masked_card=str(body.get("masked_card_number") or ""),
            approval_code=str(body.get("approval_code") or ""),
            status_message=message,
            original_id=original_id,
        )

    def _exported(self, item: dict[str, Any]) -> CardTransaction:
        """An exported transaction. ``status_code`` letters: A authorized, P pending
        settlement, S settled, V voided, D declined; a voided one is exported with type
        VOID. Older exports carry only ``response_code``; both are understood."""
        kind = _KINDS.get(str(item.get("transaction_type") or "").upper(), CardTransactionKind.SALE)
        status = str(item.get("status_code") or "").upper()
        response_code = int(item.get("response_code") or 0)
        declined = status == "D" or response_code == DECLINED
        voided = status == "V" or bool(item.get("voided")) or response_code == APPROVED_THEN_VOIDED
        created = item.get("created") or {}
        original = item.get("original_transaction_id")
        return CardTransaction(
            id=str(item.get("transaction_id") or ""),
            kind=kind,
            outcome=(
                CardOutcome.DECLINED
                if declined
                else CardOutcome.APPROVED_THEN_VOIDED
                if response_code == APPROVED_THEN_VOIDED
                else CardOutcome.APPROVED
            ),
            amount=self._money(item.get("amount")),
            masked_card=str(item.get("masked_card_number") or ""),
            card_type=str(item.get("card_type") or ""),
            approval_code=str(item.get("approval_code") or ""),
            invoice_number=str(item.get("invoice_id") or ""),
            customer_id=str(item.get("customer_id") or ""),
            status_message=str(item.get("status_message") or ""),
            created_at=parse_paytrace_time(
                created.get("at") if isinstance(created, dict) else None
            ),
            settled_at=parse_paytrace_time(item.get("settled")),
            voided=voided,
            original_id=str(original) if original else "",
        )

    # -- CardGateway port ---------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        results = []
        try:
            await self.auth.headers()
        except UpstreamError as exc:
            return [CheckResult.from_error("credentials", exc)]
        results.append(CheckResult("reachable", True, "PayTrace answered"))
        results.append(CheckResult("credentials", True, "API user signed in"))
        today = datetime.now(UTC).date()
        try:
            await self.transactions(today - timedelta(days=1), today)
            results.append(CheckResult("permissions", True, "transaction exports readable"))
        except UpstreamError as exc:
            results.append(CheckResult.from_error("permissions", exc))
        return results

    async def export_raw(self, start: date, end: date) -> list[dict[str, Any]]:
        """Exported transactions as PayTrace sends them (masked card numbers only): the
        records mapping specs are written against, for previews."""
        body = await self._post(
            "/v1/transactions/export/by_date_range",
            {"start_date": start.strftime("%m/%d/%Y"), "end_date": end.strftime("%m/%d/%Y")},
            idempotent=True,
        )
        return [item for item in body.get("transactions") or [] if isinstance(item, dict)]

    async def transactions(self, start: date, end: date) -> list[CardTransaction]:
        body = await self._post(
            "/v1/transactions/export/by_date_range",
            {
                "start_date": start.strftime("%m/%d/%Y"),
                "end_date": end.strftime("%m/%d/%Y"),
            },
            idempotent=True,
        )
        return [self._exported(item) for item in body.get("transactions") or []]

    async def transaction(self, transaction_id: str) -> CardTransaction:
        body = await self._post(
            "/v1/transactions/export/by_id",
            {"transaction_id": int(transaction_id)},
            idempotent=True,
        )
        items = body.get("transactions") or []
        if not items:
            raise NotFound(SYSTEM, f"PayTrace has no transaction {transaction_id}")
        return self._exported(items[0])

    async def sale_by_customer(
        self, customer_id: str, amount: Money, *, invoice_number: str = ""
    ) -> CardTransaction:
        # Not idempotent upstream: PayTrace's duplicate filter (same card, amount and
        # invoice within the account's Duplicate Transaction Time) declines a repeat, but
        # it is off on some accounts, so this is never retried after it may have been sent.
        body = await self._post(
            "/v1/transactions/sale/by_customer",
            {
                "amount": amount.format_plain(),
                "customer_id": customer_id,
                "invoice_id": invoice_number or None,
            },
            idempotent=False,
        )
        return self._result(body, CardTransactionKind.SALE, amount)

    async def refund(self, transaction_id: str, amount: Money | None = None) -> CardTransaction:
        request: dict[str, Any] = {"transaction_id": int(transaction_id)}
        if amount is not None:
            request["amount"] = amount.format_plain()
        body = await self._post(
            "/v1/transactions/refund/for_transaction", request, idempotent=False
        )
        return self._result(body, CardTransactionKind.REFUND, amount, original_id=transaction_id)

    async def void(self, transaction_id: str) -> CardTransaction:
        body = await self._post(
            "/v1/transactions/void", {"transaction_id": int(transaction_id)}, idempotent=True
        )  # voiding twice is refused, never doubled
        return self._result(body, CardTransactionKind.VOID, None, original_id=transaction_id)

    async def customer(self, customer_id: str) -> CardCustomer:
        body = await self._post(
            "/v1/customer/export", {"customer_id": customer_id}, idempotent=True
        )
        items = body.get("customers") or []
        if not items:
            raise NotFound(SYSTEM, f"PayTrace has no customer profile {customer_id}")
        return _customer(items[0])

    async def update_customer(self, customer: CardCustomer) -> CardCustomer:
        """Change a profile's name, e-mail, phone and billing address. The card itself is
        never touched (nor sent): it changes only through PayTrace's hosted fields."""
        address = customer.address
        await self._post(
            "/v1/customer/update",
            {
                "customer_id": customer.customer_id,
                "billing_address": {
                    "name": customer.name,
                    "street_address": address.line1,
                    "street_address2": address.line2,
                    "city": address.city,
                    "state": address.region,
                    "zip": address.postal_code,
                    "country": address.country,
                },
                "email": customer.email,
                "phone": customer.phone,
            },
            idempotent=True,  # the same update twice leaves the same profile
        )
        return await self.customer(customer.customer_id)

    async def customers(self) -> list[CardCustomer]:
        body = await self._post("/v1/customer/export", {}, idempotent=True)
        return [_customer(item) for item in body.get("customers") or []]

    async def batches(self, start: date, end: date) -> list[Batch]:
        body = await self._post(
            "/v1/batches/export",
            {
                "start_date": start.strftime("%m/%d/%Y"),
                "end_date": end.strftime("%m/%d/%Y"),
            },
            idempotent=True,
        )
        return [self._batch(item) for item in body.get("batches") or []]

    async def batch_transactions(self, batch_number: str) -> list[CardTransaction]:
        body = await self._post(
            "/v1/batches/transaction_list", {"batch_number": int(batch_number)}, idempotent=True
        )
        return [self._exported(item) for item in body.get("transactions") or []]

    def _batch(self, item: dict[str, Any]) -> Batch:
        """A batch from ``batches/export``: counts and amounts by card brand as PayTrace
        gives them (fees and withheld chargebacks are not in its API)."""
        net = item.get("net_amount", item.get("amount"))
        sales, refunds = item.get("sales_amount"), item.get("refund_amount")
        return Batch(
            number=str(item.get("batch_number") or ""),
            settled_at=parse_paytrace_time(item.get("created") or item.get("settled")),
            count=int(item.get("transaction_count") or 0),
            net=self._money(net),
            sales=self._money(sales) if sales is not None else None,
            refunds=self._money(refunds) if refunds is not None else None,
            sales_count=int(item.get("sales_count") or 0),
            refund_count=int(item.get("refund_count") or 0),
            card_brands=tuple(
                BatchCardBrand(
                    card_type=str(brand.get("card_type") or "Unknown"),
                    count=int(brand.get("count") or 0),
                    net=self._money(brand.get("net_amount", 0)),
                )
                for brand in item.get("card_types") or []
                if isinstance(brand, dict)
            ),
        )


def _plain_json(value: Any) -> Any:
    """Decimals (from ``parse_float=Decimal``) as strings, so the body re-encodes."""
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    return str(value) if isinstance(value, Decimal) else value


def _customer(item: dict[str, Any]) -> CardCustomer:
    address = item.get("billing_address") or {}
    card = item.get("credit_card") or {}
    return CardCustomer(
        customer_id=str(item.get("customer_id") or ""),
        name=str(address.get("name") or ""),
        email=str(item.get("email") or ""),
        phone=str(item.get("phone") or ""),
        address=Address(
            line1=str(address.get("street_address") or ""),
            line2=str(address.get("street_address2") or ""),
            city=str(address.get("city") or ""),
            region=str(address.get("state") or ""),
            postal_code=str(address.get("zip") or ""),
            country=str(address.get("country") or "US"),
        ),
        masked_card=str(card.get("masked_number") or item.get("masked_card_number") or ""),
    )
