"""Console page: groups — every group with its numbers and lifecycle state, and one group's page.

The list is one row per group (members at the community's last day with
activity, distinct speakers and messages over the 7 days up to it, active
ratio, lifecycle state, age, size bucket). The lifecycle state comes from
:func:`qunyun.analytics.lifecycle.group_states`, a pass over every group in
Python, so the rows are computed together from aggregates and memoised per
community epoch (shared with the overview); a request sorts and pages those
rows (one small tuple per group) in memory. See ``docs/console.md``.

A group's page reads only that group's rows: its dashboard
(:func:`qunyun.analytics.metrics.dashboard`), its lifecycle state judged by
the same rule (:func:`qunyun.analytics.lifecycle.classify`) with the numbers
behind it, the early warning when it is young, its top speakers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, func, select

from qunyun.analytics import lifecycle as lc
from qunyun.analytics import metrics as mx
from qunyun.config.model import CommunitySettings
from qunyun.console import svgchart
from qunyun.console.charts import memo
from qunyun.console.pages.overview import cached_headline, group_members_at, group_states
from qunyun.console.web import ConsoleState, Viewer
from qunyun.store import models as m

router = APIRouter()

#: the order of states when sorting (the healthiest first)
STATE_RANK = {s: i for i, s in enumerate(lc.STATES)}
#: the group page's window: its dashboard and top speakers
GROUP_DAYS = 28
#: its activity chart
GROUP_CHART_DAYS = 90
PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class GroupRow:
    key: str
    name: str
    platform: str
    members: int
    speakers_7d: int
    messages_7d: int
    state: str
    age_days: int
    last_active: date | None

    @property
    def active_ratio(self) -> float | None:
        return self.speakers_7d / self.members if self.members else None

    @property
    def bucket(self) -> str:
        for label, lo, hi in mx.SIZE_BUCKETS:
            if lo <= self.members <= hi:
                return label
        return mx.SIZE_BUCKETS[-1][0]


#: sort key → how rows compare (ties by group key)
SORTS: dict[str, Any] = {
    "name": lambda r: (r.name.casefold(), r.key),
    "members": lambda r: (r.members, r.key),
    "speakers": lambda r: (r.speakers_7d, r.key),
    "ratio": lambda r: (-1.0 if r.active_ratio is None else r.active_ratio, r.key),
    "messages": lambda r: (r.messages_7d, r.key),
    "state": lambda r: (STATE_RANK.get(r.state, 9), r.key),
    "age": lambda r: (r.age_days, r.key),
}
DEFAULT_SORT: Final = "members"


def group_rows(conn: Connection, community: CommunitySettings, as_of: date | None,
               states: list[lc.GroupLife]) -> list[GroupRow]:
    """One row per group of the community (unsorted)."""
    cid, tz = community.id, community.tz
    g, gd, r = m.table(m.Group), m.table(m.GroupDay), m.table(m.Rollup)
    groups = conn.execute(
        select(g.c.id, g.c.key, g.c.name, g.c.platform, g.c.created_at).where(g.c.community_id == cid)
    ).all()
    if as_of is None:
        return [GroupRow(k, n or k, p, 0, 0, 0, "alive", 0, None) for _, k, n, p, _ in groups]
    start = as_of - timedelta(days=6)
    members = group_members_at(conn, cid, as_of, tz)
    speakers = {
        int(gid): int(n)
        for gid, n in conn.execute(
            select(r.c.group_id, func.count(func.distinct(r.c.member_id)))
            .where(r.c.community_id == cid, r.c.day >= start, r.c.day <= as_of, r.c.messages > 0)
            .group_by(r.c.group_id)
        )
    }
    messages = {
        int(gid): int(n or 0)
        for gid, n in conn.execute(
            select(gd.c.group_id, func.sum(gd.c.messages))
            .where(gd.c.community_id == cid, gd.c.day >= start, gd.c.day <= as_of)
            .group_by(gd.c.group_id)
        )
    }
    life = {s.group_key: s for s in states}
    out = []
    for gid, key, name, platform, created in groups:
        s = life.get(key)
        age = s.age_days if s else max(0, (as_of - created.astimezone(tz).date()).days)
        out.append(GroupRow(
            key, name or key, platform, members.get(int(gid), 0), speakers.get(int(gid), 0),
            messages.get(int(gid), 0), s.state if s else "alive", age, s.last_active if s else None,
        ))
    return out


def cached_rows(state: ConsoleState, community: CommunitySettings) -> list[GroupRow]:
    head = cached_headline(state, community)

    def build() -> list[GroupRow]:
        states = group_states(state, community, head.as_of) if head.as_of else []
        with state.db.connect() as conn:
            return group_rows(conn, community, head.as_of, states)

    return memo(state, community.id, "groups:rows", build)


def sort_rows(rows: list[GroupRow], sort: str | None, desc: bool) -> list[GroupRow]:
    return sorted(rows, key=SORTS[sort or DEFAULT_SORT], reverse=desc)


# -------------------------------------------------------------- one group


@dataclass(frozen=True)
class Verdict:
    """A group's lifecycle state and the numbers the rule looked at."""

    state: str
    last_active: date | None
    #: days since the last message (or since the group's first day if it never had one)
    quiet_days: int
    #: distinct speakers of the last 7 days
    recent: int
    #: weekly distinct speakers of up to 3 full weeks before (those the group lived)
    weeks: list[int]
    #: members present at the end of the day, as the lifecycle rule counts them
    members: int
    ever_had_members: bool

    @property
    def average(self) -> float | None:
        return sum(self.weeks) / len(self.weeks) if self.weeks else None

    @property
    def reason(self) -> str:
        """The label key that explains the state."""
        if self.state == "dead":
            return "groups.reason.dead_empty" if self.quiet_days < lc.DEAD_DAYS else "groups.reason.dead"
        if self.state == "alive" and not self.weeks:
            return "groups.reason.new"
        return f"groups.reason.{self.state}"


