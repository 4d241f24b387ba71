"""The live runtime with a fake adapter, on a fake clock.

Time only moves when a test says so (:class:`FakeTime`); the only real
waiting is a few milliseconds of event-loop turns while the engine's worker
thread does its database work.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from qunyun.adapters.base import (
    Adapter,
    Backoff,
    DeliveryResult,
    DoctorCheck,
    Limits,
    Rate,
    RateLimiter,
    Sink,
)
from qunyun.config.model import settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.engine.engine import Engine
from qunyun.runtime import Runtime, note_id
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CONFIG = """
communities:
  - id: c1
    name: Test
    timezone: Asia/Shanghai
    locale: en
    groups:
      - {id: g1, platform: fake, room: room-1}
      - {id: g2, platform: fake, room: room-2}
      - {id: g3, platform: fake, room: room-3}
      - {id: admins, platform: fake, room: room-admins, admin: true}
    playbooks:
      moderation: {}
      checkin: {}
      welcome: {batch_size: 3, batch_minutes: 10}
"""


class FakeTime:
    """A monotonic clock and a sleep that only move when :meth:`advance` is called."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._n = itertools.count()

    def mono(self) -> float:
        return self.clock.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.mono() + seconds, next(self._n), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        now = self.mono()
        while self._waiters and self._waiters[0][0] <= now:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
        await turns(20)


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0.001)


async def until(cond: Callable[[], bool], what: str = "condition") -> None:
    """Let the loop (and the worker thread) run until ``cond`` holds; at most ~5 s of turns."""
    for _ in range(5000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


class FakeAdapter(Adapter):
    """A platform in memory. ``script`` decides the next delivery results (default: ok)."""

    platform = "fake"
    capabilities = frozenset({"send", "direct", "delete", "notify_admins"})

    def __init__(self, time: FakeTime, *, dedupe: bool = False, script: list[DeliveryResult] | None = None) -> None:
        super().__init__()
        self.time = time
        self.dedupe = dedupe
        self.script = list(script or [])
        self.always: DeliveryResult | None = None
        self.calls: list[tuple[dict[str, Any], float]] = []
        #: what members of the chat see
        self.shown: list[dict[str, Any]] = []
        self.sink: Sink | None = None
        self.gate: asyncio.Future[None] | None = None
        self.stopped = False

    async def start(self, sink: Sink) -> None:
        self.sink = sink

    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        self.calls.append((action, self.time.mono()))
        result = self.script.pop(0) if self.script else (self.always or DeliveryResult.ok())
        seen = self.dedupe and any(a["id"] == action["id"] for a in self.shown)
        if result.status == "ok" and not seen:
            self.shown.append(action)
        if self.gate is not None:
            await self.gate  # the platform took it; qunyun "crashes" before noting so
        return result

    async def stop(self) -> None:
        self.stopped = True

    async def check(self) -> list[DoctorCheck]:
        return [DoctorCheck("fake", True, "always fine")]

    async def push(self, event: dict[str, Any]) -> bool:
        assert self.sink is not None
        return await self.sink(event)


class World:
    def __init__(self, db_url: str) -> None:
        self.db = open_engine(db_url)
        migrate(self.db)
        self.settings = settings_from_text(CONFIG, "<runtime test>")
        self.clock = FakeClock(START)
        self.time = FakeTime(self.clock)
        self._ids = itertools.count(1)

    def engine(self, adapter: Adapter) -> Engine:
        return Engine(self.db, self.settings, clock=self.clock, capabilities={adapter.platform: adapter.capabilities})

    def runtime(self, adapter: Adapter, **kwargs: Any) -> Runtime:
        kwargs.setdefault("backoff", Backoff(base=2.0, cap=60.0, rng=random.Random(7)))
        return Runtime(self.engine(adapter), [adapter], mono=self.time.mono, sleep=self.time.sleep, **kwargs)

    def message(self, uid: str, text: str, group: str = "g1") -> dict[str, Any]:
        n = next(self._ids)
        return {
            "v": 1, "id": f"e{n}", "ts": self.clock.now().isoformat(), "platform": "fake", "group": group,
            "type": "message", "actor": {"id": uid, "name": uid.upper()}, "msg_id": f"m{n}", "text": text,
        }

    def join(self, uid: str, group: str = "g1") -> dict[str, Any]:
        n = next(self._ids)
        return {
            "v": 1, "id": f"e{n}", "ts": self.clock.now().isoformat(), "platform": "fake", "group": group,
            "type": "member_joined", "actor": {"id": uid, "name": uid.upper()},
        }

    def actions(self) -> list[dict[str, Any]]:
        t = m.table(m.ActionRow)
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(select(t).order_by(t.c.seq)).mappings()]

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def world(db_url: str) -> Any:
    w = World(db_url)
    yield w
    w.close()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def started(rt: Runtime, adapter: FakeAdapter, **kwargs: Any) -> asyncio.Task[Any]:
    task = asyncio.create_task(rt.run(**kwargs))
    await until(lambda: adapter.sink is not None, "the adapter to start")
    return task


