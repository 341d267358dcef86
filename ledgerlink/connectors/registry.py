"""The connector registry: one descriptor per connection kind, so nothing outside a
connector's own package has to know which kinds exist.

Each connector package registers its kind in a ``kind.py`` module
(``ledgerlink/connectors/<package>/kind.py`` calling :func:`register`); the registry
imports every such module the first time it is asked. Callers ask by role
(:func:`ledger_kinds`, :func:`gateway_kinds`) or by kind (:func:`descriptor`), never
branch on a kind's name. A new ledger kind is its adapter package with a ``kind.py``,
its settings form (a template in the package) and its shipped mapping specs.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import httpx
from pydantic import BaseModel

from ledgerlink.connectors.base import CardGateway, CardPostingRules, CheckResult, Ledger
from ledgerlink.connectors.errors import Misconfigured

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ledgerlink.mapping.preview import PreviewSource
    from ledgerlink.runtime import Runtime
    from ledgerlink.store.models import Connection

Role = Literal["ledger", "gateway", "mail"]

LedgerFactory = Callable[["Runtime", "Connection", httpx.AsyncBaseTransport | None], Ledger]
GatewayFactory = Callable[["Runtime", "Connection", httpx.AsyncBaseTransport | None], CardGateway]

#: (form text fields, a multi-valued field's values by name, the settings so far) → the
#: settings with the kind's special fields applied.
FormSettings = Callable[[Mapping[str, str], Callable[[str], list[str]], dict[str, Any]], None]
PageContext = Callable[["Runtime", "Connection"], Awaitable[dict[str, Any]]]
PreviewReader = Callable[["Runtime", int], "PreviewSource"]
ConnectionCheck = Callable[["Runtime", "Connection"], Awaitable[list[CheckResult]]]

#: Purposes a ledger kind ships mapping specs for (``ConnectorKind.specs`` keys).
MEMBER_TO_CUSTOMER = "member_to_customer"
CUSTOMER_TO_MEMBER = "customer_to_member"
CARD_PROFILE_TO_CUSTOMER = "card_profile_to_customer"
CUSTOMER_TO_CARD_PROFILE = "customer_to_card_profile"
PAYMENT_TO_RECEIPT = "payment_to_receipt"


@dataclass(frozen=True)
class CustomerRecord:
    """Where a ledger's customer record, as its mapping specs name it (an SBC contact, a
    Sage 500 customer row), keeps each synchronised field (``name``, ``email``, ``phone``,
    ``address_line1`` … ``country``), its customer number and its currency."""

    fields: Mapping[str, str]
    number: str
    currency: str


@dataclass(frozen=True)
class ConnectorKind:
    """Everything the rest of ledgerlink needs to know about one kind of connection."""

    #: The stored ``connections.kind`` value ("sbc").
    kind: str
    #: What users see ("Sage Business Cloud").
    label: str
    role: Role
    #: Validates and defaults the connection's non-secret settings.
    settings_model: type[BaseModel]
    #: Secrets users may set (write-only, kept in the vault).
    secret_names: frozenset[str] = frozenset()
    #: Secrets the connector keeps for itself (never set through the API, never shown).
    internal_secrets: frozenset[str] = frozenset()
    #: The shipped mapping spec for each purpose (the module constants above).
    specs: Mapping[str, str] = field(default_factory=dict)
    #: What one of the ledger's customer records is called ("Sage 500 customer").
    customer_noun: str = ""
    #: How its customer records read to the member and card-profile specs (ledgers).
    customer_record: CustomerRecord | None = None
    #: Live records for mapping previews, by record type ("sbc.contact"): a reader of
    #: the newest ``limit`` records of the first connection of this kind.
    previews: Mapping[str, PreviewReader] = field(default_factory=dict)
    #: Builds the adapter for a stored connection (``role`` says which one applies).
    ledger: LedgerFactory | None = None
    gateway: GatewayFactory | None = None
    #: The settings form's template (found through :func:`template_dirs`), included by
    #: the portal's connection page; ``None``: the generic form.
    settings_template: str | None = None
    #: Folder holding that template, usually the package's ``templates`` folder.
    template_dir: Path | None = None
    #: True when the connection is authorised interactively (a consent flow whose state
    #: is ``Connection.auth_status``); False: its credentials are simply entered.
    interactive_auth: bool = False
    #: Extra portal routes (a consent flow): built on demand, mounted by the portal.
    routes: Callable[[], APIRouter] | None = None
    #: The settings the portal form edits as plain text fields, in the form's order
    #: (empty: every text, number or choice field of ``settings_model``).
    form_fields: tuple[str, ...] = ()
    #: The form fields that are not plain text (lists, tables, check boxes) into settings.
    form_settings: FormSettings | None = None
    #: What the settings form shows besides the settings (choices read live from the
    #: system, other connections to pick from).
    page_context: PageContext | None = None
    #: Checks the connection its own way (default: the adapter's ``check()``).
    check: ConnectionCheck | None = None
    #: Where the kind appears in lists (the "Add a connection" choice, then by label).
    position: int = 100
    #: How card payments post to this ledger (its ``card_posting.py``); ``None``: card
    #: payments cannot be posted to it.
    card_posting: CardPostingRules | None = None

    def __post_init__(self) -> None:
        if self.role == "ledger" and self.ledger is None:
            raise TypeError(f"ledger kind {self.kind!r} needs a ledger factory")
        if self.role == "gateway" and self.gateway is None:
            raise TypeError(f"gateway kind {self.kind!r} needs a gateway factory")

    @property
    def default_settings(self) -> dict[str, Any]:
        """The settings a new connection of this kind starts with (JSON-ready)."""
        return self.settings_model().model_dump(mode="json")

    def editable_fields(self) -> tuple[str, ...]:
        """The settings the portal form sends as plain text fields."""
        if self.form_fields:
            return self.form_fields
        return tuple(
            name
            for name, info in self.settings_model.model_fields.items()
            if _plain(info.annotation)
        )

    def spec(self, purpose: str) -> str:
        """The shipped spec for ``purpose``; a missing one is a set-up error naming it."""
        try:
            return self.specs[purpose]
        except KeyError:
            raise Misconfigured(
                self.kind, f"{self.label} ships no mapping spec for {purpose.replace('_', ' ')}"
            ) from None


_lock = threading.RLock()
_kinds: dict[str, ConnectorKind] = {}
_loaded = False


def register(descriptor: ConnectorKind) -> ConnectorKind:
    """Add a kind (called by each connector package's ``kind.py``). Registering the same
    kind twice with a different descriptor is a programming error."""
    with _lock:
        known = _kinds.get(descriptor.kind)
        if known is not None and known != descriptor:
            raise ValueError(f"connector kind {descriptor.kind!r} is registered twice")
        _kinds[descriptor.kind] = descriptor
    return descriptor


@contextmanager
def registered(descriptor: ConnectorKind) -> Iterator[ConnectorKind]:
    """The kind registered for the duration of a block (tests, plug-ins tried out)."""
    _load_builtin()
    register(descriptor)
    try:
        yield descriptor
    finally:
        with _lock:
            _kinds.pop(descriptor.kind, None)


def _load_builtin() -> None:
    """Import each connector package's ``kind.py`` once (they call :func:`register`)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        package = importlib.import_module("ledgerlink.connectors")
        for folder in package.__path__:
            for child in sorted(Path(folder).iterdir()):
                if (child / "kind.py").is_file():
                    importlib.import_module(f"ledgerlink.connectors.{child.name}.kind")
        _loaded = True


def descriptors() -> tuple[ConnectorKind, ...]:
    """Every registered kind, by position, then by label."""
    _load_builtin()
    return tuple(sorted(_kinds.values(), key=lambda d: (d.position, d.label)))


def kinds() -> tuple[str, ...]:
    return tuple(d.kind for d in descriptors())


def ledger_kinds() -> tuple[str, ...]:
    """The kinds whose connections are ledgers (customers, invoices, receipts)."""
    return tuple(d.kind for d in descriptors() if d.role == "ledger")


def gateway_kinds() -> tuple[str, ...]:
    """The kinds whose connections are card gateways."""
    return tuple(d.kind for d in descriptors() if d.role == "gateway")


def mail_kinds() -> tuple[str, ...]:
    return tuple(d.kind for d in descriptors() if d.role == "mail")


def is_known(kind: str) -> bool:
    _load_builtin()
    return kind in _kinds


def descriptor(kind: str) -> ConnectorKind:
    """The descriptor of ``kind``; an unknown kind is a set-up error naming the known ones."""
    _load_builtin()
    found = _kinds.get(kind)
    if found is None:
        raise Misconfigured(
            kind, f"unknown connection kind {kind!r}; this installation knows {', '.join(kinds())}"
        )
    return found


def label(kind: str) -> str:
    """What users call ``kind`` (the kind itself when it is not installed)."""
    _load_builtin()
    found = _kinds.get(kind)
    return found.label if found else kind


def template_dirs() -> list[Path]:
    """Folders holding the connectors' own templates (settings forms)."""
    return [d.template_dir for d in descriptors() if d.template_dir is not None]


def all_labels() -> Mapping[str, str]:
    return MappingProxyType({d.kind: d.label for d in descriptors()})


def _plain(annotation: Any) -> bool:
    """Whether a settings field is edited as one text box (not a list, table or flag)."""
    origin = get_origin(annotation)
    if origin in (list, dict, tuple, set):
        return False
    if annotation is bool:
        return False
    return all(_plain(arg) for arg in get_args(annotation)) if origin is not None else True
