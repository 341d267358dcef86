"""The connection page's polling settings: how often a ledger is polled for changed
customers, and whether at all. The budget split is shown by the connection page itself
(``realtime_inbound_connection.html``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.blocking import in_thread
from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.sync import realtime_inbound_jobs as polling
from ledgerlink.sync.poll_budget import IntervalInvalid
from ledgerlink.sync.starting import SyncError
from ledgerlink.web.deps import Admin, RuntimeDep
from ledgerlink.web.portal import integration_pages
from ledgerlink.web.portal.rendering import render_error

router = APIRouter()


@router.post("/connections/{connection_id}/polling")
async def save_polling(
    request: Request, connection_id: int, principal: Admin, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    typed = str(form.get("poll_interval_seconds") or "")
    enabled = str(form.get("polling") or "") == "on"
    try:
        await in_thread(_save, runtime, principal, connection_id, typed, enabled)
    except IntervalInvalid as exc:
        connection = await in_thread(integration_pages._load, runtime, connection_id)
        if connection is None:
            return render_error(request, 404, "There is no such connection.")
        return await integration_pages._detail(
            request,
            runtime,
            connection,
            status_code=422,
            polling_error=str(exc),
            polling_typed=typed,
        )
    except SyncError as exc:
        return render_error(request, 404, str(exc))
    return RedirectResponse(f"/connections/{connection_id}#polling", status_code=303)


def _save(
    runtime: Runtime, principal: Principal, connection_id: int, typed: str, enabled: bool
) -> None:
    with runtime.db.transaction() as session:
        polling.save_polling(
            session,
            runtime.jobs,
            principal,
            connection_id,
            interval_typed=typed,
            enabled=enabled,
        )
