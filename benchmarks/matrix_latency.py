"""Event-to-action latency through the Matrix adapter, against a local Synapse.

    python benchmarks/matrix_latency.py                      # 50 events/s for 60 s, one room
    python benchmarks/matrix_latency.py --rate 50 --seconds 10
    python benchmarks/matrix_latency.py --rooms 10           # the same load spread over 10 rooms

Starts Synapse on loopback (SQLite, generated config: the same fixture the
tests use), registers a bot and ``--senders`` people, and runs the real
stack: ``MatrixAdapter`` → ``Runtime`` → ``Engine`` (SQLite, the ``faq``
playbook answering every message, cooldown 0) → outbox → ``deliver``. The
people post a question at ``--rate`` messages per second, round robin over
``--rooms`` rooms (each a group of the community); each one gets an answer
sent as a reply to it. The runtime delivers up to ``--concurrency`` actions
at once, each of a different room (a room's answers go out in order).

For each message it measures, on one monotonic clock:

- **total**: the person starts sending → the homeserver accepted the bot's answer;
- **homeserver in**: send → the adapter's /sync handed the event over;
- **engine**: ``Engine.handle`` for that event (the whole transaction);
- **queue to engine**: waiting in the runtime's event queue;
- **outbox wait**: committed → the delivery loop starts the action (behind the room's earlier ones);
- **homeserver out**: the ``deliver`` call (PUT …/send/m.room.message/{txnId}).

and reports the median and p99 of each, the share of the total spent in
each part, and whether anything was lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = """
communities:
  - id: bench
    name: Bench
    timezone: Asia/Shanghai
    locale: zh-CN
    groups:
{groups}
    playbooks:
      faq:
        cooldown_minutes: 0
        entries:
          - id: price
            keywords: [多少钱]
            answer: {{zh-CN: 本期 399 元。, en: 399 yuan.}}
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