# --------------------------------------------------------------- the flow


def test_events_in_actions_delivered_once(world: World) -> None:
    async def main() -> None:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        event = world.message("u1", "打卡")
        assert await adapter.push(event)
        await until(lambda: len(adapter.calls) == 1, "the check-in reply")
        assert await adapter.push(event)  # the platform delivers the same event twice
        await until(lambda: rt.report.outcomes.get("duplicate") == 1, "the duplicate")
        await turns()
        rt.request_stop("test")
        report = await task
        assert report.outcomes == {"handled": 1, "duplicate": 1}
        assert report.delivered == 1
        assert adapter.stopped

    run(main())
    [action] = world.actions()
    assert action["status"] == "delivered" and action["attempts"] == 1
    assert action["payload"]["type"] == "send" and "checked in" in action["payload"]["text"]


def test_the_adapter_gets_the_room_of_the_group(world: World) -> None:
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡", group="g2"))
        await until(lambda: len(adapter.calls) == 1)
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    action = adapter.calls[0][0]
    assert action["room"] == "room-2" and action["group"] == "g2" and action["mentions"] == ["u1"]


def test_bad_payloads_are_reported_and_skipped(world: World) -> None:
    async def main() -> Runtime:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        broken = world.message("u1", "打卡")
        del broken["actor"]
        assert await adapter.push(broken) is False
        assert await adapter.push({**world.message("u1", "x"), "ts": "2026-11-02T09:00:00"}) is False
        assert await adapter.push({**world.message("u1", "x"), "platform": "other"}) is False
        assert await adapter.push(world.message("u1", "打卡"))
        await until(lambda: len(adapter.calls) == 1, "the good event's reply")
        rt.request_stop()
        await task
        assert adapter.bad_count == 3
        whats = [b.what for b in adapter.bad]
        assert "actor" in whats[0] and "required" in whats[0]
        assert "time zone" in whats[1]
        assert "platform 'other'" in whats[2]
        return rt

    rt = run(main())
    assert rt.report.refused_events == 3
    assert rt.report.outcomes == {"handled": 1}


def test_restart_resumes_pending_actions_without_doubles(world: World) -> None:
    async def first() -> None:
        down = FakeAdapter(world.time)
        down.always = DeliveryResult.retry("platform unreachable")
        rt = world.runtime(down)
        task = await started(rt, down)
        await down.push(world.message("u1", "打卡"))
        await down.push(world.message("u2", "打卡"))
        await until(lambda: rt.report.retried >= 1, "a failed attempt")
        rt.request_stop()
        await task
        assert down.shown == []

    async def second() -> FakeAdapter:
        up = FakeAdapter(world.time)
        rt = world.runtime(up)
        await world.time.advance(120)
        task = await started(rt, up)
        await until(lambda: len(up.shown) == 2, "both replies after the restart")
        await turns()
        rt.request_stop()
        await task
        return up

    async def third() -> FakeAdapter:
        again = FakeAdapter(world.time)
        rt = world.runtime(again)
        task = await started(rt, again)
        await world.time.advance(5)
        await turns(20)
        rt.request_stop()
        await task
        return again

    run(first())
    assert [a["status"] for a in world.actions()] == ["pending", "pending"]
    up = run(second())
    ids = [a["id"] for a in world.actions()]
    assert [a["id"] for a in up.shown] == ids
    assert {a["status"] for a in world.actions()} == {"delivered"}
    assert run(third()).calls == []  # nothing is delivered twice


