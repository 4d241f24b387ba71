"""Community health metrics, computed from the rollups the engine maintains.

Every number here comes from the ``rollups`` table (member × group × local
day counters, kept in the event's transaction) or from the coarser
aggregates the engine keeps beside it in the same transaction
(``group_days``, ``member_groups``, ``community_days``, ``retention_cells``;
read whenever they answer exactly, see ``docs/analytics.md``), plus
``groups``, ``members`` and ``memberships`` — never from the raw ``messages``. Days are
the community's local days (the rollups are already keyed by them).

Scopes: a whole community (``group=None``) or one group (its key). Grains:
``day``, ``week`` (ISO weeks, Monday first) and ``month``.

Definitions (where the spec left room, these are our choices; see
``docs/analytics.md``):

- **members** of a group at the end of a day: people seen in that group on
  or before that day (joined, spoke, reacted, were mentioned) who had not
  left it by then. A member who left and came back counts as present in the
  gap (the membership row keeps only the latest join). Community-wide, a
  person counts once, until they have left every group they were in.
- **speakers**: members with at least one message in the period (distinct
  people, so a week's speakers are not the sum of its days').
- **active ratio**: speakers ÷ members at the end of the period.
- **concentration**: over the speakers of the period, the share of messages
  written by the top 10 % (at least one person) and the Gini coefficient.
- **newcomer activation**: of the joins in a cohort (a join counted on its
  local day), the share whose author wrote a message in that group on the
  join day or the six days after (7 days in all).
- **retention**: speakers grouped by the week of their first message in the
  scope; cell (c, k) is the share of cohort c who spoke in week c + k.
- **lurkers**: members present at ``as_of`` who have not written for at
  least ``silent_days`` days (or never did; then they are silent since they
  were first seen).
- **check-in rate**: check-in member-days ÷ member-days in the period.
"""

from __future__ import annotations

import functools
import heapq
import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from qunyun.core.errors import QunyunError

Grain = Literal["day", "week", "month"]
GRAINS: tuple[Grain, ...] = ("day", "week", "month")

#: Size buckets of SPEC §8.3: (label, smallest, largest) — inclusive.
SIZE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("≤40", 0, 40),
    ("41-100", 41, 100),
    ("101-300", 101, 300),
    (">300", 301, 10**9),
)
#: Streak length buckets for the distribution: (label, shortest, longest).
STREAK_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2-6", 2, 6),
    ("7-13", 7, 13),
    ("14-29", 14, 29),
    ("30+", 30, 10**9),
)
ACTIVATION_DAYS = 7
RECENT_DAYS = 28

# 1970-01-05 is a Monday: day numbers counted from it give ISO weeks by // 7.
_EPOCH = date(1970, 1, 5)
_SQLITE_EPOCH_JD = 2440591.5


class AnalyticsError(QunyunError):
    """A metric was asked for something that does not exist (unknown community or group)."""


# ----------------------------------------------------------------- helpers


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def period_start(day: date, grain: Grain) -> date:
    if grain == "day":
        return day
    if grain == "week":
        return week_start(day)
    return month_start(day)


def period_end(start: date, grain: Grain) -> date:
    """The last day of the period that begins on ``start``."""
    if grain == "day":
        return start
    if grain == "week":
        return start + timedelta(days=6)
    nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def periods(start: date, end: date, grain: Grain) -> list[date]:
    """Start days of every period that overlaps [start, end]."""
    out = []
    p = period_start(start, grain)
    while p <= end:
        out.append(p)
        p = period_end(p, grain) + timedelta(days=1)
    return out


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if type(value) is str:  # SQLite: a few hundred distinct days over 100k+ rows
        return _parse_day(value)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@functools.lru_cache(maxsize=8192)
def _parse_day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _as_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]


def _sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _bind_day(conn: Connection, day: date) -> Any:
    return day.isoformat() if _sqlite(conn) else day


def _day_expr(conn: Connection, col: str = "day") -> str:
    """SQL for the day number of ``col`` (days since 1970-01-05)."""
    if _sqlite(conn):
        return f"CAST(julianday({col}) - {_SQLITE_EPOCH_JD} AS INTEGER)"
    return f"({col} - DATE '{_EPOCH.isoformat()}')"


def _period_expr(conn: Connection, grain: Grain, col: str = "day") -> str:
    """SQL for an integer key of ``col``'s period: day number, week number or month number."""
    if grain == "day":
        return _day_expr(conn, col)
    if grain == "week":
        return f"({_day_expr(conn, col)} / 7)"
    if _sqlite(conn):
        return f"(CAST(substr({col}, 1, 4) AS INTEGER) * 12 + CAST(substr({col}, 6, 2) AS INTEGER) - 1)"
    return f"CAST(EXTRACT(YEAR FROM {col}) * 12 + EXTRACT(MONTH FROM {col}) - 1 AS INTEGER)"