async def bench(rate: float, seconds: float, senders: int, workdir: Path, rooms_n: int = 1,
                concurrency: int = 8) -> dict[str, Any]:
    from mautrix.client import ClientAPI
    from mautrix.types import EventType, RoomCreatePreset
    from tests.adapters.synapse import Synapse

    from qunyun.adapters.matrix import MatrixAdapter, MatrixSettings
    from qunyun.config.model import settings_from_text
    from qunyun.core.clock import SystemClock
    from qunyun.engine.engine import Engine
    from qunyun.runtime import Runtime, rooms_of
    from qunyun.store.db import migrate, open_engine

    server = Synapse(workdir / "synapse")
    (workdir / "synapse").mkdir()
    server.configure()
    server.start()
    clients: list[ClientAPI] = []
    try:
        tag = secrets.token_hex(3)
        bot = server.register(f"bot{tag}")
        people = [server.register(f"p{i}{tag}", displayname=f"成员{i}") for i in range(senders)]
        for p in people:
            clients.append(ClientAPI(base_url=server.url, token=p.access_token, mxid=p.user_id))
        rooms: list[str] = []
        for _ in range(rooms_n):
            room = str(await clients[0].create_room(preset=RoomCreatePreset.PUBLIC, invitees=[bot.user_id],
                                                    power_level_override={"users": {bot.user_id: 50}}))
            for c in clients[1:]:
                await c.join_room(room)
            rooms.append(room)

        groups = "\n".join(f'      - {{id: room{i}, platform: matrix, room: "{r}"}}' for i, r in enumerate(rooms))
        settings = settings_from_text(CONFIG.format(groups=groups), "<bench>")
        db = open_engine(f"sqlite:///{workdir / 'qunyun.db'}")
        migrate(db)
        mx = MatrixSettings(homeserver=server.url, user_id=bot.user_id, access_token_env="UNUSED",
                            state_file=str(workdir / "matrix-state.json"),
                            limits={"per_group": None, "overall": None})
        adapter = MatrixAdapter(mx, rooms=rooms_of(settings, "matrix"), access_token=bot.access_token)
        engine = Engine(db, settings, clock=SystemClock(), capabilities={"matrix": adapter.capabilities})

        sent: dict[str, float] = {}       # event id → send started
        handed: dict[str, float] = {}     # event id → the adapter handed it to the runtime
        in_engine: dict[str, tuple[float, float]] = {}
        delivering: dict[str, tuple[float, float]] = {}  # cause → deliver start, end
        doubled: list[str] = []

        handle = engine.handle

        def timed_handle(event: Any) -> Any:
            t0 = time.monotonic()
            out = handle(event)
            in_engine[event.id] = (t0, time.monotonic())
            return out

        engine.handle = timed_handle  # type: ignore[method-assign]
        deliver = adapter.deliver
        flying = [0, 0]  # now, most

        async def timed_deliver(action: dict[str, Any]) -> Any:
            t0 = time.monotonic()
            flying[0] += 1
            flying[1] = max(flying)
            try:
                result = await deliver(action)
            finally:
                flying[0] -= 1
            if result.status == "ok":
                if action["cause"] in delivering:
                    doubled.append(action["cause"])
                delivering[action["cause"]] = (t0, time.monotonic())
            return result

        adapter.deliver = timed_deliver  # type: ignore[method-assign]
        runtime = Runtime(engine, [adapter], poll_seconds=1.0, tick_seconds=1.0, flush_seconds=30,
                          concurrency=concurrency)
        task = asyncio.create_task(runtime.run())
        while adapter._sink is None or adapter.syncs < 1:
            await asyncio.sleep(0.05)
        sink = adapter._sink

        async def timed_sink(event: Any) -> bool:
            handed[event.id] = time.monotonic()
            return await sink(event)

        adapter._sink = timed_sink

        total = int(rate * seconds)
        pending: set[asyncio.Task[Any]] = set()
        errors: list[str] = []

        async def send(i: int) -> None:
            client = clients[i % len(clients)]
            t0 = time.monotonic()
            try:
                eid = await client.send_message_event(rooms[i % len(rooms)], EventType.ROOM_MESSAGE,
                                                      {"msgtype": "m.text", "body": f"请问多少钱？#{i}"})
            except Exception as exc:  # counted as lost below
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            sent[str(eid)] = t0

        start = time.monotonic()
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = asyncio.create_task(send(i))
            pending.add(t)
            t.add_done_callback(pending.discard)
        send_seconds = time.monotonic() - start
        await asyncio.gather(*pending)
        drained_at = time.monotonic()
        last = -1
        while len(delivering) < len(sent) and time.monotonic() - drained_at < 30:  # give up after 30 s of no progress
            if len(delivering) != last:
                last, drained_at = len(delivering), time.monotonic()
            await asyncio.sleep(0.1)
        drain_seconds = time.monotonic() - start - send_seconds
        runtime.request_stop("benchmark over")
        await task
        db.dispose()

        ids = [e for e in sent if e in delivering and e in handed and e in in_engine]
        tot = [delivering[e][1] - sent[e] for e in ids]
        hs_in = [handed[e] - sent[e] for e in ids]
        eng = [in_engine[e][1] - in_engine[e][0] for e in ids]
        hs_out = [delivering[e][1] - delivering[e][0] for e in ids]
        queued = [in_engine[e][0] - handed[e] for e in ids]
        outbox = [delivering[e][0] - in_engine[e][1] for e in ids]
        parts = {"homeserver in": hs_in, "queue to engine": queued, "engine": eng, "outbox wait": outbox,
                 "homeserver out": hs_out}
        sum_total = sum(tot) or 1.0
        spans = sorted(delivering.values())
        return {
            "rate": rate, "seconds": seconds, "senders": senders, "rooms": rooms_n, "concurrency": concurrency,
            "sent": total,
            "send_errors": len(errors), "accepted_by_homeserver": len(sent), "answered": len(delivering),
            "lost": len(sent) - len([e for e in sent if e in delivering]), "doubled": len(doubled),
            "send_seconds": send_seconds, "achieved_rate": len(sent) / send_seconds if send_seconds else 0.0,
            "median_ms": statistics.median(tot) * 1000 if tot else float("nan"),
            "p99_ms": pct(tot, 0.99) * 1000,
            "parts": {k: {"median_ms": statistics.median(v) * 1000 if v else float("nan"),
                          "p99_ms": pct(v, 0.99) * 1000, "share": sum(v) / sum_total} for k, v in parts.items()},
            "drain_seconds": drain_seconds, "most_in_flight": flying[1],
            "deliver_throughput": len(spans) / ((spans[-1][1] - spans[0][0]) or 1.0) if spans else 0.0,
            "gaps": len(adapter.gaps), "dropped_payloads": adapter.bad_count, "errors": errors[:5],
        }
    finally:
        for c in clients:
            await c.api.session.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send (default 60)")
    parser.add_argument("--senders", type=int, default=10, help="people posting, round robin (default 10)")
    parser.add_argument("--rooms", type=int, default=1, help="rooms the messages are spread over (default 1)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="actions the runtime delivers at once, each of another room (default 8)")
    args = parser.parse_args()
    if args.rooms < 1 or args.concurrency < 1 or args.senders < 1:
        parser.error("--rooms, --concurrency and --senders must be at least 1")
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="qunyun-matrix-bench-") as tmp:
        r = asyncio.run(bench(args.rate, args.seconds, args.senders, Path(tmp), args.rooms, args.concurrency))
    print(f"Matrix event-to-action latency: {r['sent']} messages at {r['rate']:g}/s for {r['seconds']:g} s "
          f"({r['senders']} senders, {r['rooms']} room{'s' * (r['rooms'] != 1)}; "
          f"achieved {r['achieved_rate']:.1f}/s)")
    print(f"  accepted by the homeserver {r['accepted_by_homeserver']}, answered {r['answered']}, "
          f"lost {r['lost']}, doubled {r['doubled']}, send errors {r['send_errors']}, sync gaps {r['gaps']}")
    print(f"  delivery: {r['deliver_throughput']:.1f} actions/s, at most {r['most_in_flight']} in flight "
          f"(cap {r['concurrency']}); backlog drained {r['drain_seconds']:.1f} s after the last send")
    if os.name == "posix":
        print("  load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"  total: median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    for name, p in r["parts"].items():
        print(f"  {name:16s} median {p['median_ms']:7.1f} ms  p99 {p['p99_ms']:7.1f} ms  share {p['share']:6.1%}")
    if r["errors"]:
        print("  first send errors:", *r["errors"], sep="\n    ")


if __name__ == "__main__":
    main()
