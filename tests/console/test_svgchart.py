"""The SVG activity chart drawn without matplotlib (a group's chart)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from xml.etree import ElementTree

from qunyun.analytics.charts import LABELS
from qunyun.console.svgchart import _nice_step, activity


def test_bars_line_axes_and_words() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    messages = [i % 7 * 10 for i in range(30)]
    svg = str(activity(days, messages, LABELS["zh-CN"], "zh-CN"))
    root = ElementTree.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{ns}rect") if r.get("fill") == "#6a9fd8"]
    assert len(bars) == 30 + 1  # one per day, plus the legend's swatch
    heights = [float(r.get("height", 0)) for r in bars[:30]]
    assert heights[6] == max(heights) and heights[0] == 0  # the tallest day is the one with 60
    assert root.find(f"{ns}polyline") is not None  # the 7-day average
    words = "".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert "活跃度走势" in words and "7 日均值" in words and "11月1日" in words


def test_words_are_escaped_and_empty_data_says_so() -> None:
    hostile = dict(LABELS["en"], **{"activity.title": '<script>alert("x")</script>', "empty": "no data"})
    svg = str(activity([], [], hostile, "en"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "no data" in svg
    ElementTree.fromstring(svg)


def test_round_steps() -> None:
    assert _nice_step(0) == 1.0
    assert _nice_step(47) == 10.0
    assert _nice_step(130) == 50.0
    assert _nice_step(9) == 2.0
    assert re.match(r"^\d", str(_nice_step(1234)))
