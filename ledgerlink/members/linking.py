"""Linking members to customer accounts in a ledger: find likely existing customers,
create-and-link, link an existing one, unlink, relink, and the link history.

Two rules keep the ledgers free of duplicates:

* Before creating, look for the customer that may already be there: same reference (the
  member number: an earlier create, or one made by hand), same e-mail, or a similar name
  (rapidfuzz). A reference match is linked instead of creating; other matches are
  offered to the user as *Link existing* unless they insist on creating.
* Every create carries the idempotency key ``member-link:{member}:{connection}``, so
  repeating it after a crash (before the link was stored) returns the customer the first
  call made instead of a second one.

The one-customer-one-member rule is enforced by a partial unique index; a race that
breaks it ends in :class:`LinkConflict`, not a double link. Ledger calls happen outside
database transactions (a slow upstream must not hold the SQLite write lock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypedDict

import structlog
from rapidfuzz import fuzz, process, utils
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_thread
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.errors import NotFound, UpstreamError
from ledgerlink.domain.accounts import CustomerAccount, CustomerDraft
from ledgerlink.domain.members import Member, member_link_idempotency_key
from ledgerlink.identity.principal import Principal
from ledgerlink.members.customer_mapping import CustomerMapping, SpecFailed
from ledgerlink.members.normalise import email_key
from ledgerlink.members.registry import MemberNotFound, get_member, load_member
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow, MembershipLevelRow
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.members.linking")

#: The ledger kinds installed, from the connector registry.
ledger_kinds = registry.ledger_kinds
#: Names at least this similar (token-sort ratio, 0-100) are offered as likely the same.
NAME_SIMILARITY: Final = 88
INDEX_TTL_SECONDS: Final = 300.0
#: At most this many customers answer a search on *Link existing*.
SEARCH_LIMIT: Final = 20


class LinkError(Exception):
    """Linking could not be done; ``field`` and the message say what and how to fix it."""

    status: int = 422

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class LinkConflict(LinkError):
    status = 409


class LinkNotFound(LinkError):
    status = 404


class LinkFailed(LinkError):
    """The ledger refused or could not be reached; nothing was linked."""

    status = 502


class CandidateView(TypedDict):
    """A candidate as the API and the portal show it."""

    customer_id: str
    customer_number: str
    name: str
    email: str
    phone: str
    score: int
    reasons: list[str]
    linked_to: str | None


class LinkOutcomeView(TypedDict):
    """What a link did, as the confirmation shows it."""

    action: str
    member_number: str
    connection_id: int
    connection: str
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    link_id: int
    message: str


class LinkSnapshot(TypedDict):
    """What the audit chain records about a link (before and after a change)."""

    member: str
    connection_id: int
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    created_customer: bool
    unlinked_at: datetime | None
    unlink_reason: str | None


class LinkHistoryView(TypedDict):
    """One link of a member's history, times as ISO 8601 text."""

    id: int
    connection_id: int
    connection: str
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    created_customer: bool
    linked_at: str
    linked_by: str
    unlinked_at: str | None
    unlinked_by: str | None
    unlink_reason: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer that may be the member, and why we think so."""

    customer: CustomerAccount
    score: int
    reasons: tuple[str, ...]
    #: The member this customer is already linked to, if any (then it cannot be linked).
    linked_to: str | None = None

    @property
    def by_reference(self) -> bool:
        return any(r.startswith("same reference") for r in self.reasons)

    def as_dict(self) -> CandidateView:
        c = self.customer
        return {
            "customer_id": c.id,
            "customer_number": c.number,
            "name": c.name,
            "email": c.email,
            "phone": c.phone,
            "score": self.score,
            "reasons": list(self.reasons),
            "linked_to": self.linked_to,
        }


class LikelyDuplicates(LinkError):
    """Customers that look like the member exist; link one, or create with ``force``."""

    status = 409

    def __init__(self, member_number: str, candidates: list[Candidate]) -> None:
        names = "; ".join(
            f"{c.customer.name} ({c.customer.number or c.customer.id}: {', '.join(c.reasons)})"
            for c in candidates[:3]
        )
        super().__init__(
            f"Member {member_number} probably exists in the ledger already: {names}. Link "
            "the existing customer, or create a new one anyway if they are different people.",
            "customer_id",
        )
        self.candidates = candidates


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What happened, said so it can be shown as the confirmation."""

    action: str  # created | linked_existing | already_linked | relinked
    member_number: str
    connection_id: int
    connection_name: str
    system: str
    customer: CustomerAccount
    link_id: int
    message: str

    def as_dict(self) -> LinkOutcomeView:
        return {
            "action": self.action,
            "member_number": self.member_number,
            "connection_id": self.connection_id,
            "connection": self.connection_name,
            "system": self.system,
            "customer_id": self.customer.id,
            "customer_number": self.customer.number,
            "customer_name": self.customer.name,
            "link_id": self.link_id,
            "message": self.message,
        }