@dataclass
class GroupDetail:
    key: str
    name: str
    platform: str
    as_of: date | None
    born: date
    age_days: int
    verdict: Verdict | None
    risk: lc.Risk | None
    dashboard: mx.Dashboard | None
    speakers_7d: int = 0
    messages_7d: int = 0
    top: list[mx.Contributor] = field(default_factory=list)
    playbooks: list[str] = field(default_factory=list)

    @property
    def members(self) -> int:
        if self.dashboard is None or not self.dashboard.daily:
            return 0
        return self.dashboard.daily[-1].members

    @property
    def active_ratio(self) -> float | None:
        return self.speakers_7d / self.members if self.members else None

    @property
    def messages_28d(self) -> int:
        return sum(p.messages for p in self.dashboard.daily) if self.dashboard else 0

    @property
    def activation(self) -> tuple[float | None, int]:
        if self.dashboard is None:
            return None, 0
        joined = sum(a.joined for a in self.dashboard.activation)
        done = sum(a.activated for a in self.dashboard.activation)
        return (done / joined if joined else None), joined


def _local(value: Any, tz: Any) -> date | None:
    return None if value is None else value.astimezone(tz).date()


def _born(conn: Connection, gid: int, created: date) -> tuple[date, bool]:
    """The group's first day with any rollup (its first event), else the day it was set up."""
    gd = m.table(m.GroupDay)
    first = conn.execute(select(func.min(gd.c.day)).where(gd.c.group_id == gid)).scalar()
    return (first, True) if first is not None else (created, False)


def _stays(conn: Connection, gid: int, tz: Any) -> list[tuple[int, date | None, date | None, int | None]]:
    """(member, joined day, left day, inviter) of the group's memberships, as the lifecycle module reads them."""
    ms = m.table(m.Membership)
    out = []
    for mid, joined, left, status, inviter in conn.execute(
        select(ms.c.member_id, ms.c.joined_at, ms.c.left_at, ms.c.status, ms.c.inviter_member_id)
        .where(ms.c.group_id == gid)
    ):
        left_day = _local(left, tz)
        if status != "active" and left_day is None:
            left_day = date.min  # gone, we do not know since when
        out.append((int(mid), _local(joined, tz), left_day, None if inviter is None else int(inviter)))
    return out


