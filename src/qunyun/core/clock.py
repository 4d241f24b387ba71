"""Clocks. The only module allowed to read the wall clock.

Everything time-dependent in qunyun asks a :class:`Clock`. The engine uses a
:class:`FakeClock` driven by event time in replay and simulation, and a
:class:`SystemClock` when running live. Tests advance a ``FakeClock``; nobody
sleeps.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from qunyun.core.errors import ClockError


class Clock(Protocol):
    """Something that tells the time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def monotonic() -> float:
        """Seconds from an arbitrary origin, for measuring durations only."""
        return _time.monotonic()


class FakeClock:
    """A clock that only moves when told to. Never goes backwards."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ClockError("FakeClock needs a timezone-aware start time")
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Move to ``when``; moving backwards is ignored (time is monotonic)."""
        if when.tzinfo is None:
            raise ClockError(f"naive datetime {when!r}: times must carry a time zone")
        if when > self._now:
            self._now = when.astimezone(UTC)

    def _rewind(self, when: datetime) -> None:
        """Engine use only: undo the moves of a rolled-back transaction."""
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ClockError("cannot advance a clock by a negative duration")
        self._now = self._now + delta
        return self._now


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones."""
    if dt.tzinfo is None:
        raise ClockError(f"naive datetime {dt!r}: times must carry a time zone")
    return dt.astimezone(UTC)


def monotonic() -> float:
    """Seconds from an arbitrary origin, for progress and benchmark timing only."""
    return _time.perf_counter()
