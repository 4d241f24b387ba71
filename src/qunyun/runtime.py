"""The live runtime behind ``qunyun run``: adapters, engine, scheduler, outbox.

::

    adapter ──sink──▶ queue ──▶ engine.handle (one worker thread, one event at a time)
                                   │ outbox (same transaction)
    scheduler tick (1 s) ──▶ engine.advance_to(now)
                                   ▼
    delivery loop per platform ◀── outbox.pending ──▶ adapter.deliver ──▶ platform
                                   (up to ``concurrency`` groups in flight)

- **Ordering.** Every database step (events, scheduler ticks, outbox
  bookkeeping) runs in one worker thread, in the order it was asked for, so
  the synchronous engine sees one event at a time, in arrival order.
- **Delivery.** Per platform, up to ``concurrency`` actions (default 8) are
  in flight at once, each of a different group; within a group an action
  starts only after the previous one finished and was noted, so each group
  sees its actions in the order they were decided. Every start goes through
  the adapter's rate limits (per group and overall). A
  ``retry`` waits for the platform's ``retry_after`` or an exponential
  backoff with jitter, whichever is longer, and holds back the later actions
  of the same group so their order is kept; other groups go on. After
  ``max_attempts`` the action is given up with its reason. A permanent
  failure (e.g. the bot lacks the permission) is recorded with the
  platform's reason and the admins get a note asking them to do it by hand.
- **Stopping** (SIGINT/SIGTERM, :meth:`Runtime.request_stop`, or
  ``max_seconds``): no new events are taken, the one being handled is
  finished (it is one transaction: all or nothing), the events already
  accepted are handled, pending actions get one last delivery pass (bounded
  by ``flush_seconds``), then the adapters stop.
- **Restart.** Nothing lives only in memory: events are de-duplicated by
  id, undelivered actions are still pending in the outbox and jobs are in
  the database, so a new run picks up where the last one stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import signal
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import insert, select, update

from qunyun.adapters.base import Adapter, Backoff, DeliveryResult, Monotonic, RateLimiter, Sleep
from qunyun.config.model import GroupSettings, Settings
from qunyun.core.clock import Clock, monotonic
from qunyun.core.events import BaseEvent
from qunyun.engine import outbox
from qunyun.engine.engine import Engine, Outcome
from qunyun.store import models as m

log = logging.getLogger("qunyun.runtime")

T = TypeVar("T")

_WHAT = {
    "zh-CN": {"delete": "撤回消息", "remove": "移出成员", "mute": "禁言", "invite": "通过入群申请", "pin": "置顶",
              "direct": "私信", "create_group": "建群", "dissolve_group": "解散群", "send": "发消息"},
    "en": {"delete": "delete a message", "remove": "remove a member", "mute": "mute a member",
           "invite": "let a member in", "pin": "pin a message", "direct": "send a direct message",
           "create_group": "create a group", "dissolve_group": "dissolve the group", "send": "post"},
}
_REFUSED = {
    "zh-CN": "⚠️ {platform} 拒绝了机器人的操作「{what}」（{playbook}，群 {group}{detail}）：{reason}。请管理员手动处理。",
    "en": "⚠️ {platform} refused to let the bot {what} ({playbook}, group {group}{detail}): {reason}. "
          "Please do it by hand.",
}


@dataclass
class RunReport:
    """What a run did (also logged when it ends)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    refused_events: int = 0
    jobs_fired: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    notes_to_admins: int = 0
    stopped_by: str = ""

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.status] = self.outcomes.get(outcome.status, 0) + 1


