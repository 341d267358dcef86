"""Member details, both ways: plan each linked member's merge, then write what it says.

Which members a run looks at: those the registry changed since the registry cursor, and
those whose customer the ledger changed (or deleted) since the ledger cursor, each minus
the overlap window; on the first run, every linked member. Ledger values come from the
incremental read itself; members changed only in the registry get their customer read
one by one when few, or from one full paged read when many.

A member whose two sides hash to what the baseline recorded costs nothing. Otherwise the
merge says what goes where: ledger fields are written with one update per customer,
registry fields through the registry (validated and audited like any edit), and the new
baseline is stored with the run's record of the change, page by page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.errors import NotFound, Rejected, UpstreamError
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.domain.members import Member, MemberInvalid
from ledgerlink.identity.principal import Principal
from ledgerlink.members import registry
from ledgerlink.members.customer_mapping import CustomerMapping, SpecFailed
from ledgerlink.members.linking import _unlink_row
from ledgerlink.store.member_models import MemberLinkRow, MemberRow, MembershipLevelRow
from ledgerlink.store.sync_models import SyncBaseline
from ledgerlink.store.types import utcnow
from ledgerlink.sync.datasets import Policy
from ledgerlink.sync.fields import registry_values, updated_member, values_hash
from ledgerlink.sync.merge import Merge, Values, merge

#: Above this many members to read one by one, read every customer page by page instead.
FULL_READ_THRESHOLD = 200
WRITE_CONCURRENCY = 64


@dataclass
class LinkedMember:
    member_id: int
    number: str
    customer_id: str
    customer_number: str
    currency: str
    member: Member
    updated_at: datetime


@dataclass
class MemberPlan:
    """What a run does (or would do) for one member."""

    linked: LinkedMember
    customer: CustomerAccount | None  # None: deleted in the ledger
    merge: Merge | None
    registry_hash: str
    ledger_hash: str
    unchanged: bool
    problem: str = ""
    fix: str = ""
    #: what both sides last agreed on (None: never synced, or linked to another customer)
    baseline: Baseline | None = None
    #: the ledger's fields in the registry's terms, through the spec (empty: not read)
    ledger_values: Values = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.customer is None


@dataclass
class Outcome:
    plan: MemberPlan
    ok: bool
    message: str = ""
    fix: str = ""
    ledger_written: bool = False
    registry_written: bool = False
    notes: list[str] = field(default_factory=list)


def linked_members(
    session: Session, connection_id: int, member_ids: Iterable[int] | None = None
) -> dict[int, LinkedMember]:
    """Members with an active link in the connection (all, or ``member_ids``), read as
    plain rows: a run reads every linked member, so no ORM objects are built."""
    columns = [
        MemberRow.id,
        MemberRow.number,
        MemberRow.account_type,
        MemberRow.status,
        MemberRow.first_name,
        MemberRow.last_name,
        MemberRow.organisation,
        MemberRow.email,
        MemberRow.phone,
        MemberRow.address_line1,
        MemberRow.address_line2,
        MemberRow.city,
        MemberRow.region,
        MemberRow.postal_code,
        MemberRow.country,
        MemberRow.updated_at,
        MemberLinkRow.customer_id,
        MemberLinkRow.customer_number,
        MembershipLevelRow.code.label("level_code"),
        MembershipLevelRow.currency,
    ]
    query = (
        select(*columns)
        .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
        .join(MembershipLevelRow, MembershipLevelRow.id == MemberRow.level_id)
        .where(MemberLinkRow.connection_id == connection_id, MemberLinkRow.unlinked_at.is_(None))
    )
    found: dict[int, LinkedMember] = {}
    wanted = None if member_ids is None else list(member_ids)
    chunks: list[list[int] | None] = (
        [None] if wanted is None else [wanted[i : i + 500] for i in range(0, len(wanted), 500)]
    )
    for chunk in chunks:
        batch = query if chunk is None else query.where(MemberRow.id.in_(chunk))
        for row in session.execute(batch):
            found[row.id] = LinkedMember(
                member_id=row.id,
                number=row.number,
                customer_id=row.customer_id,
                customer_number=row.customer_number or row.number,
                currency=row.currency,
                member=registry.member_from_row(row, row.level_code),  # type: ignore[arg-type]
                updated_at=row.updated_at,
            )
    return found


def customer_links(session: Session, connection_id: int) -> dict[str, int]:
    """customer id → member id of the connection's active links."""
    rows = session.execute(
        select(MemberLinkRow.customer_id, MemberLinkRow.member_id).where(
            MemberLinkRow.connection_id == connection_id, MemberLinkRow.unlinked_at.is_(None)
        )
    )
    return {str(customer_id): int(member_id) for customer_id, member_id in rows}


