"""The report's charts, drawn with matplotlib (Agg, no display needed).

Each chart is drawn twice when it must be: once as SVG with its text kept as
text (embedded in ``report.html``; the browser draws the words, Chinese
included, with its own fonts) and once as PNG (pixels: the words need a font
on this machine that has their glyphs).

Fonts: a CJK font is looked for in ``$QUNYUN_CJK_FONT`` (a font file), then
among the fonts matplotlib knows (system fonts included), then the Noto Sans
CJK SC that the ``mplfonts`` dependency carries (SIL OFL; only that one file
is used, found by path, the package itself is never imported). If there is
still none, a zh-CN report's PNGs are labelled in English and a note says so — never
boxes in place of missing glyphs. For the same reason a member name the
available fonts cannot draw (Chinese without a CJK font, emoji) is replaced
in the PNGs by the member's user id, or by ``#<n>``.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

if TYPE_CHECKING:
    from qunyun.analytics.report import HealthReport

_PROBE = "群运活跃发言"
BASE_FONT = "DejaVu Sans"

#: Chart words, per language. English is also the fallback for PNGs.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "activity.title": "Activity over time",
        "activity.y": "messages per day",
        "activity.x": "date",
        "activity.avg": "7-day average",
        "activity.bars": "messages",
        "speakers.title": "Speakers and active ratio per week",
        "speakers.y": "speakers (people)",
        "speakers.y2": "active ratio (%)",
        "speakers.x": "week starting",
        "speakers.bars": "speakers",
        "speakers.line": "active ratio",
        "retention.title": "Speaker retention by first-message week",
        "retention.x": "weeks since first message",
        "retention.y": "cohort (week of first message, size)",
        "retention.bar": "share still speaking (%)",
        "survival.title": "Group survival by age",
        "survival.x": "group age (days)",
        "survival.y": "groups still alive (%)",
        "survival.ours": "this community (n={n})",
        "survival.base": "base rate (WeChat groups)",
        "survival.none": "no lifecycle data",
        "size.title": "Size vs activity (last {days} days)",
        "size.x": "group size (members)",
        "size.ratio": "active ratio (%)",
        "size.percap": "messages per 100 members per day",
        "size.groups": "{n} groups",
        "size.group": "1 group",
        "lorenz.title": "Speaker concentration (Lorenz curve)",
        "lorenz.x": "share of speakers, least to most active (%)",
        "lorenz.y": "share of messages (%)",
        "lorenz.equal": "everyone equal",
        "lorenz.note": "Gini {gini}; top 10% wrote {top}%",
        "top.title": "Top contributors",
        "top.x": "messages",
        "lurkers.title": "Lurkers by length of silence",
        "lurkers.x": "silent for (days)",
        "lurkers.y": "members (people)",
        "lurkers.never": "never spoke",
        "empty": "no data in this period",
    },
    "zh-CN": {
        "activity.title": "活跃度走势",
        "activity.y": "每日消息数（条）",
        "activity.x": "日期",
        "activity.avg": "7 日均值",
        "activity.bars": "消息数",
        "speakers.title": "每周发言人数与活跃率",
        "speakers.y": "发言人数（人）",
        "speakers.y2": "活跃率（%）",
        "speakers.x": "周（起始日）",
        "speakers.bars": "发言人数",
        "speakers.line": "活跃率",
        "retention.title": "发言成员留存（按首次发言周分组）",
        "retention.x": "首次发言后第几周",
        "retention.y": "分组（首次发言周，人数）",
        "retention.bar": "仍在发言的比例（%）",
        "survival.title": "群的存活曲线（按群龄）",
        "survival.x": "群龄（天）",
        "survival.y": "仍然活跃的群（%）",
        "survival.ours": "本社群（n={n}）",
        "survival.base": "行业基准（微信群）",
        "survival.none": "暂无生命周期数据",
        "size.title": "群规模与活跃度（近 {days} 天）",
        "size.x": "群规模（人）",
        "size.ratio": "活跃率（%）",
        "size.percap": "每百人每日消息数（条）",
        "size.groups": "{n} 个群",
        "size.group": "1 个群",
        "lorenz.title": "发言集中度（洛伦兹曲线）",
        "lorenz.x": "发言成员占比，从少到多（%）",
        "lorenz.y": "消息占比（%）",
        "lorenz.equal": "完全平均",
        "lorenz.note": "基尼系数 {gini}；前 10% 的人发了 {top}% 的消息",
        "top.title": "贡献最多的成员",
        "top.x": "消息数（条）",
        "lurkers.title": "潜水成员（按沉默时长）",
        "lurkers.x": "沉默天数（天）",
        "lurkers.y": "成员数（人）",
        "lurkers.never": "从未发言",
        "empty": "本期没有数据",
    },
}

SILENCE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("7-13", 7, 13),
    ("14-29", 14, 29),
    ("30-59", 30, 59),
    ("60-89", 60, 89),
    ("90-179", 90, 179),
    ("180+", 180, 10**9),
)

_COLOURS = {"bar": "#6aa2d8", "line": "#d9534f", "accent": "#2e7d32", "grey": "#9e9e9e"}


# ------------------------------------------------------------------- fonts


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()


# the CJK fonts ship one weight: matplotlib says so for every bold title
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


@functools.cache
def cjk_font() -> str | None:
    """The family name of a font that can draw Chinese, or None if this machine has none."""
    chosen = os.environ.get("QUNYUN_CJK_FONT")
    if chosen and os.path.isfile(chosen):
        font_manager.fontManager.addfont(chosen)
        if all(ord(c) in _charmap(chosen) for c in _PROBE):
            return str(font_manager.FontProperties(fname=chosen).get_name())
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith("Last Resort"):
            continue  # draws a box for every character: exactly what we must not do
        cmap = _charmap(entry.fname)
        if cmap and all(ord(c) in cmap for c in _PROBE):
            return str(entry.name)
    bundled = _bundled_cjk_font()
    if bundled is not None and all(ord(c) in _charmap(bundled) for c in _PROBE):
        font_manager.fontManager.addfont(bundled)
        return str(font_manager.FontProperties(fname=bundled).get_name())
    return None


def _bundled_cjk_font() -> str | None:
    """Noto Sans CJK SC from the ``mplfonts`` distribution, if it is installed."""
    import importlib.util

    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "fonts", "NotoSansCJKsc-Regular.otf")
        if os.path.isfile(path):
            return path
    return None


@functools.cache
def _drawable_set() -> frozenset[int]:
    paths = [font_manager.findfont(font_manager.FontProperties(family=BASE_FONT))]
    family = cjk_font()
    if family:
        paths.append(font_manager.findfont(font_manager.FontProperties(family=family)))
    out: set[int] = set()
    for p in paths:
        out |= _charmap(p)
    return frozenset(out)


def drawable(text: str) -> bool:
    """Whether the fonts used for PNGs have a glyph for every character of ``text``."""
    cmap = _drawable_set()
    return all(ord(c) in cmap or c.isspace() for c in text)


def png_language(lang: str) -> str:
    """The language the PNGs can be labelled in: ``lang``, or en without a CJK font."""
    return lang if lang == "en" or cjk_font() else "en"


# ------------------------------------------------------------------ charts


@dataclass(frozen=True)
class Chart:
    """One chart: a file stem, its title in the report's language, SVG text and PNG bytes."""

    name: str
    title: str
    svg: str
    png: bytes


