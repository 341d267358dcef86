"""Sandbox-only endpoints under ``/_sandbox``: settle, disputes, check returns, hosted-field
tokens, state.

They stand in for what happens outside the API: the processor settling the day's batch,
a cardholder's bank filing a chargeback (the dispute report), a payer's bank returning a
check (R01, R02, …), and the browser-side hosted fields turning a typed card into an
``hpf_token`` + ``enc_key``.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledgerlink.sandbox.paytrace import codes, settlement
from ledgerlink.sandbox.paytrace.cards import read_card
from ledgerlink.sandbox.paytrace.checks import Checks
from ledgerlink.sandbox.paytrace.gateway import (
    ENCRYPTED_PREFIX,
    Gateway,
    PayTraceError,
    _amount,
    _transaction_id,
    error_response,
    plain,
)

HOSTED_FIELDS_LIFETIME_SECONDS = 900

#: Card-network reason codes the dispute report uses by default.
REASONS = {
    "10.4": "Other Fraud - Card-Absent Environment",
    "13.1": "Merchandise/Services Not Received",
    "13.3": "Not as Described or Defective Merchandise/Services",
    "12.6.1": "Duplicate Processing",
    "4837": "No Cardholder Authorization",
    "4853": "Cardholder Dispute",
}
DISPUTE_COLUMNS = (
    "case_number",
    "transaction_id",
    "dispute_amount",
    "currency",
    "reason_code",
    "reason",
    "received_date",
    "reply_by_date",
    "status",
    "card_type",
    "masked_card_number",
    "transaction_amount",
    "transaction_date",
    "settled_date",
    "batch_number",
    "invoice_id",
    "customer_id",
)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class Admin:
    def __init__(self, gateway: Gateway, checks: Checks) -> None:
        self.gateway = gateway
        self.checks = checks
        self.store = gateway.store
        self.clock = gateway.clock

    def endpoints(self) -> dict[str, Any]:
        return {
            "settle": self.settle,
            "disputes": self.disputes,
            "hpf_token": self.hpf_token,
            "state": self.state,
            "deposits": self.deposits,
            "checks/return": self.return_check,
        }

    async def return_check(self, request: Request) -> Response:
        """``POST {check_transaction_id, return_code}``: the payer's bank returns a check
        sale (R01 insufficient funds, R02 account closed, …). It then shows in the checks
        export as ``status_code: "R"`` with ``return_code``, ``return_reason`` and
        ``returned``. ``GET`` lists the R-codes the sandbox knows."""
        if request.method == "GET":
            return JSONResponse({"return_codes": dict(codes.ACH_RETURN_CODES)})
        try:
            body = await _json(request)
        except ValueError:
            return error_response({codes.E_REQUEST: [codes.ERROR_TEXTS[codes.E_REQUEST]]})
        return_code = str(body.get("return_code") or "").strip().upper()
        if return_code not in codes.ACH_RETURN_CODES:
            known = ", ".join(codes.ACH_RETURN_CODES)
            return error_response({"return_code": [f"Use one of {known}."]})
        try:
            check_id = _transaction_id(body, "check_transaction_id")
            row = self.checks.return_check(check_id, return_code)
        except PayTraceError as exc:
            return error_response(exc.errors)
        return JSONResponse(self.checks.export_row(row))

    async def settle(self, request: Request) -> Response:
        if request.method == "GET":
            pending = self.store.one(
                "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN type = 'REFUND' THEN -amount"
                " ELSE amount END), 0) AS net FROM transactions WHERE status = ?",
                (codes.STATUS_PENDING,),
            )
            assert pending is not None
            return JSONResponse(
                {"pending_count": pending["n"], "pending_net_amount": plain(pending["net"])}
            )
        summary = settlement.settle(self.store, self.gateway.config, self.clock)
        return JSONResponse(
            {
                "settled": summary is not None,
                "batch": None if summary is None else self.gateway.batch_json(summary),
            }
        )

    async def deposits(self, request: Request) -> Response:
        """What reached the bank per settled batch: gross, fees, withheld chargebacks, net.

        Not part of PayTrace's API (fees and withholdings are on the merchant statement);
        it stands for the bank. ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` filters by deposit date.
        """
        try:
            start, end = (
                date.fromisoformat(v) if v else None
                for v in (request.query_params.get("from"), request.query_params.get("to"))
            )
        except ValueError:
            return JSONResponse(
                {"errors": [{"field": "from/to", "message": "write dates as YYYY-MM-DD"}]}, 400
            )
        schedule = self.gateway.config.card_fees
        return JSONResponse(
            {
                "card_fees": schedule,
                "deposit_delay_days": self.gateway.config.deposit_delay_days,
                "deposits": settlement.deposits_json(self.store, self.clock, start, end),
            }
        )

    async def hpf_token(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"error": "POST a test card to mint an hpf_token"}, 405)
        try:
            body = await _json(request)
        except ValueError:
            return error_response({codes.E_REQUEST: [codes.ERROR_TEXTS[codes.E_REQUEST]]})
        facts, errors = read_card(
            body.get("number"),
            body.get("expiration_month"),
            body.get("expiration_year"),
            body.get("csc"),
            today=self.clock.today(),
        )
        if facts is None:
            return error_response(errors)
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
        return JSONResponse(
            {
                "hpf_token": token,
                "enc_key": enc_key,
                "encrypted_number": f"{ENCRYPTED_PREFIX}{token}.{enc_key}",
                "masked_card_number": facts.masked,
                "card_type": facts.card_type,
                "expires_in": HOSTED_FIELDS_LIFETIME_SECONDS,
            }
        )

    async def disputes(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._file_dispute(request)
        rows = self._dispute_rows()
        if request.query_params.get("format") == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=DISPUTE_COLUMNS, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
            return Response(
                out.getvalue(),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="disputes.csv"'},
            )
        return JSONResponse({"disputes": rows})

    async def _file_dispute(self, request: Request) -> Response:
        try:
            body = await _json(request)
        except ValueError:
            return error_response({codes.E_REQUEST: [codes.ERROR_TEXTS[codes.E_REQUEST]]})
        if "case_number" in body:
            return self._decide_dispute(body)
        try:
            transaction_id = _transaction_id(body)
            requested = _amount(body.get("amount"), required=False)
        except PayTraceError as exc:
            return error_response(exc.errors)
        row = self.store.transaction_row(transaction_id)
        if row is None:
            return error_response({codes.E_NOT_FOUND: [codes.ERROR_TEXTS[codes.E_NOT_FOUND]]})
        if row["type"] not in ("SALE", "AUTHORIZATION") or row["status"] != codes.STATUS_SETTLED:
            return error_response(
                {"dispute": ["Only settled sales (or captured authorizations) can be disputed."]}
            )
        amount = requested if requested is not None else row["amount"]
        if amount > row["amount"]:
            return error_response(
                {"dispute": ["The dispute amount exceeds the transaction amount."]}
            )
        reason_code = str(body.get("reason_code") or "10.4")
        reason = str(body.get("reason") or REASONS.get(reason_code, "Chargeback"))
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO disputes (transaction_id, amount, reason_code, reason, received_at)"
                " VALUES (?,?,?,?,?)",
                (transaction_id, amount, reason_code, reason, self.clock.now()),
            )
            dispute_id = int(cursor.lastrowid or 0)
        created = next(d for d in self._dispute_rows() if d["case_number"] == _case(dispute_id))
        return JSONResponse(created, 201)

    def _decide_dispute(self, body: dict[str, Any]) -> Response:
        """``{"case_number": "CB…", "status": "won"|"lost"}``: the card network decided."""
        status = str(body.get("status") or "")
        if status not in ("open", "won", "lost"):
            return error_response({"status": ["Use open, won or lost."]})
        case = str(body.get("case_number") or "")
        found = next((d for d in self._dispute_rows() if d["case_number"] == case), None)
        if found is None:
            return error_response({"case_number": [f"There is no dispute {case}."]})
        with self.store.transaction() as db:
            db.execute(
                "UPDATE disputes SET status = ? WHERE id = ?", (status, int(case.lstrip("CB")))
            )
        return JSONResponse({**found, "status": status})

    def _dispute_rows(self) -> list[dict[str, Any]]:
        rows = self.store.all(
            "SELECT d.*, t.card_type, t.masked, t.amount AS transaction_amount, t.created_at,"
            " t.settled_at, t.batch_number, t.invoice_id, t.customer_id FROM disputes d"
            " JOIN transactions t ON t.id = d.transaction_id ORDER BY d.id"
        )
        out = []
        for r in rows:
            received = self.clock.local(r["received_at"]).date()
            out.append(
                {
                    "case_number": _case(r["id"]),
                    "transaction_id": r["transaction_id"],
                    "dispute_amount": plain(r["amount"]),
                    "currency": "USD",
                    "reason_code": r["reason_code"],
                    "reason": r["reason"],
                    "received_date": received.strftime("%m/%d/%Y"),
                    "reply_by_date": self.clock.local(r["received_at"] + 20 * 86_400)
                    .date()
                    .strftime("%m/%d/%Y"),
                    "status": r["status"],
                    "card_type": r["card_type"],
                    "masked_card_number": r["masked"],
                    "transaction_amount": plain(r["transaction_amount"]),
                    "transaction_date": self.clock.show(r["created_at"]),
                    "settled_date": self.clock.show(r["settled_at"]),
                    "batch_number": r["batch_number"],
                    "invoice_id": r["invoice_id"],
                    "customer_id": r["customer_id"],
                }
            )
        return out

    def _check_counts(self) -> dict[str, dict[str, int]]:
        """Checks by type and status (Held, Pending settlement, Settled, Returned, …)."""
        counts: dict[str, dict[str, int]] = {}
        for r in self.store.all(
            "SELECT type, status, COUNT(*) AS n FROM checks GROUP BY type, status"
        ):
            counts.setdefault(r["type"], {})[codes.STATUS_TEXTS[r["status"]]] = r["n"]
        return counts

    async def state(self, request: Request) -> Response:
        transactions: dict[str, dict[str, int]] = {}
        for r in self.store.all(
            "SELECT type, status, COUNT(*) AS n FROM transactions GROUP BY type, status"
        ):
            transactions.setdefault(r["type"], {})[codes.STATUS_TEXTS[r["status"]]] = r["n"]
        refunds = self.store.one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM transactions"
            " WHERE type = 'REFUND' AND status != ?",
            (codes.STATUS_VOIDED,),
        )
        assert refunds is not None

        def count(sql: str) -> int:
            row = self.store.one(sql)
            return int(row["n"]) if row else 0

        return JSONResponse(
            {
                "transactions": transactions,
                "transaction_count": count("SELECT COUNT(*) AS n FROM transactions"),
                "refunds": {"count": refunds["n"], "amount": plain(refunds["total"])},
                "customers": count("SELECT COUNT(*) AS n FROM customers"),
                "batches": count("SELECT COUNT(*) AS n FROM batches"),
                "disputes": count("SELECT COUNT(*) AS n FROM disputes"),
                "checks": self._check_counts(),
                "silent_post": {
                    "url_configured": bool(self.gateway.silent_post.url),
                    "delivered": self.gateway.silent_post.delivered,
                    "failed": self.gateway.silent_post.failed,
                },
            }
        )


def _case(dispute_id: int) -> str:
    return f"CB{dispute_id:07d}"