def registry_changed(session: Session, connection_id: int, since: datetime | None) -> set[int]:
    query = (
        select(MemberRow.id)
        .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
        .where(MemberLinkRow.connection_id == connection_id, MemberLinkRow.unlinked_at.is_(None))
    )
    if since is not None:
        query = query.where(MemberRow.updated_at >= since)
    return set(session.scalars(query))


@dataclass(frozen=True)
class Baseline:
    """What both sides last agreed on for one member (read as a plain row)."""

    customer_id: str
    values: dict[str, str]
    registry_hash: str
    ledger_hash: str
    #: what the ledger held then, in the registry's terms, when the spec made it differ
    ledger_values: dict[str, str] | None = None


def baselines(session: Session, connection_id: int, member_ids: list[int]) -> dict[int, Baseline]:
    found: dict[int, Baseline] = {}
    columns = (
        SyncBaseline.member_id,
        SyncBaseline.customer_id,
        SyncBaseline.values,
        SyncBaseline.registry_hash,
        SyncBaseline.ledger_hash,
        SyncBaseline.ledger_values,
    )
    for offset in range(0, len(member_ids), 500):
        chunk = member_ids[offset : offset + 500]
        for row in session.execute(
            select(*columns).where(
                SyncBaseline.connection_id == connection_id, SyncBaseline.member_id.in_(chunk)
            )
        ):
            found[row.member_id] = Baseline(
                row.customer_id, row.values, row.registry_hash, row.ledger_hash, row.ledger_values
            )
    return found


def raw_hash(customer: CustomerAccount) -> str:
    """A hash of the customer's fields exactly as the ledger holds them: when it matches
    the baseline, the ledger side is unchanged and needs no normalising or merging."""
    a = customer.address
    return values_hash(
        {
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "address_line1": a.line1,
            "address_line2": a.line2,
            "city": a.city,
            "region": a.region,
            "postal_code": a.postal_code,
            "country": a.country,
        }
    )


def evaluate(
    linked: LinkedMember,
    customer: CustomerAccount | None,
    baseline: Baseline | None,
    policies: dict[str, Policy],
    mapping: CustomerMapping,
    *,
    remap: bool = False,
) -> MemberPlan:
    """What to do for one member. ``remap``: also when neither side changed, write the
    ledger the spec's form of any field it holds differently."""
    mine = registry_values(linked.member)
    registry_hash = values_hash(mine)
    if customer is None or customer.deleted:
        return MemberPlan(linked, None, None, registry_hash, "", unchanged=False)
    ledger_hash = raw_hash(customer)
    same = baseline if baseline is not None and baseline.customer_id == linked.customer_id else None
    registry_moved = same is None or same.registry_hash != registry_hash
    ledger_moved = same is None or same.ledger_hash != ledger_hash
    if not remap and not registry_moved and not ledger_moved:
        return MemberPlan(linked, customer, None, registry_hash, ledger_hash, unchanged=True)
    theirs = mapping.ledger_values(customer, linked.member, linked.currency)
    outcome = merge(
        same.values if same is not None else None,
        mine,
        theirs,
        policies,
        ledger_baseline=same.ledger_values if same is not None else None,
        registry_moved=registry_moved,
        ledger_moved=ledger_moved,
        as_ledger_would=lambda: mapping.as_ledger_would(linked.member, linked.currency),
        remap=remap,
        registry_at=linked.updated_at,
        ledger_at=customer.updated_at,
    )
    return MemberPlan(
        linked,
        customer,
        outcome,
        registry_hash,
        ledger_hash,
        unchanged=not outcome.changed,
        baseline=same,
        ledger_values=theirs,
    )


