"""Registers the ``sbc`` connection kind (Sage Business Cloud Accounting)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from ledgerlink.connectors import registry
from ledgerlink.connectors.sbc import form
from ledgerlink.connectors.sbc.card_posting import CARD_POSTING
from ledgerlink.connectors.sbc.previews import recent_sbc_contacts
from ledgerlink.connectors.sbc.settings import SbcSettings
from ledgerlink.connectors.sbc.wiring import sbc_ledger


def _consent_routes() -> APIRouter:
    # Imported when the portal mounts them: the routes need the web layer, which itself
    # asks this registry for the connector kinds (a real cycle at import time).
    from ledgerlink.connectors.sbc.consent import router

    return router


SBC = registry.register(
    registry.ConnectorKind(
        kind="sbc",
        label="Sage Business Cloud",
        role="ledger",
        settings_model=SbcSettings,
        secret_names=frozenset({"client_secret", "refresh_token"}),
        internal_secrets=frozenset({"access_token"}),
        specs={
            registry.MEMBER_TO_CUSTOMER: "member_to_sbc_contact",
            registry.CUSTOMER_TO_MEMBER: "sbc_contact_to_member",
            registry.CARD_PROFILE_TO_CUSTOMER: "paytrace_customer_to_sbc_contact",
            registry.CUSTOMER_TO_CARD_PROFILE: "sbc_contact_to_paytrace_customer",
            registry.PAYMENT_TO_RECEIPT: "paytrace_transaction_to_sbc_contact_payment",
        },
        customer_noun="Sage Business Cloud contact",
        previews={"sbc.contact": recent_sbc_contacts},
        customer_record=registry.CustomerRecord(
            fields={
                "name": "name",
                "email": "email",
                "phone": "main_contact_person.telephone",
                "address_line1": "main_address.address_line_1",
                "address_line2": "main_address.address_line_2",
                "city": "main_address.city",
                "region": "main_address.region",
                "postal_code": "main_address.postal_code",
                "country": "main_address.country_id",
            },
            number="reference",
            currency="currency_id",
        ),
        ledger=sbc_ledger,
        settings_template="sbc_settings.html",
        template_dir=Path(__file__).parent / "templates",
        card_posting=CARD_POSTING,
        interactive_auth=True,
        routes=_consent_routes,
        form_fields=form.FORM_FIELDS,
        form_settings=form.form_settings,
        page_context=form.page_context,
        position=10,
    )
)
