"""Member months: what the member-value score needs, per member and calendar month.

The engine keeps one ``member_months`` row per member and local month, in the
event's transaction, beside the rollups; the health report reads these rows
(a few per member) instead of 120 days of rollups (one per member, group and
day). The score itself is defined in :mod:`qunyun.analytics.value`; the
constants live here so that the engine and the report share them.

With ``p(d)`` a member's points on day ``d`` (each rollup row's points
capped at :data:`DAILY_CAP`, summed over the member's groups), ``M`` the
month's first day and ``h`` the half-life, a row holds:

* ``weighted`` = ``Σ p(d)·2^((d−M)/h)`` over the month's days: the month's
  share of the score on any later day ``t`` is ``weighted·2^(−(t−M)/h)``;
* ``points`` = ``Σ p(d)``; ``messages``, ``links_media``, ``attention``:
  counter sums for the archetype window;
* ``last_day``: the month's last day with any rollup row (joined, spoke,
  was mentioned…); ``last_points_day``: the last with points;
* ``need_core``, ``need_active``, ``need_casual``: for each level threshold
  ``T``, the smallest score ``A`` on ``M`` (from the days before it) that
  makes the score reach ``T`` at some day of the month:
  ``min(T, min_t T·2^((t−M)/h) − W(t))`` with ``W(t)`` the ``weighted`` sum
  of the days up to ``t``. Since the score on a day ``t`` of the month is
  ``(A + W(t))·2^(−(t−M)/h)``, it reaches ``T`` in the month exactly when
  ``A ≥ need_T``: the level held at the end of the month (rises at once,
  falls only at a month boundary) follows from ``A`` alone.

Days arrive in order almost always: the engine then updates a row from its
stored values; a late day or a counter that went down rebuilds the row from
the member's rollups of that month (:func:`month_state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection

HALF_LIFE_DAYS = 14.0
DAILY_CAP = 30.0
#: Activity points per rollup counter.
POINTS: dict[str, float] = {
    "messages": 1.0,
    "replies": 1.0,
    "links": 1.0,
    "media": 0.5,
    "checkins": 1.0,
    "reactions_given": 0.2,
    "reactions_received": 0.5,
    "mentions_received": 0.5,
}
#: (level, lowest score), highest first.
LEVELS: tuple[tuple[str, float], ...] = (("core", 100.0), ("active", 20.0), ("casual", 3.0), ("dormant", 0.0))
#: The thresholds a row keeps a "need" for, in :data:`LEVELS` order (core, active, casual).
THRESHOLDS: tuple[float, ...] = tuple(low for _, low in LEVELS if low > 0)
NEED_COLUMNS: tuple[str, ...] = tuple(f"need_{name}" for name, low in LEVELS if low > 0)
#: Rollup columns a row is computed from (the points, and the archetype counters).
ROLLUP_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys((*POINTS, "messages", "links", "media", "reactions_received",
                                                       "mentions_received")))
COLUMNS: tuple[str, ...] = (
    "member_id", "month", "community_id", "last_day", "last_points_day", "points", "weighted",
    "messages", "links_media", "attention", *NEED_COLUMNS,
)


def row_points(counts: Mapping[str, Any]) -> float:
    """Points of one rollup row (one member, group and day), capped at :data:`DAILY_CAP`."""
    return min(DAILY_CAP, sum(POINTS[k] * max(0, int(counts.get(k, 0) or 0)) for k in POINTS))


def month_of(day: date) -> date:
    return day.replace(day=1)


def weight(day: date, month: date) -> float:
    """``2^((day − month)/h)``: one power of 2, so the month's first day weighs exactly 1."""
    return float(2.0 ** ((day - month).days / HALF_LIFE_DAYS))


@dataclass
class MonthState:
    """One ``member_months`` row while it is being updated."""

    community_id: str
    month: date
    last_day: date | None = None
    last_points_day: date | None = None
    points: float = 0.0
    weighted: float = 0.0
    messages: int = 0
    links_media: int = 0
    attention: int = 0
    need: list[float] = field(default_factory=lambda: list(THRESHOLDS))

    def seen(self, day: date) -> None:
        if self.last_day is None or day > self.last_day:
            self.last_day = day

    def add_points(self, day: date, p: float) -> None:
        """Add ``p`` points on ``day``; days must come in order (``day`` ≥ every earlier day with points)."""
        if p == 0:
            return
        w = weight(day, self.month)
        self.points += p
        self.weighted += p * w
        for i, t in enumerate(THRESHOLDS):
            cand = t * w - self.weighted
            if cand < self.need[i]:
                self.need[i] = cand
        if self.last_points_day is None or day > self.last_points_day:
            self.last_points_day = day

    def add_counts(self, counts: Mapping[str, Any]) -> None:
        self.messages += int(counts.get("messages", 0) or 0)
        self.links_media += int(counts.get("links", 0) or 0) + int(counts.get("media", 0) or 0)
        self.attention += int(counts.get("reactions_received", 0) or 0) + int(counts.get("mentions_received", 0) or 0)

    def row(self, member_id: int, day: Any = lambda d: d) -> tuple[Any, ...]:
        """The row in :data:`COLUMNS` order (``day`` converts dates for the database)."""
        return (
            member_id, day(self.month), self.community_id, day(self.last_day),
            None if self.last_points_day is None else day(self.last_points_day),
            self.points, self.weighted, self.messages, self.links_media, self.attention, *self.need,
        )


