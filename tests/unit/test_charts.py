"""Server-drawn charts (issue 19, charts): bars proportional to the values, exact labels,
"no data yet" for nothing, and a single day drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ledgerlink.web.portal.charts import (
    NO_DATA,
    Chart,
    Series,
    count_text,
    money_text,
    nice_top,
    render_svg,
    seconds_text,
)

SVG = "{http://www.w3.org/2000/svg}"


def _svg(chart: Chart) -> ET.Element:
    return ET.fromstring(render_svg(chart))


def _counts(values: list[int], categories: list[str] | None = None) -> Chart:
    categories = categories or [f"Dec {i + 1}" for i in range(len(values))]
    return Chart(
        key="c",
        title="Card payments per day",
        description="Verified card payments received each day.",
        categories=categories,
        series=[Series("Card payments", values, [count_text(v) for v in values])],
    )


def test_bar_heights_are_proportional_to_the_values() -> None:
    svg = _svg(_counts([3, 6, 0, 12]))
    bars = svg.findall(f"{SVG}rect")
    heights = [float(b.get("height", "")) for b in bars]
    assert heights[2] == 0
    assert heights[1] == pytest.approx(2 * heights[0])
    assert heights[3] == pytest.approx(4 * heights[0])
    # the bars stand on one base line
    bottoms = {round(float(b.get("y", "")) + float(b.get("height", "")), 2) for b in bars}
    assert len(bottoms) == 1


def test_the_chart_is_named_and_described_for_screen_readers() -> None:
    svg = _svg(_counts([1, 2]))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.findtext(f"{SVG}title") == "Card payments per day"
    assert svg.findtext(f"{SVG}desc") == "Verified card payments received each day."


def test_money_labels_are_exact() -> None:
    minors = [7550, 1234, 0]
    texts = [money_text("USD")(m) for m in minors]
    chart = Chart(
        key="m",
        title="Amount per day",
        description="What card payments came to.",
        categories=["Dec 5", "Dec 6", "Dec 7"],
        series=[Series("Amount (USD)", minors, texts)],
        axis_text=money_text("USD"),
    )
    assert [shown for _, (shown,) in chart.rows] == ["$75.50", "$12.34", "$0.00"]
    svg = _svg(chart)
    assert [b.findtext(f"{SVG}title") for b in svg.findall(f"{SVG}rect")] == [
        "Dec 5: Amount (USD) $75.50",
        "Dec 6: Amount (USD) $12.34",
        "Dec 7: Amount (USD) $0.00",
    ]
    ticks = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[0] == "$0.00"
    assert ticks[-1] == "$80.00"  # a round top at or above the largest day


def test_category_labels_are_the_days_given() -> None:
    svg = _svg(_counts([1, 2, 3], ["Dec 5", "Dec 6", "Dec 7"]))
    labels = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "category"]
    assert labels == ["Dec 5", "Dec 6", "Dec 7"]


def test_an_empty_series_says_no_data_yet() -> None:
    for chart in (_counts([]), _counts([0, 0, 0])):
        svg = _svg(chart)
        assert chart.empty
        assert svg.findall(f"{SVG}rect") == []
        assert [t.text for t in svg.findall(f"{SVG}text")] == [NO_DATA]


def test_a_single_day_is_drawn() -> None:
    bars = _svg(_counts([5], ["Dec 7"])).findall(f"{SVG}rect")
    assert len(bars) == 1
    assert float(bars[0].get("height", "")) > 0
    line = Chart(
        key="l",
        title="Lag",
        description="Seconds to post.",
        categories=["Dec 7"],
        series=[Series("Median (p50)", [2.5], [seconds_text(2.5)])],
        kind="line",
        axis_text=seconds_text,
        whole=False,
    )
    points = _svg(line).findall(f"{SVG}circle")
    assert [p.findtext(f"{SVG}title") for p in points] == ["Dec 7: Median (p50) 2.5 s"]


def test_a_line_leaves_a_gap_where_a_day_has_no_value() -> None:
    chart = Chart(
        key="l",
        title="Lag",
        description="Seconds to post.",
        categories=["Dec 5", "Dec 6", "Dec 7"],
        series=[Series("p99", [1.0, None, 3.0], ["1.0 s", "—", "3.0 s"])],
        kind="line",
        whole=False,
    )
    assert len(_svg(chart).findall(f"{SVG}circle")) == 2
    assert chart.rows[1] == ("Dec 6", ["—"])


def test_grouped_bars_keep_one_scale_across_series() -> None:
    chart = Chart(
        key="g",
        title="Posted vs exceptions",
        description="Per day.",
        categories=["Dec 6", "Dec 7"],
        series=[Series("Posted", [8, 4], ["8", "4"]), Series("In exceptions", [2, 0], ["2", "0"])],
    )
    heights = {
        (b.get("data-series"), b.get("data-value")): float(b.get("height", ""))
        for b in _svg(chart).findall(f"{SVG}rect")
    }
    assert heights[("Posted", "8")] == pytest.approx(4 * heights[("In exceptions", "2")])


def test_text_is_escaped() -> None:
    chart = _counts([1], ["<b>&"])
    assert "<b>&" not in render_svg(chart)
    assert _svg(chart) is not None


def test_a_series_must_have_a_value_per_category() -> None:
    with pytest.raises(ValueError, match="series 'Card payments'"):
        Chart(
            key="x",
            title="t",
            description="d",
            categories=["Dec 7"],
            series=[Series("Card payments", [1, 2], ["1", "2"])],
        )


@pytest.mark.parametrize(
    ("largest", "whole", "top"),
    [(12, True, 15), (15, True, 15), (1, True, 1), (7550, True, 8000), (0.7, False, 0.8)],
)
def test_the_value_axis_ends_on_a_round_number_at_or_above_the_largest(
    largest: float, whole: bool, top: float
) -> None:
    assert nice_top(largest, whole=whole)[0] == pytest.approx(top)


def test_a_table_can_leave_out_days_with_nothing_while_the_picture_keeps_them() -> None:
    chart = Chart(
        key="cash",
        title="Cash by day",
        description="Settled and deposited.",
        categories=["Nov 1", "Nov 2", "Nov 3"],
        series=[
            Series("Settled", [0, 500, 0], ["$0.00", "$5.00", "$0.00"]),
            Series("Deposited", [0, 0, 500], ["$0.00", "$0.00", "$5.00"]),
        ],
        axis_text=money_text("USD"),
        table_skips_zero=True,
    )
    assert chart.rows == [("Nov 2", ["$5.00", "$0.00"]), ("Nov 3", ["$0.00", "$5.00"])]
    assert len(_svg(chart).findall(f"{SVG}rect")) == 6