class ConflictDoc(TypedDict):
    """Both sides changed the field; ``winner`` is the side the policy chose."""

    registry: str
    ledger: str
    winner: str


class ChangeDoc(TypedDict, total=False):
    """One field of a sync record's ``changes`` (a conflict alone has no before/after).
    ``first_sync``: the sides differed when first synced and the policy chose (no
    agreement existed, so it is not a conflict)."""

    before: str
    after: str
    side: str
    conflict: ConflictDoc
    first_sync: ConflictDoc


class BaselineRow(TypedDict):
    """A ``sync_baselines`` row as a page inserts or replaces it."""

    connection_id: int
    member_id: int
    customer_id: str
    values: dict[str, str]
    registry_hash: str
    ledger_hash: str
    ledger_values: dict[str, str] | None
    synced_at: datetime


def written_before(plan: MemberPlan) -> dict[str, ChangeDoc] | None:
    """For a resumed run: the changes an interrupted attempt already made for this member
    (both sides agree now, on values that differ from the last agreement), or None."""
    if plan.merge is None or plan.baseline is None or plan.merge.changed:
        return None
    before = plan.baseline.values
    side = "ledger" if plan.baseline.registry_hash != plan.registry_hash else "registry"
    changed: dict[str, ChangeDoc] = {
        name: {"before": before.get(name, ""), "after": value, "side": side}
        for name, value in plan.merge.result.items()
        if before.get(name, "") != value
    }
    return changed or None


async def read_customers(
    ledger: Ledger, customer_ids: set[str], known: Mapping[str, CustomerAccount | None]
) -> dict[str, CustomerAccount | None]:
    """The current customer for each id (None when the ledger has no such customer)."""
    missing = [cid for cid in customer_ids if cid not in known]
    found: dict[str, CustomerAccount | None] = {
        cid: known[cid] for cid in customer_ids if cid in known
    }
    if len(missing) > FULL_READ_THRESHOLD:
        wanted = set(missing)
        async for customer in ledger.customers():
            if customer.id in wanted:
                found[customer.id] = customer
        for cid in missing:
            found.setdefault(cid, None)
        return found
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(cid: str) -> None:
        async with semaphore:
            try:
                found[cid] = await ledger.get_customer(cid)
            except NotFound:
                found[cid] = None

    await asyncio.gather(*(one(cid) for cid in missing))
    return found


@dataclass(frozen=True)
class LedgerWrite:
    """How one member's ledger update went."""

    ok: bool
    customer: CustomerAccount | None = None  # the customer as the ledger holds it now
    message: str = ""
    fix: str = ""
    #: the ledger could not be reached or asked us to slow down: trying again can help
    retryable: bool = False
    #: the field the ledger refused, in its own terms ("" when it named none)
    field: str = ""


Written = dict[int, LedgerWrite]
UPSTREAM_FIX = "check the connection and the value in the ledger, then retry failed records"


async def write_ledger(
    ledger: Ledger,
    plans: list[MemberPlan],
    mapping: CustomerMapping,
    *,
    on_written: Callable[[], Awaitable[None]] | None = None,
) -> Written:
    """Push each plan's ledger-side changes, mapped through the member → ledger spec;
    ``on_written`` is awaited as each one returns (however it went), for the progress bar."""
    results: Written = {}
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(plan: MemberPlan) -> None:
        assert plan.merge is not None
        linked = plan.linked
        try:
            member = updated_member(linked.member, plan.merge.result)
            draft = mapping.draft(linked.customer_number, linked.currency, member)
        except SpecFailed as exc:
            results[linked.member_id] = LedgerWrite(False, message=exc.message, fix=exc.fix)
            return
        async with semaphore:
            try:
                now = await ledger.update_customer(linked.customer_id, draft)
                results[linked.member_id] = LedgerWrite(True, now)
            except UpstreamError as exc:
                results[linked.member_id] = LedgerWrite(
                    False,
                    message=exc.message,
                    fix=UPSTREAM_FIX,
                    retryable=exc.retryable,
                    field=(exc.field or "") if isinstance(exc, Rejected) else "",
                )
        if on_written is not None:
            await on_written()

    await asyncio.gather(*(one(p) for p in plans if p.merge is not None and p.merge.to_ledger))
    return results


