"""The audit chain's canonical form and redaction, without a database."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.store.audit import REDACTED, canonical_json, chain_hash, redact_secrets

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8).filter(lambda k: "\x00" not in k), children, max_size=5
        )
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), json_values)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same document with every dict's keys inserted in a different order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(doc=documents, seed=st.integers())
def test_canonical_json_ignores_key_order(doc: dict[str, Any], seed: int) -> None:
    assert canonical_json(shuffled(doc, random.Random(seed))) == canonical_json(doc)


@given(doc=documents)
def test_canonical_json_survives_a_trip_through_json_storage(doc: dict[str, Any]) -> None:
    """What verify recomputes from the stored JSON must match what record hashed."""
    assert canonical_json(json.loads(canonical_json(doc))) == canonical_json(doc)


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"], "c": None}) == (
        '{"a":[1,"é"],"b":1,"c":null}'.encode()
    )


def test_datetimes_are_iso_utc_with_z_whatever_their_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    at_utc = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    at_local = datetime(2026, 11, 24, 12, 0, tzinfo=plus_two)
    assert canonical_json(at_utc) == canonical_json(at_local) == b'"2026-11-24T10:00:00.000000Z"'


def test_integral_floats_hash_like_the_integers_postgresql_returns() -> None:
    assert canonical_json({"n": 1e16}) == canonical_json({"n": 10**16})
    assert canonical_json(-0.0) == canonical_json(0)
    assert canonical_json(0.1) == b"0.1"


def test_tuples_hash_like_lists() -> None:
    assert canonical_json({"x": (1, 2)}) == canonical_json({"x": [1, 2]})


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        (Decimal("1.10"), TypeError, "minor units"),
        (float("nan"), ValueError, "JSON cannot hold"),
        (datetime(2026, 1, 1), ValueError, "naive datetime"),
        ({1: "x"}, TypeError, "string keys"),
        ("a\x00b", ValueError, "NUL"),
        (object(), TypeError, "object"),
    ],
)
def test_values_that_would_not_hash_the_same_after_storage_are_refused(
    value: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        canonical_json({"field": value})


def test_the_hash_covers_the_previous_hash() -> None:
    content: dict[str, Any] = {
        "seq": 1,
        "at": datetime(2026, 1, 1, tzinfo=UTC),
        "actor": "a",
        "action": "x",
        "entity_type": "t",
        "entity_id": None,
        "before": None,
        "after": {"k": 1},
    }
    assert chain_hash("0" * 64, **content) != chain_hash("1" * 64, **content)


def test_redact_secrets_replaces_named_fields_at_any_depth() -> None:
    doc = {"name": "SBC", "client_secret": "s3cret", "auth": {"password": "hunter2"}}
    out = redact_secrets(doc, {"client_secret", "password"})
    assert out == {"name": "SBC", "client_secret": REDACTED, "auth": {"password": REDACTED}}
    assert "s3cret" not in json.dumps(out)
    assert doc["client_secret"] == "s3cret"  # the caller's dict is untouched


def test_redact_secrets_shows_an_unset_secret_as_unset() -> None:
    assert redact_secrets({"password": None, "token": ""}, {"password", "token"}) == {
        "password": None,
        "token": "",
    }
    assert redact_secrets(None, {"password"}) is None
