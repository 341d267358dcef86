"""The REST API, version 1. Authenticated by bearer API token (or the portal session with
an ``x-csrftoken`` header); errors are RFC 9457 problem documents, and the OpenAPI
description lists every status and media type an operation answers with."""

from fastapi import APIRouter

from ledgerlink.web.api import (
    audit_api,
    card_capture_api,
    connections_api,
    invoice_requests_api,
    jobs_api,
    mappings_api,
    members_api,
    pay_links_api,
    payments_api,
    recon_api,
    sync_api,
    users_api,
)
from ledgerlink.web.problems import COMMON_PROBLEMS

router = APIRouter(responses=COMMON_PROBLEMS)
router.include_router(users_api.router)
router.include_router(connections_api.router)
router.include_router(audit_api.router)
router.include_router(jobs_api.router)
router.include_router(mappings_api.router)
router.include_router(members_api.router)
router.include_router(invoice_requests_api.router)
router.include_router(sync_api.router)
router.include_router(payments_api.router)
router.include_router(pay_links_api.router)
router.include_router(card_capture_api.router)
router.include_router(recon_api.router)