# ---- customers already in the ledger ----------------------------------------------------


@dataclass
class CustomerIndex:
    """A ledger's customers, indexed for duplicate checks (by e-mail and by name)."""

    customers: list[CustomerAccount] = field(default_factory=list)
    by_email: dict[str, list[CustomerAccount]] = field(default_factory=dict)
    by_number: dict[str, CustomerAccount] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    @classmethod
    async def load(cls, ledger: Ledger) -> CustomerIndex:
        index = cls()
        async for customer in ledger.customers():
            index.add(customer)
        return index

    def add(self, customer: CustomerAccount) -> None:
        if customer.deleted:
            return
        self.customers.append(customer)
        self.names.append(utils.default_process(customer.name))
        if customer.email:
            self.by_email.setdefault(email_key(customer.email), []).append(customer)
        if customer.number:
            self.by_number.setdefault(customer.number.upper(), customer)

    def similar(self, member: Member) -> list[Candidate]:
        found: dict[str, Candidate] = {}

        def note(customer: CustomerAccount, score: int, reason: str) -> None:
            earlier = found.get(customer.id)
            if earlier is None:
                found[customer.id] = Candidate(customer, score, (reason,))
            elif reason not in earlier.reasons:
                found[customer.id] = Candidate(
                    customer, max(score, earlier.score), (*earlier.reasons, reason)
                )

        same_number = self.by_number.get(member.number.upper())
        if same_number is not None:
            note(same_number, 100, f"same reference {member.number}")
        if member.email:
            for customer in self.by_email.get(email_key(member.email), []):
                note(customer, 95, "same e-mail")
        name = utils.default_process(member.display_name)
        if name and self.names:
            for _, score, position in process.extract(
                name,
                self.names,
                scorer=fuzz.token_sort_ratio,
                processor=None,
                score_cutoff=NAME_SIMILARITY,
                limit=5,
            ):
                note(self.customers[position], int(score), f"similar name ({int(score)}%)")
        return sorted(found.values(), key=lambda c: (-c.score, c.customer.name))

    def matching(self, text: str, limit: int = SEARCH_LIMIT) -> list[CustomerAccount]:
        """Customers whose name, number, e-mail or id contains ``text`` (any case), exact
        numbers first: what a user searches for on *Link existing* when the suggestions
        miss the customer (a different name, a shared e-mail)."""
        needle = utils.default_process(text)
        key = text.strip().upper()
        if not needle and not key:
            return []
        exact = self.by_number.get(key)
        found = [exact] if exact is not None else []
        for customer, name in zip(self.customers, self.names, strict=True):
            if len(found) >= limit:
                break
            if customer is exact:
                continue
            if (
                (needle and needle in name)
                or key in customer.number.upper()
                or key in customer.email.upper()
                or key == customer.id.upper()
            ):
                found.append(customer)
        return found