Namer = Callable[[str | None, str, int], str]


def _setup(lang: str) -> None:
    families = [BASE_FONT]
    cjk = cjk_font()
    if cjk:
        families = [BASE_FONT, cjk] if lang == "en" else [cjk, BASE_FONT]
    plt.rcParams.update(
        {
            "font.family": families,
            "svg.fonttype": "none",
            "text.parse_math": False,  # "$" in a name is a dollar sign, not TeX
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.titleweight": "bold",
        }
    )


def _fmt_day(d: Any, lang: str, *, year: bool = False) -> str:
    if year:  # an axis over several calendar years: "Dec 30" alone would not say which one
        return f"{d.year}-{d.month:02d}-{d.day:02d}"
    return f"{d.month}月{d.day}日" if lang == "zh-CN" else d.strftime("%b %d")


def _years(days: list[Any]) -> bool:
    """True when ``days`` reach over more than one calendar year (tick labels then carry the year)."""
    return bool(days) and days[0].year != days[-1].year


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f}"


def activity(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    days: Any = [p.start for p in rep.daily]
    msgs = [p.messages for p in rep.daily]
    ax.bar(days, msgs, color=_COLOURS["bar"], width=1.0, label=L["activity.bars"])
    if len(msgs) >= 7:
        avg = [sum(msgs[max(0, i - 6) : i + 1]) / min(7, i + 1) for i in range(len(msgs))]
        ax.plot(days, avg, color=_COLOURS["line"], linewidth=2, label=L["activity.avg"])
    ax.set_title(L["activity.title"])
    ax.set_xlabel(L["activity.x"])
    ax.set_ylabel(L["activity.y"])
    ax.legend(loc="upper left")
    _date_axis(ax, days, lang)
    return fig


def _date_axis(ax: Any, days: list[Any], lang: str) -> None:
    if not days:
        return
    step = max(1, len(days) // 8)
    ticks = days[::step]
    ax.set_xticks(ticks)
    ax.set_xticklabels([_fmt_day(d, lang, year=_years(days)) for d in ticks], rotation=30, ha="right")


def speakers(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    weeks = [p.start for p in rep.weekly]
    ax.bar(range(len(weeks)), [p.speakers for p in rep.weekly], color=_COLOURS["bar"], label=L["speakers.bars"])
    ax.set_ylabel(L["speakers.y"])
    ax.set_xlabel(L["speakers.x"])
    ax2 = ax.twinx()
    ratios: Any = [float("nan") if p.active_ratio is None else p.active_ratio * 100 for p in rep.weekly]
    ax2.plot(
        range(len(weeks)),
        ratios,
        color=_COLOURS["line"], marker="o", markersize=3, linewidth=2, label=L["speakers.line"],
    )
    ax2.set_ylabel(L["speakers.y2"])
    ax2.set_ylim(0, max(5.0, max((p.active_ratio or 0) * 100 for p in rep.weekly) * 1.2) if rep.weekly else 100)
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    step = max(1, len(weeks) // 10)
    ax.set_xticks(range(0, len(weeks), step))
    ax.set_xticklabels([_fmt_day(w, lang, year=_years(weeks)) for w in weeks[::step]], rotation=30, ha="right")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left")
    ax.set_title(L["speakers.title"])
    return fig


def retention(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    r = rep.retention
    # the most recent 16 cohorts with at least one member
    rows = [(c, s, m) for c, s, m in zip(r.cohorts, r.sizes, r.matrix, strict=True) if s][-16:]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.32 * len(rows) + 1.6)))
    if not rows:
        _empty(ax, L)
    else:
        weeks = len(rows[0][2])
        data = [[float("nan") if v is None else v * 100 for v in m] for _, _, m in rows]
        im = ax.imshow(data, aspect="auto", cmap="YlGn", vmin=0, vmax=100)
        for i, (_, _, m) in enumerate(rows):
            for k, v in enumerate(m):
                if v is not None:
                    ax.text(k, i, f"{v * 100:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 else "black")
        ax.set_xticks(range(weeks))
        ax.set_xticklabels([str(k) for k in range(weeks)])
        ax.set_yticks(range(len(rows)))
        many = _years([c for c, _, _ in rows])
        ax.set_yticklabels([f"{_fmt_day(c, lang, year=many)} ({s})" for c, s, _ in rows])
        ax.grid(False)
        bar = fig.colorbar(im, ax=ax)
        bar.set_label(L["retention.bar"])
    ax.set_title(L["retention.title"])
    ax.set_xlabel(L["retention.x"])
    ax.set_ylabel(L["retention.y"])
    return fig


def survival(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    from qunyun.analytics.lifecycle import BASE_ALIVE_AFTER_MONTH, BASE_SILENT_WITHIN_WEEK

    fig, ax = plt.subplots(figsize=(9, 4))
    s = rep.survival
    if s is None or not s.ages:
        _empty(ax, L, L["survival.none"])
    else:
        ax.plot(s.ages, [a * 100 for a in s.alive], color=_COLOURS["accent"], linewidth=2,
                label=L["survival.ours"].format(n=s.n))
    base_x = [0, 7, 30]
    base_y = [100, (1 - BASE_SILENT_WITHIN_WEEK) * 100, BASE_ALIVE_AFTER_MONTH * 100]
    ax.plot(base_x, base_y, color=_COLOURS["grey"], linestyle="--", marker="o", label=L["survival.base"])
    for x, y in zip(base_x[1:], base_y[1:], strict=True):
        ax.annotate(f"{y:.0f}%", (x, y), textcoords="offset points", xytext=(6, -12), color=_COLOURS["grey"])
    ax.set_ylim(0, 105)
    ax.set_xlim(0, max(30, s.ages[-1] if s is not None and s.ages else 30))
    ax.set_title(L["survival.title"])
    ax.set_xlabel(L["survival.x"])
    ax.set_ylabel(L["survival.y"])
    ax.legend(loc="best")
    return fig


def size_activity(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    from qunyun.analytics.metrics import RECENT_DAYS

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    labels = [b.label for b in rep.buckets]
    x = range(len(labels))
    a1.bar(x, [(b.active_ratio or 0) * 100 for b in rep.buckets], color=_COLOURS["bar"])
    a2.bar(x, [(b.per_capita or 0) * 100 for b in rep.buckets], color=_COLOURS["accent"])
    for ax, ylab in ((a1, L["size.ratio"]), (a2, L["size.percap"])):
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels)
        ax.set_xlabel(L["size.x"])
        ax.set_ylabel(ylab)
    for i, b in enumerate(rep.buckets):
        a1.annotate(L["size.group"] if b.groups == 1 else L["size.groups"].format(n=b.groups),
                    (i, (b.active_ratio or 0) * 100),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    fig.suptitle(L["size.title"].format(days=RECENT_DAYS), fontweight="bold")
    fig.tight_layout()  # the right panel's axis label otherwise runs into the left panel
    return fig


def lorenz(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    c = rep.concentration
    ax.plot([0, 100], [0, 100], color=_COLOURS["grey"], linestyle="--", label=L["lorenz.equal"])
    ax.plot([x * 100 for x, _ in c.lorenz], [y * 100 for _, y in c.lorenz], color=_COLOURS["line"], linewidth=2)
    ax.fill_between([x * 100 for x, _ in c.lorenz], [y * 100 for _, y in c.lorenz],
                    [x * 100 for x, _ in c.lorenz], color=_COLOURS["line"], alpha=0.1)
    if c.gini is not None:
        ax.text(3, 90, L["lorenz.note"].format(gini=f"{c.gini:.2f}", top=_pct(c.top10_share)))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_title(L["lorenz.title"])
    ax.set_xlabel(L["lorenz.x"])
    ax.set_ylabel(L["lorenz.y"])
    ax.legend(loc="lower right")
    return fig


def top(rep: HealthReport, L: dict[str, str], lang: str, namer: Namer) -> Figure:
    rows = rep.top[:10]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.4 * len(rows) + 1.2)))
    if not rows:
        _empty(ax, L)
    else:
        names = [namer(r.name, r.user_id, r.member_id) for r in rows][::-1]
        values = [r.messages for r in rows][::-1]
        ax.barh(range(len(rows)), values, color=_COLOURS["bar"])
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(names)
        for i, v in enumerate(values):
            ax.annotate(f"{v:,}", (v, i), textcoords="offset points", xytext=(3, -3), fontsize=8)
        ax.grid(axis="y", visible=False)
    ax.set_title(L["top.title"])
    ax.set_xlabel(L["top.x"])
    return fig


def lurker_chart(rep: HealthReport, L: dict[str, str], lang: str) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    # a lurker is silent for at least rep.silent_days: buckets below that are empty by definition
    buckets = [
        (label if lo >= rep.silent_days else (f"{rep.silent_days}+" if hi >= 10**9 else f"{rep.silent_days}-{hi}"),
         max(lo, rep.silent_days), hi)
        for label, lo, hi in SILENCE_BUCKETS
        if hi >= rep.silent_days
    ]
    counts = {label: 0 for label, _, _ in buckets}
    never = 0
    for lk in rep.lurkers:
        if lk.last_spoke is None:
            never += 1
            continue
        for label, lo, hi in buckets:
            if lo <= lk.silent_days <= hi:
                counts[label] += 1
                break
    labels = [*counts, L["lurkers.never"]]
    values = [*counts.values(), never]
    ax.bar(range(len(labels)), values, color=[*([_COLOURS["bar"]] * len(counts)), _COLOURS["grey"]])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,}", (i, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_title(L["lurkers.title"])
    ax.set_xlabel(L["lurkers.x"])
    ax.set_ylabel(L["lurkers.y"])
    return fig


def _empty(ax: Any, L: dict[str, str], text: str | None = None) -> None:
    ax.text(0.5, 0.5, text or L["empty"], ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------ output


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    # Inline in HTML5: drop the XML prolog, the DOCTYPE (it names a URL), metadata and namespaces.
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.replace("xlink:href=", "href=")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


CHARTS = ("activity", "speakers", "retention", "survival", "size_activity", "lorenz", "top", "lurkers")


def render(rep: HealthReport) -> list[Chart]:
    """Every chart of the report, as inline SVG (report language) and PNG."""
    lang = rep.lang
    png_lang = png_language(lang)

    def html_name(name: str | None, uid: str, mid: int) -> str:
        return name or uid

    def png_name(name: str | None, uid: str, mid: int) -> str:
        for candidate in (name, uid):
            if candidate and drawable(candidate):
                return candidate
        return f"#{mid}"

    makers: dict[str, Callable[[dict[str, str], str, Namer], Figure]] = {
        "activity": lambda L, lg, n: activity(rep, L, lg),
        "speakers": lambda L, lg, n: speakers(rep, L, lg),
        "retention": lambda L, lg, n: retention(rep, L, lg),
        "survival": lambda L, lg, n: survival(rep, L, lg),
        "size_activity": lambda L, lg, n: size_activity(rep, L, lg),
        "lorenz": lambda L, lg, n: lorenz(rep, L, lg),
        "top": lambda L, lg, n: top(rep, L, lg, n),
        "lurkers": lambda L, lg, n: lurker_chart(rep, L, lg),
    }
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-glyph warnings while laying out SVG text
        for name in CHARTS:
            make = makers[name]
            _setup(lang)
            fig = make(LABELS[lang], lang, html_name)
            svg = _svg(fig)
            if png_lang == lang and name != "top":
                png = _png(fig)
                plt.close(fig)
            else:
                plt.close(fig)
                _setup(png_lang)
                fig = make(LABELS[png_lang], png_lang, png_name)
                png = _png(fig)
                plt.close(fig)
            title = LABELS[lang][f"{name.replace('size_activity', 'size').replace('lurkers', 'lurkers')}.title"]
            if name == "size_activity":
                from qunyun.analytics.metrics import RECENT_DAYS

                title = title.format(days=RECENT_DAYS)
            out.append(Chart(name, title, svg, png))
    return out