def write_registry(
    session: Session, principal: Principal, plan: MemberPlan, *, connection_id: int
) -> tuple[bool, str, str]:
    """Store the registry-side changes of ``plan``, read from ``connection_id``'s ledger:
    (ok, problem, fix)."""
    assert plan.merge is not None
    changed = updated_member(plan.linked.member, plan.merge.result)
    try:
        rebuilt = registry.build_member(registry.member_fields(changed))
    except MemberInvalid as exc:
        problem = exc.problems[0]
        return (
            False,
            f"{problem.field}: {problem.reason}",
            problem.fix or "correct it in the ledger",
        )
    registry.update_member(
        session, principal, plan.linked.number, rebuilt, read_from_connection=connection_id
    )
    return True, "", ""


def baseline_row(
    connection_id: int,
    plan: MemberPlan,
    values: dict[str, str],
    ledger_now: CustomerAccount | None,
    mapping: CustomerMapping,
) -> BaselineRow:
    """The baseline to store after ``plan`` was settled with ``values`` on both sides: the
    registry's values, and the ledger's as read through the spec when they differ."""
    agreed = values_hash(values)
    held = plan.ledger_values
    if ledger_now is not None:
        member = updated_member(plan.linked.member, values)
        held = mapping.ledger_values(ledger_now, member, plan.linked.currency)
    registry_hash = (
        plan.registry_hash if plan.merge is None or not plan.merge.to_registry else agreed
    )
    ledger_hash = raw_hash(ledger_now) if ledger_now is not None else plan.ledger_hash
    return {
        "connection_id": connection_id,
        "member_id": plan.linked.member_id,
        "customer_id": plan.linked.customer_id,
        "values": values,
        "registry_hash": registry_hash,
        "ledger_hash": ledger_hash,
        "ledger_values": held if held and held != values else None,
        "synced_at": utcnow(),
    }


def store_baselines(session: Session, rows: list[BaselineRow]) -> None:
    """Insert or replace baselines in one statement per page (both back-ends)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    statement = upsert(SyncBaseline)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "member_id"],
        set_={
            name: statement.excluded[name]
            for name in (
                "customer_id",
                "values",
                "registry_hash",
                "ledger_hash",
                "ledger_values",
                "synced_at",
            )
        },
    )
    session.execute(statement, rows)


def unlink_deleted(
    session: Session, principal: Principal, connection_id: int, plan: MemberPlan
) -> None:
    link = session.scalars(
        select(MemberLinkRow).where(
            MemberLinkRow.member_id == plan.linked.member_id,
            MemberLinkRow.connection_id == connection_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    ).first()
    if link is not None:
        _unlink_row(
            session, principal, link, plan.linked.number, "the customer was deleted in the ledger"
        )
    baseline = session.get(SyncBaseline, (connection_id, plan.linked.member_id))
    if baseline is not None:
        session.delete(baseline)


def changes_of(plan: MemberPlan) -> dict[str, ChangeDoc]:
    if plan.merge is None:
        return {}
    out: dict[str, ChangeDoc] = {}
    for change in plan.merge.to_ledger:
        out[change.field] = {"before": change.before, "after": change.after, "side": "ledger"}
    for change in plan.merge.to_registry:
        out[change.field] = {"before": change.before, "after": change.after, "side": "registry"}
    for conflict in plan.merge.conflicts:
        out.setdefault(conflict.field, {})["conflict"] = {
            "registry": conflict.registry,
            "ledger": conflict.ledger,
            "winner": conflict.winner,
        }
    for difference in plan.merge.first_sync:
        out.setdefault(difference.field, {})["first_sync"] = {
            "registry": difference.registry,
            "ledger": difference.ledger,
            "winner": difference.winner,
        }
    return out


def direction_of(plan: MemberPlan) -> str:
    if plan.deleted:
        return "to_registry"
    assert plan.merge is not None
    if plan.merge.to_ledger and plan.merge.to_registry:
        return "both"
    return "to_ledger" if plan.merge.to_ledger else "to_registry"