class CustomerIndexCache:
    """Customer indexes per connection for a few minutes: reading every customer of an SBC
    business costs one request per 200 and SBC allows about 100 a minute."""

    def __init__(self, ttl: float = INDEX_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, CustomerIndex]] = {}

    async def get(self, connection_id: int, ledger: Ledger) -> CustomerIndex:
        entry = self._entries.get(connection_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        index = await CustomerIndex.load(ledger)
        self._entries[connection_id] = (time.monotonic(), index)
        return index

    def note_created(self, connection_id: int, customer: CustomerAccount) -> None:
        entry = self._entries.get(connection_id)
        if entry is not None:
            entry[1].add(customer)

    def forget(self, connection_id: int) -> None:
        self._entries.pop(connection_id, None)


# ---- helpers -----------------------------------------------------------------------------


def ledger_connection(session: Session, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise LinkNotFound(f"connection {connection_id} does not exist", "connection_id")
    if connection.kind not in ledger_kinds():
        raise LinkError(
            f"{connection.name} is a {registry.label(connection.kind)} "
            "connection; customers are created in a ledger (Sage Business Cloud or Sage 500). "
            "PayTrace customer profiles hold a card and are made when the member enters one.",
            "connection_id",
        )
    return connection


def connection_by_name(session: Session, name: str) -> Connection:
    connection = session.scalar(select(Connection).where(Connection.name == name))
    if connection is None:
        known = ", ".join(session.scalars(select(Connection.name).order_by(Connection.name)))
        raise LinkNotFound(
            f"no connection named {name!r}; known: {known or 'none yet'}", "connection"
        )
    return connection


def default_ledger_connection(session: Session) -> Connection:
    """The one active ledger connection, for callers that did not name one."""
    rows = list(
        session.scalars(
            select(Connection)
            .where(Connection.kind.in_(ledger_kinds()), Connection.is_active.is_(True))
            .order_by(Connection.id)
        )
    )
    if len(rows) != 1:
        raise LinkError(
            "name the connection to create customers in (--connection NAME): there are "
            f"{len(rows)} active ledger connections",
            "connection",
        )
    return rows[0]


def customer_draft(
    db: Database, ctx: _Context, mappings: MappingRepository
) -> tuple[CustomerDraft, str]:
    """The customer a member becomes, through the connection's member → customer mapping
    spec, and that spec's version; the member number is the reference users see.
    ``mappings``: the installation's repository (with its configuration directory)."""
    with db.read() as session:
        mapping = CustomerMapping.load(session, mappings, ctx.connection.kind)
    try:
        draft = mapping.draft(ctx.member.number, ctx.currency, ctx.member)
        return draft, mapping.to_ledger.version
    except SpecFailed as exc:
        raise LinkFailed(f"{exc.message}; {exc.fix}", "mapping") from None


def _system_noun(system: str) -> str:
    noun = registry.descriptor(system).customer_noun if registry.is_known(system) else ""
    return noun or f"{system} customer"


def _active_link(session: Session, member_id: int, connection_id: int) -> MemberLinkRow | None:
    return session.scalar(
        select(MemberLinkRow).where(
            MemberLinkRow.member_id == member_id,
            MemberLinkRow.connection_id == connection_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )


def _holder(session: Session, connection_id: int, customer_id: str) -> str | None:
    """The member number that holds ``customer_id`` in this connection, if any."""
    return session.scalar(
        select(MemberRow.number)
        .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
        .where(
            MemberLinkRow.connection_id == connection_id,
            MemberLinkRow.customer_id == customer_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )


def _customer_from_link(link: MemberLinkRow) -> CustomerAccount:
    return CustomerAccount(
        system=link.system,
        id=link.customer_id,
        number=link.customer_number,
        name=link.customer_name,
    )


def link_snapshot(link: MemberLinkRow, member_number: str) -> LinkSnapshot:
    return {
        "member": member_number,
        "connection_id": link.connection_id,
        "system": link.system,
        "customer_id": link.customer_id,
        "customer_number": link.customer_number,
        "customer_name": link.customer_name,
        "created_customer": link.created_customer,
        "unlinked_at": link.unlinked_at,
        "unlink_reason": link.unlink_reason,
    }


def _unlink_row(
    session: Session, principal: Principal, link: MemberLinkRow, number: str, reason: str
) -> None:
    before = link_snapshot(link, number)
    link.unlinked_at = utcnow()
    link.unlinked_by = principal.actor
    link.unlink_reason = reason[:500] or None
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="member.unlinked",
        entity_type="member_link",
        entity_id=link.id,
        before=before,
        after=link_snapshot(link, number),
    )


def store_link(
    session: Session,
    principal: Principal,
    member_row: MemberRow,
    connection: Connection,
    customer: CustomerAccount,
    *,
    created: bool,
    mapping_version: str | None = None,
) -> MemberLinkRow:
    """Insert the active link and its audit entry in the caller's transaction (with the
    spec version the customer was made with, when ledgerlink made it)."""
    holder = _holder(session, connection.id, customer.id)
    if holder is not None and holder != member_row.number:
        raise LinkConflict(
            f"{_system_noun(connection.kind)} {customer.name!r} ({customer.number or customer.id}) "
            f"is already linked to member {holder}; unlink it there first",
            "customer_id",
        )
    link = MemberLinkRow(
        member_id=member_row.id,
        connection_id=connection.id,
        system=connection.kind,
        customer_id=customer.id,
        customer_number=customer.number[:100],
        customer_name=customer.name[:200],
        created_customer=created,
        linked_by=principal.actor,
    )
    session.add(link)
    try:
        session.flush()
    except IntegrityError:
        raise LinkConflict(
            f"member {member_row.number} or customer {customer.number or customer.id} was "
            "linked by someone else a moment ago; reload and check the links",
            "customer_id",
        ) from None
    audit.record(
        session,
        actor=principal.actor,
        action="member.linked",
        entity_type="member_link",
        entity_id=link.id,
        after={
            **link_snapshot(link, member_row.number),
            **({"mapping_version": mapping_version} if mapping_version else {}),
        },
    )
    return link


# ---- the operations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    member: Member
    member_id: int
    connection: Connection
    existing: MemberLinkRow | None
    currency: str  # the membership level's


def _context(db: Database, member_number: str, connection_id: int) -> _Context:
    with db.read() as session:
        try:
            row = get_member(session, member_number)
        except MemberNotFound as exc:
            raise LinkNotFound(str(exc), "member_number") from None
        connection = ledger_connection(session, connection_id)
        level = session.get(MembershipLevelRow, row.level_id)
        return _Context(
            load_member(session, row),
            row.id,
            connection,
            _active_link(session, row.id, connection_id),
            level.currency if level is not None else "USD",
        )


async def find_candidates(
    db: Database,
    ledger: Ledger,
    member_number: str,
    connection_id: int,
    *,
    index: CustomerIndex | None = None,
) -> list[Candidate]:
    """Customers in the ledger that are probably this member, best first."""
    ctx = await in_thread(_context, db, member_number, connection_id)
    return await _candidates(db, ledger, ctx, index)


async def _candidates(
    db: Database, ledger: Ledger, ctx: _Context, index: CustomerIndex | None
) -> list[Candidate]:
    try:
        if index is None:
            index = await CustomerIndex.load(ledger)
        found = index.similar(ctx.member)
        if not any(c.by_reference for c in found):
            by_reference = await ledger.find_customer(ctx.member.number)
            if by_reference is not None and not by_reference.deleted:
                found = [
                    Candidate(by_reference, 100, (f"same reference {ctx.member.number}",)),
                    *[c for c in found if c.customer.id != by_reference.id],
                ]
    except UpstreamError as exc:
        raise LinkFailed(f"{exc.system_name}: {exc.message}") from None

    def holders() -> list[Candidate]:
        with db.read() as session:
            return [
                Candidate(
                    c.customer,
                    c.score,
                    c.reasons,
                    _holder(session, ctx.connection.id, c.customer.id),
                )
                for c in found
            ]

    return await in_thread(holders)


async def search_customers(
    db: Database,
    ledger: Ledger,
    member_number: str,
    connection_id: int,
    text: str,
    *,
    index: CustomerIndex | None = None,
) -> list[Candidate]:
    """Customers of the ledger matching ``text`` (name, number, e-mail or id), each with
    the member it is linked to already, if any; a number the index does not hold yet (a
    customer made in the last minutes) is asked of the ledger itself."""
    ctx = await in_thread(_context, db, member_number, connection_id)
    try:
        if index is None:
            index = await CustomerIndex.load(ledger)
        customers = index.matching(text)
        if text.strip() and not any(c.number.upper() == text.strip().upper() for c in customers):
            by_number = await ledger.find_customer(text.strip())
            if by_number is not None and not by_number.deleted:
                customers = [by_number, *[c for c in customers if c.id != by_number.id]]
    except UpstreamError as exc:
        raise LinkFailed(f"{exc.system_name}: {exc.message}") from None
    reason = f"matches {text.strip()!r}"

    def holders() -> list[Candidate]:
        with db.read() as session:
            return [
                Candidate(c, 0, (reason,), _holder(session, ctx.connection.id, c.id))
                for c in customers
            ]

    return await in_thread(holders)


async def create_and_link(
    db: Database,
    principal: Principal,
    ledger: Ledger,
    member_number: str,
    connection_id: int,
    *,
    force: bool = False,
    index: CustomerIndex | None = None,
    cache: CustomerIndexCache | None = None,
    mappings: MappingRepository,
) -> LinkOutcome:
    """Create the member's customer in the connection's ledger and link it.

    Already linked: says so and changes nothing. A customer with the member number as
    reference: linked instead of creating. Other likely duplicates: raises
    :class:`LikelyDuplicates` (unless ``force``), so the user can link one instead. The
    customer is made through the member → customer spec found in ``mappings``.
    """
    ctx = await in_thread(_context, db, member_number, connection_id)
    connection = ctx.connection
    if ctx.existing is not None:
        customer = _customer_from_link(ctx.existing)
        return LinkOutcome(
            "already_linked",
            ctx.member.number,
            connection.id,
            connection.name,
            connection.kind,
            customer,
            ctx.existing.id,
            f"Member {ctx.member.number} is already linked to {_system_noun(connection.kind)} "
            f"{customer.name!r} ({customer.number or customer.id}); nothing was created.",
        )
    if index is None and cache is not None:
        try:
            index = await cache.get(connection.id, ledger)
        except UpstreamError as exc:
            raise LinkFailed(f"{exc.system_name}: {exc.message}") from None
    candidates = await _candidates(db, ledger, ctx, index)
    free = [c for c in candidates if c.linked_to is None]
    by_reference = next((c for c in free if c.by_reference), None)
    if by_reference is not None:
        return _link(
            db,
            principal,
            ctx,
            by_reference.customer,
            created=False,
            action="linked_existing",
            message=f"Found {_system_noun(connection.kind)} {by_reference.customer.name!r} with "
            f"reference {ctx.member.number} already in {connection.name}; linked it to member "
            f"{ctx.member.number} instead of creating a duplicate.",
        )
    if free and not force:
        raise LikelyDuplicates(ctx.member.number, free)

    key = member_link_idempotency_key(ctx.member.number, connection.id)
    try:
        draft, mapping_version = customer_draft(db, ctx, mappings)
        customer = await ledger.create_customer(draft, key)
    except UpstreamError as exc:
        field = getattr(exc, "field", None) or "customer"
        raise LinkFailed(
            f"{exc.system_name} did not create the customer for member {ctx.member.number}: "
            f"{exc.message}",
            field,
        ) from None
    if cache is not None:
        cache.note_created(connection.id, customer)
    log.info(
        "member.customer_created",
        member=ctx.member.number,
        connection=connection.id,
        customer=customer.id,
    )
    return _link(
        db,
        principal,
        ctx,
        customer,
        created=True,
        mapping_version=mapping_version,
        action="created",
        message=f"Created {_system_noun(connection.kind)} {customer.name!r} "
        f"(reference {customer.number or ctx.member.number}) in {connection.name} and linked "
        f"it to member {ctx.member.number}.",
    )


def _link(
    db: Database,
    principal: Principal,
    ctx: _Context,
    customer: CustomerAccount,
    *,
    created: bool,
    action: str,
    message: str,
    mapping_version: str | None = None,
) -> LinkOutcome:
    with db.transaction() as session:
        member_row = session.get(MemberRow, ctx.member_id)
        if member_row is None:
            raise LinkNotFound(f"member {ctx.member.number} was deleted meanwhile", "member_number")
        existing = _active_link(session, ctx.member_id, ctx.connection.id)
        if existing is not None and existing.customer_id == customer.id:
            link = existing
            action = "already_linked"
        elif existing is not None:
            raise LinkConflict(
                f"member {ctx.member.number} is already linked to customer "
                f"{existing.customer_number or existing.customer_id} in {ctx.connection.name}; "
                "relink to change it",
                "customer_id",
            )
        else:
            link = store_link(
                session,
                principal,
                member_row,
                ctx.connection,
                customer,
                created=created,
                mapping_version=mapping_version,
            )
        link_id = link.id
    return LinkOutcome(
        action,
        ctx.member.number,
        ctx.connection.id,
        ctx.connection.name,
        ctx.connection.kind,
        customer,
        link_id,
        message,
    )


async def link_existing(
    db: Database,
    principal: Principal,
    ledger: Ledger,
    member_number: str,
    connection_id: int,
    customer_id: str,
    *,
    relink: bool = False,
) -> LinkOutcome:
    """Link the member to a customer that exists in the ledger (checked there first).

    With ``relink`` an active link to another customer is closed in the same transaction.
    """
    ctx = await in_thread(_context, db, member_number, connection_id)
    connection = ctx.connection
    try:
        customer = await ledger.get_customer(customer_id)
    except NotFound:
        raise LinkNotFound(
            f"{connection.name} has no customer {customer_id!r}; check the id, or search "
            "the ledger's customers by name or number and pick one",
            "customer_id",
        ) from None
    except UpstreamError as exc:
        raise LinkFailed(f"{exc.system_name}: {exc.message}", "customer_id") from None
    if customer.deleted:
        raise LinkError(f"customer {customer_id!r} is deleted in {connection.name}", "customer_id")
    noun = _system_noun(connection.kind)

    def store() -> tuple[str, int]:
        """(what was done, the link's id), in one transaction."""
        with db.transaction() as session:
            member_row = session.get(MemberRow, ctx.member_id)
            if member_row is None:
                raise LinkNotFound(
                    f"member {ctx.member.number} was deleted meanwhile", "member_number"
                )
            existing = _active_link(session, ctx.member_id, connection.id)
            action = "linked_existing"
            if existing is not None and existing.customer_id == customer.id:
                link_id = existing.id
                action = "already_linked"
            else:
                if existing is not None:
                    if not relink:
                        raise LinkConflict(
                            f"member {ctx.member.number} is already linked to "
                            f"{existing.customer_name!r} "
                            f"({existing.customer_number or existing.customer_id}); "
                            "use relink to replace that link",
                            "customer_id",
                        )
                    _unlink_row(
                        session,
                        principal,
                        existing,
                        ctx.member.number,
                        f"relinked to {customer.number or customer.id}",
                    )
                    action = "relinked"
                link_id = store_link(
                    session, principal, member_row, connection, customer, created=False
                ).id
        return action, link_id

    action, link_id = await in_thread(store)
    verb = {
        "already_linked": "is already linked to",
        "relinked": "is now linked (relinked) to",
        "linked_existing": "is now linked to the existing",
    }[action]
    return LinkOutcome(
        action,
        ctx.member.number,
        connection.id,
        connection.name,
        connection.kind,
        customer,
        link_id,
        f"Member {ctx.member.number} {verb} {noun} {customer.name!r} "
        f"({customer.number or customer.id}) in {connection.name}.",
    )


def unlink(
    db: Database, principal: Principal, member_number: str, connection_id: int, reason: str = ""
) -> MemberLinkRow:
    """Close the member's active link in this connection (the customer stays in the ledger)."""
    with db.transaction() as session:
        try:
            member_row = get_member(session, member_number)
        except MemberNotFound as exc:
            raise LinkNotFound(str(exc), "member_number") from None
        link = _active_link(session, member_row.id, connection_id)
        if link is None:
            raise LinkNotFound(
                f"member {member_row.number} has no active link in connection {connection_id}",
                "connection_id",
            )
        _unlink_row(session, principal, link, member_row.number, reason or "unlinked")
        return link


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    connection_id: int
    connection_name: str
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    created_customer: bool
    linked_at: datetime
    linked_by: str
    unlinked_at: datetime | None
    unlinked_by: str | None
    unlink_reason: str | None

    @property
    def active(self) -> bool:
        return self.unlinked_at is None

    def as_dict(self) -> LinkHistoryView:
        return {
            "id": self.id,
            "connection_id": self.connection_id,
            "connection": self.connection_name,
            "system": self.system,
            "customer_id": self.customer_id,
            "customer_number": self.customer_number,
            "customer_name": self.customer_name,
            "created_customer": self.created_customer,
            "linked_at": self.linked_at.isoformat(),
            "linked_by": self.linked_by,
            "unlinked_at": self.unlinked_at.isoformat() if self.unlinked_at else None,
            "unlinked_by": self.unlinked_by,
            "unlink_reason": self.unlink_reason,
            "active": self.active,
        }


def history(session: Session, member_id: int) -> list[HistoryEntry]:
    """Every link the member ever had, newest first."""
    return [
        HistoryEntry(
            link.id,
            link.connection_id,
            name,
            link.system,
            link.customer_id,
            link.customer_number,
            link.customer_name,
            link.created_customer,
            link.linked_at,
            link.linked_by,
            link.unlinked_at,
            link.unlinked_by,
            link.unlink_reason,
        )
        for link, name in session.execute(
            select(MemberLinkRow, Connection.name)
            .join(Connection, Connection.id == MemberLinkRow.connection_id)
            .where(MemberLinkRow.member_id == member_id)
            .order_by(MemberLinkRow.linked_at.desc(), MemberLinkRow.id.desc())
        )
    ]
