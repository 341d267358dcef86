"""The card-profiles data set: ledger customers ↔ PayTrace customer profiles, both ways.

Name, e-mail, phone and billing address (never card data: the card changes only through
PayTrace's hosted fields) are kept equal between a customer in the ledger (Sage 500
above all, where PayTrace profiles carry the ``CustID``) and its PayTrace profile, with the
same rules as member details: a three-way merge from what both last agreed on, a field
changed on one side flows to the other, a field changed on both is a conflict settled by
the field's policy and reported. Here "registry wins" means *PayTrace wins* and "ledger
wins" the ledger; the default is the ledger, the customer master.

Pairs are found as payments find their payer: the member's PayTrace link and ledger link,
or the ``CustID`` a Sage 500 profile is named after.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.accounts import CardCustomer, CustomerAccount
from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.transforms.customer_ids import harmonise
from ledgerlink.payments.payers import find_payer
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import CardProfileBaseline
from ledgerlink.store.types import utcnow
from ledgerlink.sync.datasets import Policy
from ledgerlink.sync.fields import address_of, customer_draft, ledger_values
from ledgerlink.sync.merge import Merge, Values, merge

DATA_SET = "card_profiles"


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
        session.scalars(select(Connection).where(Connection.kind == "paytrace"))
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


def profile_values(profile: CardCustomer) -> Values:
    """A profile's fields, normalised exactly as a ledger customer's are."""
    as_customer = CustomerAccount(
        system="paytrace",
        id=profile.customer_id,
        number=profile.customer_id,
        name=profile.name,
        email=profile.email,
        phone=profile.phone,
        address=profile.address,
    )
    return ledger_values(as_customer)


def updated_profile(profile: CardCustomer, values: Values) -> CardCustomer:
    return replace(
        profile,
        name=values["name"],
        email=values["email"],
        phone=values["phone"],
        address=address_of(values),
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
    found = []
    with db.read() as session:
        for profile in profiles:
            payer = find_payer(session, profile.customer_id, ledger_connection.id)
            customer: CustomerAccount | None = by_id.get(payer.ledger_customer_id or "")
            if customer is None and ledger_connection.kind == "sage500":
                try:
                    number = harmonise(profile.customer_id, "paytrace", "sage500").value
                except MappingValueError:
                    number = ""
                customer = by_number.get(number)
            if customer is not None:
                found.append(Pair(profile, customer))
    return found


def _policies(policies: dict[str, Policy]) -> tuple[dict[str, Policy], Policy]:
    # merge() calls one side "registry": here that side is PayTrace, the other the ledger
    return dict(policies), Policy.LEDGER_WINS


def evaluate(pair: Pair, baseline: Values | None, policies: dict[str, Policy]) -> Merge:
    chosen, default = _policies(policies)
    return merge(
        baseline,
        profile_values(pair.profile),
        ledger_values(pair.customer),
        chosen,
        ledger_at=pair.customer.updated_at,
        default=default,
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
    return found


async def apply(
    pair: Pair, outcome: Merge, ledger: Ledger, gateway: CardGateway
) -> tuple[bool, str]:
    """Write the merge's result to whichever side must change; (ok, message)."""
    try:
        if outcome.to_registry:  # "registry" is PayTrace here
            await gateway.update_customer(updated_profile(pair.profile, outcome.result))
        if outcome.to_ledger:
            draft = customer_draft(pair.customer.number, pair.customer.currency, outcome.result)
            await ledger.update_customer(pair.customer.id, draft)
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