def _key_to_start(key: int, grain: Grain) -> date:
    if grain == "day":
        return _EPOCH + timedelta(days=int(key))
    if grain == "week":
        return _EPOCH + timedelta(days=7 * int(key))
    return date(int(key) // 12, int(key) % 12 + 1, 1)


def _in(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids) or "NULL"


# ------------------------------------------------------------------- scope


@dataclass(frozen=True)
class GroupInfo:
    id: int
    key: str
    platform: str
    name: str | None
    capacity: int | None
    created: date


@dataclass(frozen=True)
class Scope:
    """A community, and optionally one group of it, with what the metrics need to know."""

    community: str
    name: str
    timezone: str
    locale: str
    groups: dict[int, GroupInfo]
    #: the one group asked for, or None for the whole community
    group: GroupInfo | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def group_ids(self) -> list[int]:
        return [self.group.id] if self.group is not None else sorted(self.groups)

    def where(self, alias: str = "") -> str:
        """SQL condition selecting this scope's rollup rows (ids are ours, not user input)."""
        p = f"{alias}." if alias else ""
        if self.group is not None:
            return f"{p}group_id = {int(self.group.id)}"
        return f"{p}community_id = :community"

    def local_day(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()


def scope(conn: Connection, community: str, group: str | None = None) -> Scope:
    """Look up ``community`` (and ``group``, a group key) in the database."""
    row = conn.execute(
        text("SELECT id, name, timezone, locale FROM communities WHERE id = :c"), {"c": community}
    ).first()
    if row is None:
        known = [r[0] for r in conn.execute(text("SELECT id FROM communities ORDER BY id"))]
        raise AnalyticsError(
            f"no community {community!r} in this database",
            hint="one of: " + (", ".join(known) if known else "(none: import or replay events first)"),
        )
    tz = ZoneInfo(row.timezone)
    groups: dict[int, GroupInfo] = {}
    q = "SELECT id, key, platform, name, capacity, created_at FROM groups WHERE community_id = :c"
    if group is not None:
        q += " AND key = :k"  # one group's dashboard: do not load the others
    for g in conn.execute(text(q), {"c": community, "k": group}):
        created = _as_dt(g.created_at)
        groups[int(g.id)] = GroupInfo(
            int(g.id), g.key, g.platform, g.name, g.capacity,
            created.astimezone(tz).date() if created else _EPOCH,
        )
    chosen = None
    if group is not None:
        matches = [g for g in groups.values() if g.key == group]
        if not matches:
            known = [
                r[0] for r in conn.execute(
                    text("SELECT key FROM groups WHERE community_id = :c ORDER BY key LIMIT 20"), {"c": community}
                )
            ]
            raise AnalyticsError(
                f"community {community!r} has no group {group!r}",
                hint="one of: " + (", ".join(known) or "(none yet)"),
            )
        chosen = min(matches, key=lambda g: g.id)
    return Scope(community, row.name, row.timezone, row.locale, groups, chosen)


def data_range(conn: Connection, sc: Scope) -> tuple[date, date] | None:
    """The first and last local day with any rollup in scope, or None if there is none."""
    # two subqueries: each is one index lookup (a min and a max together would scan the rows)
    row = conn.execute(
        text(
            f"""SELECT (SELECT min(day) FROM group_days WHERE {sc.where()}),
                       (SELECT max(day) FROM group_days WHERE {sc.where()})"""
        ),
        {"community": sc.community},
    ).first()
    if row is None or row[0] is None:
        return None
    first, last = _as_date(row[0]), _as_date(row[1])
    assert first is not None and last is not None
    return first, last


# ----------------------------------------------------- per (group, member)


@dataclass(slots=True)
class Presence:
    """One member in one group: when first seen, when they spoke, how much."""

    group_id: int
    member_id: int
    first_seen: date
    first_spoke: date | None
    last_spoke: date | None
    #: messages in the window asked for
    messages: int
    #: messages in the last RECENT_DAYS of the window
    recent: int
    #: days with a check-in in the window
    checkin_days: int
    left: date | None = None


def presences(conn: Connection, sc: Scope, start: date, end: date, *, recent: bool = True) -> list[Presence]:
    """Every (group, member) pair in scope seen by ``end``, with their window totals.

    One pass over the scope's rollups (grouped by the primary key's prefix).
    With ``recent=False`` the last weeks' messages (``Presence.recent``) may
    be left at 0 (the caller reads them elsewhere, e.g. :func:`recent_by_group`):
    when the window holds all of the scope's data, the rollups are then not read.
    """
    recent_from = end - timedelta(days=RECENT_DAYS - 1)
    span = data_range(conn, sc)
    if span is not None and start <= span[0] and end >= span[1]:
        out = _presences_kept(conn, sc, recent_from, end, recent)
    else:
        out = _presences_scanned(conn, sc, start, recent_from, end)
    # who has left (and when, as a local day)
    ids = sc.group_ids
    lefts: dict[tuple[int, int], date] = {}
    if ids:
        q = (
            "SELECT group_id, member_id, left_at FROM memberships "
            f"WHERE status <> 'active' AND left_at IS NOT NULL AND group_id IN ({_in(ids)})"
        )
        tz = sc.tz
        for g, mid, left_at in conn.execute(text(q)):
            when = _as_dt(left_at)
            if when is not None:
                lefts[(int(g), int(mid))] = when.astimezone(tz).date()
    if lefts:
        for p in out:
            left = lefts.get((p.group_id, p.member_id))
            if left is not None and left <= end and left >= p.first_seen:
                p.left = left
    return out


def _presences_kept(
    conn: Connection, sc: Scope, recent_from: date, end: date, with_recent: bool = True
) -> list[Presence]:
    """The window holds all of the scope's data: totals from ``member_groups``, the last weeks from rollups."""
    recent: dict[tuple[int, int], int] = {}
    for g, mid, n in () if not with_recent else conn.execute(
        text(
            f"""SELECT group_id, member_id, sum(messages) FROM rollups
                WHERE {sc.where()} AND day >= :recent AND day <= :end AND messages > 0
                GROUP BY group_id, member_id"""
        ),
        {"community": sc.community, "recent": _bind_day(conn, recent_from), "end": _bind_day(conn, end)},
    ):
        recent[(g, mid)] = int(n)
    out: list[Presence] = []
    day = _Days()
    rows = conn.execute(
        text(
            f"""SELECT group_id, member_id, first_day, first_message_day, last_message_day, messages, checkin_days
                FROM member_groups WHERE {sc.where()}"""
        ),
        {"community": sc.community},
    )
    # ids and counters come back as ints from both drivers; days as dates or ISO strings
    if recent:
        for g, mid, first, fs, ls, msgs, ck in rows:
            out.append(Presence(g, mid, day[first], day[fs], day[ls], msgs or 0, recent.get((g, mid), 0), ck or 0))
    else:
        for g, mid, first, fs, ls, msgs, ck in rows:
            out.append(Presence(g, mid, day[first], day[fs], day[ls], msgs or 0, 0, ck or 0))
    return out


class _Days(dict[Any, Any]):
    """A stored day (ISO string or date) → its date, each distinct value parsed once (None stays None)."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, value: Any) -> date | None:
        out = self[value] = _as_date(value)
        return out


def _presences_scanned(conn: Connection, sc: Scope, start: date, recent_from: date, end: date) -> list[Presence]:
    sql = f"""
        SELECT group_id, member_id, min(day),
               min(CASE WHEN messages > 0 THEN day END),
               max(CASE WHEN messages > 0 THEN day END),
               sum(CASE WHEN day >= :start THEN messages ELSE 0 END),
               sum(CASE WHEN day >= :recent THEN messages ELSE 0 END),
               sum(CASE WHEN day >= :start AND checkins > 0 THEN 1 ELSE 0 END)
        FROM rollups
        WHERE {sc.where()} AND day <= :end
        GROUP BY group_id, member_id
    """
    params = {
        "community": sc.community,
        "start": _bind_day(conn, start),
        "recent": _bind_day(conn, recent_from),
        "end": _bind_day(conn, end),
    }
    out: list[Presence] = []
    for g, mid, first, fs, ls, msgs, rec, ck in conn.execute(text(sql), params):
        first_d = _as_date(first)
        assert first_d is not None
        out.append(
            Presence(int(g), int(mid), first_d, _as_date(fs), _as_date(ls), int(msgs or 0), int(rec or 0), int(ck or 0))
        )
    return out


@dataclass(slots=True)
class Person:
    """One member across the scope's groups."""

    member_id: int
    first_seen: date
    last_spoke: date | None
    messages: int
    recent: int
    checkin_days: int
    #: None while still in at least one group
    left: date | None
    groups: list[int] = field(default_factory=list)


def people(pres: Iterable[Presence]) -> dict[int, Person]:
    """Fold (group, member) presences into one record per person."""
    out: dict[int, Person] = {}
    for p in pres:
        q = out.get(p.member_id)
        if q is None:
            out[p.member_id] = Person(
                p.member_id, p.first_seen, p.last_spoke, p.messages, p.recent, p.checkin_days, p.left, [p.group_id]
            )
            continue
        q.first_seen = min(q.first_seen, p.first_seen)
        if p.last_spoke is not None and (q.last_spoke is None or p.last_spoke > q.last_spoke):
            q.last_spoke = p.last_spoke
        q.messages += p.messages
        q.recent += p.recent
        q.checkin_days += p.checkin_days
        # gone only when gone from every group: the latest leave, or still here
        q.left = None if q.left is None or p.left is None else max(q.left, p.left)
        q.groups.append(p.group_id)
    return out


class MemberCounter:
    """Members present at the end of any day, from first-seen and left days."""

    def __init__(self, spans: Iterable[tuple[date, date | None]]) -> None:
        firsts: list[int] = []
        lefts: list[int] = []
        for first, left in spans:
            firsts.append(first.toordinal())
            if left is not None:
                lefts.append(left.toordinal())
        firsts.sort()
        lefts.sort()
        self._firsts = firsts
        self._lefts = lefts

    def at(self, day: date) -> int:
        o = day.toordinal()
        return bisect_right(self._firsts, o) - bisect_right(self._lefts, o)


# ------------------------------------------------------------------ series


@dataclass(frozen=True)
class Point:
    """One period of a series."""

    start: date
    end: date
    members: int
    joins: int
    leaves: int
    messages: int
    speakers: int
    checkins: int

    @property
    def active_ratio(self) -> float | None:
        return self.speakers / self.members if self.members else None

    @property
    def messages_per_speaker(self) -> float | None:
        return self.messages / self.speakers if self.speakers else None


@dataclass(frozen=True)
class CheckinStats:
    checkin_days: int
    member_days: int
    #: longest streak of each member who checked in, bucketed (label → members)
    longest: dict[str, int]
    #: current streak at the window's end of each member on one, bucketed
    current: dict[str, int]
    members_checking_in: int

    @property
    def rate(self) -> float | None:
        return self.checkin_days / self.member_days if self.member_days else None


def series(
    conn: Connection,
    sc: Scope,
    start: date,
    end: date,
    grain: Grain = "day",
    *,
    counter: MemberCounter | None = None,
) -> list[Point]:
    """Members, joins, leaves, messages, speakers and check-ins per period.

    A partial first or last period is cut to [start, end]; members are
    counted at the end of each period (or at ``end``).
    """
    if grain not in GRAINS:
        raise AnalyticsError(f"unknown grain {grain!r}", hint="day, week or month")
    if counter is None:
        counter = member_counter(conn, sc, end)
    rows = _series_kept(conn, sc, start, end, grain)
    if rows is None:
        key = _period_expr(conn, grain)
        sql = f"""
            SELECT {key} AS k, sum(messages), sum(joins), sum(leaves),
                   count(DISTINCT CASE WHEN messages > 0 THEN member_id END),
                   sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
            FROM rollups
            WHERE {sc.where()} AND day >= :start AND day <= :end
            GROUP BY k
        """
        rows = {
            int(k): (int(ms or 0), int(j or 0), int(lv or 0), int(sp or 0), int(ck or 0))
            for k, ms, j, lv, sp, ck in conn.execute(
                text(sql), {"community": sc.community, "start": _bind_day(conn, start), "end": _bind_day(conn, end)}
            )
        }
    by_start = {_key_to_start(k, grain): v for k, v in rows.items()}
    out = []
    for p in periods(start, end, grain):
        last = min(period_end(p, grain), end)
        ms, j, lv, sp, ck = by_start.get(p, (0, 0, 0, 0, 0))
        out.append(Point(max(p, start), last, counter.at(last), j, lv, ms, sp, ck))
    return out


def _series_kept(
    conn: Connection, sc: Scope, start: date, end: date, grain: Grain
) -> dict[int, tuple[int, int, int, int, int]] | None:
    """A series from the aggregates the engine keeps (``group_days``, ``community_days``,
    ``retention_cells``), or None when they cannot answer it exactly (then the rollups are read).

    Days: always. Weeks: for the whole community when the first and last weeks are
    whole or hold no data outside [start, end] (a week's distinct speakers are
    kept per whole week); for one group they are read from its rollups.
    """
    if grain == "month" or (grain == "week" and sc.group is not None):
        return None
    if grain == "week":
        span = data_range(conn, sc)
        if span is not None and (
            (start.weekday() != 0 and start > span[0]) or (end.weekday() != 6 and end < span[1])
        ):
            return None
    params = {"community": sc.community, "start": _bind_day(conn, start), "end": _bind_day(conn, end)}
    key = _period_expr(conn, grain)
    # grouped by the day itself (no expression per row), folded into periods here: the sums add up
    sums = f"""
        SELECT day, sum(messages), sum(joins), sum(leaves), sum(checkins), sum(speakers)
        FROM group_days WHERE {sc.where()} AND day >= :start AND day <= :end GROUP BY day
    """
    rows: dict[int, list[int]] = {}
    for d, ms, j, lv, ck, sp in conn.execute(text(sums), params):
        n = day_number(_as_date(d))  # type: ignore[arg-type]
        k = n if grain == "day" else n // 7
        row = rows.get(k)
        if row is None:
            rows[k] = [int(ms or 0), int(j or 0), int(lv or 0), int(sp or 0), int(ck or 0)]
        else:
            row[0] += int(ms or 0)
            row[1] += int(j or 0)
            row[2] += int(lv or 0)
            row[3] += int(sp or 0)
            row[4] += int(ck or 0)
    if sc.group is None:
        # distinct people across groups: kept per community day, and per week by cohort
        if grain == "day":
            speakers = f"""SELECT {key}, speakers FROM community_days
                           WHERE community_id = :community AND day >= :start AND day <= :end"""
        else:
            wk = _period_expr(conn, "week", "week")
            speakers = f"""SELECT {wk} AS k, sum(speakers) FROM retention_cells
                           WHERE community_id = :community AND week >= :wstart AND week <= :end GROUP BY k"""
            params["wstart"] = _bind_day(conn, week_start(start))
        for k, sp in conn.execute(text(speakers), params):
            row = rows.setdefault(int(k), [0, 0, 0, 0, 0])
            row[3] = int(sp or 0)
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in rows.items()}


def member_counter(
    conn: Connection, sc: Scope, end: date, pres: list[Presence] | None = None,
    persons: dict[int, Person] | None = None,
) -> MemberCounter:
    """``persons`` (``people(pres)``), when the caller has it already, saves folding the presences again."""
    if pres is None:
        pres = presences(conn, sc, end, end)
    if sc.group is not None:
        return MemberCounter((p.first_seen, p.left) for p in pres)
    if persons is None:
        persons = people(pres)
    return MemberCounter((q.first_seen, q.left) for q in persons.values())


def checkin_stats(conn: Connection, sc: Scope, start: date, end: date, counter: MemberCounter) -> CheckinStats:
    """Check-in rate and streak distributions over [start, end].

    Streaks per member come from ``checkin_streaks`` (kept by the engine) when
    the window holds all of the community's data, else from the rollups
    (:func:`_streaks_scanned`).
    """
    rows = _streaks_kept(conn, sc, start, end)
    if rows is None:
        rows = _streaks_scanned(conn, sc, start, end)
    longest = dict.fromkeys((b[0] for b in STREAK_BUCKETS), 0)
    current = dict.fromkeys((b[0] for b in STREAK_BUCKETS), 0)
    end_n = day_number(end)
    checkin_days = 0
    members = 0
    for best, n, last, run in rows:
        members += 1
        checkin_days += n
        longest[_bucket(best)] += 1
        # a streak is current if it reached the last day or the day before
        if last >= end_n - 1:
            current[_bucket(run)] += 1
    member_days = 0
    d = start
    while d <= end:
        member_days += counter.at(d)
        d += timedelta(days=1)
    return CheckinStats(checkin_days, member_days, longest, current, members)


def _streaks_kept(conn: Connection, sc: Scope, start: date, end: date) -> list[tuple[int, int, int, int]] | None:
    """(longest, days, last day number, run ending then) per member from ``checkin_streaks``, or None.

    They answer for the whole community when [start, end] holds all of its
    check-ins and the kept rows end where the rollups' check-ins end (the rows
    are the engine's and current).
    """
    if sc.group is not None:
        return None
    params = {"community": sc.community}
    first, last = conn.execute(
        text(
            """SELECT (SELECT min(day) FROM rollups WHERE community_id = :community AND checkins > 0),
                      (SELECT max(day) FROM rollups WHERE community_id = :community AND checkins > 0)"""
        ),
        params,
    ).one()
    kept_last = conn.execute(
        text("SELECT max(last_day) FROM checkin_streaks WHERE community_id = :community"), params
    ).scalar()
    if first is None:
        return [] if kept_last is None else None
    if kept_last is None or _as_date(kept_last) != _as_date(last):
        return None
    if start > (_as_date(first) or start) or end < (_as_date(last) or end):
        return None
    return [
        (int(best), int(n), day_number(_as_date(lastd) or end), int(run))
        for best, n, lastd, run in conn.execute(
            text("SELECT longest, days, last_day, run FROM checkin_streaks WHERE community_id = :community"), params
        )
    ]


def _streaks_scanned(conn: Connection, sc: Scope, start: date, end: date) -> list[tuple[int, int, int, int]]:
    """(longest, days, last day number, run ending then) per member who checked in within [start, end].

    The database finds the streaks: a day's number minus its rank among the
    member's days is the same along a run of consecutive days.
    """
    day = _day_expr(conn)
    sql = f"""
        WITH d AS (
            SELECT member_id, {day} AS n FROM rollups
            WHERE {sc.where()} AND checkins > 0 AND day >= :start AND day <= :end
            GROUP BY member_id, day
        ),
        runs AS (
            SELECT member_id, count(*) AS len, max(n) AS last FROM (
                SELECT member_id, n, n - row_number() OVER (PARTITION BY member_id ORDER BY n) AS island FROM d
            ) x GROUP BY member_id, island
        )
        SELECT max(len), sum(len), max(last), max(CASE WHEN last = mlast THEN len END)
        FROM (SELECT member_id, len, last, max(last) OVER (PARTITION BY member_id) AS mlast FROM runs) y
        GROUP BY member_id
    """
    return [
        (int(best), int(n), int(last), int(run))
        for best, n, last, run in conn.execute(
            text(sql), {"community": sc.community, "start": _bind_day(conn, start), "end": _bind_day(conn, end)}
        )
    ]


def _bucket(n: int) -> str:
    for label, lo, hi in STREAK_BUCKETS:
        if lo <= n <= hi:
            return label
    return STREAK_BUCKETS[-1][0]


# ----------------------------------------------------------- concentration


@dataclass(frozen=True)
class Concentration:
    speakers: int
    messages: int
    #: share of messages written by the top 10 % of speakers (at least one)
    top10_share: float | None
    gini: float | None
    #: Lorenz curve: (share of speakers, share of messages), from (0, 0) to (1, 1)
    lorenz: list[tuple[float, float]]


def concentration(counts: Iterable[int]) -> Concentration:
    """Top-10 % share and Gini of per-speaker message counts (zeros are ignored)."""
    xs = sorted(c for c in counts if c > 0)
    n = len(xs)
    total = sum(xs)
    if n == 0 or total == 0:
        return Concentration(0, 0, None, None, [(0.0, 0.0), (1.0, 1.0)])
    top = max(1, math.ceil(n * 0.10))
    top10 = sum(xs[-top:]) / total
    weighted = sum(i * x for i, x in enumerate(xs, start=1))
    gini = (2 * weighted) / (n * total) - (n + 1) / n
    # at most ~200 points on the curve
    step = max(1, n // 200)
    lorenz = [(0.0, 0.0)]
    cum = 0
    for i, x in enumerate(xs, start=1):
        cum += x
        if i % step == 0 or i == n:
            lorenz.append((i / n, cum / total))
    return Concentration(n, total, top10, max(0.0, gini), lorenz)


# -------------------------------------------------------------- activation


@dataclass(frozen=True)
class Activation:
    cohort: date
    joined: int
    activated: int

    @property
    def rate(self) -> float | None:
        return self.activated / self.joined if self.joined else None


def activation(conn: Connection, sc: Scope, start: date, end: date, grain: Grain = "week") -> list[Activation]:
    """Newcomers who spoke in their group within 7 days of joining, by join cohort.

    The member's first and last message days in the group (``member_groups``)
    settle most joins: no message in the 7 days when the first is after them
    or the last before them, one when the first is in them. Only a join
    between the first and the last message day (someone who came back) looks
    at the rollups of those 7 days; so does a join without a ``member_groups`` row.
    """
    if _sqlite(conn):
        within = f"date(j.day, '+{ACTIVATION_DAYS - 1} days')"
    else:
        within = f"(j.day + {ACTIVATION_DAYS - 1})"
    key = _period_expr(conn, grain, "j.day")
    sql = f"""
        SELECT {key} AS k, count(*),
               sum(CASE
                   WHEN mg.group_id IS NOT NULL AND (mg.first_message_day IS NULL OR mg.first_message_day > {within}
                        OR mg.last_message_day < j.day) THEN 0
                   WHEN mg.first_message_day >= j.day THEN 1
                   WHEN EXISTS (
                   SELECT 1 FROM rollups r WHERE r.group_id = j.group_id AND r.member_id = j.member_id
                   AND r.day >= j.day AND r.day <= {within} AND r.messages > 0) THEN 1 ELSE 0 END)
        FROM rollups j
        LEFT JOIN member_groups mg ON mg.group_id = j.group_id AND mg.member_id = j.member_id
        WHERE {sc.where("j")} AND j.joins > 0 AND j.day >= :start AND j.day <= :end
        GROUP BY k ORDER BY k
    """
    found = {
        _key_to_start(int(k), grain): (int(n), int(a or 0))
        for k, n, a in conn.execute(
            text(sql), {"community": sc.community, "start": _bind_day(conn, start), "end": _bind_day(conn, end)}
        )
    }
    return [Activation(p, *found.get(p, (0, 0))) for p in periods(start, end, grain)]


# --------------------------------------------------------------- retention


@dataclass(frozen=True)
class Retention:
    """Speakers by the week of their first message: cohort × weeks since."""

    cohorts: list[date]
    sizes: list[int]
    #: matrix[c][k]: share of cohort c who spoke in week c + k; None if that week is after the end
    matrix: list[list[float | None]]


def retention(conn: Connection, sc: Scope, start: date, end: date, weeks: int = 12) -> Retention:
    """Weekly first-message cohorts from ``start``'s week to ``end``'s, ``weeks`` weeks each."""
    w = _period_expr(conn, "week")
    # one pass: each (member, week) with the member's first week beside it (a window, not a self-join)
    sql = f"""
        SELECT c, w - c, count(*) FROM (
            SELECT w, min(w) OVER (PARTITION BY member_id) AS c FROM (
                SELECT DISTINCT member_id, {w} AS w FROM rollups
                WHERE {sc.where()} AND messages > 0 AND day <= :end
            ) mw
        ) x
        WHERE c >= :first AND w - c < :weeks
        GROUP BY c, w - c
    """
    first_w = day_number(week_start(start)) // 7
    last_w = day_number(week_start(end)) // 7
    cells: dict[int, dict[int, int]] = defaultdict(dict)
    params = {"community": sc.community, "end": _bind_day(conn, end), "first": first_w, "weeks": weeks}
    if sc.group is None:
        span = data_range(conn, sc)
        if span is None or end >= span[1] or end.weekday() == 6:
            # whole weeks up to the end: the cells the engine keeps answer exactly
            cw, ww = _period_expr(conn, "week", "cohort"), _period_expr(conn, "week", "week")
            sql = f"""
                SELECT c, w - c, n FROM (
                    SELECT {cw} AS c, {ww} AS w, speakers AS n FROM retention_cells
                    WHERE community_id = :community AND week <= :end AND speakers <> 0
                ) x WHERE c >= :first AND w - c < :weeks
            """
    for c, k, n in conn.execute(text(sql), params):
        cells[int(c)][int(k)] = int(n)
    cohorts, sizes, matrix = [], [], []
    for c in range(first_w, last_w + 1):
        size = cells.get(c, {}).get(0, 0)
        cohorts.append(_key_to_start(c, "week"))
        sizes.append(size)
        row: list[float | None] = []
        for k in range(weeks):
            if c + k > last_w:
                row.append(None)
            else:
                row.append(cells[c].get(k, 0) / size if size else None)
        matrix.append(row)
    return Retention(cohorts, sizes, matrix)


# ----------------------------------------------------------------- lurkers


@dataclass(frozen=True)
class Lurker:
    member_id: int
    user_id: str
    name: str | None
    #: keys of the groups they are in (in scope)
    groups: list[str]
    #: days since their last message (or since first seen, if they never wrote)
    silent_days: int
    last_spoke: date | None
    first_seen: date


def lurkers(
    conn: Connection, sc: Scope, as_of: date, silent_days: int = 30, *, pres: list[Presence] | None = None,
    persons: dict[int, Person] | None = None,
) -> list[Lurker]:
    """Members present at ``as_of`` silent for ``silent_days`` or more, longest silence first."""
    if persons is None:
        if pres is None:
            pres = presences(conn, sc, as_of, as_of)
        persons = people(pres)
    found = []
    latest: date | None
    try:
        latest = as_of - timedelta(days=silent_days)  # silent for silent_days or more: since this day or earlier
    except OverflowError:  # before the first day of the calendar (nobody) or after its last (everybody)
        latest = None if silent_days > 0 else date.max
    if latest is not None:
        for q in persons.values():
            if q.left is None and (q.last_spoke or q.first_seen) <= latest:
                found.append((q, (as_of - (q.last_spoke or q.first_seen)).days))
    names = member_names(conn, [q.member_id for q, _ in found])
    out = []
    for q, quiet in found:
        ident = names.get(q.member_id)
        if ident is None:  # erased
            continue
        if len(q.groups) == 1:
            g = sc.groups.get(q.groups[0])
            keys = [g.key] if g is not None else []
        else:
            keys = sorted({sc.groups[g].key for g in q.groups if g in sc.groups})
        out.append(Lurker(q.member_id, ident[0], ident[1], keys, quiet, q.last_spoke, q.first_seen))
    out.sort(key=lambda x: (-x.silent_days, x.user_id))
    return out


def member_names(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """member id → (user id, name) of members that are not erased."""
    out: dict[int, tuple[str, str | None]] = {}
    ids = list(ids)
    for i in range(0, len(ids), 5000):
        chunk = ids[i : i + 5000]
        for mid, uid, name, erased in conn.execute(
            text(f"SELECT id, user_id, name, erased FROM members WHERE id IN ({_in(chunk)})")
        ):
            if not erased:
                out[int(mid)] = (uid, name)
    return out


# ------------------------------------------------------ contributors, size


@dataclass(frozen=True)
class Contributor:
    member_id: int
    user_id: str
    name: str | None
    messages: int
    share: float


def top_contributors(conn: Connection, persons: dict[int, Person], n: int = 10) -> list[Contributor]:
    total = sum(p.messages for p in persons.values())
    # the first 2n by messages (names are looked up for those only, as erased members are skipped)
    ranked = heapq.nsmallest(
        n * 2, (p for p in persons.values() if p.messages > 0), key=lambda p: (-p.messages, p.member_id)
    )
    names = member_names(conn, [p.member_id for p in ranked])
    out = []
    for p in ranked:
        ident = names.get(p.member_id)
        if ident is None:
            continue
        out.append(Contributor(p.member_id, ident[0], ident[1], p.messages, p.messages / total if total else 0.0))
        if len(out) == n:
            break
    return out


def top_between(conn: Connection, sc: Scope, start: date, end: date, n: int = 3) -> list[Contributor]:
    """The ``n`` members who wrote most in [start, end] (a short window: its rows only)."""
    # grouped by +member_id (the same values): grouped by the bare column, SQLite walks the
    # (member_id, day) index member by member instead of reading the window's days (3× slower here)
    sql = f"""
        SELECT +member_id AS member_id, sum(messages) AS n FROM rollups
        WHERE {sc.where()} AND day >= :start AND day <= :end AND messages > 0
        GROUP BY +member_id ORDER BY n DESC, member_id LIMIT {int(n) * 2}
    """
    rows = [
        (int(mid), int(k))
        for mid, k in conn.execute(
            text(sql), {"community": sc.community, "start": _bind_day(conn, start), "end": _bind_day(conn, end)}
        )
    ]
    total = sum(k for _, k in rows)
    names = member_names(conn, [mid for mid, _ in rows])
    out = [
        Contributor(mid, names[mid][0], names[mid][1], k, k / total if total else 0.0)
        for mid, k in rows
        if mid in names
    ]
    return out[:n]


class _Rates:
    """Active ratio and messages per member per day, for anything with those counts."""

    members: int
    speakers: int
    messages: int
    days: int

    @property
    def active_ratio(self) -> float | None:
        return self.speakers / self.members if self.members else None

    @property
    def per_capita(self) -> float | None:
        """Messages per member per day."""
        return self.messages / self.members / self.days if self.members and self.days else None


@dataclass(frozen=True)
class GroupActivity(_Rates):
    """One group over the last RECENT_DAYS days of the window."""

    group_id: int
    key: str
    name: str | None
    members: int
    speakers: int
    messages: int
    days: int


@dataclass(frozen=True)
class SizeBucket(_Rates):
    label: str
    groups: int
    members: int
    speakers: int
    messages: int
    days: int


def recent_by_group(conn: Connection, sc: Scope, end: date) -> dict[int, tuple[int, int]] | None:
    """group id → (speakers, messages) over the last RECENT_DAYS days up to ``end``, from the aggregates.

    None unless ``end`` is on or after the scope's last day with data: then a
    member spoke in those days exactly when their ``member_groups`` row's last
    message day is in them, and the messages are ``group_days``' sums.
    """
    span = data_range(conn, sc)
    if span is None or end < span[1]:
        return None
    params = {"community": sc.community, "recent": _bind_day(conn, end - timedelta(days=RECENT_DAYS - 1)),
              "end": _bind_day(conn, end)}
    speakers = {
        int(g): int(n)
        for g, n in conn.execute(
            text(f"""SELECT group_id, count(*) FROM member_groups
                     WHERE {sc.where()} AND last_message_day >= :recent GROUP BY group_id"""),
            params,
        )
    }
    messages = {
        int(g): int(n or 0)
        for g, n in conn.execute(
            text(f"""SELECT group_id, sum(messages) FROM group_days
                     WHERE {sc.where()} AND day >= :recent AND day <= :end GROUP BY group_id"""),
            params,
        )
    }
    return {g: (n, messages.get(g, 0)) for g, n in speakers.items()}


def group_activity(
    sc: Scope, pres: Iterable[Presence], start: date, end: date, recent: dict[int, tuple[int, int]] | None = None
) -> list[GroupActivity]:
    """Members at ``end``, speakers and messages over the last RECENT_DAYS days, per group.

    ``recent`` (from :func:`recent_by_group`) gives the speakers and messages
    per group instead of the presences' ``recent`` counts.
    """
    days = min(RECENT_DAYS, (end - start).days + 1)
    acc: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in pres:
        a = acc[p.group_id]
        if p.left is None:
            a[0] += 1
        if recent is None and p.recent > 0:
            a[1] += 1
            a[2] += p.recent
    if recent is not None:
        for gid, a in acc.items():
            a[1], a[2] = recent.get(gid, (0, 0))
    out = []
    for gid, (members, speakers, messages) in acc.items():
        g = sc.groups.get(gid)
        if g is None:
            continue
        out.append(GroupActivity(gid, g.key, g.name, members, speakers, messages, days))
    out.sort(key=lambda x: x.key)
    return out


def size_buckets(groups: Iterable[GroupActivity]) -> list[SizeBucket]:
    """Active ratio and per-capita messages by group size (SPEC §8.3)."""
    acc = {label: [0, 0, 0, 0, 0] for label, _, _ in SIZE_BUCKETS}
    for g in groups:
        if g.members == 0:
            continue
        for label, lo, hi in SIZE_BUCKETS:
            if lo <= g.members <= hi:
                a = acc[label]
                a[0] += 1
                a[1] += g.members
                a[2] += g.speakers
                a[3] += g.messages
                a[4] = g.days
                break
    return [SizeBucket(label, *acc[label]) for label, _, _ in SIZE_BUCKETS]


# --------------------------------------------------------------- dashboard


@dataclass
class Dashboard:
    """What a console page shows for one group (or the whole community)."""

    scope: Scope
    start: date
    end: date
    daily: list[Point]
    weekly: list[Point]
    concentration: Concentration
    activation: list[Activation]
    lurkers: int
    checkins: CheckinStats


def dashboard(conn: Connection, sc: Scope, end: date, *, days: int = 28, silent_days: int = 30) -> Dashboard:
    """The numbers of one scope's dashboard over the ``days`` days up to ``end``.

    Meant for one group (a few thousand rollup rows, via the primary key);
    it works for a community too, at the cost of a scan of its rollups.
    """
    start = end - timedelta(days=days - 1)
    pres = presences(conn, sc, start, end)
    counter = member_counter(conn, sc, end, pres)
    persons = people(pres)
    return Dashboard(
        sc,
        start,
        end,
        series(conn, sc, start, end, "day", counter=counter),
        series(conn, sc, start, end, "week", counter=counter),
        concentration(p.messages for p in persons.values()),
        activation(conn, sc, start, end, "week"),
        sum(
            1 for p in persons.values()
            if p.left is None and (end - (p.last_spoke or p.first_seen)).days >= silent_days
        ),
        checkin_stats(conn, sc, start, end, counter),
    )
