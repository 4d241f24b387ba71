"""Small charts drawn as SVG text, for fragments that are asked for often.

The overview shows the report's own charts (matplotlib, memoised); a group's
activity chart is asked for once per group visited, and there are thousands
of groups: drawing it with matplotlib takes a quarter of a second under a
process-wide lock, so twenty operators browsing groups queue behind each
other. This draws the same picture — messages per day as bars, the 7-day
average as a line, title, axes, legend — as a few kilobytes of SVG in about a
millisecond. Every word is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

W, H = 900, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 44, 56
BAR, LINE, GRID, INK, MUTED = "#6a9fd8", "#d0453f", "#e6e9ef", "#1d2430", "#5f6b7a"


def _nice_step(top: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 × 10^k) that covers ``top`` in about ``ticks`` steps."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return float(m * power)
    return float(10 * power)


def _day_label(d: date, lang: str, years: bool) -> str:
    if years:
        return f"{d.year}-{d.month:02d}-{d.day:02d}"
    return f"{d.month}月{d.day}日" if lang == "zh-CN" else d.strftime("%b %d")


def activity(days: Sequence[date], messages: Sequence[int], labels: dict[str, str], lang: str) -> Markup:
    """Messages per day with their 7-day average; ``labels`` are the report's chart words."""
    n = len(days)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(labels["activity.title"])}" font-family="sans-serif" font-size="12">',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold" fill="{INK}">'
        f"{escape(labels['activity.title'])}</text>",
    ]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    top = max(messages, default=0)
    step = _nice_step(top)
    ymax = step * max(1, math.ceil(top / step)) if top else step * 5
    # grid and y ticks
    v = 0.0
    while v <= ymax + 1e-9:
        y = TOP + ph - v / ymax * ph
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{int(v):,}</text>')
        v += step
    if n:
        slot = pw / n
        for i, m in enumerate(messages):
            h = m / ymax * ph
            out.append(f'<rect x="{LEFT + i * slot:.1f}" y="{TOP + ph - h:.1f}" width="{max(slot - 0.5, 0.5):.1f}" '
                       f'height="{h:.1f}" fill="{BAR}"/>')
        if n >= 7:
            avg = [sum(messages[max(0, i - 6): i + 1]) / min(7, i + 1) for i in range(n)]
            points = " ".join(f"{LEFT + (i + 0.5) * slot:.1f},{TOP + ph - a / ymax * ph:.1f}" for i, a in enumerate(avg))
            out.append(f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="2"/>')
        years = days[0].year != days[-1].year
        every = max(1, math.ceil(n / 8))
        for i in range(0, n, every):
            x = LEFT + (i + 0.5) * slot
            out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle" fill="{MUTED}">'
                       f"{escape(_day_label(days[i], lang, years))}</text>")
    else:
        out.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph / 2}" text-anchor="middle" fill="{MUTED}">'
                   f"{escape(labels.get('empty', '—'))}</text>")
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + ph}" y2="{TOP + ph}" stroke="{MUTED}"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 12}" text-anchor="middle" fill="{INK}">{escape(labels["activity.x"])}</text>')
    out.append(f'<text transform="translate(16 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" fill="{INK}">'
               f"{escape(labels['activity.y'])}</text>")
    # legend
    out.append(f'<rect x="{LEFT + 10}" y="{TOP + 4}" width="14" height="10" fill="{BAR}"/>'
               f'<text x="{LEFT + 30}" y="{TOP + 13}" fill="{INK}">{escape(labels["activity.bars"])}</text>')
    if n >= 7:
        out.append(f'<line x1="{LEFT + 10}" x2="{LEFT + 24}" y1="{TOP + 27}" y2="{TOP + 27}" stroke="{LINE}" stroke-width="2"/>'
                   f'<text x="{LEFT + 30}" y="{TOP + 31}" fill="{INK}">{escape(labels["activity.avg"])}</text>')
    out.append("</svg>")
    return Markup("".join(out))
