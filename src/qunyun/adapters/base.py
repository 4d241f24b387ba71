"""The adapter contract, and what every live adapter shares.

An :class:`Adapter` connects one platform (a OneBot implementation, a Matrix
homeserver, the Telegram Bot API…) to the runtime:

- ``await start(sink)`` begins receiving; each platform payload is turned
  into an event dict (or :class:`~qunyun.core.events.BaseEvent`) and handed
  to ``await sink(event)``, which validates it at the edge and queues it for
  the engine. ``sink`` returns ``False`` when the event was refused (bad, or
  the runtime is stopping).
- ``await deliver(action)`` performs one outbox action and says what became
  of it: :class:`DeliveryResult` ``ok``, ``retry`` (optionally after
  ``retry_after`` seconds: the platform is rate-limiting or unreachable) or
  ``failed`` (permanently, with the platform's reason — e.g. no permission).
- ``capabilities`` are the action types it can perform; the engine
  downgrades the others to a note for the admins and records the downgrade.
- ``await check()`` returns :class:`DoctorCheck` rows for ``qunyun doctor``,
  their texts written as :class:`~qunyun.core.errors.Msg` (data as values) so
  doctor shows them in the operator's language.
- ``await stop()`` closes connections and servers.

Shared helpers: :class:`RateLimiter` (token buckets per group and overall,
on an injected clock and sleep), :class:`Backoff` (capped exponential with
jitter from an injected ``random.Random``) and :meth:`Adapter.report_bad`,
which records a payload dropped at the edge (what and where) without
stopping anything.
"""

from __future__ import annotations

import logging
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from qunyun.core.errors import EventError, Msg
from qunyun.core.events import BaseEvent, parse_event

log = logging.getLogger("qunyun.adapters")

#: What an adapter hands each received event to. Returns whether it was taken.
Sink = Callable[[dict[str, Any] | BaseEvent], Awaitable[bool]]
#: Seconds from an arbitrary origin (monotonic in production, fake in tests).
Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
#: Finds the stored payload of the latest event (platform, group, type, actor), or None.
History = Callable[[str, str, str, str], Awaitable[dict[str, Any] | None]]


class PayloadError(Exception):
    """A platform payload cannot become an event. Caught at the edge, never escapes."""


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one delivery attempt."""

    status: Literal["ok", "retry", "failed"]
    #: Why it is retried or failed, in the platform's words when it gave any.
    reason: str = ""
    #: For ``retry``: the platform asked us to wait this many seconds.
    retry_after: float | None = None
    #: For ``retry`` with ``retry_after``: the wait applies to the whole
    #: platform (``True``) or only to the action's group.
    everywhere: bool = False
    #: The platform's id of what was created (a message id), when known.
    platform_id: str | None = None

    @classmethod
    def ok(cls, platform_id: str | None = None) -> DeliveryResult:
        return cls("ok", platform_id=platform_id)

    @classmethod
    def retry(cls, reason: str, *, after: float | None = None, everywhere: bool = False) -> DeliveryResult:
        return cls("retry", reason=reason, retry_after=after, everywhere=everywhere)

    @classmethod
    def failed(cls, reason: str) -> DeliveryResult:
        return cls("failed", reason=reason)


@dataclass
class DoctorCheck:
    """One line of ``qunyun doctor``: True passed, False failed, None not checked.

    ``name``, ``detail`` and ``notes`` are English; written as ``Msg("template",
    **data)`` with a zh-CN entry in ``core/locales/errors_adapters.yaml`` they are
    shown in the operator's language (a plain str, e.g. a platform's own error
    text, is shown as it is).
    """

    name: str
    ok: bool | None
    detail: str
    notes: list[str] = field(default_factory=list)


def listing(items: Iterable[str]) -> str:
    """``a, b, c`` as a :class:`Msg`, so zh-CN joins the items with ``、`` (and translates those that are Msg)."""
    parts = list(items)
    if not parts:
        return ""
    joined = parts[-1]
    for item in reversed(parts[:-1]):
        joined = Msg("{item}, {rest}", item=item, rest=joined)
    return joined


@dataclass(frozen=True)
class BadPayload:
    """A payload dropped at the edge."""

    where: str
    what: str


@dataclass(frozen=True)
class Rate:
    """``count`` actions per ``per`` seconds (a bucket of ``count`` tokens)."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.per > 0:
            raise ValueError("a rate needs count >= 1 and per > 0 seconds")


