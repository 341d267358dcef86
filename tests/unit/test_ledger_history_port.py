"""Every ledger adapter answers the history port with typed records: a ledger kind
without receipts, refunds or credit notes fails here (and in mypy, where ``Ledger``
includes ``LedgerHistory``) instead of a member's history silently missing rows."""

from __future__ import annotations

import inspect
import typing

import pytest

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import Ledger, LedgerHistory
from ledgerlink.connectors.sage500.ledger import Sage500Ledger
from ledgerlink.connectors.sbc.ledger import SbcLedger

#: The adapter class of each ledger kind: a new kind must be added here, and then it is
#: checked like the others.
ADAPTER_OF = {"sbc": SbcLedger, "sage500": Sage500Ledger}
ADAPTERS = list(ADAPTER_OF.values())


def test_every_registered_ledger_kind_is_checked_here() -> None:
    assert set(registry.ledger_kinds()) == set(ADAPTER_OF)


def test_the_ledger_port_includes_the_history_port() -> None:
    assert issubclass(Ledger, LedgerHistory)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
@pytest.mark.parametrize("method", ["payments", "credit_notes"])
def test_each_ledger_adapter_reads_its_history_as_typed_records(adapter: type, method: str) -> None:
    function = getattr(adapter, method, None)
    assert function is not None, f"{adapter.__name__} has no {method}()"
    assert inspect.isasyncgenfunction(function)
    assert "changed_since" in inspect.signature(function).parameters
    wanted = typing.get_type_hints(getattr(LedgerHistory, method))["return"]
    assert typing.get_type_hints(function)["return"] == wanted
