"""The card-profiles data set: ledger customers ↔ PayTrace customer profiles, both ways.

Name, e-mail, phone and billing address (never card data: the card changes only through
PayTrace's hosted fields) are kept equal between a customer in the ledger (Sage 500
above all, where PayTrace profiles carry the ``CustID``) and its PayTrace profile, with the
same rules as member details: a three-way merge from what both last agreed on, a field
changed on one side flows to the other, a field changed on both is a conflict settled by
the field's policy and reported (on a pair's first sync a difference is settled by the
policy too, but reported as a first-sync difference: nothing says which side changed).
Here "registry wins" means *PayTrace wins* and "ledger wins" the ledger; the default is
the ledger, the customer master.

Pairs are found as payments find their payer: the member's PayTrace link and ledger link,
or the ``CustID`` a Sage 500 profile is named after.

A member whose ledger customer has no PayTrace profile cannot be given one here: PayTrace
makes no profile without a card or bank account, and ledgerlink never holds one. The run
says so once per member (a skipped record naming the way forward: a card-capture link from
the member's page), and counts them every run (``profiles_missing``).

The two sides meet through the mapping specs: a profile is read in the ledger's terms
through ``paytrace_customer_to_<ledger>`` and written through ``<ledger>_to_paytrace_customer``
(``sage500_customer`` or ``sbc_contact``), so a change to either spec changes the sync
(and the run records their versions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import select

from ledgerlink.blocking import in_thread
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.accounts import Address, CardCustomer, CustomerAccount
from ledgerlink.mapping import MappingContext
from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.transforms.customer_ids import DEFAULT_FORMATS, harmonise
from ledgerlink.members.customer_mapping import (
    SpecFailed,
    checked,
    customer_from_record,
    customer_record,
    record_layout,
)
from ledgerlink.payments.payers import find_payer
from ledgerlink.store.mapping_repo import ActiveMapping, MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import CardProfileBaseline, SyncRecord, SyncRun
from ledgerlink.store.types import utcnow
from ledgerlink.sync.datasets import FIELDS, Policy
from ledgerlink.sync.fields import address_of, customer_draft, ledger_values
from ledgerlink.sync.merge import Merge, Values, merge
from ledgerlink.sync.plan import RecordItem

DATA_SET = "card_profiles"
#: The record key of a failure of the whole data set (it could not run at all).
WHOLE_DATA_SET: Final = "-"
#: The way forward for a member whose customer has no PayTrace profile.
NO_PROFILE_FIX: Final = (
    "send a card-capture link from the member's page (Ask for a card on file): PayTrace "
    "makes the profile when the customer saves a card"
)
#: Where a profile's fields are in a ``paytrace.customer`` record.
PROFILE_PATHS: Final = {
    "name": ("billing_address", "name"),
    "line1": ("billing_address", "street_address"),
    "line2": ("billing_address", "street_address2"),
    "city": ("billing_address", "city"),
    "region": ("billing_address", "state"),
    "postal_code": ("billing_address", "zip"),
    "country": ("billing_address", "country"),
}


@dataclass
class Pair:
    profile: CardCustomer
    customer: CustomerAccount

    @property
    def key(self) -> str:
        return self.profile.customer_id


def gateway_connection(session: Any, ledger_connection_id: int) -> Connection | None:
    """The PayTrace connection whose payments post to this ledger (or the only one)."""
    gateways: list[Connection] = list(
        session.scalars(select(Connection).where(Connection.kind.in_(registry.gateway_kinds())))
    )
    chosen = [
        g for g in gateways if g.settings.get("post_to_connection_id") == ledger_connection_id
    ]
    if not chosen and len(gateways) == 1 and not gateways[0].settings.get("post_to_connection_id"):
        chosen = gateways
    if not chosen:
        return None
    session.expunge(chosen[0])
    return chosen[0]


def no_gateway_problem(session: Any, ledger: Connection) -> tuple[str, str]:
    """(message, fix) when no PayTrace connection posts to ``ledger``: which connections
    there are, where their payments go, and the page and setting that change it."""
    gateways: list[Connection] = list(
        session.scalars(
            select(Connection)
            .where(Connection.kind.in_(registry.gateway_kinds()))
            .order_by(Connection.id)
        )
    )
    untick = (
        f"otherwise untick “PayTrace customer profiles” in {ledger.name}'s Sync settings "
        "on the Sync page"
    )
    if not gateways:
        return (
            f"There is no PayTrace connection, so {ledger.name} has no PayTrace customer "
            "profiles to keep in step",
            f"If card payments should post to {ledger.name}, add a PayTrace connection under "
            f"Accounting Integration (/connections) with Post payments to: {ledger.name}, "
            f"then retry; {untick}",
        )
    names = {c.id: c.name for c in session.scalars(select(Connection))}
    where = "; ".join(
        f"{g.name} posts to "
        + (
            names.get(int(g.settings["post_to_connection_id"]), "another ledger")
            if g.settings.get("post_to_connection_id")
            else "the only active ledger (there are several)"
        )
        for g in gateways
    )
    first = gateways[0]
    return (
        f"No PayTrace connection posts card payments to {ledger.name} ({where}), so there "
        "are no profiles to pair with its customers",
        f"If card payments should post to {ledger.name}, open Accounting Integration → "
        f"{first.name} (/connections/{first.id}), set Card payments → Post payments to: "
        f"{ledger.name}, save, then retry; {untick}",
    )


def profile_record(profile: CardCustomer) -> dict[str, Any]:
    """A profile as PayTrace's export gives it (``paytrace.customer``), never card data."""
    a = profile.address
    return {
        "customer_id": profile.customer_id,
        "email": profile.email or None,
        "phone": profile.phone or None,
        "billing_address": {
            "name": profile.name or None,
            "street_address": a.line1 or None,
            "street_address2": a.line2 or None,
            "city": a.city or None,
            "state": a.region or None,
            "zip": a.postal_code or None,
            "country": a.country or None,
        },
    }