@dataclass(frozen=True)
class Limits:
    """An adapter's outbound rate limits: per group and over the whole platform."""

    per_group: Rate | None = Rate(20, 60.0)
    overall: Rate | None = Rate(30, 1.0)


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self.capacity = float(rate.count)
        self.rate = rate.count / rate.per  # tokens per second
        self.tokens = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self) -> float:
        """Seconds until one token is there (0 if it is)."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Token buckets: one per group and one overall; both must have a token.

    ``clock`` gives seconds (monotonic) and ``sleep`` waits, both injected so
    tests move time by hand. :meth:`hold` honours a platform's "retry after":
    nothing goes out (to that group, or anywhere) until the time has passed.
    """

    def __init__(self, limits: Limits, *, clock: Monotonic, sleep: Sleep) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._groups: dict[str, _Bucket] = {}
        self._overall: _Bucket | None = None
        self._held_all = -math.inf
        self._held: dict[str, float] = {}

    def _buckets(self, group: str, now: float) -> list[_Bucket]:
        out = []
        if self.limits.per_group is not None:
            bucket = self._groups.get(group)
            if bucket is None:
                bucket = self._groups[group] = _Bucket(self.limits.per_group, now)
            out.append(bucket)
        if self.limits.overall is not None:
            if self._overall is None:
                self._overall = _Bucket(self.limits.overall, now)
            out.append(self._overall)
        for bucket in out:
            bucket.refill(now)
        return out

    def delay(self, group: str) -> float:
        """Seconds to wait before an action for ``group`` may go out (0: now)."""
        now = self._clock()
        waits = [b.wait() for b in self._buckets(group, now)]
        waits.append(self._held_all - now)
        waits.append(self._held.get(group, -math.inf) - now)
        return max(0.0, *waits)

    async def acquire(self, group: str) -> float:
        """Wait until an action for ``group`` may go out and take its tokens; returns seconds waited."""
        waited = 0.0
        while True:
            wait = self.delay(group)
            if wait <= 0:
                for bucket in self._buckets(group, self._clock()):
                    bucket.tokens -= 1.0
                return waited
            await self._sleep(wait)
            waited += wait

    def hold(self, seconds: float, group: str | None = None) -> None:
        """The platform asked us to wait: nothing to ``group`` (or anywhere) for ``seconds``."""
        until = self._clock() + max(0.0, seconds)
        if group is None:
            self._held_all = max(self._held_all, until)
        else:
            self._held[group] = max(self._held.get(group, -math.inf), until)


class Backoff:
    """Capped exponential backoff with jitter.

    Attempt ``n`` (1-based) waits between half and all of
    ``min(cap, base * factor ** (n - 1))`` seconds, the fraction drawn from
    ``rng`` ("equal jitter": never zero, so a crowd of clients spreads out
    without hammering the platform the moment it comes back).
    """

    def __init__(
        self, *, base: float = 1.0, factor: float = 2.0, cap: float = 300.0, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or factor < 1 or cap < base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        self.base = base
        self.factor = factor
        self.cap = cap
        self.rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait for this attempt."""
        exponent = max(0, attempt - 1)
        # avoid float overflow for absurd attempt numbers
        if exponent > 64:
            return self.cap
        return min(self.cap, self.base * self.factor**exponent)

    def delay(self, attempt: int) -> float:
        top = self.ceiling(attempt)
        return top / 2 + self.rng.uniform(0.0, top / 2)


class Adapter(ABC):
    """One platform, live. Subclasses set ``platform`` and ``capabilities``."""

    #: The ``platform`` of the events it produces and the groups it serves.
    platform: str
    #: Action types it can perform (``notify_admins`` is delivered as a send).
    capabilities: frozenset[str]
    #: Outbound rate limits the runtime applies to its deliveries.
    limits: Limits = Limits()
    #: Optional: look up a stored event (set by the runtime before ``start``).
    history: History | None = None

    #: How many dropped payloads are kept for inspection (all are counted and logged).
    KEEP_BAD = 100

    def __init__(self) -> None:
        self.bad: deque[BadPayload] = deque(maxlen=self.KEEP_BAD)
        self.bad_count = 0

    @abstractmethod
    async def start(self, sink: Sink) -> None:
        """Start receiving; hand every event to ``sink``. Returns once listening."""

    @abstractmethod
    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        """Perform one action: the contract's fields plus ``room`` (the platform's id of the group)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and close connections. Safe to call twice."""

    @abstractmethod
    async def check(self) -> list[DoctorCheck]:
        """Connectivity and permissions, for ``qunyun doctor``."""

    def validate(self, data: dict[str, Any] | BaseEvent, where: str) -> BaseEvent | None:
        """``data`` as a validated event of this platform, or None (reported and dropped)."""
        if isinstance(data, BaseEvent):
            event = data
        else:
            try:
                event = parse_event(data)
            except EventError as exc:
                self.report_bad(where, exc.message)
                return None
        if event.platform != self.platform:
            self.report_bad(where, f"event {event.id!r} is for platform {event.platform!r}, not {self.platform!r}")
            return None
        return event

    def report_bad(self, where: str, what: str) -> None:
        """Record a payload dropped at the edge; logs it and carries on."""
        self.bad_count += 1
        self.bad.append(BadPayload(where, what))
        log.warning("%s: dropped a payload (%s): %s", self.platform, where, what)


__all__ = [
    "Adapter",
    "Backoff",
    "BadPayload",
    "DeliveryResult",
    "DoctorCheck",
    "History",
    "Limits",
    "Monotonic",
    "PayloadError",
    "Rate",
    "RateLimiter",
    "Sink",
    "Sleep",
    "listing",
]
