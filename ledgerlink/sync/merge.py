"""Three-way merge of one member's details: what both sides last agreed on, the registry
now, the ledger now.

A field changed on one side only flows to the other. A field changed on both sides to
different values is a conflict, settled by the field's policy (registry wins, ledger
wins, or the side changed most recently wins) and reported. Without a baseline (the
first sync of a link) every difference is settled by the policy, and reported as a
conflict only when the policy had to choose against a side that was not empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ledgerlink.sync.datasets import FIELDS, Policy

Values = dict[str, str]


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Conflict:
    field: str
    registry: str
    ledger: str
    winner: str  # "registry" | "ledger"


@dataclass
class Merge:
    result: Values
    to_ledger: list[FieldChange] = field(default_factory=list)
    to_registry: list[FieldChange] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.to_ledger or self.to_registry)


def _winner(policy: Policy, registry_at: datetime | None, ledger_at: datetime | None) -> str:
    if policy is Policy.REGISTRY_WINS:
        return "registry"
    if policy is Policy.LEDGER_WINS:
        return "ledger"
    if registry_at is None or ledger_at is None:
        return "registry" if ledger_at is None else "ledger"
    return "ledger" if ledger_at > registry_at else "registry"


def merge(
    baseline: Values | None,
    registry: Values,
    ledger: Values,
    policies: dict[str, Policy],
    *,
    registry_at: datetime | None = None,
    ledger_at: datetime | None = None,
    default: Policy = Policy.REGISTRY_WINS,
) -> Merge:
    result: Values = {}
    outcome = Merge(result)
    for name in FIELDS:
        mine, theirs = registry.get(name, ""), ledger.get(name, "")
        if mine == theirs:
            result[name] = mine
            continue
        base = None if baseline is None else baseline.get(name, "")
        if base is not None and theirs == base:
            chosen = "registry"  # only the registry changed it
        elif base is not None and mine == base:
            chosen = "ledger"  # only the ledger changed it
        elif base is None and not theirs:
            chosen = "registry"  # first sync: fill the empty side, nothing to argue about
        elif base is None and not mine:
            chosen = "ledger"
        else:
            chosen = _winner(policies.get(name, default), registry_at, ledger_at)
            outcome.conflicts.append(Conflict(name, mine, theirs, chosen))
        if chosen == "registry":
            result[name] = mine
            outcome.to_ledger.append(FieldChange(name, theirs, mine))
        else:
            result[name] = theirs
            outcome.to_registry.append(FieldChange(name, mine, theirs))
    return outcome