def _as_customer(profile: CardCustomer) -> CustomerAccount:
    return CustomerAccount(
        system="paytrace",
        id=profile.customer_id,
        number=profile.customer_id,
        name=profile.name,
        email=profile.email,
        phone=profile.phone,
        address=profile.address,
    )


@dataclass(frozen=True)
class ProfileMapping:
    """The two specs between a ledger's customers and PayTrace profiles."""

    system: str
    to_ledger: ActiveMapping
    to_paytrace: ActiveMapping

    @classmethod
    def load(cls, session: Any, repository: MappingRepository, system: str) -> ProfileMapping:
        """The specs for ``system``'s ledgers."""
        kind = registry.descriptor(system)  # the ledger kind ships both specs
        inbound = kind.spec(registry.CARD_PROFILE_TO_CUSTOMER)
        outbound = kind.spec(registry.CUSTOMER_TO_CARD_PROFILE)
        return cls(system, repository.load(session, inbound), repository.load(session, outbound))

    @property
    def versions(self) -> dict[str, str]:
        return {m.spec.name: m.version for m in (self.to_ledger, self.to_paytrace)}

    def profile_values(self, profile: CardCustomer, customer: CustomerAccount) -> Values:
        """The profile as the ledger would hold it (the PayTrace → ledger spec), normalised
        as the ledger's own values are; a field the spec cannot map is taken as typed."""
        result = self.to_ledger.compiled.apply(profile_record(profile), None, MappingContext())
        mapped = customer_from_record(
            self.system, result.output, customer.number, customer.currency
        )
        values = ledger_values(mapped)
        if result.errors:
            raw = ledger_values(_as_customer(profile))
            failed = {e.field for e in result.errors}
            for name, path in record_layout(self.system).fields.items():
                if path in failed:
                    values[name] = raw[name]
        return values

    def as_paytrace_would(self, profile: CardCustomer, customer: CustomerAccount) -> Values:
        """``customer``'s values as PayTrace holds them once it agrees with the ledger (the
        ledger → PayTrace spec, then read back); empty when the spec cannot map it."""
        try:
            written = self.profile_of(profile, customer)
        except SpecFailed:
            return {}
        return self.profile_values(written, customer)

    def paytrace_side(self, pair: Pair, ledger: Values, baseline: Values | None) -> Values:
        """The profile in the ledger's terms, where a value that is only how the spec
        writes the ledger's value (now, or when both last agreed) counts as that value: a
        spec that shortens or re-cases a name is not a change made in PayTrace."""
        values = self.profile_values(pair.profile, pair.customer)
        differing = [name for name in FIELDS if values.get(name) != ledger.get(name)]
        if not differing:
            return values
        now = self.as_paytrace_would(pair.profile, pair.customer)
        then: Values = {}
        if baseline is not None:
            agreed = _with_values(pair.customer, baseline)
            then = self.as_paytrace_would(pair.profile, agreed)
        for name in differing:
            if now and values[name] == now.get(name):
                values[name] = ledger[name]
            elif baseline is not None and then and values[name] == then.get(name):
                values[name] = baseline.get(name, "")
        return values

    def profile_of(self, profile: CardCustomer, customer: CustomerAccount) -> CardCustomer:
        """What PayTrace is sent for ``customer`` (the ledger → PayTrace spec); raises
        :class:`SpecFailed` when the spec cannot map a field a profile keeps."""
        result = self.to_paytrace.compiled.apply(
            customer_record(self.system, customer), None, MappingContext()
        )
        wanted = ["email", "phone", *(".".join(p) for p in PROFILE_PATHS.values())]
        out = checked(result, self.to_paytrace.version, wanted)
        billing = out.get("billing_address") or {}

        def text(*path: str) -> str:
            value = billing.get(path[1]) if len(path) == 2 else out.get(path[0])
            return "" if value is None else str(value)

        return replace(
            profile,
            name=text(*PROFILE_PATHS["name"]),
            email=text("email"),
            phone=text("phone"),
            address=Address(
                line1=text(*PROFILE_PATHS["line1"]),
                line2=text(*PROFILE_PATHS["line2"]),
                city=text(*PROFILE_PATHS["city"]),
                region=text(*PROFILE_PATHS["region"]),
                postal_code=text(*PROFILE_PATHS["postal_code"]),
                country=text(*PROFILE_PATHS["country"]),
            ),
        )


