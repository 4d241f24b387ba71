"""Schedules: one-shot, interval and cron, in a community's time zone.

Jobs live in the ``jobs`` table, so a restart resumes them. The engine fires
every job due at or before the clock's time, in time order, before it
handles an event at that time. Cron expressions are read by croniter and
evaluated in the community's zone (DST included).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from qunyun.core.errors import ClockError


def validate_cron(expr: str) -> str:
    """Return ``expr`` if it is a valid 5-field cron expression, else raise ValueError."""
    fields = expr.split()
    if len(fields) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"invalid cron expression {expr!r}: write five fields, minute hour day month weekday "
            "(e.g. '0 21 * * *' for 21:00 every day)"
        )
    return expr


#: Parsed cron expressions, reused (parsing costs far more than stepping).
_CRON_CACHE: dict[tuple[str, str], croniter] = {}
_DAILY = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \*$")


def next_cron(expr: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The first time strictly after ``after`` that matches ``expr`` in ``tz``, in UTC."""
    if after.tzinfo is None:
        raise ClockError("next_cron needs an aware datetime")
    local = after.astimezone(tz)
    daily = _DAILY.match(expr)
    if daily is not None:
        # "M H * * *" is most of what communities schedule; croniter takes ~100 µs.
        minute, hour = int(daily.group(1)), int(daily.group(2))
        if minute < 60 and hour < 24:
            candidate = datetime.combine(local.date(), time(hour, minute), tz)
            while candidate <= local or candidate.astimezone(UTC) <= after.astimezone(UTC):
                candidate = datetime.combine(candidate.date() + timedelta(days=1), time(hour, minute), tz)
            return candidate.astimezone(UTC)
    itr = _CRON_CACHE.get((expr, tz.key))
    if itr is None:
        itr = croniter(expr, local)
        _CRON_CACHE[(expr, tz.key)] = itr
    else:
        itr.set_current(local, force=True)
    nxt: datetime = itr.get_next(datetime)
    if nxt.tzinfo is None:
        nxt = nxt.replace(tzinfo=tz)
    wall = local.replace(tzinfo=None, fold=0)
    for _ in range(100):
        if nxt.astimezone(tz).replace(tzinfo=None, fold=0) != wall and nxt.astimezone(UTC) > after:
            break
        # The same wall time again (a DST fall-back repeats an hour): once is
        # enough. Step in UTC: wall-clock arithmetic would land in the repeat.
        itr.set_current((nxt.astimezone(UTC) + timedelta(minutes=1)).astimezone(tz), force=True)
        nxt = itr.get_next(datetime)
        if nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=tz)
    return nxt.astimezone(UTC)


def next_due(kind: str, spec: str, due: datetime, now: datetime, tz: ZoneInfo) -> datetime | None:
    """When a recurring job fires next after firing at ``due`` with the clock at ``now``.

    Missed runs are coalesced: after downtime a job fires once, then resumes
    its rhythm from ``now``.
    """
    base = max(due, now)
    if kind == "cron":
        return next_cron(spec, base, tz)
    if kind == "interval":
        step = timedelta(seconds=float(spec))
        nxt = due + step
        if nxt <= now:
            missed = (now - due) // step
            nxt = due + step * (missed + 1)
        return nxt
    return None
