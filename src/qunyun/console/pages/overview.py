"""Console page: overview — a community's health at a glance.

The page is built in three layers, cheapest first, so that its first paint
is fast even on a community of a thousand groups:

1. **the headline** (members, speakers, active ratio, messages, newcomer
   activation, each against the 7 days before): a few aggregate queries
   (``group_days``, ``member_groups``, a 14-day window of ``rollups``),
   memoised per community epoch;
2. **health** (groups by lifecycle state, survival against the base rates,
   alerts): the lifecycle module over every group plus the drift rule,
   memoised; rendered inline when already computed, else loaded by htmx;
3. **charts** (the report's eight charts as inline SVG): one htmx fragment
   each, memoised per language.

The day everything is judged on ("as of") is the community's last local day
with any activity — as in ``qunyun report``, never the wall clock, so a
replayed or imported history reads as it did. When that day is more than a
day behind the console's clock, an alert says how long the community has
been quiet.

Definitions: ``docs/console.md`` ("Overview and groups").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, case, func, select

from qunyun.analytics import lifecycle as lc
from qunyun.analytics import metrics as mx
from qunyun.config.model import CommunitySettings
from qunyun.console.charts import memo, peek, svg_chart
from qunyun.console.i18n import LANGS, Labels
from qunyun.console.web import ConsoleState, Viewer
from qunyun.store import models as m

router = APIRouter()

#: the report's charts, in the report's order
log = logging.getLogger("qunyun.console")
CHARTS = ("activity", "speakers", "retention", "survival", "size_activity", "lorenz", "top", "lurkers")
#: how far back the charts look (as the report does)
CHART_DAYS = 365
#: a lurker: present, and silent this many days or more (as the report)
SILENT_DAYS = 30

# The drift rule (docs/console.md): the last 28 days against the 28 before.
DRIFT_DAYS = 28
#: the top 10 %'s share of messages rose by at least this much (absolute)
DRIFT_CONCENTRATION = 0.05
#: the share of members who did not write rose by at least this much (absolute)
DRIFT_LURKERS = 0.05
#: newcomer activation fell by at least this much (absolute)
DRIFT_ACTIVATION = 0.10
#: the smallest populations the rule judges (fewer: too noisy to say anything)
DRIFT_MIN_SPEAKERS = 20
DRIFT_MIN_MEMBERS = 20
DRIFT_MIN_JOINS = 10
#: survival is compared with the base rates from this many groups on
SURVIVAL_MIN_GROUPS = 10
#: the most group alerts of one kind the page lists (the groups page has the rest)
MAX_GROUP_ALERTS = 15


# ------------------------------------------------------------------ numbers


@dataclass(frozen=True)
class Window:
    """A community over a few days: members at the end, distinct speakers, sums."""

    start: date
    end: date
    members: int
    speakers: int
    messages: int
    joins: int
    leaves: int

    @property
    def active_ratio(self) -> float | None:
        return self.speakers / self.members if self.members else None

    @property
    def per_speaker(self) -> float | None:
        return self.messages / self.speakers if self.speakers else None


@dataclass(frozen=True)
class Headline:
    """The overview's cheap numbers."""

    community: str
    #: the last local day with activity (None: no data yet)
    as_of: date | None
    first_day: date | None
    groups: int
    week: Window | None = None
    previous: Window | None = None
    speakers_30d: int = 0
    #: newcomers of the last 14 days who wrote within 7 days of joining (the report's figure)
    activation: float | None = None
    newcomers: int = 0
    #: whole days from ``as_of`` to the console's today (0: up to date)
    idle_days: int = 0


def _cut(day: date, tz: Any) -> datetime:
    """The first instant after local day ``day`` (for comparing timestamps with local days)."""
    return datetime.combine(day + timedelta(days=1), time(), tz)


def data_span(conn: Connection, community: str) -> tuple[date, date] | None:
    """The community's first and last local day with any activity."""
    gd = m.table(m.GroupDay)
    first, last = conn.execute(
        select(func.min(gd.c.day), func.max(gd.c.day)).where(gd.c.community_id == community)
    ).one()
    return (first, last) if first is not None else None