def month_state(community_id: str, month: date, rows: Iterable[tuple[date, Mapping[str, Any]]]) -> MonthState:
    """A member's month from scratch, from its rollup rows ``(day, counters)`` (any order, any groups)."""
    st = MonthState(community_id, month)
    per_day: dict[date, float] = {}
    for day, counts in rows:
        st.seen(day)
        st.add_counts(counts)
        per_day[day] = per_day.get(day, 0.0) + row_points(counts)
    for day in sorted(per_day):
        st.add_points(day, per_day[day])
    return st


def from_row(row: Sequence[Any], to_date: Any) -> MonthState:
    """A stored row (``COLUMNS`` order, without member id and month first) back into a state."""
    (month, cid, last, last_p, points, weighted, msgs, lm, att, *need) = row
    return MonthState(
        str(cid), to_date(month), to_date(last), None if last_p is None else to_date(last_p),
        float(points or 0.0), float(weighted or 0.0), int(msgs or 0), int(lm or 0), int(att or 0),
        [float(x) for x in need],
    )


def rebuild(conn: Connection, where: str = "") -> int:
    """Rebuild ``member_months`` from ``rollups`` (``where``: an optional rollups filter on member_id/community_id).

    For data written around the engine (benchmarks, repairs, a migration's
    backfill, a merge of two members). Deletes the rows it replaces; returns
    how many rows it wrote.
    """
    sqlite = conn.dialect.name == "sqlite"
    cond = f"WHERE {where}" if where else ""
    conn.exec_driver_sql(
        f"DELETE FROM member_months WHERE member_id IN (SELECT DISTINCT member_id FROM rollups {cond})"
        if where else "DELETE FROM member_months"
    )
    cols = ", ".join(ROLLUP_COLUMNS)
    cur = conn.exec_driver_sql(
        f"SELECT member_id, day, community_id, {cols} FROM rollups {cond} ORDER BY member_id, day"
    )
    mark = "?" if sqlite else "%s"
    insert = f"INSERT INTO member_months ({', '.join(COLUMNS)}) VALUES ({', '.join(mark for _ in COLUMNS)})"
    conv = (lambda d: d.isoformat()) if sqlite else (lambda d: d)
    out: list[tuple[Any, ...]] = []
    n = 0
    for mid, _month, st in _states(cur, len(ROLLUP_COLUMNS)):
        out.append(st.row(mid, conv))
        if len(out) >= 20_000:
            conn.exec_driver_sql(insert, out)
            n += len(out)
            out = []
    if out:
        conn.exec_driver_sql(insert, out)
        n += len(out)
    return n


def _states(rows: Iterable[Sequence[Any]], ncols: int) -> Iterator[tuple[int, date, MonthState]]:
    key: tuple[int, date] | None = None
    batch: list[tuple[date, dict[str, Any]]] = []
    cid = ""
    for r in rows:
        day = _to_date(r[1])
        k = (int(r[0]), month_of(day))
        if k != key:
            if key is not None:
                yield key[0], key[1], month_state(cid, key[1], batch)
            key, batch = k, []
        cid = str(r[2])
        batch.append((day, dict(zip(ROLLUP_COLUMNS, r[3 : 3 + ncols], strict=True))))
    if key is not None:
        yield key[0], key[1], month_state(cid, key[1], batch)


def _to_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# ------------------------------------------------------------ check-in streaks


@dataclass
class Streak:
    """One ``checkin_streaks`` row: days with a check-in, the longest run, the run ending on ``last_day``."""

    days: int
    longest: int
    last_day: date
    run: int

    def add(self, day: date) -> bool:
        """Add a new check-in day at or after the last one; False if it is earlier (rebuild instead)."""
        if day < self.last_day:
            return False
        if day == self.last_day:
            return True
        self.run = self.run + 1 if (day - self.last_day).days == 1 else 1
        self.last_day = day
        self.days += 1
        self.longest = max(self.longest, self.run)
        return True


def streak_of(days: Iterable[date]) -> Streak | None:
    """The streak row of a member who checked in on ``days`` (None if none)."""
    st: Streak | None = None
    for d in sorted(set(days)):
        if st is None:
            st = Streak(1, 1, d, 1)
        else:
            st.add(d)
    return st


def streaks_sql(dialect: str, where: str = "") -> str:
    """INSERT … SELECT that fills ``checkin_streaks`` from ``rollups`` (``where``: an optional rollups filter).

    Runs of consecutive days: a day's number minus its rank among the
    member's days is the same along a run.
    """
    n = "CAST(julianday(day) AS INTEGER)" if dialect == "sqlite" else "(day - DATE '1970-01-01')"
    and_ = f"AND {where}" if where else ""
    return f"""
        INSERT INTO checkin_streaks (member_id, community_id, days, longest, last_day, run)
        WITH d AS (
            SELECT member_id, min(community_id) AS community_id, day, {n} AS n FROM rollups
            WHERE checkins > 0 {and_} GROUP BY member_id, day
        ),
        runs AS (
            SELECT member_id, min(community_id) AS community_id, count(*) AS len, max(day) AS last FROM (
                SELECT member_id, community_id, day,
                       n - row_number() OVER (PARTITION BY member_id ORDER BY n) AS island FROM d
            ) x GROUP BY member_id, island
        )
        SELECT member_id, min(community_id), sum(len), max(len), max(last), max(CASE WHEN last = mlast THEN len END)
        FROM (
            SELECT member_id, community_id, len, last, max(last) OVER (PARTITION BY member_id) AS mlast FROM runs
        ) y GROUP BY member_id
    """
