"""Registers the ``sage500`` connection kind (Sage 500 ERP)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.errors import Misconfigured
from ledgerlink.connectors.sage500.card_posting import CARD_POSTING
from ledgerlink.connectors.sage500.form import form_settings
from ledgerlink.connectors.sage500.previews import recent_sage500_customers
from ledgerlink.connectors.sage500.settings import Sage500Settings

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime
    from ledgerlink.store.models import Connection


def _ledger(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> Ledger:
    # Imported on demand: the adapter (and its database driver) is an optional part of an
    # installation; a missing one is a set-up message, not an import error at start-up.
    try:
        sage500 = importlib.import_module("ledgerlink.connectors.sage500.ledger")
    except ImportError:
        raise Misconfigured(
            "sage500", "The Sage 500 connector is not part of this installation"
        ) from None
    ledger: Ledger = sage500.sage500_ledger(runtime, connection)
    return ledger


SAGE500 = registry.register(
    registry.ConnectorKind(
        kind="sage500",
        label="Sage 500",
        role="ledger",
        settings_model=Sage500Settings,
        secret_names=frozenset({"database_url"}),
        specs={
            registry.MEMBER_TO_CUSTOMER: "member_to_sage500_customer",
            registry.CUSTOMER_TO_MEMBER: "sage500_customer_to_member",
            registry.CARD_PROFILE_TO_CUSTOMER: "paytrace_customer_to_sage500_customer",
            registry.CUSTOMER_TO_CARD_PROFILE: "sage500_customer_to_paytrace_customer",
            registry.PAYMENT_TO_RECEIPT: "paytrace_transaction_to_sage500_cash_receipt",
        },
        customer_noun="Sage 500 customer",
        previews={"sage500.customer": recent_sage500_customers},
        customer_record=registry.CustomerRecord(
            fields={
                "name": "CustName",
                "email": "EMailAddr",
                "phone": "Phone",
                "address_line1": "AddrLine1",
                "address_line2": "AddrLine2",
                "city": "City",
                "region": "StateID",
                "postal_code": "PostalCode",
                "country": "CountryID",
            },
            number="CustID",
            currency="CurrID",
        ),
        ledger=_ledger,
        settings_template="sage500_settings.html",
        template_dir=Path(__file__).parent / "templates",
        position=20,
        card_posting=CARD_POSTING,
        form_settings=form_settings,
    )
)