def _not_left(day: date, tz: Any) -> Any:
    """SQL: the member_groups row's member had not left that group by the end of local ``day``."""
    mg, ms = m.table(m.MemberGroup), m.table(m.Membership)
    gone = (
        select(ms.c.id)
        .where(
            ms.c.group_id == mg.c.group_id,
            ms.c.member_id == mg.c.member_id,
            ms.c.status != "active",
            ms.c.left_at.is_not(None),
            ms.c.left_at < _cut(day, tz),
        )
        .exists()
    )
    return ~gone


def members_at(conn: Connection, community: str, day: date, tz: Any) -> int:
    """People present in the community at the end of ``day`` (the definition of
    :mod:`qunyun.analytics.metrics`: seen in a group by then, not gone from every group)."""
    mg = m.table(m.MemberGroup)
    q = select(func.count(func.distinct(mg.c.member_id))).where(
        mg.c.community_id == community, mg.c.first_day <= day, _not_left(day, tz)
    )
    return int(conn.execute(q).scalar() or 0)


def group_members_at(conn: Connection, community: str, day: date, tz: Any) -> dict[int, int]:
    """Members of each group at the end of ``day`` (group id → people), as :func:`members_at`."""
    mg = m.table(m.MemberGroup)
    q = (
        select(mg.c.group_id, func.count())
        .where(mg.c.community_id == community, mg.c.first_day <= day, _not_left(day, tz))
        .group_by(mg.c.group_id)
    )
    return {int(g): int(n) for g, n in conn.execute(q)}


