"""The Sage Business Cloud settings form: what it offers is read live from Sage (the
businesses, financial years, payment methods, bank and ledger accounts), so
administrators pick from what exists instead of typing ids."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.http import retry_budget
from ledgerlink.connectors.sbc.wiring import sbc_ledger
from ledgerlink.connectors.settings import MEMBER_PAYMENT_METHODS
from ledgerlink.domain.periods import financial_years
from ledgerlink.store.models import Connection

if TYPE_CHECKING:
    from ledgerlink.connectors.sbc.ledger import SbcLedger
    from ledgerlink.runtime import Runtime

#: The settings the form edits as plain text fields.
FORM_FIELDS = (
    "client_id",
    "business_id",
    "receipt_bank_account_id",
    "membership_fee_ledger_account_id",
    "api_base_url",
    "authorize_url",
    "token_url",
)


@dataclass
class SbcChoices:
    """What the SBC page offers, read live from Sage (empty when not connected yet)."""

    businesses: list[dict[str, str]] = field(default_factory=list)
    years: list[dict[str, str]] = field(default_factory=list)
    lockdown: date | None = None
    payment_methods: list[dict[str, Any]] = field(default_factory=list)
    bank_accounts: list[dict[str, Any]] = field(default_factory=list)
    ledger_accounts: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


async def sbc_choices(runtime: Runtime, connection: Connection) -> SbcChoices:
    choices = SbcChoices()
    if connection.auth_status != "connected":
        return choices
    try:
        ledger = sbc_ledger(runtime, connection)
    except UpstreamError as exc:
        choices.problem = exc.message
        return choices
    seconds = runtime.settings.connection_test_seconds
    try:
        # The page waits for this: bounded like a connection test, so a hung Sage gives
        # the page (with the stored settings, nothing lost) within the deadline.
        async with asyncio.timeout(seconds):
            with retry_budget(1):
                await _read_choices(ledger, choices)
    except TimeoutError:
        choices.problem = (
            f"Sage did not answer within {seconds:g} s, so the choices read from Sage are "
            "not shown; the stored settings are kept. Reload the page once Sage answers."
        )
    except UpstreamError as exc:
        choices.problem = exc.message
    finally:
        await ledger.aclose()
    if choices.problem:
        # Half a payment-method table would save half a mapping: all of it, or none.
        choices.payment_methods, choices.bank_accounts, choices.ledger_accounts = [], [], []
    return choices


async def _read_choices(ledger: SbcLedger, choices: SbcChoices) -> None:
    choices.businesses = await ledger.businesses()
    settings = await ledger._get("/financial_settings", what="financial settings")
    year_end = settings.get("year_end_date")
    start = settings.get("accounts_start_date")
    if year_end:
        years = financial_years(
            date.fromisoformat(str(year_end)[:10]),
            date.fromisoformat(str(start)[:10]) if start else None,
        )
        choices.years = [{"key": y.key, "label": y.label} for y in years]
    lockdown = settings.get("year_end_lockdown_date")
    choices.lockdown = date.fromisoformat(str(lockdown)[:10]) if lockdown else None
    choices.payment_methods = await ledger.lookup("payment_methods")
    choices.bank_accounts = await ledger.lookup("bank_accounts")
    choices.ledger_accounts = await ledger.lookup("ledger_accounts")


async def page_context(runtime: Runtime, connection: Connection) -> dict[str, Any]:
    return {
        "choices": await sbc_choices(runtime, connection),
        "member_methods": MEMBER_PAYMENT_METHODS,
    }


def form_settings(
    text: Mapping[str, str], values: Callable[[str], list[str]], settings: dict[str, Any]
) -> None:
    """The ticked financial years and the payment-method table.

    The table is on the form only when Sage's payment methods could be read: without it
    (Sage unreachable) the stored mapping is kept, never replaced by an empty one."""
    settings["accounting_periods"] = values("accounting_periods")
    if not any(f"pm_{method}_method" in text for method in MEMBER_PAYMENT_METHODS):
        return
    methods = {}
    for method in MEMBER_PAYMENT_METHODS:
        chosen = text.get(f"pm_{method}_method")
        if chosen:
            methods[method] = {
                "payment_method_id": chosen,
                "bank_account_id": text.get(f"pm_{method}_bank") or None,
            }
    settings["payment_methods"] = methods