def test_a_crash_between_delivery_and_bookkeeping_redelivers_the_same_id(world: World) -> None:
    """At-least-once: the platform got it, qunyun died before noting it. The same action id
    comes again, so a platform that de-duplicates by id (Matrix txnId) shows it once."""

    async def crashing() -> FakeAdapter:
        adapter = FakeAdapter(world.time, dedupe=True)
        adapter.gate = asyncio.get_running_loop().create_future()  # never resolved: the crash
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await until(lambda: len(adapter.shown) == 1, "the platform to receive it")
        task.cancel()  # the process dies here
        with pytest.raises(asyncio.CancelledError):
            await task
        return adapter

    async def restarted(platform_state: list[dict[str, Any]]) -> FakeAdapter:
        adapter = FakeAdapter(world.time, dedupe=True)
        adapter.shown = platform_state
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await until(lambda: len(adapter.calls) == 1, "the redelivery")
        rt.request_stop()
        await task
        return adapter

    first = run(crashing())
    assert world.actions()[0]["status"] == "pending"
    second = run(restarted(first.shown))
    assert second.calls[0][0]["id"] == first.calls[0][0]["id"]
    assert len(second.shown) == 1
    assert world.actions()[0]["status"] == "delivered"


def test_scheduled_jobs_resume_after_a_restart(world: World) -> None:
    async def before() -> None:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.join("u1"))
        await until(lambda: rt.report.outcomes.get("handled") == 1, "the join")
        rt.request_stop()
        await task
        assert adapter.calls == []  # the welcome waits for its batch

    async def after() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await world.time.advance(11 * 60)  # past the batch time; the next tick fires the stored job
        for _ in range(30):  # a tick that was mid-way when time jumped sleeps once more
            if adapter.calls:
                break
            await world.time.advance(1)
        await until(lambda: len(adapter.calls) == 1, "the welcome")
        rt.request_stop()
        report = await task
        assert report.jobs_fired >= 1
        return adapter

    run(before())
    adapter = run(after())
    action = adapter.calls[0][0]
    assert action["type"] == "send" and action["mentions"] == ["u1"] and action["room"] == "room-1"


def test_stop_finishes_the_event_in_flight_and_takes_no_more(world: World) -> None:
    async def main() -> tuple[Runtime, FakeAdapter]:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        engine = rt.engine
        entered = threading.Event()
        release = threading.Event()
        handle = engine.handle

        def slow_handle(event: Any) -> Any:
            entered.set()
            release.wait(5)
            return handle(event)

        engine.handle = slow_handle  # type: ignore[method-assign]
        task = await started(rt, adapter)
        first = asyncio.create_task(adapter.push(world.message("u1", "打卡")))
        await until(entered.is_set, "the engine to start on the event")
        rt.request_stop("SIGTERM (test)")
        assert await adapter.push(world.message("u2", "打卡")) is False  # no new events
        assert not first.done()  # the sink answers only once the event is committed
        release.set()
        assert await first is True
        await task
        return rt, adapter

    rt, adapter = run(main())
    assert rt.report.outcomes == {"handled": 1}
    assert rt.report.refused_events == 1
    assert [a[0]["mentions"] for a in adapter.calls] == [["u1"]]  # its reply went out in the flush
    t = m.table(m.EventRow)
    with world.db.connect() as conn:
        assert [r[0] for r in conn.execute(select(t.c.actor))] == ["u1"]


def test_the_sink_answers_only_after_the_event_is_committed(world: World) -> None:
    """An adapter moves its position on (sync token, update offset, webhook 200) when the sink
    answers: by then the event is in the database, so a kill in between loses nothing."""

    async def main() -> None:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        event = world.message("u1", "打卡")
        assert await adapter.push(event) is True
        t = m.table(m.EventRow)
        with world.db.connect() as conn:
            assert conn.execute(select(t.c.seq).where(t.c.event_id == event["id"])).first() is not None
        rt.request_stop("test")
        await task

    run(main())


def test_max_seconds_stops_the_run(world: World) -> None:
    async def main() -> Any:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter, max_seconds=30)
        await turns(20)
        await world.time.advance(10)
        assert not task.done()
        await world.time.advance(25)
        return await asyncio.wait_for(task, 5)

    report = run(main())
    assert "30" in report.stopped_by