class _Lane:
    """One platform's delivery state: pending actions per group, and the attempts in flight."""

    #: rows read from the outbox per query
    FETCH = 500
    #: no more is read while this many wait in memory
    MAX = 5000

    def __init__(self, limit: int, backoff: Backoff) -> None:
        self.limit = limit
        self.backoff = backoff
        #: group → its pending actions (not in flight), in the order they were decided
        self.queues: dict[str, deque[dict[str, Any]]] = {}
        #: group → the attempt in flight for its head action
        self.running: dict[str, asyncio.Task[None]] = {}
        #: ids in ``queues`` or in flight
        self.known: set[str] = set()
        #: ids whose attempt ended while an outbox query ran (its answer may be stale for them)
        self.ended: set[str] = set()
        #: the highest ``seq`` read so far; new actions come after it
        self.horizon = 0
        #: when to read the whole outbox again (catches rows committed out of order by another process)
        self.full_due = -math.inf
        self.cached = 0

    def add(self, row: dict[str, Any]) -> None:
        queue = self.queues.setdefault(row["group_key"], deque())
        seq = int(row["seq"])
        if not queue or int(queue[-1]["seq"]) < seq:
            queue.append(row)
        else:  # a retried head, or a row committed late by another process
            at = next(i for i, r in enumerate(queue) if int(r["seq"]) > seq)
            queue.insert(at, row)
        self.known.add(row["id"])
        self.cached += 1

    def pop(self, group: str) -> None:
        queue = self.queues[group]
        queue.popleft()
        self.cached -= 1
        if not queue:
            del self.queues[group]


def note_id(action_id: str) -> str:
    """The id of the admins' note about a refused action (stable, so it is written once)."""
    return "note-" + hashlib.blake2b(f"refused\x1f{action_id}".encode(), digest_size=12).hexdigest()


