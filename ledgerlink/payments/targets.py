"""The connections a card payment goes through: the PayTrace connection it came from
(and its gateway adapter), and the ledger its payments post to (its adapter, how card
payments post to its kind, its payment spec). Each is read and opened once per drain and
shared by the events in it; a drain lasts two minutes at most, so a settings change is
seen by the next one."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, CardPostingRules, PaymentLedger
from ledgerlink.payments.payers import find_payer
from ledgerlink.payments.planning import LedgerTarget, ReceiptMapper
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection


@dataclass
class OpenLedger:
    """A ledger connection a drain posts to, opened once and shared."""

    connection: Connection
    ledger: PaymentLedger
    rules: CardPostingRules
    target: LedgerTarget
    lockdown: dt.date | None = None
    lockdown_read_at: float = -1e9


class PaymentTargets:
    """The connections of one drain (or one charge), opened on first use."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self._paytrace: dict[int | None, Connection] = {}
        self._targets: dict[int, int] = {}
        self._ledgers: dict[int, OpenLedger] = {}
        self._gateways: dict[int, CardGateway] = {}
        self._mappers: dict[int, ReceiptMapper] = {}
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        for opened in self._ledgers.values():
            await opened.ledger.aclose()
        for gateway in self._gateways.values():
            await gateway.aclose()

    async def paytrace_connection(self, connection_id: int | None) -> Connection:
        """The PayTrace connection (read once per drain: a drain lasts two minutes at
        most, so a settings change is seen by the next one)."""
        if connection_id in self._paytrace:
            return self._paytrace[connection_id]
        found = await reading(self.db, lambda session: _read_gateway(session, connection_id))
        self._paytrace[connection_id] = found
        return found

    async def ledger_for(self, paytrace_connection_id: int | None) -> OpenLedger:
        """The ledger the payments of this PayTrace connection post to, opened."""
        return await self.ledger_for_gateway(await self.paytrace_connection(paytrace_connection_id))

    async def ledger_for_gateway(self, paytrace: Connection) -> OpenLedger:
        """The ledger a PayTrace connection's payments are posted to, opened."""
        if paytrace.id in self._targets:
            return await self.ledger_by_id(self._targets[paytrace.id])
        wanted = paytrace.settings.get("post_to_connection_id")
        if wanted:
            ledger_ids = [int(wanted)]
        else:
            ledger_ids = await reading(self.db, _active_ledger_ids)
        if len(ledger_ids) != 1:
            raise PaymentProblem(
                "configuration",
                "It is not set which ledger card payments are posted to"
                + (" (there are several)" if ledger_ids else " (there is none)"),
                "Choose the ledger under Accounting Integration → PayTrace → Post payments "
                "to, then retry.",
                critical=True,
            )
        self._targets[paytrace.id] = ledger_ids[0]
        return await self.ledger_by_id(ledger_ids[0])

    async def ledger_by_id(self, connection_id: int) -> OpenLedger:
        async with self._lock:
            opened = self._ledgers.get(connection_id)
            if opened is not None:
                return opened
            connection = await reading(self.db, lambda session: _detached(session, connection_id))
            rules = _card_posting(connection)
            if connection is None or rules is None:
                raise PaymentProblem(
                    "configuration",
                    f"Connection {connection_id}, chosen for card payments, is not a ledger",
                    "Choose SBC or Sage 500 under Accounting Integration → PayTrace, then retry.",
                    critical=True,
                )
            ledger = self.runtime.ledger_for(connection)
            name = registry.label(connection.kind)
            if not isinstance(ledger, PaymentLedger):
                raise PaymentProblem(
                    "configuration",
                    f"{name} cannot take card payments back (no receipt reversal)",
                    "Choose another ledger under Accounting Integration → PayTrace, then retry.",
                    critical=True,
                )
            target = LedgerTarget(
                connection.id, connection.kind, name, ledger.refunds_reopen_invoices
            )
            opened = OpenLedger(connection, ledger, rules, target)
            self._ledgers[connection_id] = opened
            return opened

    async def gateway(self, connection: Connection) -> CardGateway:
        async with self._lock:
            gateway = self._gateways.get(connection.id)
            if gateway is None:
                gateway = self.runtime.gateway_for(connection)
                self._gateways[connection.id] = gateway
            return gateway

    async def receipt_mapper(self, opened: OpenLedger) -> ReceiptMapper:
        """The ledger's active payment spec, loaded once per drain."""
        connection_id = opened.connection.id
        if connection_id not in self._mappers:
            name = registry.descriptor(opened.connection.kind).spec(registry.PAYMENT_TO_RECEIPT)
            active = await reading(
                self.db, lambda session: self.runtime.mappings.load(session, name)
            )
            self._mappers[connection_id] = ReceiptMapper(
                active.compiled, active.version, opened.rules
            )
        return self._mappers[connection_id]

    async def payer(self, opened: OpenLedger, paytrace_customer_id: str) -> tuple[str | None, str]:
        """(ledger customer id, its number) of a PayTrace customer, or (None, "")."""
        connection_id = opened.connection.id
        payer = await reading(
            self.db, lambda session: find_payer(session, paytrace_customer_id, connection_id)
        )
        if payer.ledger_customer_id:
            return payer.ledger_customer_id, payer.ledger_customer_number or ""
        # Where ledgerlink names PayTrace profiles after the ledger's customers, the
        # profile id names the customer even without a member link.
        named = opened.rules.customer_number_of_profile
        number = named(paytrace_customer_id) if named is not None else None
        if number is not None:
            account = await opened.ledger.find_customer(number)
            if account is not None:
                return account.id, account.number
        return None, ""


def _read_gateway(session: Session, connection_id: int | None) -> Connection:
    if connection_id is not None:
        found = session.get(Connection, connection_id)
    else:
        candidates = session.scalars(
            select(Connection).where(Connection.kind.in_(registry.gateway_kinds()))
        ).all()
        found = candidates[0] if len(candidates) == 1 else None
    if found is None:
        raise PaymentProblem(
            "configuration",
            "No PayTrace connection receives this payment",
            "Add the PayTrace connection under Accounting Integration, then retry.",
            critical=True,
        )
    session.expunge(found)
    return found


def _active_ledger_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Connection.id).where(
                Connection.kind.in_(registry.ledger_kinds()), Connection.is_active
            )
        )
    )


def _detached(session: Session, connection_id: int) -> Connection | None:
    connection = session.get(Connection, connection_id)
    if connection is not None:
        session.expunge(connection)
    return connection


def _card_posting(connection: Connection | None) -> CardPostingRules | None:
    """How card payments post to ``connection``'s kind; None when they cannot."""
    if connection is None or connection.kind not in registry.ledger_kinds():
        return None
    return registry.descriptor(connection.kind).card_posting
