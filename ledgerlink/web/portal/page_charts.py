"""Which charts each portal page shows, built from the figures its view module computes.

The drawing is :mod:`ledgerlink.web.portal.charts`; the counting is in the area's view
module (``overview``, ``sync.views``, ``recon.views``). This module only says what each
chart is called, what it counts, and how its values are written.
"""

from __future__ import annotations

from ledgerlink.domain.money import Money
from ledgerlink.overview import DayLag, DayPayments
from ledgerlink.recon.views import DayCash, TransitAge
from ledgerlink.sync.views import DayRuns
from ledgerlink.web.portal.charts import Chart, Series, day_label, money_text, seconds_text


def _counts(name: str, values: list[int]) -> Series:
    """A series of counts, each written with thousands separators."""
    return Series(name, values, [f"{value:,}" for value in values])


def payment_charts(days: list[DayPayments]) -> list[Chart]:
    """Card payments per day, then their amount per day (one chart per currency)."""
    labels = [day_label(d.day) for d in days]
    charts = [
        Chart(
            key="payments-per-day",
            title=f"Card payments per day (last {len(days)} days)",
            description="Verified card sales and captures received each day (UTC).",
            categories=labels,
            series=[_counts("Card payments", [d.payments for d in days])],
        )
    ]
    currencies = sorted({c for d in days for c in d.amounts}) or ["USD"]
    for currency in currencies:
        minors = [d.amounts.get(currency, 0) for d in days]
        charts.append(
            Chart(
                key=f"amount-per-day-{currency.lower()}",
                title=f"Amount received per day in {currency} (last {len(days)} days)",
                description=f"What those card payments came to each day, in {currency}.",
                categories=labels,
                series=[
                    Series(
                        f"Amount ({currency})",
                        minors,
                        [Money(m, currency).format_display() for m in minors],
                    )
                ],
                axis_text=money_text(currency),
            )
        )
    return charts


def outcome_chart(days: list[DayPayments]) -> Chart:
    """Of each day's card payments, how many are posted and how many wait in exceptions."""
    return Chart(
        key="posted-vs-exceptions",
        title=f"Posted vs exceptions per day (last {len(days)} days)",
        description=(
            "Card payments received each day by what became of them: posted to the ledger, "
            "or in the exceptions queue (the rest are waiting or needed no posting)."
        ),
        categories=[day_label(d.day) for d in days],
        series=[
            _counts("Posted", [d.posted for d in days]),
            _counts("In exceptions", [d.exceptions for d in days]),
        ],
    )


def lag_chart(days: list[DayLag]) -> Chart:
    """The payment → posted lag's median and p99 per day of receipt."""

    def shown(value: float | None) -> str:
        return "—" if value is None else seconds_text(value)

    return Chart(
        key="lag-per-day",
        title=f"Payment received → posted, per day (last {len(days)} days)",
        description=(
            "Median and 99th percentile of the seconds from a card payment's arrival to its "
            "posted receipt, for payments posted straight through; a day with none is blank. "
            "A day's figure includes any wait while ledgerlink was stopped or starting (the "
            "card above leaves that out)."
        ),
        categories=[day_label(d.day) for d in days],
        series=[
            Series(
                "Median (p50)", [d.p50_seconds for d in days], [shown(d.p50_seconds) for d in days]
            ),
            Series("p99", [d.p99_seconds for d in days], [shown(d.p99_seconds) for d in days]),
        ],
        kind="line",
        axis_text=seconds_text,
        whole=False,
    )


def sync_chart(days: list[DayRuns]) -> Chart:
    """Sync runs per day beside those that failed or ended with failed records."""
    return Chart(
        key="sync-runs-per-day",
        title=f"Sync runs per day (last {len(days)} days)",
        description=(
            "Sync runs asked for each day (UTC), and how many of them failed or ended with "
            "failed records (open a run below to retry its failed records)."
        ),
        categories=[day_label(d.day) for d in days],
        series=[
            _counts("Runs", [d.runs for d in days]),
            _counts("With failures", [d.with_failures for d in days]),
        ],
    )


def cash_chart(days: list[DayCash], currency: str, period: str) -> Chart:
    """Cash settled by PayTrace beside cash deposited at the bank, per day of a period."""
    show = money_text(currency)
    return Chart(
        key="cash-by-day",
        title=f"Cash by day, {period} ({currency})",
        description=(
            "Settled: PayTrace settlement batches net of fees and withheld chargebacks, by "
            "settlement day. Deposited: credits on the imported bank statements, by booking "
            "day. A settled day with no deposit yet is cash in transit. The table lists the "
            "days with cash."
        ),
        categories=[day_label(d.day) for d in days],
        series=[
            Series(
                "Settled", [d.settled_minor for d in days], [show(d.settled_minor) for d in days]
            ),
            Series(
                "Deposited",
                [d.deposited_minor for d in days],
                [show(d.deposited_minor) for d in days],
            ),
        ],
        axis_text=show,
        table_skips_zero=True,
    )


def transit_chart(ages: list[TransitAge], currency: str) -> Chart:
    """Open deposits in transit by how long they have been waiting."""
    show = money_text(currency)
    return Chart(
        key="in-transit-by-age",
        title=f"Deposits in transit by age ({currency})",
        description=(
            "Settled card money not yet seen on a bank statement, by days since settlement "
            "(open deposits in transit from the latest run)."
        ),
        categories=[a.name for a in ages],
        series=[
            Series("Amount", [a.amount_minor for a in ages], [show(a.amount_minor) for a in ages])
        ],
        axis_text=show,
        category_heading="Age",
    )
