"""The admin portal: server-rendered pages (Jinja2 + HTMX)."""

from fastapi import APIRouter

from ledgerlink.connectors.sbc import consent as sbc_consent
from ledgerlink.web.portal import (
    audit_pages,
    dashboard,
    integration_pages,
    mapping_pages,
    member_pages,
    payment_pages,
    session_pages,
    settings_pages,
    sync_pages,
)

router = APIRouter(include_in_schema=False)
router.include_router(session_pages.router)
router.include_router(dashboard.router)
router.include_router(audit_pages.router)
router.include_router(settings_pages.router)
router.include_router(mapping_pages.router)
router.include_router(member_pages.router)
router.include_router(sbc_consent.router)
router.include_router(integration_pages.router)
router.include_router(sync_pages.router)
router.include_router(payment_pages.router)