# ------------------------------------------------------- retries and refusals


def test_retry_after_is_honoured(world: World) -> None:
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time, script=[DeliveryResult.retry("429: slow down", after=30)])
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await until(lambda: rt.report.retried == 1)
        await world.time.advance(10)
        await turns(20)
        assert len(adapter.calls) == 1  # still waiting
        await world.time.advance(25)
        await until(lambda: len(adapter.calls) == 2, "the retry")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    (first, t0), (second, t1) = adapter.calls
    assert first["id"] == second["id"] and t1 - t0 >= 30
    [row] = world.actions()
    assert row["status"] == "delivered" and row["attempts"] == 2 and "429" in row["last_error"]


def test_a_waiting_group_keeps_its_order_while_other_groups_go_on(world: World) -> None:
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time, script=[DeliveryResult.retry("busy", after=20)])
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))            # g1, first: retried
        await until(lambda: rt.report.retried == 1)
        await adapter.push(world.message("u2", "打卡"))            # g1, must wait behind it
        await adapter.push(world.message("u3", "打卡", group="g2"))  # g2, goes at once
        await until(lambda: len(adapter.calls) == 2, "the other group's reply")
        await turns(20)
        assert [c[0]["group"] for c in adapter.calls] == ["g1", "g2"]
        await world.time.advance(25)
        await until(lambda: len(adapter.calls) == 4, "g1 in order")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    assert [c[0]["mentions"] for c in adapter.calls] == [["u1"], ["u3"], ["u1"], ["u2"]]


def test_gives_up_after_max_attempts_and_tells_the_admins(world: World) -> None:
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        adapter.always = DeliveryResult.retry("platform unreachable")
        rt = world.runtime(adapter, max_attempts=3)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        for _ in range(10):
            await world.time.advance(60)
            if rt.report.failed:
                break
        await until(lambda: rt.report.failed == 1, "giving up")
        adapter.always = None  # the admins' group can be reached
        await world.time.advance(60)
        await until(lambda: any(c[0]["room"] == "room-admins" for c in adapter.calls), "the admins' note")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    reply, note = world.actions()
    assert reply["status"] == "failed" and reply["attempts"] == 3
    assert reply["last_error"] == "gave up after 3 attempts: platform unreachable"
    assert note["id"] == note_id(reply["id"]) and note["downgraded_from"] == "send"
    assert note["status"] == "delivered"
    text = adapter.calls[-1][0]["text"]
    assert "refused" in text and "platform unreachable" in text and "check" not in adapter.calls[-1][0]["type"]


def test_a_refusal_is_permanent_and_the_admins_are_asked_to_do_it(world: World) -> None:
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)

        async def deliver(action: dict[str, Any]) -> DeliveryResult:
            adapter.calls.append((action, world.time.mono()))
            if action["type"] == "delete":
                return DeliveryResult.failed("delete_msg: retcode 200: no permission")
            return DeliveryResult.ok()

        adapter.deliver = deliver  # type: ignore[method-assign]
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "加微信 abc123 代理 http://spam.example.com"))
        await until(lambda: any(c[0]["room"] == "room-admins" for c in adapter.calls), "the admins' note")
        rt.request_stop()
        report = await task
        assert report.failed == 1 and report.notes_to_admins == 1
        return adapter

    adapter = run(main())
    rows = {r["type"]: r for r in world.actions()}
    delete = rows["delete"]
    assert delete["status"] == "failed" and delete["attempts"] == 1
    assert "no permission" in delete["last_error"]
    note = rows["notify_admins"]
    assert note["downgraded_from"] == "delete" and note["status"] == "delivered"
    sent = [c[0] for c in adapter.calls if c[0]["room"] == "room-admins"]
    assert len(sent) == 1 and sent[0]["type"] == "send"
    assert "delete a message" in sent[0]["text"] and "no permission" in sent[0]["text"]


