"""Link many members to their ledger customers through the product's own create-and-link.

Tests that need a linked world (members linked to the seeded SBC contacts that carry
their member number as reference) used to call ``create_and_link`` once per member with
no customer index, so each call read every customer of the business again: 450 members
cost 450 full reads of the ledger (about 1,350 requests). Here the index is read once and
handed to every call, as the bulk create-and-link job does; each member ends exactly as
before (linked to the customer with its number as reference, or a new one created).
"""

from __future__ import annotations

from collections.abc import Iterable

from ledgerlink.connectors.base import Ledger
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import linking
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository

ME = cli_principal()


async def link_members(
    db: Database, ledger: Ledger, connection_id: int, numbers: Iterable[str]
) -> list[linking.LinkOutcome]:
    """Create-and-link each member (``force``: likely duplicates do not stop it), the
    ledger's customers read once; the outcomes, in order."""
    cache = linking.CustomerIndexCache(ttl=float("inf"))
    index = await cache.get(connection_id, ledger)
    return [
        await linking.create_and_link(
            db,
            ME,
            ledger,
            number,
            connection_id,
            force=True,
            index=index,
            cache=cache,
            mappings=MappingRepository(None),
        )
        for number in numbers
    ]
