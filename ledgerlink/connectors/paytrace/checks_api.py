"""PayTrace's checks (ACH) API: sales by bank account or stored profile, holds, funding,
voids, refunds, and the checks exports the poller reads.

A check is not authorised in real time: PayTrace processes it (120), it settles with the
day's run, and the payer's bank may send it back days later as a *return* with an R-code
(R01 insufficient funds …). Returns are not pushed: they appear in
``/v1/checks/export/by_date_range`` on the day they come back, which is how the poller
learns of them.

Account numbers: sent to PayTrace only by :meth:`PayTraceChecks.check_sale_by_account`
(never logged: the HTTP client logs no bodies, and ledgerlink's log redaction masks
``account_number`` keys); what comes back and is kept is the masked number (``xx3456``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from ledgerlink.connectors.errors import NotFound, Rejected
from ledgerlink.domain.checks import CheckTransaction, mask_account
from ledgerlink.domain.money import Money

SYSTEM = "paytrace"
PROCESSED, REFUNDED, MANAGED, NOT_PROCESSED = 120, 122, 124, 125


class _Poster(Protocol):
    async def _post(
        self, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> dict[str, Any]: ...

    def _money(self, value: Any) -> Money: ...


class PayTraceChecks:
    """The checks calls, for :class:`~ledgerlink.connectors.paytrace.gateway.PayTraceGateway`
    (which supplies ``_post`` and ``_money``)."""

    async def check_sale_by_customer(
        self: _Poster, customer_id: str, amount: Money, *, invoice_number: str = ""
    ) -> CheckTransaction:
        """Debit the bank account stored on ``customer_id``'s profile. Never retried once
        it may have been sent: a check sale is not idempotent upstream."""
        body = await self._post(
            "/v1/checks/sale/by_customer",
            {
                "customer_id": customer_id,
                "amount": amount.format_plain(),
                "invoice_id": invoice_number or None,
            },
            idempotent=False,
        )
        return _answer(body, "SALE", amount, customer_id=customer_id, invoice=invoice_number)

    async def check_sale_by_account(
        self: _Poster,
        account_number: str,
        routing_number: str,
        amount: Money,
        *,
        name: str,
        invoice_number: str = "",
    ) -> CheckTransaction:
        """Debit a bank account given now (not kept: only its last four digits return)."""
        body = await self._post(
            "/v1/checks/sale/by_account",
            {
                "amount": amount.format_plain(),
                "check": {"account_number": account_number, "routing_number": routing_number},
                "billing_address": {"name": name},
                "invoice_id": invoice_number or None,
            },
            idempotent=False,
        )
        return _answer(body, "SALE", amount, invoice=invoice_number)

    async def check_hold_by_customer(
        self: _Poster, customer_id: str, amount: Money, *, invoice_number: str = ""
    ) -> CheckTransaction:
        """A check held (not settled) until :meth:`check_fund` releases it."""
        body = await self._post(
            "/v1/checks/hold/by_customer",
            {
                "customer_id": customer_id,
                "amount": amount.format_plain(),
                "invoice_id": invoice_number or None,
            },
            idempotent=False,
        )
        return _answer(body, "HOLD", amount, customer_id=customer_id, invoice=invoice_number)

    async def check_fund(
        self: _Poster, check_id: str, amount: Money | None = None
    ) -> CheckTransaction:
        request: dict[str, Any] = {"check_transaction_id": int(check_id)}
        if amount is not None:
            request["amount"] = amount.format_plain()
        body = await self._post("/v1/checks/manage/fund", request, idempotent=True)
        return _answer(body, "SALE", amount, check_id=check_id)

    async def check_void(self: _Poster, check_id: str) -> CheckTransaction:
        """Void a held or pending (not yet settled) check; PayTrace refuses others (80)."""
        body = await self._post(
            "/v1/checks/manage/void", {"check_transaction_id": int(check_id)}, idempotent=True
        )
        return _answer(body, "SALE", None, check_id=check_id, status="V")

    async def check_refund(
        self: _Poster, check_id: str, amount: Money | None = None
    ) -> CheckTransaction:
        """Credit back (part of) a settled check sale: a new check of type REFUND."""
        request: dict[str, Any] = {"check_transaction_id": int(check_id)}
        if amount is not None:
            request["amount"] = amount.format_plain()
        body = await self._post("/v1/checks/refund/by_transaction", request, idempotent=False)
        return _answer(body, "REFUND", amount, original=check_id)

    async def checks(self: _Poster, start: date, end: date) -> list[CheckTransaction]:
        """Checks created, or returned, between the two dates (inclusive)."""
        body = await self._post(
            "/v1/checks/export/by_date_range",
            {"start_date": start.strftime("%m/%d/%Y"), "end_date": end.strftime("%m/%d/%Y")},
            idempotent=True,
        )
        return [
            exported(item, self._money)
            for item in body.get("checks") or []
            if isinstance(item, dict)
        ]

    async def check_by_id(self: _Poster, check_id: str) -> CheckTransaction:
        try:
            body = await self._post(
                "/v1/checks/export/by_id", {"check_transaction_id": int(check_id)}, idempotent=True
            )
        except Rejected as exc:
            if exc.upstream_code != "80":  # 80 on an export: no such check
                raise
            raise NotFound(SYSTEM, f"PayTrace has no check {check_id}") from None
        items = body.get("checks") or []
        if not items:
            raise NotFound(SYSTEM, f"PayTrace has no check {check_id}")
        return exported(items[0], self._money)

    async def bank_account(self: _Poster, customer_id: str) -> str | None:
        """The masked bank account (``xx3456``) on a customer profile, or None."""
        body = await self._post(
            "/v1/customer/export", {"customer_id": customer_id}, idempotent=True
        )
        for item in body.get("customers") or []:
            check = item.get("check") if isinstance(item, dict) else None
            if isinstance(check, dict) and check.get("masked_account_number"):
                return mask_account(str(check["masked_account_number"]))
        return None


def _answer(
    body: dict[str, Any],
    kind: str,
    amount: Money | None,
    *,
    check_id: str = "",
    customer_id: str = "",
    invoice: str = "",
    original: str = "",
    status: str = "",
) -> CheckTransaction:
    code = int(body.get("response_code") or 0)
    processed = code in (PROCESSED, REFUNDED, MANAGED) and body.get("success") is not False
    if amount is None:
        amount = Money(0, "USD")
    return CheckTransaction(
        id=str(body.get("check_transaction_id") or check_id),
        kind=kind,
        status=status or ("P" if processed else "D"),
        amount=amount,
        invoice_number=invoice,
        customer_id=customer_id,
        original_id=original,
        message=" ".join(
            str(part).strip()
            for part in (body.get("status_message"), body.get("ach_message"))
            if part and str(part).strip()
        ),
    )


def exported(item: dict[str, Any], money: Any) -> CheckTransaction:
    """One check of PayTrace's checks export (masked account only)."""
    # cycle: the gateway module builds on this one; its time parser is shared
    from ledgerlink.connectors.paytrace.gateway import parse_paytrace_time

    created = item.get("created") or {}
    original = item.get("original_check_transaction_id")
    return CheckTransaction(
        id=str(item.get("check_transaction_id") or ""),
        kind=str(item.get("transaction_type") or "SALE").upper(),
        status=str(item.get("status_code") or "").upper(),
        amount=money(Decimal(str(item.get("amount") or "0"))),
        invoice_number=str(item.get("invoice_id") or "").strip(),
        customer_id=str(item.get("customer_id") or "").strip(),
        masked_account=mask_account(str(item.get("masked_account_number") or "")),
        original_id=str(original) if original else "",
        return_code=str(item.get("return_code") or "").strip().upper(),
        return_reason=str(item.get("return_reason") or ""),
        created_at=parse_paytrace_time(created.get("at") if isinstance(created, dict) else None),
        settled_at=parse_paytrace_time(item.get("settled")),
        returned_at=parse_paytrace_time(item.get("returned")),
        message=str(item.get("status_message") or ""),
    )