async def pairs(
    db: Any, ledger: Ledger, gateway: CardGateway, ledger_connection: Connection
) -> list[Pair]:
    profiles = await gateway.customers()
    by_id: dict[str, CustomerAccount] = {}
    by_number: dict[str, CustomerAccount] = {}
    async for account in ledger.customers():
        if not account.deleted:
            by_id[account.id] = account
            by_number[account.number.strip().upper()] = account

    def match() -> list[Pair]:
        found = []
        with db.read() as session:
            for profile in profiles:
                payer = find_payer(session, profile.customer_id, ledger_connection.id)
                customer: CustomerAccount | None = by_id.get(payer.ledger_customer_id or "")
                if customer is None and _same_numbering(gateway.system, ledger.system):
                    try:
                        number = harmonise(profile.customer_id, gateway.system, ledger.system).value
                    except MappingValueError:
                        number = ""
                    customer = by_number.get(number)
                if customer is not None:
                    found.append(Pair(profile, customer))
        return found

    return await in_thread(match)


def _same_numbering(gateway: str, ledger: str) -> bool:
    """A profile not linked through a payer yet is matched by number only where the
    ledger numbers its customers the way the gateway's profile ids are written (Sage 500's
    C00042 is PayTrace's C00042; an SBC contact reference M00042 is a member number)."""
    source, target = DEFAULT_FORMATS.get(gateway), DEFAULT_FORMATS.get(ledger)
    return source is not None and target is not None and source.prefix == target.prefix


def _policies(policies: dict[str, Policy]) -> tuple[dict[str, Policy], Policy]:
    # merge() calls one side "registry": here that side is PayTrace, the other the ledger
    return dict(policies), Policy.LEDGER_WINS


def evaluate(
    pair: Pair,
    baseline: Values | None,
    policies: dict[str, Policy],
    mapping: ProfileMapping,
) -> Merge:
    chosen, default = _policies(policies)
    ledger = ledger_values(pair.customer)
    return merge(
        baseline,
        mapping.paytrace_side(pair, ledger, baseline),
        ledger,
        chosen,
        ledger_at=pair.customer.updated_at,
        default=default,
    )


