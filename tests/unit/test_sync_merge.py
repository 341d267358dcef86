"""Properties of the three-way merge of member details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.sync.datasets import FIELDS, Policy
from ledgerlink.sync.merge import merge

text = st.sampled_from(["", "a", "b", "c"])
values = st.fixed_dictionaries({name: text for name in FIELDS})
policies = st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(list(Policy)))
moments = st.none() | st.datetimes(timezones=st.just(UTC))


def _apply(side: dict[str, str], changes: list) -> dict[str, str]:  # type: ignore[type-arg]
    out = dict(side)
    for change in changes:
        assert out[change.field] == change.before  # a change starts from what the side holds
        out[change.field] = change.after
    return out


@given(
    base=st.none() | values,
    registry=values,
    ledger=values,
    chosen=policies,
    r_at=moments,
    l_at=moments,
)
def test_after_writing_both_ways_both_sides_hold_the_result(
    base, registry, ledger, chosen, r_at, l_at
) -> None:  # type: ignore[no-untyped-def]
    outcome = merge(base, registry, ledger, chosen, registry_at=r_at, ledger_at=l_at)
    assert _apply(registry, outcome.to_registry) == outcome.result
    assert _apply(ledger, outcome.to_ledger) == outcome.result


@given(base=st.none() | values, same=values, chosen=policies)
def test_equal_sides_change_nothing(base, same, chosen) -> None:  # type: ignore[no-untyped-def]
    outcome = merge(base, same, dict(same), chosen)
    assert not outcome.changed
    assert not outcome.conflicts
    assert outcome.result == same


@given(base=values, registry=values, chosen=policies)
def test_a_change_on_one_side_only_flows_to_the_other_without_conflict(
    base, registry, chosen
) -> None:  # type: ignore[no-untyped-def]
    from_registry = merge(base, registry, dict(base), chosen)
    assert from_registry.result == registry
    assert not from_registry.conflicts
    assert not from_registry.to_registry
    from_ledger = merge(base, dict(base), registry, chosen)
    assert from_ledger.result == registry
    assert not from_ledger.conflicts
    assert not from_ledger.to_ledger


@given(base=values, registry=values, ledger=values)
def test_conflicts_are_exactly_the_fields_both_sides_changed_differently(
    base, registry, ledger
) -> None:  # type: ignore[no-untyped-def]
    outcome = merge(base, registry, ledger, {})
    expected = {
        f
        for f in FIELDS
        if registry[f] != ledger[f] and registry[f] != base[f] and ledger[f] != base[f]
    }
    assert {c.field for c in outcome.conflicts} == expected
    assert all(outcome.result[c.field] == registry[c.field] for c in outcome.conflicts)  # default


@given(base=values, registry=values, ledger=values)
def test_ledger_wins_and_newest_wins_pick_the_right_side(base, registry, ledger) -> None:  # type: ignore[no-untyped-def]
    ledger_first = merge(base, registry, ledger, dict.fromkeys(FIELDS, Policy.LEDGER_WINS))
    assert all(ledger_first.result[c.field] == ledger[c.field] for c in ledger_first.conflicts)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    newest = merge(
        base,
        registry,
        ledger,
        dict.fromkeys(FIELDS, Policy.NEWEST_WINS),
        registry_at=now,
        ledger_at=now + timedelta(seconds=1),
    )
    assert all(newest.result[c.field] == ledger[c.field] for c in newest.conflicts)


# ---- a ledger read through a spec that does not give the registry's values back ----------


def _shout(side: dict[str, str]) -> dict[str, str]:
    """A spec that writes the ledger's copy in capitals (lossy: the case is gone)."""
    return {name: value.upper() for name, value in side.items()}


@given(base=st.none() | values, registry=values, chosen=policies)
def test_a_ledger_holding_the_registry_as_the_spec_writes_it_agrees(base, registry, chosen) -> None:  # type: ignore[no-untyped-def]
    asked: list[int] = []

    def as_ledger_would() -> dict[str, str]:
        asked.append(1)
        return _shout(registry)

    outcome = merge(base, registry, _shout(registry), chosen, as_ledger_would=as_ledger_would)
    assert not outcome.changed
    assert not outcome.conflicts
    assert outcome.result == registry  # the registry keeps its own spelling
    assert len(asked) <= 1


@given(
    registry=values,
    field=st.sampled_from(FIELDS),
    typed=st.sampled_from(["", "A", "B", "C", "D"]),
    chosen=policies,
)
def test_only_what_the_ledger_changed_flows_back_through_a_lossy_spec(
    registry, field, typed, chosen
) -> None:  # type: ignore[no-untyped-def]
    held = _shout(registry)  # what the ledger held after the last sync
    now = {**held, field: typed}  # then someone edited one field in the ledger
    outcome = merge(
        registry,
        registry,
        now,
        chosen,
        ledger_baseline=held,
        registry_moved=False,
        as_ledger_would=lambda: _shout(registry),
    )
    assert not outcome.to_ledger
    assert not outcome.conflicts
    moved = [change.field for change in outcome.to_registry]
    assert moved == ([field] if typed != held[field] else [])


@given(base=values, registry=values, ledger=values, chosen=policies)
def test_sides_that_did_not_move_change_nothing(base, registry, ledger, chosen) -> None:  # type: ignore[no-untyped-def]
    outcome = merge(
        base,
        registry,
        ledger,
        chosen,
        ledger_baseline=ledger,
        registry_moved=False,
        ledger_moved=False,
    )
    assert not outcome.changed
    assert not outcome.conflicts
    assert outcome.result == registry


@given(registry=values, held=values, chosen=policies)
def test_a_remap_writes_the_spec_form_of_every_field_the_ledger_holds_otherwise(
    registry, held, chosen
) -> None:  # type: ignore[no-untyped-def]
    """Neither side changed since the last sync; the spec now writes capitals."""
    outcome = merge(
        registry,
        registry,
        held,
        chosen,
        ledger_baseline=held,
        registry_moved=False,
        ledger_moved=False,
        as_ledger_would=lambda: _shout(registry),
        remap=True,
    )
    assert not outcome.to_registry
    assert not outcome.conflicts
    assert outcome.result == registry
    wanted = _shout(registry)
    assert {c.field: c.after for c in outcome.to_ledger} == {
        name: wanted[name] for name in FIELDS if held[name] != wanted[name]
    }


@given(registry=values, ledger=values, chosen=policies)
def test_a_first_sync_reports_differences_as_first_sync_never_as_conflicts(
    registry, ledger, chosen
) -> None:  # type: ignore[no-untyped-def]
    """Without a baseline nothing says which side changed: a difference both sides fill is
    settled by the policy and named a first-sync difference, not a conflict."""
    outcome = merge(None, registry, ledger, chosen)
    assert outcome.conflicts == []
    assert {c.field for c in outcome.first_sync} == {
        name
        for name in FIELDS
        if registry[name] and ledger[name] and registry[name] != ledger[name]
    }
