"""The health report: numbers from :mod:`qunyun.analytics.metrics`, charts, files.

``build_report`` reads a community's rollups into a :class:`HealthReport`;
``write_report`` writes, into one directory:

- ``report.html`` — self-contained (inline SVG charts, inline CSS; no script,
  no font, image or style fetched from anywhere), works offline;
- ``<chart>.png`` — each chart as an image, for chats and slides;
- ``summary.txt`` / ``summary.md`` — a short text an operator can paste
  into the group.

Everything is in the report's language (zh-CN or en). Member names are user
content: the HTML escapes them (Jinja2 autoescape), the text summaries strip
control and bidi characters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Connection

from qunyun.analytics import metrics as mx
from qunyun.core.clock import monotonic
from qunyun.core.text import display_name

LANGS = ("zh-CN", "en")
DEFAULT_SILENT_DAYS = 30
#: How far back the report looks when no start is given.
DEFAULT_DAYS = 365

T = TypeVar("T")

TEXTS: dict[str, dict[str, str]] = {
    "title": {"zh-CN": "{name} · 社群健康报告", "en": "{name} · community health report"},
    "period": {"zh-CN": "{start} 至 {end}", "en": "{start} to {end}"},
    "headline": {"zh-CN": "近 7 天", "en": "Last 7 days"},
    "vs": {"zh-CN": "较前 7 天", "en": "vs the 7 days before"},
    "messages": {"zh-CN": "消息", "en": "Messages"},
    "speakers": {"zh-CN": "发言人数", "en": "Speakers"},
    "active_ratio": {"zh-CN": "活跃率", "en": "Active ratio"},
    "members": {"zh-CN": "成员", "en": "Members"},
    "joins": {"zh-CN": "新加入", "en": "Joined"},
    "leaves": {"zh-CN": "离开", "en": "Left"},
    "per_speaker": {"zh-CN": "人均发言（条/人）", "en": "Messages per speaker"},
    "activation": {"zh-CN": "新人 7 日开口率", "en": "Newcomers who spoke within 7 days"},
    "top10": {"zh-CN": "前 10% 成员的消息占比", "en": "Share of messages by the top 10%"},
    "gini": {"zh-CN": "基尼系数", "en": "Gini coefficient"},
    "checkin_rate": {"zh-CN": "打卡率", "en": "Check-in rate"},
    "lurkers": {"zh-CN": "潜水成员（{days} 天以上未发言）", "en": "Lurkers (silent {days}+ days)"},
    "charts": {"zh-CN": "图表", "en": "Charts"},
    "lurker_list": {"zh-CN": "潜水时间最长的成员", "en": "Members silent the longest"},
    "name": {"zh-CN": "成员", "en": "Member"},
    "group": {"zh-CN": "群", "en": "Group"},
    "silent_for": {"zh-CN": "沉默天数", "en": "Silent for (days)"},
    "last_spoke": {"zh-CN": "最后发言", "en": "Last message"},
    "never": {"zh-CN": "从未发言", "en": "never"},
    "top_list": {"zh-CN": "贡献最多的成员", "en": "Top contributors"},
    "share": {"zh-CN": "占比", "en": "Share"},
    "groups_title": {"zh-CN": "群的状态", "en": "Groups"},
    "state": {"zh-CN": "状态", "en": "State"},
    "age": {"zh-CN": "群龄（天）", "en": "Age (days)"},
    "last_active": {"zh-CN": "最后活跃", "en": "Last active"},
    "alive": {"zh-CN": "活跃", "en": "alive"},
    "declining": {"zh-CN": "下滑", "en": "declining"},
    "silent": {"zh-CN": "沉默", "en": "silent"},
    "dead": {"zh-CN": "已死", "en": "dead"},
    "warnings": {"zh-CN": "早期预警（像那些很快沉寂的群）", "en": "Early warnings (groups that look like the ones that died)"},
    "score": {"zh-CN": "风险", "en": "Risk"},
    "reasons": {"zh-CN": "原因", "en": "Reasons"},
    "values_title": {"zh-CN": "成员画像（按价值分）", "en": "Member archetypes (by value score)"},
    "archetype": {"zh-CN": "类型", "en": "Archetype"},
    "level": {"zh-CN": "等级", "en": "Level"},
    "count": {"zh-CN": "人数", "en": "Members"},
    "streaks": {"zh-CN": "打卡连续天数分布（最长连续）", "en": "Check-in streaks (longest per member)"},
    "streak_days": {"zh-CN": "连续天数", "en": "Streak (days)"},
    "notes": {"zh-CN": "说明", "en": "Notes"},
    "definitions": {
        "zh-CN": "数据来自每日汇总（成员 × 群 × 天），按社群时区计日。活跃率 = 发言人数 ÷ 期末成员数；"
        "集中度只统计有发言的成员。",
        "en": "Numbers come from the daily rollups (member × group × day), in the community's time zone. "
        "Active ratio = speakers ÷ members at the end of the period; concentration counts speakers only.",
    },
    "generated": {"zh-CN": "数据截至 {end}，由 qunyun 生成。", "en": "Data up to {end}, made by qunyun."},
    "no_data": {"zh-CN": "这段时间没有任何数据。", "en": "There is no data in this period."},
    "no_lifecycle": {
        "zh-CN": "群生命周期数据暂不可用（{why}）。",
        "en": "Group lifecycle data is not available ({why}).",
    },
    "no_values": {
        "zh-CN": "成员价值数据暂不可用（{why}）。",
        "en": "Member value data is not available ({why}).",
    },
    "png_english": {
        "zh-CN": "本机没有可用的中文字体，PNG 图片中的文字以英文显示（HTML 中的图表不受影响）。"
        "设置 QUNYUN_CJK_FONT=字体文件路径 可改用中文。",
        "en": "",
    },
    # the text summary
    "sum.title": {"zh-CN": "📊 {name} 运营周报（{start} 至 {end}）", "en": "📊 {name} weekly report ({start} to {end})"},
    "sum.activity": {
        "zh-CN": "本周消息 {messages} 条（{delta}），{speakers} 人发言，活跃率 {ratio}。",
        "en": "{messages} messages this week ({delta}), {speakers} people spoke, active ratio {ratio}.",
    },
    "sum.members": {
        "zh-CN": "成员 {members} 人，新加入 {joins} 人，离开 {leaves} 人。",
        "en": "{members} members: {joins} joined, {leaves} left.",
    },
    "sum.activation": {
        "zh-CN": "新人 7 天内开口的比例：{rate}。",
        "en": "Newcomers who spoke within 7 days: {rate}.",
    },
    "sum.concentration": {
        "zh-CN": "最活跃的 10% 成员发了 {top} 的消息（基尼系数 {gini}）。",
        "en": "The most active 10% wrote {top} of the messages (Gini {gini}).",
    },
    "sum.checkin": {"zh-CN": "打卡率 {rate}。", "en": "Check-in rate {rate}."},
    "sum.lurkers": {
        "zh-CN": "{count} 人已经 {days} 天以上没有发言。",
        "en": "{count} members have not written for {days} days or more.",
    },
    "sum.groups": {
        "zh-CN": "群：{alive} 个活跃、{declining} 个下滑、{silent} 个沉默、{dead} 个已死。",
        "en": "Groups: {alive} alive, {declining} declining, {silent} silent, {dead} dead.",
    },
    "sum.warn": {"zh-CN": "需要关注的新群：{groups}。", "en": "New groups to watch: {groups}."},
    "sum.thanks": {"zh-CN": "感谢本周最活跃的：{names}！", "en": "Thanks to this week's most active: {names}!"},
    "sum.up": {"zh-CN": "比上周多 {pct}", "en": "up {pct} on last week"},
    "sum.down": {"zh-CN": "比上周少 {pct}", "en": "down {pct} on last week"},
    "sum.flat": {"zh-CN": "与上周持平", "en": "same as last week"},
    "sum.new": {"zh-CN": "上周没有消息", "en": "none the week before"},
    "sum.none": {"zh-CN": "本周没有消息。", "en": "No messages this week."},
}


def tr(lang: str, key: str, **values: Any) -> str:
    text = TEXTS[key].get(lang) or TEXTS[key]["en"]
    return text.format(**values) if values else text


def pct(value: float | None, digits: int = 0) -> str:
    """A share as a percentage; a small non-zero share keeps one decimal (never "0%" for 3 of 2,468)."""
    if value is None:
        return "–"
    if 0 < abs(value) < 0.01 and digits == 0:
        return "<0.1%" if abs(value) < 0.0005 else f"{value * 100:.1f}%"
    return f"{value * 100:.{digits}f}%"


# -------------------------------------------------------------------- data


@dataclass
class ValueGroup:
    archetype: str
    level: str
    count: int


@dataclass
class HealthReport:
    """Everything the report shows, in one object (charts and texts read only this)."""

    scope: mx.Scope
    lang: str
    start: date
    end: date
    silent_days: int
    daily: list[mx.Point]
    weekly: list[mx.Point]
    week: mx.Point
    previous_week: mx.Point
    members: int
    concentration: mx.Concentration
    top: list[mx.Contributor]
    week_top: list[mx.Contributor]
    activation: list[mx.Activation]
    week_activation: float | None
    retention: mx.Retention
    lurkers: list[mx.Lurker]
    checkins: mx.CheckinStats
    groups: list[mx.GroupActivity]
    buckets: list[mx.SizeBucket]
    states: list[Any] | None = None
    survival: Any | None = None
    warnings: list[Any] | None = None
    values: list[ValueGroup] | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        return any(p.messages or p.joins or p.leaves for p in self.daily)


def _optional(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(f"qunyun.analytics.{name}"), ""
    except ImportError as exc:
        return None, str(exc)


def build_report(
    conn: Connection,
    community: str,
    *,
    start: date | None = None,
    end: date | None = None,
    lang: str | None = None,
    group: str | None = None,
    silent_days: int = DEFAULT_SILENT_DAYS,
    lifecycle: ModuleType | Any | None = None,
    value: ModuleType | Any | None = None,
) -> HealthReport:
    """Read the health report of ``community`` (or one ``group``) for [start, end].

    ``end`` defaults to the last day with data (never the wall clock), ``start``
    to a year before it (or the first day with data). ``lang`` defaults to the
    community's locale. ``lifecycle`` and ``value`` are the modules for the
    lifecycle and member-value parts (defaults: ``qunyun.analytics.lifecycle``
    and ``.value``); if one is missing, its part is left out with a note.
    """
    timings: dict[str, float] = {}

    def timed(label: str, fn: Callable[[], T]) -> T:
        t0 = monotonic()
        out = fn()
        timings[label] = timings.get(label, 0.0) + monotonic() - t0
        return out

    sc = timed("scope", lambda: mx.scope(conn, community, group))
    lang = lang or (sc.locale if sc.locale in LANGS else "zh-CN")
    if lang not in LANGS:
        raise mx.AnalyticsError(f"unknown report language {lang!r}", hint="zh-CN or en")
    if end is None or start is None:
        span = timed("range", lambda: mx.data_range(conn, sc))
        if span is None and end is None:
            raise mx.AnalyticsError(
                f"community {community!r} has no data yet" + (f" in group {group!r}" if group else ""),
                hint="replay or import events first (qunyun replay, qunyun import), or give --end",
            )
        if end is None:
            assert span is not None
            end = span[1]
        if start is None:
            first = span[0] if span else end
            start = max(first, end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise mx.AnalyticsError(
            f"the report would start ({start}) after it ends ({end})", hint="give an earlier --since"
        )
    # per group, the last weeks' speakers and messages from the aggregates when they answer
    recent = timed("groups", lambda: mx.recent_by_group(conn, sc, end))
    pres = timed("presences", lambda: mx.presences(conn, sc, start, end, recent=recent is None))
    persons = timed("people", lambda: mx.people(pres))
    counter = timed("members", lambda: mx.member_counter(conn, sc, end, pres, persons))
    daily = timed("daily series", lambda: mx.series(conn, sc, start, end, "day", counter=counter))
    weekly = timed("weekly series", lambda: mx.series(conn, sc, start, end, "week", counter=counter))
    week_from = max(start, end - timedelta(days=6))
    prev_from = week_from - timedelta(days=7)
    week = timed("last 7 days", lambda: _window(conn, sc, week_from, end, counter))
    previous = timed("last 7 days", lambda: _window(conn, sc, prev_from, week_from - timedelta(days=1), counter))
    act = timed("activation", lambda: mx.activation(conn, sc, start, end, "week"))
    week_act = timed("activation", lambda: mx.activation(conn, sc, week_from - timedelta(days=7), end, "month"))
    joined = sum(a.joined for a in week_act)
    rep = HealthReport(
        scope=sc,
        lang=lang,
        start=start,
        end=end,
        silent_days=silent_days,
        daily=daily,
        weekly=weekly,
        week=week,
        previous_week=previous,
        members=counter.at(end),
        concentration=timed("concentration", lambda: mx.concentration(p.messages for p in persons.values())),
        top=timed("top contributors", lambda: mx.top_contributors(conn, persons, 10)),
        week_top=timed("top contributors", lambda: mx.top_between(conn, sc, week_from, end, 3)),
        activation=act,
        week_activation=sum(a.activated for a in week_act) / joined if joined else None,
        retention=timed("retention", lambda: mx.retention(conn, sc, start, end)),
        lurkers=timed("lurkers", lambda: mx.lurkers(conn, sc, end, silent_days, pres=pres, persons=persons)),
        checkins=timed("check-ins", lambda: mx.checkin_stats(conn, sc, start, end, counter)),
        groups=(groups := timed("groups", lambda: mx.group_activity(sc, pres, start, end, recent))),
        buckets=mx.size_buckets(groups),
        timings=timings,
    )
    _lifecycle_parts(conn, rep, lifecycle, value, timed)
    return rep


def _window(conn: Connection, sc: mx.Scope, start: date, end: date, counter: mx.MemberCounter) -> mx.Point:
    """One period [start, end] as a single point (distinct speakers over it)."""
    from sqlalchemy import text

    row = conn.execute(
        text(
            f"""SELECT sum(messages), sum(joins), sum(leaves),
                       count(DISTINCT CASE WHEN messages > 0 THEN member_id END),
                       sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
                FROM rollups WHERE {sc.where()} AND day >= :start AND day <= :end"""
        ),
        {"community": sc.community, "start": mx._bind_day(conn, start), "end": mx._bind_day(conn, end)},
    ).one()
    ms, j, lv, sp, ck = (int(v or 0) for v in row)
    return mx.Point(start, end, counter.at(end), j, lv, ms, sp, ck)


def _lifecycle_parts(
    conn: Connection, rep: HealthReport, lifecycle: Any, value: Any, timed: Callable[[str, Callable[[], Any]], Any]
) -> None:
    sc, lang, end = rep.scope, rep.lang, rep.end
    if sc.group is not None:
        return  # group states and survival are about the groups of a community
    why = ""
    if lifecycle is None:
        lifecycle, why = _optional("lifecycle")
    if lifecycle is not None:
        try:
            rep.states = timed("lifecycle states", lambda: list(lifecycle.group_states(conn, sc.community, end)))
            rep.survival = timed("survival", lambda: lifecycle.survival_curve(conn, sc.community, end))
            rep.warnings = timed("early warning", lambda: list(lifecycle.early_warning(conn, sc.community, end)))
        except (AttributeError, TypeError, NotImplementedError) as exc:
            rep.states = rep.survival = rep.warnings = None
            why = f"{type(exc).__name__}: {exc}"
    if rep.states is None:
        rep.notes.append(tr(lang, "no_lifecycle", why=why or "?"))
    why = ""
    if value is None:
        value, why = _optional("value")
    if value is not None:
        try:
            counts: dict[tuple[str, str], int] = {}
            if hasattr(value, "value_counts"):  # the counts only: no member's name is read
                counts = timed("member values", lambda: dict(value.value_counts(conn, sc.community, end)))
            else:
                for v in timed("member values", lambda: list(value.member_values(conn, sc.community, end))):
                    k = (str(v.archetype), str(v.level))
                    counts[k] = counts.get(k, 0) + 1
            rep.values = [ValueGroup(a, lv, n) for (a, lv), n in sorted(counts.items(), key=lambda kv: -kv[1])]
        except (AttributeError, TypeError, NotImplementedError) as exc:
            rep.values = None
            why = f"{type(exc).__name__}: {exc}"
    if rep.values is None:
        rep.notes.append(tr(lang, "no_values", why=why or "?"))


# ------------------------------------------------------------------ summary


def _safe(name: str | None, uid: str) -> str:
    return display_name(name, uid)


def summary_lines(rep: HealthReport) -> list[str]:
    """The short text an operator can paste into the group, line by line."""
    lang = rep.lang
    w, p = rep.week, rep.previous_week
    lines = [tr(lang, "sum.title", name=_safe(rep.scope.name, rep.scope.community), start=w.start, end=w.end)]
    if w.messages == 0:
        lines.append(tr(lang, "sum.none"))
    else:
        if p.messages == 0:
            delta = tr(lang, "sum.new")
        else:
            change = (w.messages - p.messages) / p.messages
            if abs(change) < 0.005:
                delta = tr(lang, "sum.flat")
            else:
                delta = tr(lang, "sum.up" if change > 0 else "sum.down", pct=pct(abs(change)))
        lines.append(
            tr(lang, "sum.activity", messages=f"{w.messages:,}", delta=delta, speakers=f"{w.speakers:,}",
               ratio=pct(w.active_ratio))
        )
    lines.append(tr(lang, "sum.members", members=f"{rep.members:,}", joins=w.joins, leaves=w.leaves))
    if rep.week_activation is not None:
        lines.append(tr(lang, "sum.activation", rate=pct(rep.week_activation)))
    if rep.concentration.gini is not None:
        lines.append(
            tr(lang, "sum.concentration", top=pct(rep.concentration.top10_share), gini=f"{rep.concentration.gini:.2f}")
        )
    if rep.checkins.checkin_days:
        lines.append(tr(lang, "sum.checkin", rate=pct(rep.checkins.rate, 1)))
    lines.append(tr(lang, "sum.lurkers", count=f"{len(rep.lurkers):,}", days=rep.silent_days))
    if rep.states:
        n = dict.fromkeys(("alive", "declining", "silent", "dead"), 0)
        for g in rep.states:
            n[str(g.state)] = n.get(str(g.state), 0) + 1
        lines.append(tr(lang, "sum.groups", **n))
    if rep.warnings:
        names = {g.key: g.name for g in rep.scope.groups.values()}
        watch = sorted(rep.warnings, key=lambda x: -x.score)[:5]
        sep = "、" if lang == "zh-CN" else ", "
        lines.append(tr(lang, "sum.warn", groups=sep.join(_safe(names.get(x.group_key), x.group_key) for x in watch)))
    week_top = rep.week_top
    if week_top and w.messages:
        sep = "、" if lang == "zh-CN" else ", "
        lines.append(tr(lang, "sum.thanks", names=sep.join(_safe(c.name, c.user_id) for c in week_top)))
    return lines


def summary_text(rep: HealthReport) -> str:
    return "\n".join(summary_lines(rep)) + "\n"


def summary_markdown(rep: HealthReport) -> str:
    lines = summary_lines(rep)
    body = [f"**{_md(lines[0])}**", ""] + [f"- {_md(line)}" for line in lines[1:]]
    return "\n".join(body) + "\n"


def _md(text: str) -> str:
    """Markdown-inert text: names may hold *, _, [ or <."""
    out = []
    for ch in text:
        if ch in "\\`*_[]<>|~":  # (, ), ! and # are inert here: no line starts with them, [ is escaped
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------- HTML


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("qunyun.analytics", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(rep: HealthReport, charts: list[Any]) -> str:
    lang = rep.lang
    notes = list(rep.notes)
    state_names = {s: tr(lang, s) for s in ("alive", "declining", "silent", "dead")}
    groups_by_key = {g.key: g for g in rep.scope.groups.values()}
    # the groups table counts members as every other number of the report does (metrics' definition)
    members_of = {g.key: g.members for g in rep.groups}
    return _env().get_template("report.html.j2").render(
        r=rep,
        t=lambda key, **kw: tr(lang, key, **kw),
        pct=pct,
        charts=charts,
        summary=summary_lines(rep),
        notes=notes,
        state_names=state_names,
        group_name=lambda key: _safe(groups_by_key[key].name if key in groups_by_key else None, key),
        lurkers=rep.lurkers[:50],
        warnings=sorted(rep.warnings or [], key=lambda x: -x.score)[:20],
        states=sorted(rep.states or [], key=lambda g: (str(g.state), g.group_key)),
        streak_rows=list(rep.checkins.longest.items()),
        members_of=members_of,
    )


@dataclass(frozen=True)
class Written:
    directory: Path
    files: list[Path]
    seconds: float


def write_report(rep: HealthReport, out: Path) -> Written:
    """Write report.html, one PNG per chart, summary.txt and summary.md into ``out``."""
    from qunyun.analytics import charts as ch

    t0 = monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if ch.png_language(rep.lang) != rep.lang and tr(rep.lang, "png_english") not in rep.notes:
        rep.notes.append(tr(rep.lang, "png_english"))
    rendered = ch.render(rep)
    files = []
    for c in rendered:
        path = out / f"{c.name}.png"
        path.write_bytes(c.png)
        files.append(path)
    html = out / "report.html"
    html.write_text(render_html(rep, rendered), encoding="utf-8")
    txt = out / "summary.txt"
    txt.write_text(summary_text(rep), encoding="utf-8")
    md = out / "summary.md"
    md.write_text(summary_markdown(rep), encoding="utf-8")
    files += [html, txt, md]
    return Written(out, files, monotonic() - t0)