def verdict(conn: Connection, gid: int, born: date, as_of: date, tz: Any) -> Verdict:
    """The group's state on ``as_of`` by :func:`lifecycle.classify`, from this group's rows only."""
    gd, r, mg = m.table(m.GroupDay), m.table(m.Rollup), m.table(m.MemberGroup)
    active = [
        d for (d,) in conn.execute(
            select(gd.c.day).where(gd.c.group_id == gid, gd.c.day <= as_of, gd.c.messages > 0)
        )
    ]
    window_from = as_of - timedelta(days=7 * (lc.DECLINE_WEEKS + 1) - 1)
    by_day: dict[date, list[int]] = {}
    for d, mid in conn.execute(
        select(r.c.day, r.c.member_id).where(
            r.c.group_id == gid, r.c.day >= window_from, r.c.day <= as_of, r.c.messages > 0
        )
    ):
        by_day.setdefault(d, []).append(int(mid))
    stays = _stays(conn, gid, tz)
    speakers = {
        int(x) for (x,) in conn.execute(
            select(mg.c.member_id).where(mg.c.group_id == gid, mg.c.first_message_day <= as_of)
        )
    }
    listed = {s[0] for s in stays}
    here = {w for w, joined, left, _ in stays if (joined is None or joined <= as_of) and (left is None or left > as_of)}
    members = len(here | (speakers - listed))
    ever = bool(stays) or bool(speakers)
    state, last = lc.classify(as_of, born, active, by_day, members, ever_had_members=ever)

    def distinct(start: date, end: date) -> int:
        return len({w for d, who in by_day.items() if start <= d <= end for w in who})

    weeks = []
    for w in range(1, lc.DECLINE_WEEKS + 1):
        end = as_of - timedelta(days=7 * w)
        if end - timedelta(days=6) < born:
            break
        weeks.append(distinct(end - timedelta(days=6), end))
    quiet = (as_of - (last if last is not None else born)).days
    return Verdict(state, last, quiet, distinct(as_of - timedelta(days=6), as_of), weeks, members, ever)


def early_risk(conn: Connection, gid: int, key: str, born: date, as_of: date, tz: Any) -> lc.Risk | None:
    """The early warning of a young group (its first week through :func:`lifecycle.risk_of`), else None."""
    age = (as_of - born).days
    if not lc.EARLY_DAYS <= age <= lc.YOUNG_MAX_AGE:
        return None
    r = m.table(m.Rollup)
    daily: dict[date, dict[int, int]] = {}
    for d, mid, n in conn.execute(
        select(r.c.day, r.c.member_id, r.c.messages).where(
            r.c.group_id == gid, r.c.day >= born, r.c.day <= born + timedelta(days=lc.EARLY_DAYS - 1),
            r.c.messages > 0,
        )
    ):
        daily.setdefault(d, {})[int(mid)] = int(n)
    features = lc.early_features(born, daily, _stays(conn, gid, tz))
    score, reasons = lc.risk_of(features)
    return lc.Risk(key, age, score, reasons, features)


class NoSuchGroup(LookupError):
    pass


