"""The installation at a glance (the portal's dashboard): users, connections and the audit
chain; card payments and what became of them; how long a payment takes to be posted; and
whether each upstream system and finance's e-mail work right now.

Each figure says what it counts, so two figures side by side never seem to disagree:
card payments are split by what became of them (they add up), and refunds, voids and
chargebacks are counted apart from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.connectors.recent_calls import RECENT_CALLS, CallLog, origin_of
from ledgerlink.domain.checks import ACH
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.store.day_buckets import parse_day, utc_day
from ledgerlink.store.models import AuditHead, Connection, User, WorkerHeartbeat
from ledgerlink.store.payment_models import (
    NotificationLog,
    PaymentEvent,
    PaymentException,
    PaymentPollState,
)
from ledgerlink.store.types import utcnow

#: Card payments and their reversals are counted over the last day.
DAY = timedelta(hours=24)
#: The payment → posted lag is over payments received in the last hour: what a payment
#: takes now, not what one took during an outage or a start hours ago.
LAG_WINDOW = timedelta(hours=1)
#: The dashboard's charts cover the last two weeks, today included.
CHART_DAYS = 14
#: A runner whose heartbeat is older than this is not running any more.
_RUNNER_SEEN = timedelta(minutes=2)
PAYMENT_KINDS = ("sale", "capture")
#: money going back: an ACH ``return`` (the payer's bank sent it back) is one too
REVERSAL_KINDS = ("refund", "void", "chargeback", "return")
#: What became of a card payment, in the order shown (``ignored`` events are resolved
#: as needing nothing posted).
OUTCOMES = {
    "posted": "posted",
    "exception": "in exceptions",
    "received": "waiting",
    "processing": "waiting",
    "ignored": "needed no posting",
}


def counts(session: Session) -> dict[str, int | None]:
    return {
        "users": session.scalar(select(func.count()).select_from(User)),
        "connections": session.scalar(select(func.count()).select_from(Connection)),
        "active_connections": session.scalar(
            select(func.count()).select_from(Connection).where(Connection.is_active)
        ),
        "audit_entries": session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)),
    }


@dataclass(frozen=True)
class Lag:
    """Payment received → receipt posted, over the payments received in ``window`` that
    were posted straight through (not after an operator resolved an exception)."""

    window: timedelta
    payments: int
    p50_seconds: float | None
    p99_seconds: float | None
    #: payments received before the running job runner started (the start-up backlog)
    left_out: int


@dataclass(frozen=True)
class PaymentFigures:
    """Payments received in the last day (card and ACH) and what became of them:
    ``outcomes`` add up to ``payments``, ``by_ach`` of them were ACH. Refunds, voids,
    chargebacks and ACH returns are ``reversals``, apart."""

    payments: int
    by_ach: int
    amount: str
    outcomes: list[tuple[str, int]]
    posted: int
    reversals: int
    reversals_posted: int
    pending: int
    exceptions_open: int
    critical_open: int
    lag: Lag


def payment_figures(session: Session, now: datetime | None = None) -> PaymentFigures:
    now = now or utcnow()
    since = now - DAY
    verified_recent = (PaymentEvent.received_at >= since, PaymentEvent.verified.is_(True))
    payments = session.execute(
        select(PaymentEvent.status, PaymentEvent.payload).where(
            *verified_recent, PaymentEvent.kind.in_(PAYMENT_KINDS)
        )
    ).all()
    outcomes: dict[str, int] = {}
    for status, _ in payments:
        label = OUTCOMES.get(status, status)
        outcomes[label] = outcomes.get(label, 0) + 1
    reversals = session.execute(
        select(PaymentEvent.status, func.count())
        .where(*verified_recent, PaymentEvent.kind.in_(REVERSAL_KINDS))
        .group_by(PaymentEvent.status)
    ).all()
    open_counts = open_exceptions(session)
    order = list(dict.fromkeys(OUTCOMES.values()))
    return PaymentFigures(
        payments=len(payments),
        by_ach=sum(1 for _, payload in payments if (payload or {}).get("method") == ACH),
        amount=amount_total(payload for _, payload in payments),
        outcomes=sorted(
            outcomes.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
        ),
        posted=outcomes.get("posted", 0),
        reversals=sum(int(n) for _, n in reversals),
        reversals_posted=sum(int(n) for status, n in reversals if status == "posted"),
        pending=pending_events(session),
        exceptions_open=sum(open_counts.values()),
        critical_open=open_counts.get(True, 0),
        lag=payment_lag(session, now),
    )


def payment_lag(session: Session, now: datetime | None = None) -> Lag:
    """How long a card payment takes from its arrival to its posted receipt, lately.

    Left out: payments an operator posted by resolving an exception (their wait is the
    queue's, shown as open exceptions), and payments that arrived before the job runner
    now running started (``make demo``'s first payments, anything received while
    ledgerlink was down or starting): their wait is the start-up's, not the pipeline's.
    """
    now = now or utcnow()
    since = now - LAG_WINDOW
    posted = session.execute(
        select(PaymentEvent.received_at, PaymentEvent.processed_at).where(
            PaymentEvent.received_at >= since,
            *_posted_straight_through(),
        )
    ).all()
    started = runner_started(session, now)
    lags = [
        (done - received).total_seconds()
        for received, done in posted
        if started is None or received >= started
    ]
    return Lag(
        LAG_WINDOW,
        len(lags),
        percentile(lags, 0.5),
        percentile(lags, 0.99),
        left_out=len(posted) - len(lags),
    )


def runner_started(session: Session, now: datetime) -> datetime | None:
    """When the longest-running live embedded job runner started (None: none is known,
    as with procrastinate workers, which keep no start time)."""
    found = session.scalar(
        select(func.min(WorkerHeartbeat.started_at)).where(
            WorkerHeartbeat.seen_at >= now - _RUNNER_SEEN
        )
    )
    return found if isinstance(found, datetime) else None


def _posted_straight_through() -> tuple[ColumnElement[bool], ...]:
    """Card payments posted by the pipeline itself, not by resolving an exception (whose
    wait is the queue's): what the lag figures measure."""
    return (
        PaymentEvent.kind.in_(PAYMENT_KINDS),
        PaymentEvent.status == "posted",
        PaymentEvent.processed_at.is_not(None),
        ~select(PaymentException.id).where(PaymentException.event_id == PaymentEvent.id).exists(),
    )


def amount_total(payloads: Iterable[Mapping[str, Any]]) -> str:
    """What the payments came to, exactly, one total per currency ("—" for none); an
    amount that cannot be read counts for nothing (its event says why elsewhere)."""
    totals: dict[str, int] = {}
    for payload in payloads:
        try:
            amount = Money.parse(
                Decimal(str(payload.get("amount"))), payload.get("currency") or "USD"
            )
        except (ArithmeticError, MoneyError, ValueError):
            continue
        totals[amount.currency] = totals.get(amount.currency, 0) + amount.minor
    shown = (Money(minor, currency).format_display() for currency, minor in sorted(totals.items()))
    return ", ".join(shown) or "—"


def pending_events(session: Session) -> int:
    """Events waiting for (or in) processing."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(PaymentEvent)
            .where(PaymentEvent.status.in_(("received", "processing")))
        )
        or 0
    )


def open_exceptions(session: Session) -> dict[bool, int]:
    """Open exceptions by whether they are critical."""
    rows = session.execute(
        select(PaymentException.critical, func.count())
        .where(PaymentException.status == "open")
        .group_by(PaymentException.critical)
    ).all()
    return {bool(critical): int(n) for critical, n in rows}


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` of 1), ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class DayPayments:
    """Card payments received on one UTC day: how many, their amount per currency (exact
    minor units), and how many of them are posted or in exceptions now."""

    day: date
    payments: int = 0
    amounts: dict[str, int] = field(default_factory=dict)
    posted: int = 0
    exceptions: int = 0


def chart_days(now: datetime, days: int = CHART_DAYS) -> tuple[list[date], datetime]:
    """The chart's days, oldest first (today included), and the start of the first one."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    return [first + timedelta(days=i) for i in range(days)], datetime.combine(first, time(), UTC)


def payments_by_day(
    session: Session, now: datetime | None = None, days: int = CHART_DAYS
) -> list[DayPayments]:
    """Verified card payments (sales, captures) received per UTC day over ``days`` days,
    every day present (a day without payments counts zero).

    Counted in SQL by day, status and amount: the database returns one row per distinct
    amount a day, and the amounts are added here as exact minor units (a JSON amount
    summed in SQL would be a float on SQLite).
    """
    every_day, since = chart_days(now or utcnow(), days)
    day = utc_day(PaymentEvent.received_at).label("day")
    currency = PaymentEvent.payload["currency"].as_string().label("currency")
    amount = PaymentEvent.payload["amount"].as_string().label("amount")
    rows = session.execute(
        select(day, PaymentEvent.status, currency, amount, func.count())
        .where(
            PaymentEvent.received_at >= since,
            PaymentEvent.verified.is_(True),
            PaymentEvent.kind.in_(PAYMENT_KINDS),
        )
        .group_by(day, PaymentEvent.status, currency, amount)
    ).all()
    found = {d: DayPayments(d) for d in every_day}
    for day_text, status, currency_text, amount_text, n in rows:
        figures = found.get(parse_day(day_text))
        if figures is None:
            continue
        n = int(n)
        try:
            each = Money.parse(Decimal(str(amount_text)), currency_text or "USD")
        except (ArithmeticError, MoneyError, ValueError):
            each = None
        amounts = dict(figures.amounts)
        if each is not None:
            amounts[each.currency] = amounts.get(each.currency, 0) + each.minor * n
        found[figures.day] = DayPayments(
            figures.day,
            figures.payments + n,
            amounts,
            figures.posted + (n if status == "posted" else 0),
            figures.exceptions + (n if status == "exception" else 0),
        )
    return [found[d] for d in every_day]


@dataclass(frozen=True)
class DayLag:
    """Payment received → posted on one UTC day (payments posted straight through)."""

    day: date
    payments: int
    p50_seconds: float | None
    p99_seconds: float | None


def lag_by_day(
    session: Session, now: datetime | None = None, days: int = CHART_DAYS
) -> list[DayLag]:
    """The payment → posted lag per UTC day of receipt over ``days`` days: the same
    payments as :func:`payment_lag` (straight through, not resolved from an exception).

    Percentiles are not portable SQL (SQLite has none), so the database returns each
    day's received/posted times and the percentiles are taken here.
    """
    every_day, since = chart_days(now or utcnow(), days)
    day = utc_day(PaymentEvent.received_at).label("day")
    rows = session.execute(
        select(day, PaymentEvent.received_at, PaymentEvent.processed_at).where(
            PaymentEvent.received_at >= since,
            *_posted_straight_through(),
        )
    ).all()
    lags: dict[date, list[float]] = {d: [] for d in every_day}
    for day_text, received, done in rows:
        lags.setdefault(parse_day(day_text), []).append((done - received).total_seconds())
    return [
        DayLag(d, len(lags[d]), percentile(lags[d], 0.5), percentile(lags[d], 0.99))
        for d in every_day
    ]


@dataclass(frozen=True)
class Health:
    name: str
    kind: str
    ok: bool
    detail: str


def upstream_health(session: Session, calls: CallLog = RECENT_CALLS) -> list[Health]:
    """Each card gateway and ledger: failing when its newest poll failed or when this
    process's calls to it failed in the last minutes (``calls``) — a dropped connection
    counts at once, while the poll or posting that met it is still retrying."""
    polls = {state.connection_id: state for state in session.scalars(select(PaymentPollState))}
    gateways, ledgers = registry.gateway_kinds(), registry.ledger_kinds()
    found = []
    for connection in session.scalars(select(Connection).order_by(Connection.name)):
        if connection.kind not in gateways and connection.kind not in ledgers:
            continue
        problems: list[str] = []
        notes: list[str] = []
        if connection.kind in gateways:
            state = polls.get(connection.id)
            if state is None or state.last_run_at is None:
                notes.append("Not polled yet")
            elif state.last_error:
                problems.append(f"Last poll {state.last_run_at:%H:%M:%S} UTC: {state.last_error}")
            else:
                notes.append(f"Polled {state.last_run_at:%H:%M:%S} UTC, {state.last_found} new")
        elif not connection.is_active:
            problems.append("Not active (Save the connection to activate it)")
        elif (
            registry.descriptor(connection.kind).interactive_auth
            and connection.auth_status != "connected"
        ):
            problems.append(connection.auth_detail or connection.auth_status.replace("_", " "))
        recent = calls.recent(connection.kind, _origin(connection))
        if recent is not None and recent.failing:
            problems.append(f"{registry.label(connection.kind)}: {recent.describe()}")
        if not problems and not notes:
            notes.append("Connected")
        found.append(
            Health(connection.name, connection.kind, not problems, "; ".join(problems or notes))
        )
    return found


def _origin(connection: Connection) -> str | None:
    """Where the connection's calls go (its API address, or the kind's default one); None
    when the kind has no API address setting (its calls are judged all together)."""
    field = registry.descriptor(connection.kind).settings_model.model_fields.get("api_base_url")
    if field is None:
        return None
    address = connection.settings.get("api_base_url") or field.default
    try:
        return origin_of(str(address))
    except (TypeError, ValueError):
        return None


def mail_health(session: Session) -> Health | None:
    """Finance's e-mail as the sender sees it: the first active e-mail connection (the one
    digests and alerts go through, however it was set up: portal or API) and how its
    newest e-mail went. None when no e-mail connection exists at all."""
    kinds = registry.mail_kinds()
    connections = session.scalars(
        select(Connection).where(Connection.kind.in_(kinds)).order_by(Connection.id)
    ).all()
    if not connections:
        return None
    active = next((c for c in connections if c.is_active), None)
    if active is None:
        first = connections[0]
        return Health(
            first.name,
            first.kind,
            False,
            "Saved but not active: open it under Accounting Integration and Save to start "
            "sending digests and alerts",
        )
    settings = active.settings
    recipients = ", ".join(settings.get("recipients") or [])
    if not settings.get("host") or not settings.get("from_address") or not recipients:
        return Health(
            active.name,
            active.kind,
            False,
            "Set the SMTP server, the sender and at least one recipient",
        )
    newest = session.scalars(
        select(NotificationLog).order_by(NotificationLog.id.desc()).limit(1)
    ).first()
    if newest is not None and not newest.ok:
        return Health(
            active.name,
            active.kind,
            False,
            f"The e-mail of {newest.sent_at:%Y-%m-%d %H:%M} UTC was not sent: {newest.error}",
        )
    sent = f"; last e-mail {newest.sent_at:%Y-%m-%d %H:%M} UTC" if newest is not None else ""
    return Health(active.name, active.kind, True, f"Digests and alerts go to {recipients}{sent}")
