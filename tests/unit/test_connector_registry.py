"""The connector registry: every kind is described once, callers ask by role."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from ledgerlink import connections
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import Misconfigured


def test_the_installed_kinds_by_role() -> None:
    assert set(registry.ledger_kinds()) == {"sbc", "sage500"}
    assert registry.gateway_kinds() == ("paytrace",)
    assert set(registry.kinds()) == {"sbc", "sage500", "paytrace", "smtp"}


def test_an_unknown_kind_is_a_set_up_error_naming_the_known_ones() -> None:
    with pytest.raises(Misconfigured) as caught:
        registry.descriptor("quickbooks")
    assert "unknown connection kind 'quickbooks'" in caught.value.message
    assert "sbc" in caught.value.message
    assert "paytrace" in caught.value.message


def test_each_ledger_ships_a_spec_for_every_purpose() -> None:
    purposes = {
        registry.MEMBER_TO_CUSTOMER,
        registry.CUSTOMER_TO_MEMBER,
        registry.CARD_PROFILE_TO_CUSTOMER,
        registry.CUSTOMER_TO_CARD_PROFILE,
        registry.PAYMENT_TO_RECEIPT,
    }
    for kind in registry.ledger_kinds():
        assert set(registry.descriptor(kind).specs) == purposes, kind


def test_a_missing_spec_names_the_purpose() -> None:
    with pytest.raises(
        Misconfigured, match="PayTrace ships no mapping spec for payment to receipt"
    ):
        registry.descriptor("paytrace").spec(registry.PAYMENT_TO_RECEIPT)


class _Settings(BaseModel):
    region: str = "eu"


def test_a_kind_registered_in_a_block_is_known_there_only() -> None:
    extra = registry.ConnectorKind(
        kind="test_books",
        label="Test Books",
        role="ledger",
        settings_model=_Settings,
        secret_names=frozenset({"api_key"}),
        ledger=lambda runtime, connection, transport: None,  # type: ignore[arg-type,return-value]
    )
    with registry.registered(extra):
        assert "test_books" in registry.ledger_kinds()
        assert connections.validate_settings("test_books", {}) == {"region": "eu"}
        assert connections.secret_names("test_books") == {"api_key"}
    assert "test_books" not in registry.ledger_kinds()
    with pytest.raises(connections.InvalidConnection, match="unknown kind 'test_books'"):
        connections.validate_settings("test_books", {})


def test_a_ledger_kind_needs_a_ledger_factory() -> None:
    with pytest.raises(TypeError, match="needs a ledger factory"):
        registry.ConnectorKind(kind="x", label="X", role="ledger", settings_model=_Settings)
