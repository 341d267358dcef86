"""Three-way merge of one member's details: what both sides last agreed on, the registry
now, the ledger now.

A field changed on one side only flows to the other. A field changed on both sides to
different values is a conflict, settled by the field's policy (registry wins, ledger
wins, or the side changed most recently wins) and reported. Without a baseline (the
first sync of a link) nothing says which side changed, so a difference is not called a
conflict: it is settled by the same policy and reported as a *first-sync difference*
(an empty side is simply filled).

The ledger's values reach the merge through a mapping spec, which may not give back
exactly what the registry holds (a name cut to 40 characters). So each side is compared
with what *it* last held (the ledger's own baseline, when one was stored), a side whose
raw record did not change since then has changed nothing, and a value the ledger holds
because the spec wrote it that way (``as_ledger_would``) agrees with the registry.
"""

from __future__ import annotations

from collections.abc import Callable
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
    #: both sides changed the field since they last agreed
    conflicts: list[Conflict] = field(default_factory=list)
    #: first sync of the pair (no agreement yet): the sides differed and the policy chose;
    #: nobody can tell which side changed, so this is not a conflict
    first_sync: list[Conflict] = field(default_factory=list)

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
    ledger_baseline: Values | None = None,
    registry_moved: bool = True,
    ledger_moved: bool = True,
    as_ledger_would: Callable[[], Values] | None = None,
    remap: bool = False,
    registry_at: datetime | None = None,
    ledger_at: datetime | None = None,
    default: Policy = Policy.REGISTRY_WINS,
) -> Merge:
    """Merge one member. ``baseline`` is what both sides last agreed on in the registry's
    terms, ``ledger_baseline`` what the ledger held then (when it differs); a side not
    ``*_moved`` since the baseline changed no field; ``as_ledger_would()`` gives the
    registry's values as the ledger holds them when both agree (asked for at most once,
    and only when a difference needs it). ``remap``: a field the ledger holds otherwise than
    ``as_ledger_would`` says, and that no side changed, goes to the ledger in that form (a
    spec changed since it was written)."""
    result: Values = {}
    outcome = Merge(result)
    mapped: list[Values] = []

    def agrees(name: str, theirs: str) -> bool:
        if as_ledger_would is None:
            return False
        if not mapped:
            mapped.append(as_ledger_would())
        return mapped[0].get(name, "") == theirs

    def remap_to_ledger(name: str, theirs: str) -> None:
        """A remap run: the ledger's copy of a settled field differs from what the spec
        writes now, so the ledger gets the spec's form."""
        if remap and as_ledger_would is not None and not agrees(name, theirs):
            outcome.to_ledger.append(FieldChange(name, theirs, mapped[0].get(name, "")))

    for name in FIELDS:
        mine, theirs = registry.get(name, ""), ledger.get(name, "")
        if mine == theirs:
            result[name] = mine
            remap_to_ledger(name, theirs)
            continue
        if baseline is not None:
            held = ledger_baseline if ledger_baseline is not None else baseline
            registry_changed = registry_moved and mine != baseline.get(name, "")
            ledger_changed = ledger_moved and theirs != held.get(name, "")
            if not ledger_changed and not registry_changed:
                result[name] = mine  # apart only in how the spec writes the ledger's copy
                remap_to_ledger(name, theirs)
                continue
            if not ledger_changed:
                chosen = "registry"
            elif agrees(name, theirs):
                result[name] = mine  # the ledger holds the registry's value, as mapped
                continue
            elif not registry_changed:
                chosen = "ledger"
            else:
                chosen = _winner(policies.get(name, default), registry_at, ledger_at)
                outcome.conflicts.append(Conflict(name, mine, theirs, chosen))
        elif not theirs:
            chosen = "registry"  # first sync: fill the empty side, nothing to argue about
        elif not mine:
            chosen = "ledger"
        elif agrees(name, theirs):
            result[name] = mine
            continue
        else:
            chosen = _winner(policies.get(name, default), registry_at, ledger_at)
            outcome.first_sync.append(Conflict(name, mine, theirs, chosen))
        if chosen == "registry":
            result[name] = mine
            outcome.to_ledger.append(FieldChange(name, theirs, mine))
        else:
            result[name] = theirs
            outcome.to_registry.append(FieldChange(name, mine, theirs))
    return outcome