class Runtime:
    """Runs adapters and the engine together until asked to stop."""

    def __init__(
        self,
        engine: Engine,
        adapters: Sequence[Adapter],
        *,
        clock: Clock | None = None,
        mono: Monotonic = monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        tick_seconds: float = 1.0,
        poll_seconds: float = 5.0,
        flush_seconds: float = 10.0,
        max_attempts: int | Callable[[Adapter], int] = 8,
        backoff: Backoff | Callable[[Adapter], Backoff] | None = None,
        concurrency: int | Callable[[Adapter], int] = 8,
        queue_size: int = 10_000,
    ) -> None:
        platforms = [a.platform for a in adapters]
        if len(set(platforms)) != len(platforms):
            raise ValueError(f"two adapters serve the same platform: {platforms}")
        self.engine = engine
        self.adapters = {a.platform: a for a in adapters}
        self.clock = clock or engine.clock
        self._mono = mono
        self._sleep = sleep
        self.rng = rng or random.Random()
        self.tick_seconds = tick_seconds
        self.poll_seconds = poll_seconds
        self.flush_seconds = flush_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff
        #: platform → how many actions may be in flight at once (each of another group)
        self.concurrency: dict[str, int] = {}
        for a in adapters:
            n = concurrency(a) if callable(concurrency) else concurrency
            if n < 1:
                raise ValueError(f"{a.platform}: delivery concurrency must be at least 1, not {n}")
            self.concurrency[a.platform] = n
        self.report = RunReport()
        #: events taken from the adapters, each with the future its sink call waits on
        self._queue: asyncio.Queue[tuple[BaseEvent, asyncio.Future[bool]] | None] = asyncio.Queue(maxsize=queue_size)
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False
        self._stop: asyncio.Event | None = None
        self._flush_now: asyncio.Event | None = None
        self._wake: dict[str, asyncio.Event] = {}
        #: platform → new actions may be in the outbox (set when an event or a tick committed)
        self._fresh: dict[str, bool] = {}
        #: platform → its delivery state (for tests and logs)
        self._lanes: dict[str, _Lane] = {}
        self._flushing = False
        self.limiters: dict[str, RateLimiter] = {}
        #: action id → monotonic time before which it is not retried
        self._not_before: dict[str, float] = {}
        #: event being handled right now (for logs and tests)
        self.in_flight: BaseEvent | None = None

    # ------------------------------------------------------------ plumbing

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database step in the single worker thread, in order."""
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def _attempts_for(self, adapter: Adapter) -> int:
        return self._max_attempts(adapter) if callable(self._max_attempts) else self._max_attempts

    def _backoff_for(self, adapter: Adapter) -> Backoff:
        if self._backoff is None:
            return Backoff(rng=self.rng)
        return self._backoff(adapter) if callable(self._backoff) else self._backoff

    async def _pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep (injected) until ``seconds`` pass, ``wake`` is set or a stop is asked."""
        assert self._stop is not None
        waiters = [asyncio.ensure_future(self._sleep(max(0.0, seconds))), asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _wake_all(self) -> None:
        for platform, ev in self._wake.items():
            self._fresh[platform] = True
            ev.set()

    # ----------------------------------------------------------------- run

    def request_stop(self, reason: str = "asked to stop") -> None:
        """Stop taking events and wind down (safe from a signal handler)."""
        if self._stop is not None and not self._stop.is_set():
            log.info("stopping: %s", reason)
            self.report.stopped_by = reason
            self._accepting = False
            self._stop.set()

    async def run(self, *, max_seconds: float | None = None, install_signals: bool = False) -> RunReport:
        """Run until a stop is requested (or ``max_seconds`` pass); returns what happened."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qunyun-engine")
        installed: list[signal.Signals] = []
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.request_stop, f"signal {sig.name}")
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread / not supported
                    pass
        started: list[Adapter] = []
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._db(self.engine.setup_groups)
            self._accepting = True
            for adapter in self.adapters.values():
                adapter.history = self._history
                self._wake[adapter.platform] = asyncio.Event()
                self.limiters[adapter.platform] = RateLimiter(adapter.limits, clock=self._mono, sleep=self._sleep)
                await adapter.start(partial(self._sink, adapter))
                started.append(adapter)
            log.info("running: %s", ", ".join(f"{a.platform} ({', '.join(sorted(a.capabilities))})" for a in started))
            worker = asyncio.create_task(self._event_worker(), name="qunyun-events")
            ticker = asyncio.create_task(self._scheduler(), name="qunyun-scheduler")
            deliverers = [
                asyncio.create_task(self._delivery(a), name=f"qunyun-deliver-{a.platform}") for a in started
            ]
            tasks = [worker, ticker, *deliverers]
            if max_seconds is not None:
                tasks.append(asyncio.create_task(self._deadline(max_seconds), name="qunyun-deadline"))
            await self._stop.wait()
            # wind down: events already taken, then one last delivery pass
            self._accepting = False
            await self._queue.put(None)
            await worker
            await ticker
            self._flushing = True
            self._flush_now.set()
            try:
                await asyncio.wait_for(asyncio.gather(*deliverers), timeout=self.flush_seconds)
            except TimeoutError:
                log.warning("outbox flush took longer than %g s; the rest is delivered on the next run", self.flush_seconds)
        finally:
            self._accepting = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for adapter in started:
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("%s: error while stopping", adapter.platform)
            for sig in installed:
                loop.remove_signal_handler(sig)
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        r = self.report
        log.info(
            "stopped (%s): events %s, %d refused at the edge; jobs fired %d; actions delivered %d, retried %d, "
            "failed %d, notes to admins %d",
            r.stopped_by or "done", ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items())) or "none",
            r.refused_events, r.jobs_fired, r.delivered, r.retried, r.failed, r.notes_to_admins,
        )
        return r

    async def _deadline(self, seconds: float) -> None:
        await self._sleep(seconds)
        self.request_stop(f"ran for {seconds:g} s (--max-seconds)")

    # -------------------------------------------------------------- intake

    async def _sink(self, adapter: Adapter, data: dict[str, Any] | BaseEvent) -> bool:
        if not self._accepting:
            self.report.refused_events += 1
            log.info("%s: event refused: qunyun is stopping", adapter.platform)
            return False
        event = adapter.validate(data, f"{adapter.platform} event")
        if event is None:
            self.report.refused_events += 1
            return False
        # the sink answers once the engine has committed the event (or stored it as failed):
        # an adapter that moves its position on (a sync token, an update offset, a webhook's
        # 200) only then loses nothing if the process is killed in between
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, done))
        return await done

    async def _event_worker(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            event, done = item
            self.in_flight = event
            try:
                outcome = await self._db(self.engine.handle, event)
            except Exception:
                log.exception("event %s could not be handled", event.key)
                if not done.done():
                    done.set_result(False)  # not committed: the platform may deliver it again
                continue
            finally:
                self.in_flight = None
            if not done.done():
                done.set_result(True)
            self.report.count(outcome)
            etype = getattr(event, "type", "?")
            line = f"event {outcome.key} {etype} in {event.group}: {outcome.status}"
            if outcome.detail and outcome.status != "handled":
                line += f" ({outcome.detail})"
            (log.warning if outcome.status in ("rejected", "failed") else log.info)("%s", line)
            self._wake_all()

    async def _scheduler(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                fired = await self._db(self.engine.advance_to, self.clock.now())
            except Exception:
                log.exception("scheduler tick failed; trying again at the next tick")
                fired = 0
            if fired:
                self.report.jobs_fired += fired
                log.info("scheduler: %d job%s fired", fired, "s" * (fired != 1))
                self._wake_all()
            await self._pause(self.tick_seconds)

    async def _history(self, platform: str, group: str, etype: str, actor: str) -> dict[str, Any] | None:
        return await self._db(_latest_event, self.engine, platform, group, etype, actor)

    # ------------------------------------------------------------ delivery

    async def _delivery(self, adapter: Adapter) -> None:
        """One platform's delivery loop: dispatches attempts, at most ``concurrency`` at a time.

        The head action of each group may be in flight at once (one per
        group, so a group's order is kept); the pending actions are kept in
        memory per group and topped up from the outbox when new ones are
        committed (:meth:`_fetch`).
        """
        assert self._stop is not None and self._flush_now is not None
        lane = _Lane(self.concurrency[adapter.platform], self._backoff_for(adapter))
        self._lanes[adapter.platform] = lane
        wake = self._wake[adapter.platform]
        try:
            while True:
                if self._stop.is_set() and not self._flushing:
                    # attempts in flight finish by themselves; nothing new starts before the last pass
                    await self._flush_now.wait()
                    lane.full_due = -math.inf
                    continue
                wake.clear()
                if lane.full_due <= self._mono() or (self._fresh.get(adapter.platform) and lane.cached < lane.MAX):
                    await self._fetch(adapter, lane)
                if self._stop.is_set() and not self._flushing:
                    continue
                next_due = await self._dispatch(adapter, lane)
                if self._flushing:
                    if not lane.running:
                        return  # the last pass is done; what is left goes out on the next run
                    await wake.wait()  # an attempt finished: its group's next action may go
                    continue
                pause = self.poll_seconds if next_due is None else min(self.poll_seconds, next_due - self._mono())
                await self._pause(max(0.0, min(pause, lane.full_due - self._mono())), wake)
        finally:
            running = list(lane.running.values())
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _fetch(self, adapter: Adapter, lane: _Lane) -> None:
        """Top up the lane from the outbox: the rows after the last one seen, or all of them when due.

        Rows in flight, rows already in memory and rows whose attempt ended
        while the query ran are left out, so nothing is taken twice.
        """
        full = lane.full_due <= self._mono()
        self._fresh[adapter.platform] = False
        lane.ended.clear()
        rows = await self._db(outbox.pending, self.engine.db, platform=adapter.platform, limit=lane.FETCH,
                              after_seq=0 if full else lane.horizon)
        if full:
            lane.full_due = self._mono() + self.poll_seconds
        if len(rows) == lane.FETCH:
            self._fresh[adapter.platform] = True  # there is more after these
        for row in rows:
            lane.horizon = max(lane.horizon, int(row["seq"]))
            rid = row["id"]
            if rid in lane.known or rid in lane.ended:
                continue
            lane.add(row)
        lane.ended.clear()

    async def _dispatch(self, adapter: Adapter, lane: _Lane) -> float | None:
        """Start an attempt for each group whose head action may go now; returns when to look again."""
        limiter = self.limiters[adapter.platform]
        next_due: float | None = None
        heads = sorted((q[0]["seq"], group) for group, q in lane.queues.items() if q and group not in lane.running)
        for _, group in heads:
            if len(lane.running) >= lane.limit:
                break  # the in-flight cap: wait for an attempt to finish
            row = lane.queues[group][0]
            now = self._mono()
            due = self._not_before.get(row["id"])
            if due is not None and due > now:  # retried later; its group's later actions wait too
                next_due = due if next_due is None else min(next_due, due)
                continue
            wait = limiter.delay(group)
            if wait > 0:  # over the rate: this group (or all, if overall) waits
                next_due = now + wait if next_due is None else min(next_due, now + wait)
                continue
            await limiter.acquire(group)  # takes the tokens; never sleeps, the delay is 0
            lane.pop(group)
            lane.running[group] = asyncio.create_task(
                self._deliver_one(adapter, lane, row), name=f"qunyun-deliver-{adapter.platform}-{row['id']}"
            )
        return next_due

    async def _deliver_one(self, adapter: Adapter, lane: _Lane, row: dict[str, Any]) -> None:
        """One attempt at one action, and its bookkeeping; the group is free again when it returns."""
        group = row["group_key"]
        requeue = False
        try:
            result = await self._attempt(adapter, row)
            if result.status == "ok":
                self._not_before.pop(row["id"], None)
            elif result.status == "retry":
                attempts = int(row["attempts"]) + 1
                limit = self._attempts_for(adapter)
                if attempts >= limit:
                    await self._give_up(adapter, row, f"gave up after {attempts} attempts: {result.reason}")
                else:
                    wait = max(result.retry_after or 0.0, lane.backoff.delay(attempts))
                    if result.retry_after is not None:
                        self.limiters[adapter.platform].hold(result.retry_after, None if result.everywhere else group)
                    await self._db(outbox.mark_failed, self.engine.db, row["id"], result.reason)
                    self._not_before[row["id"]] = self._mono() + wait
                    row = {**row, "attempts": attempts, "last_error": result.reason}
                    requeue = True
                    self.report.retried += 1
                    log.warning("action %s (%s in %s) will be retried in %.1f s: %s", row["id"], row["type"], group,
                                wait, result.reason)
            else:
                await self._give_up(adapter, row, result.reason)
        finally:
            lane.running.pop(group, None)
            if requeue:
                lane.add(row)  # back at the head of its group: the later ones wait behind it
            else:
                lane.known.discard(row["id"])
                lane.ended.add(row["id"])
            self._wake[adapter.platform].set()

    def _target(self, adapter: Adapter, row: dict[str, Any]) -> tuple[Adapter, dict[str, Any]] | str:
        """The adapter and the action as it hands it over (with ``room``), or why it cannot go out."""
        payload = dict(row["payload"])
        platform = row["platform"]
        settings = self.engine.settings
        group = settings.group(platform, row["group_key"])
        if payload.get("type") != "notify_admins":
            payload["room"] = group.room if group is not None else row["group_key"]
            return adapter, payload
        community = settings.communities.get(row["community_id"])
        if community is None:
            return f"community {row['community_id']!r} is no longer configured"
        admin_groups: list[GroupSettings] = [g for g in community.groups.values() if g.admin]
        admin_groups.sort(key=lambda g: g.platform != platform)  # same platform first
        for target in admin_groups:
            other = self.adapters.get(target.platform)
            if other is not None:
                return other, {
                    **payload, "type": "send", "group": target.key, "room": target.room, "mentions": [],
                    "reply_to": None, "notify_admins": True,
                }
        return (
            f"no admins' group of community {community.id!r} is served by a running adapter "
            "(mark a group `admin: true` on a configured platform)"
        )

    async def _attempt(self, adapter: Adapter, row: dict[str, Any]) -> DeliveryResult:
        target = self._target(adapter, row)
        if isinstance(target, str):
            return DeliveryResult.failed(target)
        via, action = target
        try:
            result = await via.deliver(action)
        except Exception as exc:  # an adapter bug must not stop delivery
            log.exception("%s: deliver raised", via.platform)
            result = DeliveryResult.retry(f"adapter error: {type(exc).__name__}: {exc}")
        if result.status == "ok":
            await self._db(outbox.mark_delivered, self.engine.db, [row["id"]], self.clock.now())
            self.report.delivered += 1
            log.info("action %s %s in %s delivered%s", row["id"], row["type"], row["group_key"],
                     f" as {result.platform_id}" if result.platform_id else "")
        return result

    async def _give_up(self, adapter: Adapter, row: dict[str, Any], reason: str) -> None:
        self._not_before.pop(row["id"], None)
        note = None
        if row["type"] != "notify_admins" and not str(row["id"]).startswith("note-"):
            note = self._note(row, reason)
        await self._db(refuse, self.engine.db, row["id"], reason, note)
        self.report.failed += 1
        if note is not None:
            self.report.notes_to_admins += 1
        log.warning("action %s (%s in %s) failed for good: %s%s", row["id"], row["type"], row["group_key"], reason,
                    "; the admins are told" if note is not None else "")
        self._fresh[adapter.platform] = True  # the note is a new pending action
        self._wake[adapter.platform].set()

    def _note(self, row: dict[str, Any], reason: str) -> dict[str, Any]:
        """The outbox row of the admins' note about a refused action."""
        community = self.engine.settings.communities.get(row["community_id"])
        locale = community.locale if community is not None and community.locale in _REFUSED else "en"
        payload = row["payload"] if isinstance(row["payload"], dict) else {}
        group = self.engine.settings.group(row["platform"], row["group_key"])
        details = [f"{k}={str(payload[k])[:80]}" for k in ("member", "msg_id") if payload.get(k)]
        text = _REFUSED[locale].format(
            platform=row["platform"],
            what=_WHAT[locale].get(row["type"], row["type"]),
            playbook=row["playbook"],
            group=group.name if group is not None else row["group_key"],
            detail=("; " + ", ".join(details)) if details else "",
            reason=reason[:300],
        )
        now = self.clock.now()
        nid = note_id(row["id"])
        return {
            "id": nid, "ts": now, "community_id": row["community_id"], "group_key": row["group_key"],
            "platform": row["platform"], "type": "notify_admins", "playbook": row["playbook"], "cause": row["cause"],
            "payload": {"v": 1, "id": nid, "ts": now.isoformat(), "group": row["group_key"], "type": "notify_admins",
                        "text": text, "playbook": row["playbook"], "cause": row["cause"]},
            "status": "pending", "attempts": 0, "downgraded_from": row["type"],
        }


def refuse(db: Any, action_id: str, reason: str, note: dict[str, Any] | None) -> None:
    """Mark an action failed for good and, in the same transaction, queue the admins' note."""
    t = m.table(m.ActionRow)
    with db.begin() as conn:
        conn.execute(
            update(t).where(t.c.id == action_id).values(
                attempts=t.c.attempts + 1, last_error=reason[:2000], status="failed"
            )
        )
        if note is not None and conn.execute(select(t.c.seq).where(t.c.id == note["id"])).first() is None:
            conn.execute(insert(t).values(**note))


def _latest_event(engine: Engine, platform: str, group: str, etype: str, actor: str) -> dict[str, Any] | None:
    et = m.table(m.EventRow)
    gt = m.table(m.Group)
    with engine.db.connect() as conn:
        row = conn.execute(
            select(et.c.payload)
            .select_from(et.join(gt, gt.c.id == et.c.group_id))
            .where(gt.c.platform == platform, gt.c.key == group, et.c.type == etype, et.c.actor == actor)
            .order_by(et.c.seq.desc())
            .limit(1)
        ).first()
    return row[0] if row is not None and isinstance(row[0], dict) else None


def rooms_of(settings: Settings, platform: str) -> dict[str, str]:
    """Platform room id → group key, for the configured groups on ``platform``."""
    return {
        g.room: g.key
        for c in settings.communities.values()
        for (p, _), g in c.groups.items()
        if p == platform
    }


__all__ = ["RunReport", "Runtime", "note_id", "refuse", "rooms_of"]