def test_an_action_the_adapter_cannot_do_is_downgraded_by_the_engine(world: World) -> None:
    """The fake platform cannot remove: the engine turns removals into notes to the admins."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        for i in range(4):  # the default moderation removes after repeated strikes
            await adapter.push(world.message("u1", f"加微信 abc12{i} 代理 http://spam{i}.example.com"))
        await until(lambda: any(c[0]["room"] == "room-admins" for c in adapter.calls), "the admins' note")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    assert all(c[0]["type"] != "remove" for c in adapter.calls)
    notes = [r for r in world.actions() if r["downgraded_from"] == "remove"]
    assert notes and notes[0]["type"] == "notify_admins" and notes[0]["status"] == "delivered"


# ------------------------------------------------- concurrent delivery


class GatedAdapter(FakeAdapter):
    """Each delivery waits until the test releases it (by the member it mentions): a slow platform
    whose every call the test finishes by hand. ``accepted`` is what the platform took, in order."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__(time)
        self.gates: dict[str, asyncio.Future[DeliveryResult]] = {}
        self.in_flight: list[str] = []
        self.most_in_flight = 0
        self.accepted: list[str] = []

    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        who = (action.get("mentions") or ["?"])[0]
        self.calls.append((action, self.time.mono()))
        gate = self.gates[who] = asyncio.get_running_loop().create_future()
        self.in_flight.append(who)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            result = await gate
        finally:
            self.in_flight.remove(who)
        if result.status == "ok":
            self.accepted.append(action["id"])
        return result

    def release(self, who: str, result: DeliveryResult | None = None) -> None:
        self.gates[who].set_result(result or DeliveryResult.ok())

    def called(self) -> list[str]:
        return [(c[0].get("mentions") or ["?"])[0] for c in self.calls]


def test_two_slow_groups_overlap_and_each_keeps_its_order(world: World) -> None:
    async def main() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))              # g1
        await adapter.push(world.message("u2", "打卡"))              # g1, after u1
        await adapter.push(world.message("u3", "打卡", group="g2"))  # g2
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u3"], "both groups in flight at once")
        await turns(20)
        assert "u2" not in adapter.called()  # g1's second action waits for its first
        adapter.release("u3")                # g2 finishes first: g1 is still held by u1
        await until(lambda: rt.report.delivered == 1, "g2's reply noted")
        await turns(20)
        assert adapter.in_flight == ["u1"] and "u2" not in adapter.called()
        adapter.release("u1")
        await until(lambda: adapter.in_flight == ["u2"], "g1's second action after its first")
        adapter.release("u2")
        await until(lambda: rt.report.delivered == 3, "all three noted")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    assert adapter.called() == ["u1", "u3", "u2"] or adapter.called() == ["u3", "u1", "u2"]
    assert adapter.most_in_flight == 2
    rows = world.actions()
    assert [r["status"] for r in rows] == ["delivered"] * 3 and [r["attempts"] for r in rows] == [1, 1, 1]
    assert sorted(adapter.accepted) == sorted(r["id"] for r in rows)


def test_a_failing_head_holds_its_group_while_others_are_in_flight(world: World) -> None:
    """A retried action goes back to the head of its group; the group's later action waits for the retry."""
    async def main() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await adapter.push(world.message("u2", "打卡"))
        await adapter.push(world.message("u3", "打卡", group="g2"))
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u3"])
        adapter.release("u1", DeliveryResult.retry("timed out", after=20))
        await until(lambda: rt.report.retried == 1, "the retry noted")
        await turns(20)
        assert adapter.called().count("u2") == 0 and adapter.in_flight == ["u3"]
        adapter.release("u3")
        await world.time.advance(25)
        await until(lambda: adapter.in_flight == ["u1"], "the retry of u1")
        adapter.release("u1")
        await until(lambda: adapter.in_flight == ["u2"], "then u2")
        adapter.release("u2")
        await until(lambda: rt.report.delivered == 3)
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    g1 = [who for who in adapter.called() if who in ("u1", "u2")]
    assert g1 == ["u1", "u1", "u2"]
    first, second = (r for r in world.actions() if r["payload"]["mentions"] in (["u1"], ["u2"]))
    assert (first["status"], first["attempts"], second["status"], second["attempts"]) == ("delivered", 2, "delivered", 1)


