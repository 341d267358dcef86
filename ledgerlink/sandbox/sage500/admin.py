"""The Sage 500 simulator's admin endpoint (it has no API of its own: Sage 500 has none).

* ``GET/PUT/DELETE /_sandbox/faults``: lock timeouts and import errors of the processor.
* ``GET /_sandbox/state``: row counts, open invoices, staging rows by status.
* ``POST /_sandbox/import``: run one import pass now (and the flat files), say what it did.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledgerlink.connectors.sage500.tables import (
    StgCashRcpt,
    StgCustomer,
    tarCustomer,
    tarCustPmt,
    tarInvoice,
)
from ledgerlink.sandbox.faults import FaultInjector, admin_routes
from ledgerlink.sandbox.sage500.config import Sage500Config
from ledgerlink.sandbox.sage500.processor import ImportProcessor

STATUS = {0: "pending", 1: "posted", 2: "failed"}


def state(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        staging = {}
        for name, table in (("cash_receipts", StgCashRcpt), ("customers", StgCustomer)):
            counts: dict[int, int] = {
                int(status): int(count)
                for status, count in conn.execute(
                    select(table.c.ProcessStatus, func.count()).group_by(table.c.ProcessStatus)
                )
            }
            staging[name] = {word: int(counts.get(code, 0)) for code, word in STATUS.items()}
        return {
            "customers": conn.scalar(select(func.count()).select_from(tarCustomer)),
            "invoices": conn.scalar(select(func.count()).select_from(tarInvoice)),
            "open_invoices": conn.scalar(
                select(func.count()).select_from(tarInvoice).where(tarInvoice.c.Balance != 0)
            ),
            "payments": conn.scalar(select(func.count()).select_from(tarCustPmt)),
            "staging": staging,
        }


def create_admin_app(
    engine: Engine,
    config: Sage500Config,
    processor: ImportProcessor,
    faults: FaultInjector,
) -> Starlette:
    async def state_endpoint(request: Request) -> Response:
        return JSONResponse({"company_id": config.company_id, **state(engine)})

    async def run_import(request: Request) -> Response:
        summary = processor.run_once()
        files = processor.process_files_once()
        return JSONResponse(
            {
                "posted": summary.posted,
                "failed": summary.failed,
                "retried": summary.retried,
                "errors": summary.errors,
                "result_files": files,
            }
        )

    return Starlette(
        routes=admin_routes(faults, extra={"state": state_endpoint, "import": run_import})
    )