def _sums(conn: Connection, community: str, start: date, end: date) -> tuple[int, int, int]:
    gd = m.table(m.GroupDay)
    row = conn.execute(
        select(func.sum(gd.c.messages), func.sum(gd.c.joins), func.sum(gd.c.leaves)).where(
            gd.c.community_id == community, gd.c.day >= start, gd.c.day <= end
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def _speakers_two_weeks(conn: Connection, community: str, as_of: date) -> tuple[int, int]:
    """Distinct speakers of the last 7 days and of the 7 days before (one pass over 14 days of rollups)."""
    r = m.table(m.Rollup)
    mid = as_of - timedelta(days=6)
    row = conn.execute(
        select(
            func.count(func.distinct(case((r.c.day >= mid, r.c.member_id)))),
            func.count(func.distinct(case((r.c.day < mid, r.c.member_id)))),
        ).where(
            r.c.community_id == community,
            r.c.day >= as_of - timedelta(days=13),
            r.c.day <= as_of,
            r.c.messages > 0,
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def headline(conn: Connection, community: CommunitySettings, today: date) -> Headline:
    """The overview's headline numbers, as of the community's last day with activity."""
    cid, tz = community.id, community.tz
    g = m.table(m.Group)
    groups = int(conn.execute(select(func.count()).where(g.c.community_id == cid)).scalar() or 0)
    span = data_span(conn, cid)
    if span is None:
        return Headline(cid, None, None, groups)
    first, as_of = span
    week_from, prev_to = as_of - timedelta(days=6), as_of - timedelta(days=7)
    prev_from = as_of - timedelta(days=13)
    now_speakers, prev_speakers = _speakers_two_weeks(conn, cid, as_of)
    msgs, joins, leaves = _sums(conn, cid, week_from, as_of)
    p_msgs, p_joins, p_leaves = _sums(conn, cid, prev_from, prev_to)
    week = Window(week_from, as_of, members_at(conn, cid, as_of, tz), now_speakers, msgs, joins, leaves)
    previous = Window(prev_from, prev_to, members_at(conn, cid, prev_to, tz), prev_speakers, p_msgs, p_joins, p_leaves)
    # everyone whose last message in a group is within 30 days: exact, because as_of is the last day with data
    mg = m.table(m.MemberGroup)
    speakers_30d = int(
        conn.execute(
            select(func.count(func.distinct(mg.c.member_id))).where(
                mg.c.community_id == cid, mg.c.last_message_day >= as_of - timedelta(days=29)
            )
        ).scalar()
        or 0
    )
    sc = mx.scope(conn, cid)
    cohorts = mx.activation(conn, sc, as_of - timedelta(days=13), as_of, "month")
    joined = sum(a.joined for a in cohorts)
    activated = sum(a.activated for a in cohorts)
    return Headline(
        cid, as_of, first, groups, week, previous, speakers_30d,
        activated / joined if joined else None, joined, max(0, (today - as_of).days),
    )


def today_of(state: ConsoleState, community: CommunitySettings) -> date:
    return state.clock.now().astimezone(community.tz).date()


def cached_headline(state: ConsoleState, community: CommunitySettings) -> Headline:
    def build() -> Headline:
        with state.db.connect() as conn:
            return headline(conn, community, today_of(state, community))

    return memo(state, community.id, "overview:headline", build)


# -------------------------------------------------------------------- drift


@dataclass(frozen=True)
class Drift:
    """The community's member structure over the last 28 days and the 28 before."""

    top10_now: float | None
    top10_before: float | None
    speakers_now: int
    speakers_before: int
    members_now: int
    members_before: int
    activation_now: float | None
    activation_before: float | None
    joined_now: int
    joined_before: int

    @property
    def lurkers_now(self) -> float | None:
        """Share of the members who did not write in the window."""
        return max(0.0, 1 - self.speakers_now / self.members_now) if self.members_now else None

    @property
    def lurkers_before(self) -> float | None:
        return max(0.0, 1 - self.speakers_before / self.members_before) if self.members_before else None


def drift(conn: Connection, community: CommunitySettings, as_of: date, first_day: date) -> Drift | None:
    """The inputs of the drift rule, or None when the data does not reach back 56 days."""
    cid, tz = community.id, community.tz
    mid = as_of - timedelta(days=DRIFT_DAYS - 1)
    start = mid - timedelta(days=DRIFT_DAYS)
    if first_day > start:
        return None
    r = m.table(m.Rollup)
    now: list[int] = []
    before: list[int] = []
    q = (
        select(
            func.sum(case((r.c.day >= mid, r.c.messages), else_=0)),
            func.sum(case((r.c.day < mid, r.c.messages), else_=0)),
        )
        .where(r.c.community_id == cid, r.c.day >= start, r.c.day <= as_of, r.c.messages > 0)
        .group_by(r.c.member_id)
    )
    for a, b in conn.execute(q):
        if a:
            now.append(int(a))
        if b:
            before.append(int(b))
    c_now, c_before = mx.concentration(now), mx.concentration(before)
    sc = mx.scope(conn, cid)
    # joins whose 7 days to speak are over: the 28 days up to as_of - 6, and the 28 before
    a_end = as_of - timedelta(days=mx.ACTIVATION_DAYS - 1)
    a_mid = a_end - timedelta(days=DRIFT_DAYS - 1)
    act_now = mx.activation(conn, sc, a_mid, a_end, "month")
    act_before = mx.activation(conn, sc, a_mid - timedelta(days=DRIFT_DAYS), a_mid - timedelta(days=1), "month")

    def rate(cohorts: list[mx.Activation]) -> tuple[float | None, int]:
        j = sum(c.joined for c in cohorts)
        return (sum(c.activated for c in cohorts) / j if j else None), j

    (an, jn), (ab, jb) = rate(act_now), rate(act_before)
    return Drift(
        c_now.top10_share, c_before.top10_share, len(now), len(before),
        members_at(conn, cid, as_of, tz), members_at(conn, cid, mid - timedelta(days=1), tz),
        an, ab, jn, jb,
    )


# ------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at. ``kind`` names its label ``overview.alert.<kind>``."""

    kind: str
    #: bad (act now) or warn (keep an eye on it)
    level: str
    #: the group it is about (its key), if any
    group: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def alerts(
    head: Headline,
    states: list[lc.GroupLife],
    risks: list[lc.Risk],
    drifted: Drift | None,
    survival: lc.Survival | None,
) -> list[Alert]:
    """Every alert, the most urgent first (a pure function of the numbers it is given)."""
    out: list[Alert] = []
    if head.as_of is not None and head.idle_days > 1:
        out.append(Alert("quiet", "bad", values={"days": head.idle_days, "day": head.as_of.isoformat()}))
    names = {s.group_key: s.name for s in states}
    dying = sorted(
        (s for s in states if s.state in ("silent", "declining")),
        key=lambda s: (s.state != "silent", -s.members, s.group_key),
    )
    for s in dying[:MAX_GROUP_ALERTS]:
        quiet = (head.as_of - s.last_active).days if head.as_of and s.last_active else s.age_days
        out.append(Alert(f"group_{s.state}", "bad" if s.state == "silent" else "warn", s.group_key,
                         {"group": s.name, "days": quiet, "members": s.members}))
    if len(dying) > MAX_GROUP_ALERTS:
        out.append(Alert("more_groups", "warn", values={"count": len(dying) - MAX_GROUP_ALERTS}))
    state_of = {s.group_key: s.state for s in states}
    young = [r for r in risks if r.score >= lc.WARN_AT and state_of.get(r.group_key) not in ("dead", "silent")]
    for r in young[:MAX_GROUP_ALERTS]:
        out.append(Alert("group_risk", "warn", r.group_key,
                         {"group": names.get(r.group_key, r.group_key), "score": r.score, "age": r.age_days,
                          "reasons": list(r.reasons)}))
    if drifted is not None:
        d = drifted
        if (
            d.top10_now is not None and d.top10_before is not None
            and min(d.speakers_now, d.speakers_before) >= DRIFT_MIN_SPEAKERS
            and d.top10_now - d.top10_before >= DRIFT_CONCENTRATION
        ):
            out.append(Alert("concentration", "warn", values={"now": d.top10_now, "before": d.top10_before}))
        ln, lb = d.lurkers_now, d.lurkers_before
        if (
            ln is not None and lb is not None
            and min(d.members_now, d.members_before) >= DRIFT_MIN_MEMBERS
            and ln - lb >= DRIFT_LURKERS
        ):
            out.append(Alert("lurkers", "warn", values={"now": ln, "before": lb}))
        if (
            d.activation_now is not None and d.activation_before is not None
            and min(d.joined_now, d.joined_before) >= DRIFT_MIN_JOINS
            and d.activation_before - d.activation_now >= DRIFT_ACTIVATION
        ):
            out.append(Alert("activation", "warn", values={"now": d.activation_now, "before": d.activation_before}))
    if survival is not None and survival.n >= SURVIVAL_MIN_GROUPS:
        base7 = 1 - lc.BASE_SILENT_WITHIN_WEEK
        if survival.at7 is not None and survival.at7 < base7:
            out.append(Alert("survival_7", "warn", values={"ours": survival.at7, "base": base7}))
        if survival.at30 is not None and survival.at30 < lc.BASE_ALIVE_AFTER_MONTH:
            out.append(Alert("survival_30", "warn",
                             values={"ours": survival.at30, "base": lc.BASE_ALIVE_AFTER_MONTH}))
    return out


def alert_text(alert: Alert, lang: str) -> str:
    """An alert in words (plain text: the templates escape it)."""
    t = Labels(lang)
    v = dict(alert.values)
    for k in ("now", "before", "ours", "base"):
        if k in v and isinstance(v[k], float):
            v[k] = f"{v[k] * 100:.0f}%"
    if "score" in v:
        v["score"] = f"{v['score'] * 100:.0f}%"
    if "reasons" in v:
        sep = "；" if lang == "zh-CN" else "; "
        v["reasons"] = sep.join(lc.REASONS.get(c, {}).get(lang, c) for c in v["reasons"]) or "—"
    return t(f"overview.alert.{alert.kind}", **v)


# ------------------------------------------------------------------- health


@dataclass(frozen=True)
class Health:
    """Groups by lifecycle state, survival, young groups' risks, drift and the alerts."""

    counts: dict[str, int]
    survival: lc.Survival | None
    drift: Drift | None
    alerts: list[Alert]
    young: int


def group_states(state: ConsoleState, community: CommunitySettings, as_of: date) -> list[lc.GroupLife]:
    """Every group's lifecycle state (memoised: the groups page shares it)."""

    def build() -> list[lc.GroupLife]:
        with state.db.connect() as conn:
            return lc.group_states(conn, community.id, as_of)

    return memo(state, community.id, "lifecycle:states", build)


def survival_curve(state: ConsoleState, community: CommunitySettings, as_of: date) -> lc.Survival:
    def build() -> lc.Survival:
        with state.db.connect() as conn:
            return lc.survival_curve(conn, community.id, as_of)

    return memo(state, community.id, "lifecycle:survival", build)


def health(state: ConsoleState, community: CommunitySettings) -> Health:
    head = cached_headline(state, community)

    def build() -> Health:
        if head.as_of is None or head.first_day is None:
            return Health(dict.fromkeys(lc.STATES, 0), None, None, alerts(head, [], [], None, None), 0)
        states = group_states(state, community, head.as_of)
        surv = survival_curve(state, community, head.as_of)
        with state.db.connect() as conn:
            risks = lc.young_group_risks(conn, community.id, head.as_of)
            drifted = drift(conn, community, head.as_of, head.first_day)
        counts: dict[str, int] = dict.fromkeys(lc.STATES, 0)
        for s in states:
            counts[s.state] += 1
        return Health(counts, surv, drifted, alerts(head, states, risks, drifted, surv), len(risks))

    return memo(state, community.id, "overview:health", build)


# ------------------------------------------------------------------- charts


@dataclass
class _Quiet:
    """A lurker, as the lurker chart needs it."""

    last_spoke: date | None
    silent_days: int


@dataclass
class ChartData:
    """What the report's chart functions read of a ``HealthReport`` (the same attribute names)."""

    daily: list[mx.Point]
    weekly: list[mx.Point]
    retention: mx.Retention
    survival: lc.Survival | None
    buckets: list[mx.SizeBucket]
    concentration: mx.Concentration
    top: list[mx.Contributor]
    lurkers: list[_Quiet]
    silent_days: int = SILENT_DAYS


def chart_data(state: ConsoleState, community: CommunitySettings) -> ChartData | None:
    """The charts' inputs over the last year (memoised; None without data)."""
    head = cached_headline(state, community)
    if head.as_of is None or head.first_day is None:
        return None
    as_of, first = head.as_of, head.first_day

    def build() -> ChartData:
        start = max(first, as_of - timedelta(days=CHART_DAYS - 1))
        surv = survival_curve(state, community, as_of)
        with state.db.connect() as conn:
            sc = mx.scope(conn, community.id)
            # all of the community's days: the aggregates kept per (group, member) answer it
            pres = mx.presences(conn, sc, first, as_of)
            counter = mx.member_counter(conn, sc, as_of, pres)
            persons = mx.people(pres)
            groups = mx.group_activity(sc, pres, start, as_of)
            quiet = [_Quiet(x.last_spoke, x.silent_days) for x in mx.lurkers(conn, sc, as_of, SILENT_DAYS, pres=pres)]
            return ChartData(
                daily=mx.series(conn, sc, start, as_of, "day", counter=counter),
                weekly=mx.series(conn, sc, start, as_of, "week", counter=counter),
                retention=mx.retention(conn, sc, start, as_of),
                survival=surv,
                buckets=mx.size_buckets(groups),
                concentration=mx.concentration(p.messages for p in persons.values()),
                top=mx.top_contributors(conn, persons, 10),
                lurkers=quiet,
            )

    return memo(state, community.id, "overview:chartdata", build)


def chart_svg(state: ConsoleState, community: CommunitySettings, name: str, lang: str) -> Any:
    """One of the report's charts for the overview, as inline SVG (memoised per language)."""
    from qunyun.analytics import charts as ach

    data = chart_data(state, community)
    if data is None:
        return None
    rep: Any = data  # duck-typed HealthReport: the chart functions read only ChartData's attributes

    def html_name(name: str | None, uid: str, mid: int) -> str:
        return name or uid

    makers = {
        "activity": lambda L, lg: ach.activity(rep, L, lg),
        "speakers": lambda L, lg: ach.speakers(rep, L, lg),
        "retention": lambda L, lg: ach.retention(rep, L, lg),
        "survival": lambda L, lg: ach.survival(rep, L, lg),
        "size_activity": lambda L, lg: ach.size_activity(rep, L, lg),
        "lorenz": lambda L, lg: ach.lorenz(rep, L, lg),
        "top": lambda L, lg: ach.top(rep, L, lg, html_name),
        "lurkers": lambda L, lg: ach.lurker_chart(rep, L, lg) if rep.lurkers else _no_lurkers(L),
    }
    return svg_chart(state, community.id, f"overview:{name}", lang, makers[name])


def _no_lurkers(L: dict[str, str]) -> Any:
    """The lurker chart without lurkers: the report's "no data" state, not a bar chart of zeros on a -0.04..0.04 axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.text(0.5, 0.5, L["empty"], ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(L["lurkers.title"])
    return fig


def warm_up(state: ConsoleState) -> None:
    """Compute every community's dashboards once (a background thread at start)."""
    from qunyun.console.pages.groups import cached_rows

    for community in list(state.settings.communities.values()):
        try:
            health(state, community)
            cached_rows(state, community)
            for name in CHARTS:
                chart_svg(state, community, name, community.locale if community.locale in ("zh-CN", "en") else "zh-CN")
            # the member directory's search table: built here rather than on the first search
            from qunyun.console.pages.members import keep_current

            keep_current(state, community)
        except Exception:  # a broken community must not stop the console from serving the others
            log.exception("console: warming up %s failed", community.id)


# -------------------------------------------------------------------- pages


def trend(now: float | None, before: float | None, t: Labels, *, points: bool = False) -> tuple[str, str] | None:
    """(css class, text) of a change: relative for counts, in percentage points for ratios."""
    if now is None or before is None:
        return None
    if points:
        diff = (now - before) * 100
        if abs(diff) < 0.5:
            return ("flat", "→ " + t("overview.points", n=0))
        return ("up" if diff > 0 else "down", f"{'▲' if diff > 0 else '▼'} " + t("overview.points", n=f"{abs(diff):.0f}"))
    if before == 0:
        return None if now == 0 else ("up", "▲")
    change = (now - before) / before
    if abs(change) < 0.005:
        return ("flat", "→ 0%")
    return ("up" if change > 0 else "down", f"{'▲' if change > 0 else '▼'} {abs(change) * 100:.0f}%")


@router.get("/c/{community}/overview")
def overview(page: Viewer) -> Response:
    head = cached_headline(page.state, page.community)
    ready = peek(page.state, page.community.id, "overview:health")
    return page.render(
        "overview/page.html", head=head, health=ready, charts=CHARTS, trend=lambda a, b, points=False: trend(a, b, page.t, points=points),
        alert_text=lambda a: alert_text(a, page.lang), states=lc.STATES,
        base7=1 - lc.BASE_SILENT_WITHIN_WEEK, base30=lc.BASE_ALIVE_AFTER_MONTH,
    )


@router.get("/c/{community}/overview/health")
def overview_health(page: Viewer) -> Response:
    return page.render(
        "overview/_health.html", head=cached_headline(page.state, page.community),
        health=health(page.state, page.community), alert_text=lambda a: alert_text(a, page.lang),
        states=lc.STATES, base7=1 - lc.BASE_SILENT_WITHIN_WEEK, base30=lc.BASE_ALIVE_AFTER_MONTH,
    )


@router.get("/c/{community}/overview/chart/{name}")
def overview_chart(page: Viewer, name: str) -> Response:
    if name not in CHARTS:
        raise HTTPException(404, "not_found")
    svg = chart_svg(page.state, page.community, name, page.lang if page.lang in LANGS else "en")
    if svg is None:
        return HTMLResponse(f'<p class="muted">{page.t("overview.no_data")}</p>')
    return HTMLResponse(f'<figure data-testid="chart-svg-{name}">{svg}</figure>')