def test_no_more_than_the_in_flight_cap(world: World) -> None:
    async def main() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter, concurrency=2)
        task = await started(rt, adapter)
        for uid, group in (("u1", "g1"), ("u2", "g2"), ("u3", "g3")):
            await adapter.push(world.message(uid, "打卡", group=group))
        await until(lambda: len(adapter.in_flight) == 2, "two in flight")
        await until(lambda: rt.report.outcomes.get("handled") == 3, "all three handled")
        await turns(30)
        assert sorted(adapter.in_flight) == ["u1", "u2"]  # the third group waits for a free slot
        adapter.release("u2")
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u3"], "the third takes the free slot")
        adapter.release("u1")
        adapter.release("u3")
        await until(lambda: rt.report.delivered == 3)
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    assert adapter.most_in_flight == 2 and len(adapter.calls) == 3


def test_the_overall_rate_limit_holds_even_with_free_slots(world: World) -> None:
    async def main() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        adapter.limits = Limits(per_group=None, overall=Rate(1, 10))
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await adapter.push(world.message("u2", "打卡", group="g2"))
        await until(lambda: rt.report.outcomes.get("handled") == 2 and len(adapter.in_flight) == 1)
        await turns(30)
        assert adapter.called() == ["u1"]  # one token per 10 s over the whole platform
        await world.time.advance(10)
        await until(lambda: len(adapter.calls) == 2, "the second after 10 s")
        adapter.release("u1")
        adapter.release("u2")
        await until(lambda: rt.report.delivered == 2)
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    (_, t0), (_, t1) = adapter.calls
    assert t1 - t0 >= 10


def test_a_platform_wide_retry_after_holds_every_group(world: World) -> None:
    async def main() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await until(lambda: adapter.in_flight == ["u1"])
        adapter.release("u1", DeliveryResult.retry("429: slow down", after=30, everywhere=True))
        await until(lambda: rt.report.retried == 1)
        await adapter.push(world.message("u2", "打卡", group="g2"))
        await until(lambda: rt.report.outcomes.get("handled") == 2)
        await world.time.advance(20)
        await turns(30)
        assert adapter.called() == ["u1"]  # g2 is held too
        await world.time.advance(15)
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u2"], "both after the hold")
        adapter.release("u1")
        adapter.release("u2")
        await until(lambda: rt.report.delivered == 2)
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    assert adapter.called() == ["u1", "u1", "u2"] or adapter.called() == ["u1", "u2", "u1"]
    assert all(t >= adapter.calls[0][1] + 30 for _, t in adapter.calls[1:])


def test_stop_with_actions_in_flight_loses_nothing_and_doubles_nothing(world: World) -> None:
    async def first() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await adapter.push(world.message("u2", "打卡"))
        await adapter.push(world.message("u3", "打卡", group="g2"))
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u3"])
        rt.request_stop("SIGTERM (test)")
        await turns(20)
        assert not task.done()  # the attempts in flight are waited for
        adapter.release("u1")
        adapter.release("u3")
        await until(lambda: adapter.in_flight == ["u2"], "the last pass takes g1's second action")
        adapter.release("u2")
        report = await asyncio.wait_for(task, 5)
        assert report.delivered == 3
        return adapter

    async def again() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await world.time.advance(10)
        await turns(20)
        rt.request_stop()
        await task
        return adapter

    adapter = run(first())
    assert len(adapter.accepted) == 3 and {r["status"] for r in world.actions()} == {"delivered"}
    assert run(again()).calls == []


def test_a_flush_that_runs_out_of_time_leaves_the_action_pending_for_the_next_run(world: World) -> None:
    async def first() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter, flush_seconds=0.3)  # real seconds: the flush is bounded by wall time
        task = await started(rt, adapter)
        await adapter.push(world.message("u1", "打卡"))
        await adapter.push(world.message("u3", "打卡", group="g2"))
        await until(lambda: sorted(adapter.in_flight) == ["u1", "u3"])
        adapter.release("u3")
        await until(lambda: rt.report.delivered == 1)
        rt.request_stop()
        await asyncio.wait_for(task, 5)  # u1's platform call never answers: cut off by the flush limit
        assert adapter.in_flight == []
        return adapter

    async def second() -> GatedAdapter:
        adapter = GatedAdapter(world.time)
        rt = world.runtime(adapter)
        task = await started(rt, adapter)
        await until(lambda: adapter.in_flight == ["u1"], "u1 again")
        adapter.release("u1")
        await until(lambda: rt.report.delivered == 1)
        rt.request_stop()
        await task
        return adapter

    one = run(first())
    by_mention = {r["payload"]["mentions"][0]: r for r in world.actions()}
    assert by_mention["u1"]["status"] == "pending" and by_mention["u3"]["status"] == "delivered"
    two = run(second())
    assert two.called() == ["u1"]  # g2's action is not sent again
    assert sorted(one.accepted + two.accepted) == sorted(r["id"] for r in world.actions())
    assert {r["status"] for r in world.actions()} == {"delivered"}


