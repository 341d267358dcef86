"""PayTrace's checks (ACH) API: sales, holds, funding, voids, refunds, exports.

Paths and answers follow PayTrace's JSON API v1 as a public client library calls it and as
its recorded answers read: ``/v1/checks/sale/by_account`` and ``/by_customer``,
``/v1/checks/hold/...``, ``/v1/checks/manage/fund`` and ``/manage/void``,
``/v1/checks/refund/by_transaction`` (plus ``/by_account`` and ``/by_customer``); success
codes 120 (processed), 122 (refunded), 124 (managed), 125 (not processed); ids are
``check_transaction_id``. A check is never authorised in real time: it is processed,
settles with the day's run, and may come back later as a *return* (R01, R02, …), which
the sandbox plays through ``/_sandbox/checks/return``.

Life of a check: ``H`` held → (fund) ``P`` pending → (settle) ``S`` settled → (return)
``R`` returned; ``V`` voided (held or pending only); ``D`` not processed (125).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, Response

from ledgerlink.sandbox.paytrace import codes
from ledgerlink.sandbox.paytrace.bank import BankFacts, read_check
from ledgerlink.sandbox.paytrace.gateway import (
    BILLING_FIELDS,
    Body,
    Caller,
    Gateway,
    Handler,
    PayTraceError,
    _amount,
    _billing,
    _customer_id,
    _text,
    _transaction_id,
    amount_json,
    plain,
)
from ledgerlink.sandbox.paytrace.store import Row

SALE = "SALE"
HOLD = "HOLD"
REFUND = "REFUND"


class Checks:
    """The ``/v1/checks/...`` endpoints, on the gateway's store and clock."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.clock = gateway.clock
        self._declines = set(gateway.config.check_decline_amounts)

    def table(self) -> dict[str, Handler]:
        return {
            "/v1/checks/sale/by_account": self.sale_by_account,
            "/v1/checks/sale/by_customer": self.sale_by_customer,
            "/v1/checks/hold/by_account": self.hold_by_account,
            "/v1/checks/hold/by_customer": self.hold_by_customer,
            "/v1/checks/manage/fund": self.fund,
            "/v1/checks/manage/void": self.void,
            "/v1/checks/refund/by_transaction": self.refund_by_transaction,
            "/v1/checks/refund/by_account": self.refund_by_account,
            "/v1/checks/refund/by_customer": self.refund_by_customer,
            "/v1/checks/export/by_id": self.export_by_id,
            "/v1/checks/export/by_date_range": self.export_by_date_range,
        }

    # -- sales and holds ----------------------------------------------------------------------

    async def sale_by_account(self, caller: Caller, body: Body) -> Response:
        return self._process(SALE, caller, body, _bank_of(body), "", _billing(body))

    async def sale_by_customer(self, caller: Caller, body: Body) -> Response:
        bank, customer = self._customer_bank(body)
        return self._process(
            SALE, caller, body, bank, customer["customer_id"], _billing_of(body, customer)
        )

    async def hold_by_account(self, caller: Caller, body: Body) -> Response:
        return self._process(HOLD, caller, body, _bank_of(body), "", _billing(body))

    async def hold_by_customer(self, caller: Caller, body: Body) -> Response:
        bank, customer = self._customer_bank(body)
        return self._process(
            HOLD, caller, body, bank, customer["customer_id"], _billing_of(body, customer)
        )

    def _customer_bank(self, body: Body) -> tuple[BankFacts, Row]:
        customer_id = _customer_id(body)
        customer = self.store.customer(customer_id)
        if customer is None or not customer["check_account"]:
            # a card-only profile is "incomplete" for a check (PayTrace's wording)
            raise PayTraceError.of(
                codes.E_CUSTOMER_NOT_FOUND, codes.customer_not_found(customer_id)
            )
        return BankFacts(customer["check_account"], customer["check_routing"]), customer

    def _process(
        self,
        kind: str,
        caller: Caller,
        body: Body,
        bank: BankFacts,
        customer_id: str,
        billing: dict[str, str],
    ) -> Response:
        amount = _amount(body.get("amount"), required=True)
        assert amount is not None
        declined = plain(amount) in self._declines
        status = (
            codes.STATUS_DECLINED
            if declined
            else codes.STATUS_HELD
            if kind == HOLD
            else codes.STATUS_PENDING
        )
        code = codes.CHECK_NOT_PROCESSED if declined else codes.CHECK_PROCESSED
        with self.store.transaction() as db:
            check_id = self.store.insert_check(
                db,
                {
                    **self._common(caller, body, bank, customer_id, billing),
                    "type": kind,
                    "status": status,
                    "response_code": code,
                    "amount": amount,
                },
            )
        answer: dict[str, Any] = {
            "success": not declined,
            "response_code": code,
            "status_message": codes.STATUS_MESSAGES[code],
            "check_transaction_id": check_id,
        }
        if declined:  # recorded: a 125 carries the processor's ACH code and message
            answer.update({"ach_code": 0, "ach_message": ""})
        return JSONResponse(answer)

    def _common(
        self, caller: Caller, body: Body, bank: BankFacts, customer_id: str, billing: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "account_masked": bank.masked_account,
            "routing": bank.routing_number,
            "invoice_id": _text(body.get("invoice_id")),
            "customer_id": customer_id,
            "email": _text(body.get("email")),
            "description": _text(body.get("description")),
            "billing": billing,
            "created_at": self.clock.now(),
            "created_by": caller.username,
            "from_ip": caller.ip,
        }

    # -- fund and void ------------------------------------------------------------------------

    async def fund(self, caller: Caller, body: Body) -> Response:
        """Release a held check for settlement, optionally for less than was held."""
        requested = _amount(body.get("amount"), required=False)
        with self.store.transaction() as db:
            row = _locked(db, body)
            if row is None or row["status"] != codes.STATUS_HELD:
                raise PayTraceError.of(codes.E_CHECK_NOT_FOUND, codes.CHECK_NOT_MANAGEABLE_TEXT)
            amount = requested if requested is not None else row["amount"]
            if amount > row["amount"]:
                raise PayTraceError.of(codes.E_AMOUNT_EXCEEDS)
            db.execute(
                "UPDATE checks SET status = ?, amount = ?, funded_at = ? WHERE id = ?",
                (codes.STATUS_PENDING, amount, self.clock.now(), row["id"]),
            )
        return _managed(row["id"])

    async def void(self, caller: Caller, body: Body) -> Response:
        """Only a held check or one pending settlement can be voided."""
        with self.store.transaction() as db:
            row = _locked(db, body)
            if row is None or row["status"] not in (codes.STATUS_HELD, codes.STATUS_PENDING):
                raise PayTraceError.of(codes.E_CHECK_NOT_FOUND, codes.CHECK_NOT_MANAGEABLE_TEXT)
            db.execute(
                "UPDATE checks SET status = ?, voided_at = ? WHERE id = ?",
                (codes.STATUS_VOIDED, self.clock.now(), row["id"]),
            )
        return _managed(row["id"])

    # -- refunds ------------------------------------------------------------------------------

    async def refund_by_transaction(self, caller: Caller, body: Body) -> Response:
        """A credit back to the account of a settled check sale (up to what remains)."""
        requested = _amount(body.get("amount"), required=False)
        with self.store.transaction() as db:
            original = _locked(db, body)
            if original is None:
                raise PayTraceError.of(codes.E_CHECK_NOT_FOUND)
            if original["type"] == REFUND or original["status"] != codes.STATUS_SETTLED:
                raise PayTraceError.of(codes.E_CHECK_NOT_FOUND, codes.CHECK_NOT_REFUNDABLE_TEXT)
            refunded = db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM checks WHERE original_id = ?"
                " AND type = ? AND status NOT IN (?, ?)",
                (original["id"], REFUND, codes.STATUS_VOIDED, codes.STATUS_DECLINED),
            ).fetchone()[0]
            remaining = original["amount"] - int(refunded)
            amount = requested if requested is not None else remaining
            if amount <= 0 or amount > remaining:
                raise PayTraceError.of(codes.E_AMOUNT_EXCEEDS)
            bank = BankFacts(original["account_masked"], original["routing"])
            refund_id = self.store.insert_check(
                db,
                {
                    **self._common(
                        caller, body, bank, original["customer_id"], json.loads(original["billing"])
                    ),
                    "invoice_id": _text(body.get("invoice_id")) or original["invoice_id"],
                    "type": REFUND,
                    "status": codes.STATUS_PENDING,
                    "response_code": codes.CHECK_REFUNDED,
                    "amount": amount,
                    "original_id": original["id"],
                },
            )
        return _refunded(refund_id)

    async def refund_by_account(self, caller: Caller, body: Body) -> Response:
        return self._refund(caller, body, _bank_of(body), "", _billing(body))

    async def refund_by_customer(self, caller: Caller, body: Body) -> Response:
        bank, customer = self._customer_bank(body)
        return self._refund(
            caller, body, bank, customer["customer_id"], _billing_of(body, customer)
        )

    def _refund(
        self, caller: Caller, body: Body, bank: BankFacts, customer_id: str, billing: dict[str, str]
    ) -> Response:
        amount = _amount(body.get("amount"), required=True)
        assert amount is not None
        with self.store.transaction() as db:
            refund_id = self.store.insert_check(
                db,
                {
                    **self._common(caller, body, bank, customer_id, billing),
                    "type": REFUND,
                    "status": codes.STATUS_PENDING,
                    "response_code": codes.CHECK_REFUNDED,
                    "amount": amount,
                },
            )
        return _refunded(refund_id)

    # -- exports ------------------------------------------------------------------------------

    def export_row(self, row: Row) -> dict[str, Any]:
        """One check as the checks export shows it (masked account only)."""
        billing = json.loads(row["billing"] or "{}")
        return {
            "check_transaction_id": row["id"],
            "transaction_type": row["type"],
            "amount": amount_json(row["amount"]),
            "status_code": row["status"],
            "status_message": codes.STATUS_TEXTS[row["status"]],
            "response_code": row["response_code"],
            "masked_account_number": row["account_masked"],
            "routing_number": row["routing"],
            "invoice_id": row["invoice_id"],
            "customer_id": row["customer_id"],
            "email": row["email"],
            "description": row["description"],
            "original_check_transaction_id": row["original_id"],
            "funded": self.clock.show(row["funded_at"]),
            "settled": self.clock.show(row["settled_at"]),
            "voided": self.clock.show(row["voided_at"]),
            "returned": self.clock.show(row["returned_at"]),
            "return_code": row["return_code"],
            "return_reason": codes.ACH_RETURN_CODES.get(row["return_code"], ""),
            "created": {
                "through": "API",
                "at": self.clock.show(row["created_at"]),
                "by": row["created_by"],
                "from_ip": row["from_ip"],
            },
            "billing_address": {field: billing.get(field, "") for field in BILLING_FIELDS},
        }

    def _exported(self, rows: list[Row]) -> Response:
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.EXPORTED,
                "status_message": codes.STATUS_MESSAGES[codes.EXPORTED],
                "checks": [self.export_row(r) for r in rows],
            }
        )

    async def export_by_id(self, caller: Caller, body: Body) -> Response:
        row = self.store.check_row(_transaction_id(body, "check_transaction_id"))
        if row is None:
            raise PayTraceError.of(codes.E_CHECK_NOT_FOUND)
        return self._exported([row])

    async def export_by_date_range(self, caller: Caller, body: Body) -> Response:
        """Checks created in the range, plus those returned in it (a return arrives days
        after the sale; a reader polling by date must see it)."""
        start, end = self.gateway._date_range(body)
        rows = self.store.all(
            "SELECT * FROM checks WHERE (created_at >= ? AND created_at < ?)"
            " OR (returned_at >= ? AND returned_at < ?) ORDER BY id",
            (start, end, start, end),
        )
        wanted = _text(body.get("transaction_type")).upper()
        if wanted:
            rows = [r for r in rows if r["type"] == wanted]
        return self._exported(rows)

    # -- the bank's side (sandbox only) --------------------------------------------------------

    def return_check(self, check_id: int, return_code: str) -> Row:
        """The receiving bank returns a settled (or pending) check sale with an R-code."""
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM checks WHERE id = ?", (check_id,)).fetchone()
            if row is None:
                raise PayTraceError.of(codes.E_CHECK_NOT_FOUND)
            if row["type"] != SALE or row["status"] not in (
                codes.STATUS_PENDING,
                codes.STATUS_SETTLED,
            ):
                raise PayTraceError(
                    {"check": ["Only a funded check sale (pending or settled) can be returned."]}
                )
            db.execute(
                "UPDATE checks SET status = ?, return_code = ?, returned_at = ? WHERE id = ?",
                (codes.STATUS_RETURNED, return_code, self.clock.now(), check_id),
            )
        returned = self.store.check_row(check_id)
        assert returned is not None
        return returned


def _bank_of(body: Body) -> BankFacts:
    bank, errors = read_check(body.get("check"))
    if bank is None:
        raise PayTraceError(errors)
    return bank


def _billing_of(body: Body, customer: Row) -> dict[str, str]:
    return _billing(body) or json.loads(customer["billing"])


def _locked(db: Any, body: Body) -> Row | None:
    found = db.execute(
        "SELECT * FROM checks WHERE id = ?", (_transaction_id(body, "check_transaction_id"),)
    ).fetchone()
    return None if found is None else dict(found)


def _managed(check_id: int) -> Response:
    return JSONResponse(
        {
            "success": True,
            "response_code": codes.CHECK_MANAGED,
            "status_message": codes.STATUS_MESSAGES[codes.CHECK_MANAGED],
            "check_transaction_id": check_id,
        }
    )


def _refunded(check_id: int) -> Response:
    return JSONResponse(
        {
            "success": True,
            "response_code": codes.CHECK_REFUNDED,
            "status_message": codes.STATUS_MESSAGES[codes.CHECK_REFUNDED],
            "check_transaction_id": check_id,
        }
    )
