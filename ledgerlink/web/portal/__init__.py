"""The admin portal: server-rendered pages (Jinja2 + HTMX)."""

from fastapi import APIRouter

from ledgerlink.connectors import registry
from ledgerlink.web.portal import (
    audit_pages,
    card_capture_pages,
    dashboard,
    integration_pages,
    invoice_request_pages,
    mapping_pages,
    member_pages,
    pay_link_pages,
    payment_pages,
    realtime_inbound_pages,
    recon_pages,
    session_pages,
    settings_pages,
    sync_pages,
    tour_pages,
)

router = APIRouter(include_in_schema=False)
router.include_router(session_pages.router)
router.include_router(dashboard.router)
router.include_router(audit_pages.router)
router.include_router(settings_pages.router)
router.include_router(mapping_pages.router)
router.include_router(member_pages.router)
router.include_router(invoice_request_pages.router)
for connector in registry.descriptors():  # a connector's own pages (SBC's consent flow)
    if connector.routes is not None:
        router.include_router(connector.routes())
router.include_router(integration_pages.router)
router.include_router(realtime_inbound_pages.router)
router.include_router(sync_pages.router)
router.include_router(payment_pages.router)
router.include_router(pay_link_pages.router)
router.include_router(card_capture_pages.router)
router.include_router(recon_pages.router)
router.include_router(tour_pages.router)