def test_many_groups_many_actions_each_delivered_once_in_group_order(world: World) -> None:
    """A burst over three groups through a platform that answers after a random number of loop turns."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(world.time)
        adapter.limits = Limits(per_group=None, overall=None)
        rng = random.Random(3)
        seen: list[dict[str, Any]] = []

        async def deliver(action: dict[str, Any]) -> DeliveryResult:
            seen.append(action)
            await turns(rng.randrange(0, 4))
            adapter.shown.append(action)
            return DeliveryResult.ok()

        adapter.deliver = deliver  # type: ignore[method-assign]
        rt = world.runtime(adapter, concurrency=3)
        task = await started(rt, adapter)
        for i in range(30):
            await adapter.push(world.message(f"u{i}", "打卡", group=("g1", "g2", "g3")[i % 3]))
        await until(lambda: len(adapter.shown) == 30, "all 30 replies")
        rt.request_stop()
        await task
        return adapter

    adapter = run(main())
    rows = world.actions()
    assert sorted(a["id"] for a in adapter.shown) == sorted(r["id"] for r in rows)  # once each
    assert {r["status"] for r in rows} == {"delivered"}
    for group in ("g1", "g2", "g3"):
        decided = [r["id"] for r in rows if r["group_key"] == group]
        assert [a["id"] for a in adapter.shown if a["group"] == group] == decided


def test_concurrency_is_per_platform_and_must_be_positive(world: World) -> None:
    adapter = FakeAdapter(world.time)
    assert world.runtime(adapter).concurrency == {"fake": 8}  # the default
    assert world.runtime(adapter, concurrency=lambda a: 3).concurrency == {"fake": 3}
    with pytest.raises(ValueError, match="at least 1"):
        world.runtime(adapter, concurrency=lambda a: 0)


# ----------------------------------------------------- rate limiter, backoff


def test_rate_limiter_per_group_and_overall() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    limiter = RateLimiter(Limits(per_group=Rate(2, 60), overall=Rate(3, 1)), clock=time.mono, sleep=time.sleep)

    async def main() -> None:
        assert await limiter.acquire("a") == 0
        assert await limiter.acquire("a") == 0
        assert limiter.delay("a") == pytest.approx(30.0)  # one token back every 30 s
        assert limiter.delay("b") == 0
        assert await limiter.acquire("b") == 0
        assert limiter.delay("c") == pytest.approx(1 / 3)  # the overall bucket is empty now
        waiter = asyncio.create_task(limiter.acquire("a"))
        await turns()
        assert not waiter.done()
        await time.advance(30)
        assert await asyncio.wait_for(waiter, 1) == pytest.approx(30.0)

    run(main())


def test_rate_limiter_holds_when_the_platform_says_so() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    limiter = RateLimiter(Limits(per_group=None, overall=None), clock=time.mono, sleep=time.sleep)
    limiter.hold(12, "a")
    assert limiter.delay("a") == pytest.approx(12) and limiter.delay("b") == 0
    limiter.hold(5)
    assert limiter.delay("b") == pytest.approx(5)
    clock.advance(timedelta(seconds=6))
    assert limiter.delay("b") == 0 and limiter.delay("a") == pytest.approx(6)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=30.0, rng=random.Random(1))
    delays = [backoff.delay(n) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        top = min(30.0, 2.0 ** (n - 1))
        assert top / 2 <= d <= top
    assert max(delays) <= 30.0 and delays[-1] >= 15.0
    again = Backoff(base=1.0, factor=2.0, cap=30.0, rng=random.Random(1))
    assert [again.delay(n) for n in range(1, 9)] == delays  # the same seed, the same waits
    assert Backoff(cap=10.0).delay(10_000) <= 10.0
    with pytest.raises(ValueError):
        Backoff(base=0)
