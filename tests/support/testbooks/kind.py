"""The Test Books connection kind, as a connector package registers itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink import connections
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import Misconfigured
from tests.support.testbooks.ledger import SYSTEMS, BooksLedger

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime
    from ledgerlink.store.models import Connection


class TestBooksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Which in-memory system (``SYSTEMS``) the connection reaches, as a URL would.
    books: str = Field(default="", max_length=100)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


def books_ledger(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> BooksLedger:
    name = str(connection.settings.get("books") or "")
    if name not in SYSTEMS:
        raise Misconfigured("testbooks", f"Test Books has no books named {name!r}")
    api_key = connections.read_secret(runtime.vault, connection, "api_key") or ""
    return BooksLedger(SYSTEMS[name], api_key)


TESTBOOKS = registry.ConnectorKind(
    kind="testbooks",
    label="Test Books",
    role="ledger",
    settings_model=TestBooksSettings,
    secret_names=frozenset({"api_key"}),
    customer_noun="Test Books customer",
    customer_record=registry.CustomerRecord(
        fields={
            "name": "name",
            "email": "email",
            "phone": "phone",
            "address_line1": "address.line1",
            "address_line2": "address.line2",
            "city": "address.city",
            "region": "address.region",
            "postal_code": "address.postal_code",
            "country": "address.country",
        },
        number="number",
        currency="currency",
    ),
    ledger=books_ledger,
)