def _with_values(customer: CustomerAccount, values: Values) -> CustomerAccount:
    return replace(
        customer,
        name=values.get("name", ""),
        email=values.get("email", ""),
        phone=values.get("phone", ""),
        address=address_of({name: values.get(name, "") for name in FIELDS}),
    )


def changes(outcome: Merge) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for change in outcome.to_ledger:
        found[change.field] = {"before": change.before, "after": change.after, "to": "ledger"}
    for change in outcome.to_registry:
        found[change.field] = {"before": change.before, "after": change.after, "to": "paytrace"}
    if outcome.conflicts:
        found["_conflicts"] = [
            {
                "field": c.field,
                "paytrace": c.registry,
                "ledger": c.ledger,
                "winner": "paytrace" if c.winner == "registry" else "ledger",
            }
            for c in outcome.conflicts
        ]
    if outcome.first_sync:  # no agreement yet: the policy chose, nobody changed anything
        found["_first_sync"] = [
            {
                "field": c.field,
                "paytrace": c.registry,
                "ledger": c.ledger,
                "winner": "paytrace" if c.winner == "registry" else "ledger",
            }
            for c in outcome.first_sync
        ]
    return found


async def apply(
    pair: Pair,
    outcome: Merge,
    ledger: Ledger,
    gateway: CardGateway,
    mapping: ProfileMapping,
) -> tuple[bool, str]:
    """Write the merge's result to whichever side must change; (ok, message)."""
    try:
        if outcome.to_registry:  # "registry" is PayTrace here
            agreed = _with_values(pair.customer, outcome.result)
            await gateway.update_customer(mapping.profile_of(pair.profile, agreed))
        if outcome.to_ledger:
            draft = customer_draft(pair.customer.number, pair.customer.currency, outcome.result)
            await ledger.update_customer(pair.customer.id, draft)
    except SpecFailed as exc:
        return False, f"{exc.message}; {exc.fix}"
    except UpstreamError as exc:
        return False, exc.message
    return True, ""


def baselines(session: Any, connection_id: int) -> dict[str, Values]:
    return {
        row.paytrace_customer_id: dict(row.values)
        for row in session.scalars(
            select(CardProfileBaseline).where(CardProfileBaseline.connection_id == connection_id)
        )
    }


def store_baseline(session: Any, connection_id: int, pair: Pair, values: Values) -> None:
    row = session.get(CardProfileBaseline, (connection_id, pair.key))
    if row is None:
        session.add(
            CardProfileBaseline(
                connection_id=connection_id,
                paytrace_customer_id=pair.key,
                customer_id=pair.customer.id,
                values=values,
                synced_at=utcnow(),
            )
        )
        return
    row.customer_id = pair.customer.id
    row.values = values
    row.synced_at = utcnow()


def without_profile(
    session: Any, run_id: int, connection_id: int, paired: set[str]
) -> tuple[int, list[RecordItem]]:
    """Members linked to a customer of this ledger that no PayTrace profile pairs with:
    (how many, a skipped record for each not told about in an earlier run). Told once, so
    a run with nothing new stays quiet; the count is in every run."""
    members = [
        row
        for row in session.execute(
            select(MemberRow.id, MemberRow.number, MemberLinkRow.customer_id)
            .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
            .where(
                MemberLinkRow.connection_id == connection_id,
                MemberLinkRow.unlinked_at.is_(None),
            )
            .order_by(MemberRow.number)
        )
        if row.customer_id not in paired
    ]
    if not members:
        return 0, []
    told = set(
        session.scalars(
            select(SyncRecord.record_key)
            .join(SyncRun, SyncRun.id == SyncRecord.run_id)
            .where(
                SyncRun.connection_id == connection_id,
                SyncRun.dry_run.is_(False),
                SyncRecord.data_set == DATA_SET,
                SyncRecord.action == "skip",
                SyncRecord.status == "skipped",
            )
        )
    )
    records = [
        RecordItem(
            run_id=run_id,
            data_set=DATA_SET,
            record_key=row.number,
            member_id=row.id,
            direction="none",
            action="skip",
            status="skipped",
            message=f"Member {row.number} (customer {row.customer_id}): no PayTrace profile",
            fix=NO_PROFILE_FIX,
        )
        for row in members
        if row.number not in told
    ]
    return len(members), records
