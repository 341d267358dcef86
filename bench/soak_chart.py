"""The soak's chart, SVG written by hand (no plotting dependency for two line charts).

Two panels over the seconds since traffic started: receipts posted per second (a 5-second
moving average) and the p99 lag of the payments that arrived in each 5-second window; one
line per worker count, and the faults of the timeline as labelled vertical lines.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
WIDTH, PANEL, LEFT, RIGHT, TOP, GAP = 960, 250, 70, 20, 40, 70


def _smooth(values: list[float], span: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        window = values[max(0, i - span + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


def _panel(
    parts: list[str],
    top: float,
    title: str,
    unit: str,
    series: list[tuple[str, str, list[tuple[float, float]]]],
    horizon: float,
    faults: list[dict[str, Any]],
) -> None:
    plot_w = WIDTH - LEFT - RIGHT
    peak = max((y for _, _, points in series for _, y in points), default=1.0) or 1.0
    peak *= 1.1

    def x(t: float) -> float:
        return LEFT + plot_w * t / horizon

    def y(v: float) -> float:
        return top + PANEL - PANEL * v / peak

    parts.append(
        f'<text x="{LEFT}" y="{top - 10}" font-size="14" font-weight="bold">{escape(title)}</text>'
    )
    parts.append(
        f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>'
    )
    for k in range(5):
        value = peak * k / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{value:.3g}{escape(unit)}</text>"
        )
    step = max(10, int(horizon / 10) // 10 * 10)
    for t in range(0, int(horizon) + 1, step):
        parts.append(
            f'<text x="{x(t):.1f}" y="{top + PANEL + 14}" font-size="11" '
            f'text-anchor="middle">{t}s</text>'
        )
    for fault in faults:
        fx = x(float(fault["t"]))
        parts.append(
            f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{top}" y2="{top + PANEL}" '
            'stroke="#888" stroke-dasharray="4,3"/>'
        )
        if "end" in fault:
            ex = x(float(fault["end"]))
            parts.append(
                f'<rect x="{fx:.1f}" y="{top}" width="{max(1.0, ex - fx):.1f}" height="{PANEL}" '
                'fill="#888" fill-opacity="0.08"/>'
            )
        parts.append(
            f'<text x="{fx + 2:.1f}" y="{top + 11}" font-size="9" fill="#555" '
            f'transform="rotate(90 {fx + 2:.1f} {top + 11})">{escape(fault["label"])}</text>'
        )
    for label, colour, points in series:
        if not points:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
            f"<title>{escape(label)}</title></polyline>"
        )


def write(path: Path, runs: list[dict[str, Any]], faults: list[dict[str, Any]]) -> None:
    """``runs``: each with ``workers`` and ``timeline`` (seconds, posted_per_second,
    lag_p99_seconds); ``faults``: ``t`` (and ``end``) seconds and a ``label``."""
    horizon = float(max((len(r["timeline"]["seconds"]) for r in runs), default=1) or 1)
    throughput, lag = [], []
    for n, run in enumerate(runs):
        colour = COLOURS[n % len(COLOURS)]
        label = f"{run['workers']} worker{'s' if run['workers'] != 1 else ''}"
        line = run["timeline"]
        smoothed = _smooth([float(v) for v in line["posted_per_second"]])
        throughput.append((label, colour, list(enumerate(smoothed))))
        lag.append(
            (
                label,
                colour,
                [(t, v) for t, v in enumerate(line["lag_p99_seconds"]) if v is not None],
            )
        )
    height = TOP + 2 * PANEL + GAP + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    _panel(parts, TOP, "Receipts posted per second (5 s average)", "", throughput, horizon, faults)
    _panel(
        parts,
        TOP + PANEL + GAP,
        "Lag p99, arrival to receipt acknowledged (by 5 s window of arrival)",
        " s",
        lag,
        horizon,
        faults,
    )
    legend_y = TOP + 2 * PANEL + GAP + 40
    for n, (label, colour, _) in enumerate(throughput):
        lx = LEFT + n * 140
        parts.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{legend_y}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        parts.append(
            f'<text x="{lx + 30}" y="{legend_y + 4}" font-size="12">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + len(throughput) * 140}" y="{legend_y + 4}" font-size="12" '
        'fill="#555">dashed: faults, the sync and reconciliation starts</text>'
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