def group_detail(conn: Connection, community: CommunitySettings, key: str, as_of: date | None) -> GroupDetail:
    """Everything the group page shows; :class:`NoSuchGroup` if the community has no such group."""
    try:
        sc = mx.scope(conn, community.id, key)
    except mx.AnalyticsError as exc:
        raise NoSuchGroup(key) from exc
    info = sc.group
    assert info is not None
    tz = community.tz
    born, has_events = _born(conn, info.id, info.created)
    settings = community.groups.get((info.platform, info.key))
    detail = GroupDetail(
        info.key, info.name or info.key, info.platform, as_of, born, 0, None, None, None,
        playbooks=list(settings.playbooks) if settings is not None else [],
    )
    if as_of is None or born > as_of:
        return detail
    detail.age_days = (as_of - born).days
    detail.verdict = verdict(conn, info.id, born, as_of, tz)
    if has_events:
        detail.risk = early_risk(conn, info.id, info.key, born, as_of, tz)
    detail.dashboard = mx.dashboard(conn, sc, as_of, days=GROUP_DAYS)
    r, gd = m.table(m.Rollup), m.table(m.GroupDay)
    week = as_of - timedelta(days=6)
    detail.speakers_7d = int(conn.execute(
        select(func.count(func.distinct(r.c.member_id))).where(
            r.c.group_id == info.id, r.c.day >= week, r.c.day <= as_of, r.c.messages > 0)
    ).scalar() or 0)
    detail.messages_7d = int(conn.execute(
        select(func.sum(gd.c.messages)).where(gd.c.group_id == info.id, gd.c.day >= week, gd.c.day <= as_of)
    ).scalar() or 0)
    detail.top = mx.top_between(conn, sc, as_of - timedelta(days=GROUP_DAYS - 1), as_of, 10)
    return detail


def load_detail(state: ConsoleState, community: CommunitySettings, key: str) -> GroupDetail:
    head = cached_headline(state, community)
    with state.db.connect() as conn:
        try:
            return group_detail(conn, community, key, head.as_of)
        except NoSuchGroup:
            raise HTTPException(404, f"community {community.id!r} has no group {key!r}") from None


# -------------------------------------------------------------------- pages


def per_page_of(value: str | None) -> int:
    try:
        return max(1, min(MAX_PER_PAGE, int(value or PER_PAGE)))
    except ValueError:
        return PER_PAGE


@router.get("/c/{community}/groups")
def groups(page: Viewer) -> Response:
    rows = cached_rows(page.state, page.community)
    per_page = per_page_of(page.request.query_params.get("per_page"))
    paging = page.paging(len(rows), per_page=per_page, sorts=tuple(SORTS), default=DEFAULT_SORT)
    shown = sort_rows(rows, paging.sort, paging.desc)[paging.offset : paging.offset + paging.per_page]
    head = cached_headline(page.state, page.community)
    return page.render("groups/list.html", rows=shown, paging=paging, head=head)


@router.get("/c/{community}/groups/{key}")
def group(page: Viewer, key: str) -> Response:
    detail = load_detail(page.state, page.community, key)
    return page.render("groups/detail.html", g=detail, lc=lc,
                       reasons=[lc.REASONS.get(c, {}).get(page.lang, c) for c in (detail.risk.reasons if detail.risk else [])])


@router.get("/c/{community}/groups/{key}/chart")
def group_chart(page: Viewer, key: str) -> Response:
    from qunyun.analytics import charts as ach

    head = cached_headline(page.state, page.community)
    with page.read() as conn:
        try:
            sc = mx.scope(conn, page.community.id, key)
        except mx.AnalyticsError:
            raise HTTPException(404, "not_found") from None
    if head.as_of is None:
        return HTMLResponse(f'<p class="muted">{page.t("overview.no_data")}</p>')
    as_of = head.as_of

    start = as_of - timedelta(days=GROUP_CHART_DAYS - 1)
    assert sc.group is not None
    gd = m.table(m.GroupDay)
    # messages per local day straight from the group's daily aggregate (kept by the engine)
    with page.read() as conn:
        per_day = {
            mx._as_date(d): int(n or 0)
            for d, n in conn.execute(
                select(gd.c.day, gd.c.messages).where(gd.c.group_id == sc.group.id, gd.c.day >= start, gd.c.day <= as_of)
            )
        }
    days = [start + timedelta(days=i) for i in range(GROUP_CHART_DAYS)]
    labels = dict(ach.LABELS["zh-CN" if page.lang == "zh-CN" else "en"], empty=page.t("overview.no_data"))
    # drawn as SVG text (about a millisecond), not with matplotlib: a chart per group visited
    svg = svgchart.activity(days, [per_day.get(d, 0) for d in days], labels, page.lang)
    return HTMLResponse(f'<figure data-testid="group-chart-svg">{svg}</figure>')
