"""Charts drawn on the server as SVG: bars or lines over a few categories (days, ages).

Server-rendered so the portal needs no JavaScript library (nothing fetched from a CDN,
nothing the content security policy has to allow) and a chart reads the same with
scripts off. A chart carries the exact text of every value it draws (money formatted
through :class:`~ledgerlink.domain.money.Money`, never a float): the template shows those
texts in a table beside the picture, so a reader (or a screen reader) gets the numbers,
and the picture only has to be proportional. Pixel positions are floats; the numbers a
person reads never are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Literal

from markupsafe import Markup

from ledgerlink.domain.money import Money

WIDTH = 640
HEIGHT = 260
#: room for the value axis labels (left) and the category labels (bottom)
_LEFT, _RIGHT, _TOP, _BOTTOM = 88.0, 12.0, 14.0, 36.0
#: text size in the picture's own units (it scales with the picture)
_FONT = 14
#: one colour per series, from the portal's palette (distinct without colour too: the
#: legend names each series and the table carries every number)
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")
NO_DATA = "No data yet"


def count_text(value: float) -> str:
    return f"{int(value):,}"


def seconds_text(value: float) -> str:
    return f"{value:.1f} s"


def money_text(currency: str) -> Callable[[float], str]:
    """Axis labels in money: ticks are whole minor units, so this is exact."""
    return lambda minor: Money(round(minor), currency).format_display()


@dataclass(frozen=True)
class Series:
    """One line or one colour of bars: a value per category (None: nothing that day),
    and the exact text each value is shown as."""

    name: str
    values: Sequence[float | None]
    shown: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.shown):
            raise ValueError(
                f"series {self.name!r}: {len(self.values)} values, {len(self.shown)} texts"
            )


@dataclass(frozen=True)
class Chart:
    """What a ``_chart.html`` figure shows: a title, a sentence saying what it counts, the
    categories along the bottom and the series drawn over them."""

    key: str
    title: str
    description: str
    categories: Sequence[str]
    series: Sequence[Series]
    kind: Literal["bar", "line"] = "bar"
    #: how the value axis labels its ticks (counts, seconds, money)
    axis_text: Callable[[float], str] = count_text
    category_heading: str = "Day"
    #: whole units only on the value axis (counts, minor units of money)
    whole: bool = True
    #: the table leaves out categories where every series is zero or blank (a month of
    #: days, most without cash: the picture shows them all, the table what happened)
    table_skips_zero: bool = False

    def __post_init__(self) -> None:
        for s in self.series:
            if len(s.values) != len(self.categories):
                raise ValueError(
                    f"series {s.name!r}: {len(s.values)} values, {len(self.categories)} categories"
                )

    @property
    def empty(self) -> bool:
        """Nothing to draw: no category, or no value above zero in any series."""
        return not any(v for s in self.series for v in s.values if v is not None)

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        """The table beside the picture: each category and every series' exact text."""
        return [
            (category, [s.shown[i] for s in self.series])
            for i, category in enumerate(self.categories)
            if not self.table_skips_zero or any(s.values[i] for s in self.series)
        ]

    @property
    def legend(self) -> list[tuple[str, str]]:
        """Each series' name and colour, in drawing order."""
        return [(s.name, COLOURS[j % len(COLOURS)]) for j, s in enumerate(self.series)]

    @property
    def svg(self) -> Markup:
        # every text inside is escaped by render_svg
        return Markup(render_svg(self))  # noqa: S704


def nice_top(largest: float, *, whole: bool, ticks: int = 4) -> tuple[float, float]:
    """(top of the value axis, step between its ticks): a round step (1, 2 or 5 times a
    power of ten) so the axis labels read as round numbers, and a top at or above
    ``largest``."""
    if largest <= 0:
        return (float(ticks), 1.0) if whole else (1.0, 0.25)
    raw = largest / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, float(math.ceil(step)))
    return step * math.ceil(largest / step - 1e-9), step


def render_svg(chart: Chart) -> str:
    """The picture alone (the figure, caption and table are the template's)."""
    title_id, desc_id = f"{chart.key}-title", f"{chart.key}-desc"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{title_id} {desc_id}" class="chart" '
        f'data-kind="{chart.kind}" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{title_id}">{escape(chart.title)}</title>'
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>'
    )
    if chart.empty:
        return (
            head + f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            f'font-size="{_FONT + 2}" class="chart-empty">{NO_DATA}</text></svg>'
        )
    largest = max(v for s in chart.series for v in s.values if v is not None)
    top, step = nice_top(largest, whole=chart.whole)
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    base = _TOP + plot_h

    def y_of(value: float) -> float:
        return base - value / top * plot_h

    parts = [head]
    tick = 0.0
    while tick <= top + step / 1000:
        y = y_of(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.2f}" y2="{y:.2f}" class="grid" '
            f'stroke="#d1d5db" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.2f}" text-anchor="end" font-size="{_FONT}" '
            f'class="tick">{escape(chart.axis_text(tick))}</text>'
        )
        tick += step
    slot = plot_w / len(chart.categories)
    # label every category when they fit, else every n-th (the table names them all)
    every = max(1, math.ceil(len(chart.categories) * 58 / plot_w))
    for i, category in enumerate(chart.categories):
        if i % every == 0:
            x = _LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.2f}" y="{base + 20:.2f}" text-anchor="middle" font-size="{_FONT}" '
                f'class="category">{escape(category)}</text>'
            )
    if chart.kind == "bar":
        parts.extend(_bars(chart, slot, y_of, base))
    else:
        parts.extend(_lines(chart, slot, y_of))
    parts.append(
        f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{base:.2f}" y2="{base:.2f}" '
        f'stroke="#374151" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _bars(chart: Chart, slot: float, y_of: Callable[[float], float], base: float) -> list[str]:
    n = len(chart.series)
    bar_w = slot * 0.8 / n
    parts = []
    for j, s in enumerate(chart.series):
        colour = COLOURS[j % len(COLOURS)]
        for i, value in enumerate(s.values):
            if value is None:
                continue
            x = _LEFT + slot * i + slot * 0.1 + bar_w * j
            y = y_of(value)
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{base - y:.4f}" '
                f'fill="{colour}" data-series="{escape(s.name)}" data-value="{value}">'
                f"<title>{_point_title(chart, s, i)}</title></rect>"
            )
    return parts


def _lines(chart: Chart, slot: float, y_of: Callable[[float], float]) -> list[str]:
    parts = []
    for j, s in enumerate(chart.series):
        colour = COLOURS[j % len(COLOURS)]
        points = [
            (_LEFT + slot * (i + 0.5), y_of(v), i) for i, v in enumerate(s.values) if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.2f},{y:.2f}" for x, y, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                f'data-series="{escape(s.name)}"/>'
            )
        for x, y, i in points:
            parts.append(
                f'<circle cx="{x:.2f}" cy="{y:.2f}" r="3" fill="{colour}" '
                f'data-series="{escape(s.name)}" data-value="{s.values[i]}">'
                f"<title>{_point_title(chart, s, i)}</title></circle>"
            )
    return parts


def _point_title(chart: Chart, series: Series, i: int) -> str:
    return escape(f"{chart.categories[i]}: {series.name} {series.shown[i]}")


def day_label(day: date) -> str:
    return day.strftime("%b %d").replace(" 0", " ")
