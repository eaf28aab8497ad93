"""Charts drawn on the server as SVG: no script, no library, readable without a browser's help."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.web.html import e

COLOURS = ("#2e7d4f", "#1f5fa8", "#c2571a", "#7b3fa0", "#a8326e", "#3c8d93", "#8a7a1c", "#555")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 150, 14, 34


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    top: float | None = None,
    percent: bool = False,
) -> str:
    """One line per series over the labels; a missing point (None) breaks the line."""
    values = [v for _, points in series for v in points if v is not None]
    # Counts get whole-number gridlines: the top is rounded up to a multiple of the four steps.
    high = top if top is not None else 4 * math.ceil((max(values, default=0) or 1) / 4)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: float) -> float:
        return TOP + plot_h - (v / high) * plot_h

    parts = [_frame(title)]
    for tick in range(5):
        v = high * tick / 4
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e6ece8'/>"
            f"<text x='{LEFT - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{_tick(v, percent)}</text>"
        )
    every = max(1, len(labels) // 6)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            parts.append(f"<text x='{x(i):.1f}' y='{HEIGHT - 12}' text-anchor='middle'>{e(label)}</text>")
    for n, (name, points) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        run: list[str] = []
        for i, point in enumerate(points):
            if point is None:
                parts.append(_polyline(run, colour))
                run = []
                continue
            run.append(f"{x(i):.1f},{y(point):.1f}")
            parts.append(
                f"<circle cx='{x(i):.1f}' cy='{y(point):.1f}' r='3' fill='{colour}'>"
                f"<title>{e(name)} · {e(labels[i])}: {_tick(point, percent)}</title></circle>"
            )
        parts.append(_polyline(run, colour))
        parts.append(
            f"<rect x='{WIDTH - RIGHT + 12}' y='{TOP + n * 18}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{WIDTH - RIGHT + 28}' y='{TOP + n * 18 + 9}'>{e(_short(name))}</text>"
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, int]]) -> str:
    """Counts as vertical bars (a question's answers, one bar per point of the scale)."""
    high = max((v for _, v in bars), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(bars), 1)
    parts = [_frame(title)]
    for i, (label, value) in enumerate(bars):
        h = value / high * plot_h
        x = LEFT + i * slot + slot * 0.15
        parts.append(
            f"<rect class='bar' x='{x:.1f}' y='{TOP + plot_h - h:.1f}' "
            f"width='{slot * 0.7:.1f}' height='{h:.1f}' "
            f"fill='{COLOURS[0]}'><title>{e(label)}: {value}</title></rect>"
            f"<text x='{x + slot * 0.35:.1f}' y='{TOP + plot_h - h - 3:.1f}' "
            f"text-anchor='middle'>{value}</text>"
            f"<text x='{x + slot * 0.35:.1f}' y='{HEIGHT - 12}' text-anchor='middle'>{e(label)}</text>"
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _frame(title: str) -> str:
    return (
        f"<figure><figcaption>{e(title)}</figcaption>"
        f"<svg class='chart' role='img' aria-label='{e(title)}' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>{e(title)}</title>"
    )


def _polyline(points: list[str], colour: str) -> str:
    if len(points) < 2:
        return ""
    return (
        f"<polyline class='series' fill='none' stroke='{colour}' stroke-width='2' "
        f"points='{' '.join(points)}'/>"
    )


def _tick(v: float, percent: bool) -> str:
    return f"{v:.0%}" if percent else (f"{v:.0f}" if v == int(v) else f"{v:.1f}")


def _short(name: str) -> str:
    return name if len(name) <= 22 else name[:21] + "…"
