"""The v3.1 REST surface: auth, business scoping, rate limits, paging, filters, writes.

Two routes serve every collection (``/v3.1/{collection}`` and ``/v3.1/{collection}/{id}``)
and dispatch on a table, so the rules that apply to all of them (bearer token,
``X-Business``, the per-business rate limit, JSON only, the paging envelope, error arrays)
live in one place.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledgerlink.sandbox.sbc import values
from ledgerlink.sandbox.sbc.books import CONTACT_TYPES, Books
from ledgerlink.sandbox.sbc.config import SbcConfig
from ledgerlink.sandbox.sbc.errors import Problem, SbcError, invalid, not_found
from ledgerlink.sandbox.sbc.oauth import OAuthServer
from ledgerlink.sandbox.sbc.render import Renderer
from ledgerlink.sandbox.sbc.store import Record

API_PREFIX = "/v3.1"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200

Filter = Callable[[Record, str], bool]


@dataclass(frozen=True)
class Collection:
    """How one collection is read and written."""

    name: str
    resource: str  # the body key of writes: {"contact": {...}}
    shared: bool = False  # account-wide reference data (currencies, payment methods)
    writable: tuple[str, ...] = ()  # of POST, PUT, DELETE
    filters: dict[str, Filter] | None = None
    search: tuple[str, ...] = ()
    #: A fixed list SBC defines for every business (contact types): id → displayed_as.
    fixed: dict[str, str] | None = None


def _eq(field: str) -> Filter:
    return lambda record, value: str(record.get(field) or "") == value


def _contains_type(record: Record, value: str) -> bool:
    return value in record.get("contact_type_ids", ())


def _email(record: Record, value: str) -> bool:
    person = record.get("main_contact_person") or {}
    return value.lower() in (
        str(record.get("email") or "").lower(),
        str(person.get("email") or "").lower(),
    )


def _from_date(record: Record, value: str) -> bool:
    return str(record.get("date") or "") >= value


def _to_date(record: Record, value: str) -> bool:
    return str(record.get("date") or "") <= value


_DATES = {"from_date": _from_date, "to_date": _to_date}

COLLECTIONS = {
    c.name: c
    for c in (
        Collection("businesses", "business", shared=True),
        Collection(
            "contacts",
            "contact",
            writable=("POST", "PUT", "DELETE"),
            filters={"contact_type_id": _contains_type, "email": _email},
            search=("name", "reference"),
        ),
        Collection(
            "sales_invoices",
            "sales_invoice",
            writable=("POST", "PUT", "DELETE"),
            filters={"contact_id": _eq("contact_id"), "status_id": _eq("status_id"), **_DATES},
            search=("invoice_number", "reference"),
        ),
        Collection(
            "sales_credit_notes",
            "sales_credit_note",
            writable=("POST", "DELETE"),
            filters={"contact_id": _eq("contact_id"), "status_id": _eq("status_id"), **_DATES},
            search=("credit_note_number", "reference"),
        ),
        Collection(
            "contact_payments",
            "contact_payment",
            writable=("POST", "DELETE"),
            filters={
                "contact_id": _eq("contact_id"),
                "transaction_type_id": _eq("transaction_type_id"),
                "bank_account_id": _eq("bank_account_id"),
                **_DATES,
            },
            search=("reference",),
        ),
        Collection(
            "contact_allocations",
            "contact_allocation",
            writable=("POST", "DELETE"),
            filters={"contact_id": _eq("contact_id"), **_DATES},
        ),
        Collection(
            "transactions",
            "transaction",
            filters={
                "contact_id": _eq("contact_id"),
                "transaction_type_id": _eq("transaction_type_id"),
                **_DATES,
            },
            search=("reference",),
        ),
        Collection(
            "ledger_accounts",
            "ledger_account",
            filters={"ledger_account_type_id": _eq("ledger_account_type_id")},
            search=("name", "nominal_code"),
        ),
        Collection("bank_accounts", "bank_account", search=("name",)),
        Collection("tax_rates", "tax_rate", search=("name",)),
        Collection("payment_methods", "payment_method", shared=True),
        Collection("currencies", "currency", shared=True),
        Collection("countries", "country", shared=True),
        Collection("contact_types", "contact_type", shared=True, fixed=CONTACT_TYPES),
    )
}


class RateLimiter:
    """A sliding one-minute window and an optional daily cap, per business."""

    def __init__(self, per_minute: int, per_day: int, retry_after: bool) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self.retry_after = retry_after
        self._recent: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[date, int]] = {}

    def admit(self, business: str) -> None:
        now = time.monotonic()
        if self.per_day:
            today = datetime.now(UTC).date()
            day, used = self._daily.get(business, (today, 0))
            used = used if day == today else 0
            if used >= self.per_day:
                raise self._refuse(
                    f"The daily request limit ({self.per_day}) for this business is used up; "
                    "it resets at midnight UTC",
                    None,
                )
            self._daily[business] = (today, used + 1)
        if not self.per_minute:
            return
        window = self._recent.setdefault(business, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            wait = max(1, math.ceil(window[0] + 60 - now))
            raise self._refuse(
                f"Too many requests: at most {self.per_minute} per minute per business", wait
            )
        window.append(now)

    def _refuse(self, message: str, wait: int | None) -> SbcError:
        headers = {"Retry-After": str(wait)} if wait is not None and self.retry_after else {}
        return SbcError(429, [Problem(message, "", "TooManyRequests")], headers)

    def reset(self) -> None:
        self._recent.clear()
        self._daily.clear()


class Api:
    def __init__(self, books: Books, oauth: OAuthServer, config: SbcConfig) -> None:
        self.books = books
        self.store = books.store
        self.oauth = oauth
        self._selections: dict[tuple[Any, ...], tuple[int, list[Record]]] = {}
        self.limiter = RateLimiter(
            config.rate_limit_per_minute, config.daily_request_cap, config.rate_limit_retry_after
        )

    def routes(self) -> list[Route]:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return [
            Route(f"{API_PREFIX}/financial_settings", self.financial_settings, methods=methods),
            Route(f"{API_PREFIX}/{{collection}}", self.collection, methods=methods),
            Route(f"{API_PREFIX}/{{collection}}/{{record_id}}", self.record, methods=methods),
        ]

    # -- the rules every call goes through ------------------------------------------------

    async def _enter(self, request: Request) -> str:
        """Authenticate, pick the business, count the call; the business id."""
        self.oauth.check_bearer(request.headers.get("authorization"))
        wanted = request.headers.get("x-business")
        if wanted:
            if self.books.business(wanted) is None:
                raise SbcError(
                    403,
                    [
                        Problem(
                            f"The user has no access to business {wanted}",
                            "X-Business",
                            "BusinessNotFound",
                        )
                    ],
                )
            business = wanted
        else:
            business = self.books.lead_business()["id"]
        self.limiter.admit(business)
        return business

    async def _body(self, request: Request, resource: str) -> dict[str, Any]:
        if "application/json" not in request.headers.get("content-type", ""):
            raise SbcError(
                415,
                [Problem("Send JSON (Content-Type: application/json)", "", "UnsupportedMediaType")],
            )
        try:
            parsed = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            raise SbcError(
                400, [Problem("The body is not valid JSON", "", "InvalidJSON")]
            ) from None
        inner = parsed.get(resource) if isinstance(parsed, dict) else None
        if not isinstance(inner, dict):
            raise invalid(resource, f'is missing: wrap the fields as {{"{resource}": {{...}}}}')
        return inner

    @staticmethod
    def _method_not_allowed(allowed: list[str]) -> SbcError:
        return SbcError(
            405,
            [Problem(f"Method not allowed here; use {', '.join(allowed)}", "", "MethodNotAllowed")],
            {"Allow": ", ".join(allowed)},
        )

    # -- handlers ---------------------------------------------------------------------------

    async def financial_settings(self, request: Request) -> Response:
        try:
            business = await self._enter(request)
            if request.method == "PUT":
                self.books.update_settings(
                    business, await self._body(request, "financial_settings")
                )
            elif request.method != "GET":
                raise self._method_not_allowed(["GET", "PUT"])
            return JSONResponse(Renderer(self.books, business).financial_settings())
        except SbcError as exc:
            return exc.response()

    async def collection(self, request: Request) -> Response:
        try:
            collection = self._collection(request)
            business = await self._enter(request)
            if request.method == "GET":
                return self._list(request, collection, business)
            if request.method == "POST" and "POST" in collection.writable:
                body = await self._body(request, collection.resource)
                return self._create(collection, business, body)
            raise self._method_not_allowed(
                ["GET", *(m for m in collection.writable if m == "POST")]
            )
        except SbcError as exc:
            return exc.response()

    async def record(self, request: Request) -> Response:
        try:
            collection = self._collection(request)
            business = await self._enter(request)
            record_id = request.path_params["record_id"]
            allowed = ["GET", *(m for m in collection.writable if m in ("PUT", "DELETE"))]
            if request.method not in allowed:
                raise self._method_not_allowed(allowed)
            if request.method == "GET":
                scope = "-" if collection.shared else business
                record = (
                    _fixed(collection).get(record_id)
                    if collection.fixed
                    else self.store.get(scope, collection.name, record_id)
                )
                if (
                    record is None
                    or record.get("_deleted")
                    or (collection.name == "businesses" and record_id not in self._business_ids())
                ):
                    raise not_found(collection.resource.replace("_", " "))
                return JSONResponse(Renderer(self.books, business).full(collection.name, record))
            if request.method == "PUT":
                body = await self._body(request, collection.resource)
                updated = self._update(collection, business, record_id, body)
                return JSONResponse(Renderer(self.books, business).full(collection.name, updated))
            void_reason = request.query_params.get("void_reason", "")
            if not void_reason and request.headers.get("content-type", "").startswith(
                "application/json"
            ):
                raw = await request.body()
                if raw:
                    try:
                        void_reason = str(json.loads(raw).get("void_reason") or "")
                    except (ValueError, AttributeError):
                        void_reason = ""
            voided = self._delete(collection, business, record_id, void_reason)
            if voided is None:
                return Response(status_code=204)
            # Voiding a sales artefact answers 200 with it, void (published schema).
            return JSONResponse(Renderer(self.books, business).full(collection.name, voided))
        except SbcError as exc:
            return exc.response()

    def _collection(self, request: Request) -> Collection:
        name = request.path_params["collection"]
        found = COLLECTIONS.get(name)
        if found is None:
            raise SbcError(404, [Problem(f"No route matches /{name}", "", "RecordNotFound")])
        return found

    def _business_ids(self) -> list[str]:
        return [b["id"] for b in self.books.businesses()]

    # -- reads ------------------------------------------------------------------------------

    def _list(self, request: Request, collection: Collection, business: str) -> Response:
        query = request.query_params
        per_page = _int(query.get("items_per_page"), "items_per_page", DEFAULT_PAGE_SIZE)
        page = _int(query.get("page"), "page", 1)
        per_page = min(per_page, MAX_PAGE_SIZE)
        records = self._select(collection, business, query)
        total = len(records)
        chunk = records[(page - 1) * per_page : page * per_page]
        attributes_param = query.get("attributes")
        attributes = None
        if attributes_param:
            attributes = {a.strip() for a in attributes_param.split(",") if a.strip()}
        renderer = Renderer(self.books, business)
        items = [renderer.item(collection.name, r, attributes) for r in chunk]
        base = {k: v for k, v in query.multi_items() if k not in ("page", "items_per_page")}

        def link(to: int) -> str:
            params = {"page": to, "items_per_page": per_page, **base}
            return f"/{collection.name}?{urlencode(params)}"

        # /businesses spells it $items_per_page (Sage's guide, Best Practices page).
        per_page_key = "$items_per_page" if collection.name == "businesses" else "$itemsPerPage"
        return JSONResponse(
            {
                "$total": total,
                "$page": page,
                "$next": link(page + 1) if page * per_page < total else None,
                "$back": link(page - 1) if page > 1 else None,
                per_page_key: per_page,
                "$items": items,
            }
        )

    def _select(self, collection: Collection, business: str, query: Any) -> list[Record]:
        """The filtered, sorted records; cached while nothing changes, so paging through a
        large collection costs one filtering pass, not one per page."""
        key = (
            collection.name,
            business,
            tuple(
                sorted(
                    (k, v)
                    for k, v in query.multi_items()
                    if k not in ("page", "items_per_page", "attributes")
                )
            ),
        )
        cached = self._selections.get(key)
        if cached is not None and cached[0] == self.store.version:
            return cached[1]
        selected = self._filter(collection, business, query)
        if len(self._selections) > 64:
            self._selections.clear()
        self._selections[key] = (self.store.version, selected)
        return selected

    def _filter(self, collection: Collection, business: str, query: Any) -> list[Record]:
        scope = "-" if collection.shared else business
        if collection.fixed:
            records = list(_fixed(collection).values())
        else:
            records = self.store.all(scope, collection.name)
        deleted_since = query.get("deleted_since")
        if deleted_since:
            moment = values.since(deleted_since, "deleted_since").timestamp()
            records = [r for r in records if r.get("_deleted") and r["_deleted"] >= moment]
        else:
            records = [r for r in records if not r.get("_deleted")]
        changed = query.get("updated_or_created_since")
        if changed:
            moment = values.since(changed, "updated_or_created_since").timestamp()
            records = [r for r in records if r.get("_updated", 0) >= moment]
        for name, test in (collection.filters or {}).items():
            wanted = query.get(name)
            if wanted:
                if name in _DATES:
                    values.iso_date(wanted, name)
                records = [r for r in records if test(r, wanted)]
        search = (query.get("search") or "").strip().lower()
        if search and collection.search:
            records = [
                r
                for r in records
                if any(search in str(r.get(field) or "").lower() for field in collection.search)
            ]
        return _sorted(records, query.get("sort"))

    # -- writes ------------------------------------------------------------------------------

    def _create(self, collection: Collection, business: str, body: dict[str, Any]) -> Response:
        replayed = False
        match collection.name:
            case "contacts":
                record, replayed = self.books.create_contact(business, body)
            case "sales_invoices":
                record, replayed = self.books.create_invoice(business, body)
            case "sales_credit_notes":
                record, replayed = self.books.create_credit_note(business, body)
            case "contact_payments":
                record, replayed = self.books.create_payment(business, body)
            case _:
                record = self.books.create_allocation(business, body)
        rendered = Renderer(self.books, business).full(collection.name, record)
        return JSONResponse(rendered, 200 if replayed else 201)

    def _update(
        self, collection: Collection, business: str, record_id: str, body: dict[str, Any]
    ) -> Record:
        if collection.name == "contacts":
            return self.books.update_contact(business, record_id, body)
        return self.books.update_invoice(business, record_id, body)

    def _delete(
        self, collection: Collection, business: str, record_id: str, void_reason: str
    ) -> Record | None:
        """Delete (``None``: 204) or void (the voided record: 200) as SBC does."""
        match collection.name:
            case "contacts":
                self.books.delete_contact(business, record_id)
            case "sales_invoices":
                return self.books.void_invoice(business, record_id, void_reason)
            case "sales_credit_notes":
                return self.books.void_credit_note(business, record_id, void_reason)
            case "contact_payments":
                self.books.delete_payment(business, record_id)
            case "contact_allocations":
                self.books.delete_allocation(business, record_id)
        return None


def _fixed(collection: Collection) -> dict[str, Record]:
    return {
        key: {"id": key, "displayed_as": shown} for key, shown in (collection.fixed or {}).items()
    }


_SORTS = {"created_at": "_created", "updated_at": "_updated", "date": "date", "name": "name"}


def _sorted(records: list[Record], sort: str | None) -> list[Record]:
    if not sort:
        return records
    field, _, direction = sort.partition(":")
    key = _SORTS.get(field.strip())
    if key is None:
        raise invalid("sort", f"is invalid (sort by {', '.join(_SORTS)}, e.g. created_at:asc)")
    if direction not in ("", "asc", "desc"):
        raise invalid("sort", "direction must be asc or desc")
    return sorted(
        records, key=lambda r: (r.get(key) is None, r.get(key) or 0), reverse=direction == "desc"
    )


def _int(value: str | None, source: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(source, "must be a whole number") from None
    if number < 1:
        raise invalid(source, "must be 1 or more")
    return number
