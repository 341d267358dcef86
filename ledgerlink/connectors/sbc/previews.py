"""Recent Sage Business Cloud contacts, as mapping previews run specs over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledgerlink.connectors.previews import latest_connection, read_live
from ledgerlink.connectors.sbc import shapes
from ledgerlink.connectors.sbc.ledger import SbcLedger
from ledgerlink.mapping.preview import PreviewSource, SampleSource
from ledgerlink.store.mapping_repo import PreviewUnavailable

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime


def recent_sbc_contacts(runtime: Runtime, limit: int) -> PreviewSource:
    connection = latest_connection(runtime, "sbc")

    async def read(ledger: SbcLedger) -> list[dict[str, Any]]:
        query = {"sort": "updated_at:desc", "items_per_page": min(limit, 200), "attributes": "all"}
        body = await ledger._get("/contacts", query, what="contacts")  # one page is enough
        return [shapes.as_member_sees_it(item) for item in body.get("$items") or []]

    items = read_live(runtime, connection, read)
    if not items:
        raise PreviewUnavailable(f"{connection.name} has no contacts yet")
    return SampleSource(
        items[:limit],
        f"the {len(items[:limit])} most recently changed contacts of {connection.name}",
    )
