"""Group lifecycle: alive, declining, silent or dead; survival by age; early warning.

Everything here reads the rollups (member × group × local-day counters) and
memberships, never raw messages, so it is cheap enough for a dashboard.

The states (``docs/analytics-lifecycle.md`` has the reasoning), judged on a
local day ``as_of``:

* **dead** — no message for :data:`DEAD_DAYS` (30) days, or nobody is left;
* **silent** — no message for :data:`SILENT_DAYS` (7) days;
* **declining** — it still talks, but the last 7 days had fewer than
  :data:`DECLINE_RATIO` (half) as many speakers as the weekly average of the
  :data:`DECLINE_WEEKS` (3) weeks before (weeks that existed: a group needs
  one full week behind it before it can decline);
* **alive** — otherwise. A new group that has not spoken yet is alive until
  its seventh day.

"No message for N days" counts from the last day with a message (or from
the group's first day if it never had one): a message on ``as_of - 6`` is
still within the week.

The early warning scores a young group on its first :data:`EARLY_DAYS` days
with a logistic model whose weights were fitted on simulated groups with
known outcomes (``scripts/validate_early_warning.py``); what that is worth
is written down, honestly, in ``docs/analytics-lifecycle.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, or_, select, text

from qunyun.store import models as m

State = Literal["alive", "declining", "silent", "dead"]
STATES: tuple[State, ...] = ("alive", "declining", "silent", "dead")

#: Base rates operators quote for WeChat groups (SPEC, "numbers operators live by").
BASE_SILENT_WITHIN_WEEK = 0.40
BASE_ALIVE_AFTER_MONTH = 0.30

SILENT_DAYS = 7
DEAD_DAYS = 30
DECLINE_RATIO = 0.5
DECLINE_WEEKS = 3
#: The first days of a group that the early warning looks at.
EARLY_DAYS = 7
#: Groups older than this are not "young": their state says enough.
YOUNG_MAX_AGE = 60
#: A risk at or above this is a warning.
WARN_AT = 0.5

STATE_LABELS: dict[str, dict[str, str]] = {
    "alive": {"zh-CN": "活跃", "en": "alive"},
    "declining": {"zh-CN": "下滑", "en": "declining"},
    "silent": {"zh-CN": "沉寂", "en": "silent"},
    "dead": {"zh-CN": "已死", "en": "dead"},
}


@dataclass(frozen=True, slots=True)
class GroupLife:
    group_key: str
    name: str
    #: Whole days since the group's first event (0 on its first day).
    age_days: int
    state: State
    #: The last local day with a message, if any.
    last_active: date | None
    #: Members present at the end of ``as_of``.
    members: int


@dataclass(frozen=True, slots=True)
class Survival:
    """Share of groups alive (alive or declining) at each age, among groups that old."""

    ages: list[int]
    alive: list[float]
    at7: float | None
    at30: float | None
    #: Groups in the curve (born on or before ``as_of``).
    n: int


@dataclass(frozen=True, slots=True)
class EarlyFeatures:
    """What a group looked like on its first :data:`EARLY_DAYS` days."""

    #: Members present at the end of the first week.
    size: int
    #: Net growth from the end of day 3 to the end of day 7, relative to day 3.
    growth: float
    #: Distinct speakers of the first week over its size.
    active_ratio: float
    #: Share of the first week's messages written by the top 10% of speakers (1.0 if none).
    concentration: float
    #: Longest chain of invitations among the first week's joins (owner → A → B is 2).
    cascade_depth: int
    messages: int


@dataclass(frozen=True, slots=True)
class Warning:
    group_key: str
    #: Risk that the group is silent or dead at 30 days, at even prior odds
    #: (≥ 0.5: its first week looks more like a dying group's; see ``at_base_rate``).
    score: float
    #: Codes of :data:`REASONS`, the strongest first.
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class Risk:
    group_key: str
    age_days: int
    score: float
    reasons: list[str]
    features: EarlyFeatures


# ----------------------------------------------------------------- the model

#: Logistic weights on the transformed features (see :func:`_design`), fitted by
#: ``scripts/validate_early_warning.py --groups 600 --seed 1`` on simulated
#: groups (the outcome: silent or dead at 30 days); see the docs for what
#: they are worth.
MODEL_INTERCEPT = 1.4964
MODEL_WEIGHTS: dict[str, float] = {
    "log_size": -0.6920,
    "growth": -0.0763,
    "active_ratio": -4.2706,
    "concentration": -0.4479,
    "cascade_depth": -0.0391,
}
#: Share of the training groups that died (66 of 420) in the simulation.
MODEL_TRAINING_DIED = 66 / 420
#: Takes the simulation's prior out: the score is the risk at even odds, so
#: a score ≥ 0.5 means the first week is more typical of groups that died
#: than of groups that survived (a likelihood ratio ≥ 1), whatever share of
#: groups die where the model was fitted. See :func:`at_base_rate`.
PRIOR_SHIFT = -math.log(MODEL_TRAINING_DIED / (1 - MODEL_TRAINING_DIED))
#: Mean feature values of the simulated groups that survived: a reason is
#: given when a group's value, weighed by the model, raises its log-odds by at
#: least :data:`REASON_MIN` compared with these.
MODEL_REFERENCE: dict[str, float] = {
    "log_size": 2.9556,
    "growth": 0.2765,
    "active_ratio": 0.2441,
    "concentration": 0.5368,
    "cascade_depth": 1.6582,
}
REASON_MIN = 0.25

#: Reason code → what it says to an operator. A code is ``low_<feature>`` or
#: ``high_<feature>``: the direction in which the group differs from the
#: groups that survived, in a way that raises its risk under the model.
REASONS: dict[str, dict[str, str]] = {
    "low_log_size": {"zh-CN": "第一周的人数偏少", "en": "few members in the first week"},
    "high_log_size": {"zh-CN": "第一周的人数偏多，不好照顾到每个人", "en": "a crowd in the first week, hard to engage everyone"},
    "low_growth": {"zh-CN": "开群几天后就几乎没有新人加入", "en": "hardly anyone joined after the first days"},
    "high_growth": {"zh-CN": "新人涌入得比老成员说话还快", "en": "newcomers poured in faster than the group could talk"},
    "low_active_ratio": {"zh-CN": "第一周开口说话的人太少", "en": "too few members spoke in the first week"},
    "high_active_ratio": {"zh-CN": "说话的人占比异常地高", "en": "an unusually high share of members spoke"},
    "low_concentration": {"zh-CN": "没有人带头说话", "en": "nobody led the conversation"},
    "high_concentration": {"zh-CN": "话几乎都是少数几个人在说", "en": "a handful of people did nearly all the talking"},
    "low_cascade_depth": {"zh-CN": "邀请链很浅：成员很少再拉人进群", "en": "shallow invitation chains: members rarely brought others in"},
    "high_cascade_depth": {"zh-CN": "邀请链很长：多是朋友的朋友", "en": "long invitation chains: mostly friends of friends"},
}


def at_base_rate(score: float, died_share: float = 1 - BASE_ALIVE_AFTER_MONTH) -> float:
    """A risk score (at even odds) as a probability where ``died_share`` of groups die.

    The default is the SPEC's base rate: 70% of groups are not alive after a month.
    """
    if not 0 < died_share < 1:
        raise ValueError(f"died_share must be between 0 and 1 (exclusive), not {died_share}")
    score = min(max(score, 1e-12), 1 - 1e-12)
    z = math.log(score / (1 - score)) + math.log(died_share / (1 - died_share))
    return 1 / (1 + math.exp(-z))


def _design(f: EarlyFeatures) -> dict[str, float]:
    return {
        "log_size": math.log1p(f.size),
        "growth": max(-1.0, min(3.0, f.growth)),
        "active_ratio": f.active_ratio,
        "concentration": f.concentration,
        "cascade_depth": float(min(f.cascade_depth, 4)),
    }


def risk_of(
    features: EarlyFeatures,
    *,
    intercept: float | None = None,
    weights: Mapping[str, float] | None = None,
    reference: Mapping[str, float] | None = None,
) -> tuple[float, list[str]]:
    """The estimated risk (0-1) of a group with these first-week features, and why.

    ``intercept`` (used as given, without :data:`PRIOR_SHIFT`), ``weights``
    and ``reference`` replace the shipped model, for fitting and tests.
    """
    b0 = MODEL_INTERCEPT + PRIOR_SHIFT if intercept is None else intercept
    w = MODEL_WEIGHTS if weights is None else weights
    ref = MODEL_REFERENCE if reference is None else reference
    x = _design(features)
    z = b0 + sum(w[k] * x[k] for k in w)
    score = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    pushes = sorted(
        ((w[k] * (x[k] - ref.get(k, 0.0)), k) for k in w),
        key=lambda p: -p[0],
    )
    return score, [
        ("high_" if x[k] > ref.get(k, 0.0) else "low_") + k for push, k in pushes if push >= REASON_MIN
    ]


# ------------------------------------------------------------ pure functions


def classify(
    as_of: date,
    born: date,
    active_days: Iterable[date],
    speakers_by_day: Mapping[date, Iterable[object]],
    members: int,
    *,
    ever_had_members: bool = True,
    weekly_speakers: Sequence[int] | None = None,
) -> tuple[State, date | None]:
    """The state of a group on ``as_of`` and its last day with a message.

    ``active_days`` are the days with at least one message (any day up to
    ``as_of`` may be given; later ones are ignored); ``speakers_by_day``
    needs the last ``7 × (1 + DECLINE_WEEKS)`` days only. ``weekly_speakers``,
    if given, replaces it: distinct speakers of the 7 days ending on
    ``as_of``, then of each of the :data:`DECLINE_WEEKS` weeks before.
    """
    last = max((d for d in active_days if d <= as_of), default=None)
    quiet = (as_of - (last if last is not None else born)).days
    if quiet >= DEAD_DAYS or (members <= 0 and ever_had_members and (as_of - born).days > 0):
        return "dead", last
    if quiet >= SILENT_DAYS:
        return "silent", last
    def speakers(w: int, start: date, end: date) -> int:
        if weekly_speakers is not None:
            return weekly_speakers[w] if w < len(weekly_speakers) else 0
        return _speakers(speakers_by_day, start, end)

    recent = speakers(0, as_of - timedelta(days=6), as_of)
    weeks = []
    for w in range(1, DECLINE_WEEKS + 1):
        end = as_of - timedelta(days=7 * w)
        start = end - timedelta(days=6)
        if start < born:
            break
        weeks.append(speakers(w, start, end))
    if weeks:
        average = sum(weeks) / len(weeks)
        if recent < DECLINE_RATIO * average:
            return "declining", last
    return "alive", last


def _speakers(by_day: Mapping[date, Iterable[object]], start: date, end: date) -> int:
    who: set[object] = set()
    d = start
    while d <= end:
        who.update(by_day.get(d, ()))
        d += timedelta(days=1)
    return len(who)


def alive_at_age(born: date, active_days: set[date], age: int) -> bool:
    """Whether a group was alive (not silent, not dead) at ``age`` days by the state rule."""
    day = born + timedelta(days=age)
    for back in range(SILENT_DAYS):
        d = day - timedelta(days=back)
        if d < born:
            return True  # younger than a week and not a message missed yet
        if d in active_days:
            return True
    return False


def survival(lives: Sequence[tuple[date, set[date]]], as_of: date, max_age: int = 90) -> Survival:
    """The survival curve of groups given as ``(first day, days with a message)``.

    At each age, only groups at least that old on ``as_of`` count (right
    censoring); the curve stops at the oldest group's age (or ``max_age``).
    """
    born = [(b, days) for b, days in lives if b <= as_of]
    if not born:
        return Survival([], [], None, None, 0)
    oldest = min(max_age, max((as_of - b).days for b, _ in born))
    # per age: groups that old, and of them alive (alive_at_age in one pass over each group's ages)
    counted = [0] * (oldest + 1)
    living = [0] * (oldest + 1)
    for b, days in born:
        top = min(oldest, (as_of - b).days)
        rel = {(d - b).days for d in days}
        last = None
        for age in range(top + 1):
            if age in rel:
                last = age
            counted[age] += 1
            # younger than a week counts as alive; else a message within the last 7 days
            if age < SILENT_DAYS - 1 or (last is not None and age - last < SILENT_DAYS):
                living[age] += 1
    ages: list[int] = []
    alive: list[float] = []
    for age in range(oldest + 1):
        ages.append(age)
        alive.append(living[age] / counted[age])
    at = dict(zip(ages, alive, strict=True))
    return Survival(ages, alive, at.get(7), at.get(30), len(born))


def early_features(
    born: date,
    daily_messages: Mapping[date, Mapping[Any, int]],
    stays: Iterable[tuple[Any, date | None, date | None, Any | None]],
) -> EarlyFeatures:
    """First-week features of a group born on ``born``.

    ``daily_messages`` maps a local day to messages per member;
    ``stays`` are ``(member, joined day, left day, inviter)`` (joined None
    for members seen only by their messages).
    """
    last = born + timedelta(days=EARLY_DAYS - 1)
    day3 = born + timedelta(days=2)
    per_member: dict[object, int] = defaultdict(int)
    d = born
    while d <= last:
        for who, n in daily_messages.get(d, {}).items():
            if n > 0:
                per_member[who] += n
        d += timedelta(days=1)
    stays = list(stays)
    present_by = {
        end: {
            who for who, joined, left, _ in stays
            if (joined is None or joined <= end) and (left is None or left > end)
        }
        for end in (day3, last)
    }
    # Speakers without a membership row (imported histories) are present too.
    listed = {who for who, *_ in stays}
    size = len(present_by[last] | (set(per_member) - listed))
    size3 = len(present_by[day3] | {w for w in per_member if w not in listed})
    speakers = len(per_member)
    total = sum(per_member.values())
    if total:
        top = sorted(per_member.values(), reverse=True)[: max(1, math.ceil(0.1 * speakers))]
        concentration = sum(top) / total
    else:
        concentration = 1.0
    return EarlyFeatures(
        size=size,
        growth=(size - size3) / max(1, size3),
        active_ratio=min(1.0, speakers / max(1, size, speakers)),
        concentration=concentration,
        cascade_depth=_cascade_depth([(w, j, inv) for w, j, _, inv in stays if j is not None and j <= last]),
        messages=total,
    )


def _cascade_depth(joins: Sequence[tuple[object, date | None, object | None]]) -> int:
    inviter = {who: inv for who, _, inv in joins}
    best = 0
    for who in inviter:
        depth, cur, hops = 0, who, set()
        while inviter.get(cur) is not None and cur not in hops:
            hops.add(cur)
            depth += 1
            cur = inviter[cur]
        best = max(best, depth)
    return best


# ------------------------------------------------------------------ database


@dataclass
class _Group:
    id: int
    key: str
    name: str
    created: date
    born: date
    #: False for a configured group that never had an event (born = set-up day).
    has_events: bool


def _zone(conn: Connection, community: str) -> ZoneInfo:
    t = m.table(m.Community)
    name = conn.execute(select(t.c.timezone).where(t.c.id == community)).scalar()
    return ZoneInfo(name or "UTC")


def _local(ts: datetime | None, tz: ZoneInfo) -> date | None:
    return None if ts is None else ts.astimezone(tz).date()


def _groups(conn: Connection, community: str, tz: ZoneInfo) -> list[_Group]:
    g = m.table(m.Group)
    r = m.table(m.GroupDay)  # one row per group and day with any rollup
    # per group one index lookup (its first day), not a pass over every group's days
    born = (
        select(func.min(r.c.day))
        .where(r.c.group_id == g.c.id, r.c.community_id == community)
        .scalar_subquery()
        .label("born")
    )
    rows = conn.execute(
        select(g.c.id, g.c.key, g.c.name, g.c.created_at, born)
        .where(g.c.community_id == community)
        .order_by(g.c.key)
    )
    out = []
    for gid, key, name, created_at, born in rows:
        created = _local(created_at, tz) or date.min
        out.append(
            _Group(int(gid), key, name or key, created, born if born is not None else created, born is not None)
        )
    return out


def _active_days(
    conn: Connection, community: str, until: date, max_age: int | None = None
) -> dict[int, set[date]]:
    """Days with a message per group, up to ``until`` (and only the first ``max_age`` days of each group)."""
    r = m.table(m.GroupDay)
    out: dict[int, set[date]] = defaultdict(set)
    q = select(r.c.group_id, r.c.day).where(r.c.community_id == community, r.c.day <= until, r.c.messages > 0)
    if max_age is not None:
        born = (
            select(r.c.group_id, func.min(r.c.day).label("born"))
            .where(r.c.community_id == community)
            .group_by(r.c.group_id)
            .subquery()
        )
        limit: Any = (
            func.date(born.c.born, f"+{int(max_age)} days")
            if conn.dialect.name == "sqlite"
            else born.c.born + int(max_age)
        )
        q = q.join(born, born.c.group_id == r.c.group_id).where(r.c.day <= limit)
    for gid, day in conn.execute(q):
        out[int(gid)].add(day)
    return out


def _first_weeks(conn: Connection, community: str, born: Mapping[int, date]) -> dict[int, dict[date, dict[int, int]]]:
    """Messages per member per day in each group's first :data:`EARLY_DAYS` days (what early features read)."""
    r = m.table(m.Rollup)
    out: dict[int, dict[date, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    ids = sorted(born)
    for i in range(0, len(ids), 200):
        cond = or_(*(
            and_(r.c.group_id == g, r.c.day >= born[g], r.c.day <= born[g] + timedelta(days=EARLY_DAYS - 1))
            for g in ids[i : i + 200]
        ))
        q = select(r.c.group_id, r.c.day, r.c.member_id, r.c.messages).where(
            r.c.community_id == community, r.c.messages > 0, cond
        )
        for gid, day, mid, n in conn.execute(q):
            out[int(gid)][day][int(mid)] = int(n)
    return out


def _stays(
    conn: Connection, community: str, tz: ZoneInfo, groups: Sequence[int] | None = None
) -> dict[int, list[tuple[object, date | None, date | None, object | None]]]:
    ms = m.table(m.Membership)
    g = m.table(m.Group)
    out: dict[int, list[tuple[object, date | None, date | None, object | None]]] = defaultdict(list)
    q = (
        select(ms.c.group_id, ms.c.member_id, ms.c.joined_at, ms.c.left_at, ms.c.status, ms.c.inviter_member_id)
        .select_from(ms.join(g, and_(g.c.id == ms.c.group_id, g.c.community_id == community)))
    )
    if groups is not None:
        q = q.where(ms.c.group_id.in_(sorted(groups)))
    for gid, mid, joined, left, status, inviter in conn.execute(q):
        left_day = _local(left, tz)
        if status != "active" and left_day is None:
            left_day = date.min  # gone, we do not know since when
        out[int(gid)].append(
            (int(mid), _local(joined, tz), left_day, None if inviter is None else int(inviter))
        )
    return out


def group_states(conn: Connection, community: str, as_of: date) -> list[GroupLife]:
    """Every group of ``community`` with its state on local day ``as_of``.

    Groups born after ``as_of`` are left out. Age counts from the group's
    first rollup day (its first event), or from when it was set up if it
    never had one.

    The database does the counting (one row per group, or per group and week):
    last day with a message, members present at the end of ``as_of`` (as
    :func:`_present` counts them), distinct speakers of the last four 7-day
    windows for the groups that spoke in the last week.
    """
    tz = _zone(conn, community)
    groups = [g for g in _groups(conn, community, tz) if g.born <= as_of]
    last_day = _last_active(conn, community, as_of)
    # only a group that spoke in the last week can be declining: the others need no speakers
    recent = as_of - timedelta(days=SILENT_DAYS - 1)
    talking = [g for g, d in last_day.items() if d >= recent]
    weekly = _weekly_speakers(conn, community, as_of, talking)
    members, ever = _members_at(conn, community, as_of, tz)
    out = []
    for g in groups:
        last = last_day.get(g.id)
        state, last = classify(
            as_of,
            g.born,
            [last] if last is not None else (),
            {},
            members.get(g.id, 0),
            ever_had_members=g.id in ever,
            weekly_speakers=weekly.get(g.id, ()),
        )
        out.append(GroupLife(g.key, g.name, (as_of - g.born).days, state, last, members.get(g.id, 0)))
    return out


def _last_active(conn: Connection, community: str, until: date) -> dict[int, date]:
    r = m.table(m.GroupDay)
    q = (
        select(r.c.group_id, func.max(r.c.day))
        .where(r.c.community_id == community, r.c.day <= until, r.c.messages > 0)
        .group_by(r.c.group_id)
    )
    return {int(gid): _as_day(d) for gid, d in conn.execute(q)}


def _as_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _weekly_speakers(conn: Connection, community: str, as_of: date, groups: Sequence[int]) -> dict[int, list[int]]:
    """Distinct speakers of the 7 days ending on ``as_of`` and of each of the DECLINE_WEEKS weeks before, by group."""
    out: dict[int, list[int]] = defaultdict(lambda: [0] * (DECLINE_WEEKS + 1))
    if not groups:
        return out
    sqlite = conn.dialect.name == "sqlite"
    back = (
        f"CAST((julianday('{as_of.isoformat()}') - julianday(day)) AS INTEGER) / 7"
        if sqlite else f"(DATE '{as_of.isoformat()}' - day) / 7"
    )
    first = as_of - timedelta(days=7 * (DECLINE_WEEKS + 1) - 1)
    ids = ", ".join(str(int(g)) for g in sorted(groups))
    sql = f"""SELECT group_id, {back} AS w, count(DISTINCT member_id) FROM rollups
              WHERE community_id = :c AND group_id IN ({ids}) AND day >= :first AND day <= :end AND messages > 0
              GROUP BY group_id, w"""
    params: dict[str, Any] = {"c": community, "first": first, "end": as_of}
    if sqlite:
        params |= {"first": first.isoformat(), "end": as_of.isoformat()}
    for gid, w, n in conn.execute(text(sql), params):
        if 0 <= int(w) <= DECLINE_WEEKS:
            out[int(gid)][int(w)] = int(n)
    return out


def _members_at(conn: Connection, community: str, as_of: date, tz: ZoneInfo) -> tuple[dict[int, int], set[int]]:
    """Members present at the end of ``as_of`` per group (as :func:`_present` counts), and groups that ever had any.

    Present: a membership joined by then (or of unknown join time) and not left
    by then (a row that is not active and has no leave time is gone), plus
    people who had spoken in the group by then without a membership row.
    """
    ms = m.table(m.Membership)
    g = m.table(m.Group)
    mg = m.table(m.MemberGroup)
    # the end of the local day as_of, as an instant: a local day ≤ as_of ⟺ the instant is before it
    cut = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    present = case(
        (
            and_(
                or_(ms.c.joined_at.is_(None), ms.c.joined_at < cut),
                or_(
                    and_(ms.c.left_at.is_(None), ms.c.status == "active"),
                    and_(ms.c.left_at.is_not(None), ms.c.left_at >= cut),
                ),
            ),
            1,
        ),
        else_=0,
    )
    counts: dict[int, int] = {}
    ever: set[int] = set()
    for gid, n in conn.execute(
        select(ms.c.group_id, func.sum(present))
        .select_from(ms.join(g, and_(g.c.id == ms.c.group_id, g.c.community_id == community)))
        .group_by(ms.c.group_id)
    ):
        counts[int(gid)] = int(n or 0)
        ever.add(int(gid))
    unlisted = (
        select(mg.c.group_id, func.count())
        .where(
            mg.c.community_id == community,
            mg.c.first_message_day <= as_of,
            ~select(ms.c.member_id)
            .where(ms.c.group_id == mg.c.group_id, ms.c.member_id == mg.c.member_id)
            .exists(),
        )
        .group_by(mg.c.group_id)
    )
    for gid, n in conn.execute(unlisted):
        counts[int(gid)] = counts.get(int(gid), 0) + int(n)
        ever.add(int(gid))
    spoke = select(mg.c.group_id).where(mg.c.community_id == community, mg.c.first_message_day <= as_of).distinct()
    ever.update(int(gid) for (gid,) in conn.execute(spoke))
    return counts, ever


def survival_curve(conn: Connection, community: str, as_of: date, max_age: int = 90) -> Survival:
    """Share of the community's groups alive at each age (0..``max_age`` days) as of ``as_of``.

    Groups that never had an event are left out: they have no birthday.
    """
    tz = _zone(conn, community)
    groups = [g for g in _groups(conn, community, tz) if g.has_events and g.born <= as_of]
    active = _active_days(conn, community, as_of, max_age)
    return survival([(g.born, active.get(g.id, set())) for g in groups], as_of, max_age)


def young_group_risks(conn: Connection, community: str, as_of: date) -> list[Risk]:
    """The risk of every young group (:data:`EARLY_DAYS`..:data:`YOUNG_MAX_AGE` days old), riskiest first.

    A group that never had an event has no first week to judge and is left out.
    """
    tz = _zone(conn, community)
    groups = [
        g for g in _groups(conn, community, tz)
        if g.has_events and EARLY_DAYS <= (as_of - g.born).days <= YOUNG_MAX_AGE
    ]
    if not groups:
        return []
    window = _first_weeks(conn, community, {g.id: g.born for g in groups})
    stays = _stays(conn, community, tz, [g.id for g in groups])
    out = []
    for g in groups:
        f = early_features(g.born, window.get(g.id, {}), stays.get(g.id, []))
        score, reasons = risk_of(f)
        out.append(Risk(g.key, (as_of - g.born).days, score, reasons, f))
    out.sort(key=lambda r: (-r.score, r.group_key))
    return out


def early_warning(conn: Connection, community: str, as_of: date) -> list[Warning]:
    """Young groups whose first week looks like that of groups that died (risk ≥ :data:`WARN_AT`)."""
    return [
        Warning(r.group_key, r.score, r.reasons)
        for r in young_group_risks(conn, community, as_of)
        if r.score >= WARN_AT
    ]
