"""Event-to-action latency through the Matrix adapter, against a local Synapse.

    python benchmarks/matrix_latency.py                      # 50 events/s for 60 s, one room
    python benchmarks/matrix_latency.py --rate 50 --seconds 10
    python benchmarks/matrix_latency.py --rooms 10           # the same load spread over 10 rooms
    python benchmarks/matrix_latency.py --homeserver-db sqlite   # Synapse on SQLite, as the tests run it

Starts Synapse on loopback (the generated config of the tests' fixture,
``tests/adapters/synapse.py``, set up for load: PostgreSQL by default, see
:data:`TUNING`), registers a bot and ``--senders`` people, and runs the real
stack: ``MatrixAdapter`` → ``Runtime`` → ``Engine`` (SQLite unless ``--db``,
the ``faq`` playbook answering every message, cooldown 0) → outbox →
``deliver``. The people post a question at ``--rate`` messages per second,
round robin over ``--rooms`` rooms (each a group of the community); each one
gets an answer sent as a reply to it. The runtime delivers up to
``--concurrency`` actions at once, each of a different room (a room's answers
go out in order).

The people are a separate process (``PUT /send`` with plain aiohttp, as
their own clients would be), so their CPU is not the bot's; Synapse needs
``psycopg2`` for PostgreSQL: ``--synapse-python`` names an interpreter that
has it (``pip install 'matrix-synapse[postgres]'``).

For each message it measures, on one monotonic clock (shared by the
processes):

- **total**: the person starts sending → the homeserver accepted the bot's answer;
- **homeserver in**: send → the adapter's /sync handed the event over;
- **engine**: ``Engine.handle`` for that event (the whole transaction);
- **queue to engine**: waiting in the runtime's event queue;
- **outbox wait**: committed → the delivery loop starts the action (behind the room's earlier ones);
- **homeserver out**: the ``deliver`` call (PUT …/send/m.room.message/{txnId}).

and reports the median and p99 of each, the share of the total spent in
each part, whether anything was lost or doubled, and the CPU seconds each
process used while the load ran (Synapse, its PostgreSQL connections, the
bot process and, in it, ``Engine.handle``, the people).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from multiprocessing.connection import Connection
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

#: What the benchmark changes in the tests' homeserver.yaml (besides the database). The fixture already
#: turns presence off and relaxes every rate limit (rc_message, rc_joins, ...) for all users.
TUNING: dict[str, Any] = {
    "use_frozen_dicts": False,
    # a bigger event cache: the rooms' recent events and their auth chains stay in memory
    "event_cache_size": "50K",
    "caches": {"global_factor": 4.0},
    "push": {"include_content": False},
}

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


# ------------------------------------------------------------------ CPU accounting

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def pg_backends(admin_url: str, dbname: str) -> list[int]:
    """Process ids of the PostgreSQL connections to ``dbname``."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]


# ------------------------------------------------------------------ homeserver

@contextmanager
def synapse_database(admin_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for Synapse (C collation, as Synapse requires), dropped afterwards."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tune(config_path: Path, pg: dict[str, Any] | None, metrics_port: int) -> None:
    """Rewrite the fixture's homeserver.yaml for the benchmark: PostgreSQL (if given), :data:`TUNING`, metrics."""
    import yaml

    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if pg is not None:
        config["database"] = {"name": "psycopg2", "args": {**pg, "cp_min": 5, "cp_max": 10}}
    config.update(TUNING)
    # Prometheus metrics on a second loopback port: where Synapse spends its CPU, per endpoint and per task
    config["enable_metrics"] = True
    config["listeners"].append({"port": metrics_port, "type": "metrics", "bind_addresses": ["127.0.0.1"]})
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


_CPU_METRICS = {
    "synapse_http_server_response_ru_utime_seconds_total": "servlet",
    "synapse_http_server_response_ru_stime_seconds_total": "servlet",
    "synapse_background_process_ru_utime_seconds_total": "name",
    "synapse_background_process_ru_stime_seconds_total": "name",
    "synapse_storage_transaction_time_sum_total": "desc",
}


def synapse_cpu(metrics_url: str) -> dict[str, float]:
    """Synapse's CPU seconds so far by endpoint (``GET SyncRestServlet``) and background task (``bg persist_events``)."""
    import re
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        label = _CPU_METRICS.get(name)
        if label is None:
            continue
        labels, _, value = rest.rpartition("}")
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if label == "servlet":
            key = f"{found.get('method', '')} {found[label]}".strip()
        else:
            key = f"{'db' if label == 'desc' else 'bg'} {found[label]}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


# ------------------------------------------------------------------ the people (a separate process)

def people(conn: Connection, url: str, tokens: list[str], rooms: list[str], rate: float, seconds: float) -> None:
    """Post ``rate`` questions per second for ``seconds``, round robin over senders and rooms.

    Waits for the start time on ``conn``; sends back ``(sent, errors, lag)``:
    event id → monotonic times the PUT started and was answered, the
    errors, the most the schedule slipped.
    """
    import aiohttp

    async def run() -> tuple[dict[str, tuple[float, float]], list[str], float]:
        start = conn.recv()
        sent: dict[str, tuple[float, float]] = {}
        errors: list[str] = []
        lag = 0.0
        txn = secrets.token_hex(4)
        total = int(rate * seconds)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

            async def send(i: int) -> None:
                room = rooms[i % len(rooms)]
                headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
                body = {"msgtype": "m.text", "body": f"请问多少钱？#{i}"}
                t0 = time.monotonic()
                try:
                    async with session.put(f"{url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}-{i}",
                                           json=body, headers=headers) as resp:
                        data = await resp.json(content_type=None)
                        if resp.status != 200:
                            errors.append(f"HTTP {resp.status}: {str(data)[:200]}")
                            return
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                sent[str(data["event_id"])] = (t0, time.monotonic())

            tasks = []
            for i in range(total):
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag = max(lag, -delay)
                tasks.append(asyncio.create_task(send(i)))
            await asyncio.gather(*tasks)
        return sent, errors, lag

    conn.send(asyncio.run(run()))


# ------------------------------------------------------------------ the benchmark

async def _call(session: Any, url: str, method: str, path: str, token: str, body: Any = None) -> Any:
    async with session.request(method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data}")
        return data


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import aiohttp
    from tests.adapters.synapse import Synapse

    from qunyun.adapters.matrix import MatrixAdapter, MatrixSettings
    from qunyun.config.model import settings_from_text
    from qunyun.core.clock import SystemClock
    from qunyun.engine.engine import Engine
    from qunyun.runtime import Runtime, rooms_of
    from qunyun.store.db import migrate, open_engine

    rate, seconds, rooms_n = args.rate, args.seconds, args.rooms
    server = Synapse(workdir / "synapse", python=args.synapse_python)
    (workdir / "synapse").mkdir()
    server.configure()
    async with AsyncExitStack() as stack:
        pg: dict[str, Any] | None = None
        dbname = ""
        if args.homeserver_db == "postgresql":
            dbname = stack.enter_context(synapse_database(args.pg_admin, f"synapse_bench_{os.getpid()}"))
            from sqlalchemy.engine import make_url

            u = make_url(args.pg_admin)
            pg = {"user": u.username or "postgres", "host": u.host or "127.0.0.1", "port": u.port or 5432,
                  "database": dbname}
            if u.password:
                pg["password"] = u.password
        from tests.adapters.synapse import free_port

        metrics_url = f"http://127.0.0.1:{free_port()}/_synapse/metrics"
        tune(workdir / "synapse" / "homeserver.yaml", pg, int(metrics_url.split(":")[2].split("/")[0]))
        server.start()
        stack.callback(server.stop)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)

        tag = secrets.token_hex(3)
        bot = server.register(f"bot{tag}")
        senders = [server.register(f"p{i}{tag}", displayname=f"成员{i}") for i in range(args.senders)]
        rooms: list[str] = []
        for _ in range(rooms_n):
            made = await _call(session, server.url, "POST", "/_matrix/client/v3/createRoom", senders[0].access_token, {
                "preset": "public_chat", "invite": [bot.user_id],
                "power_level_content_override": {"users": {bot.user_id: 50}},
            })
            room = made["room_id"]
            for p in senders[1:]:
                await _call(session, server.url, "POST", f"/_matrix/client/v3/join/{room}", p.access_token, {})
            rooms.append(room)

        groups = "\n".join(f'      - {{id: room{i}, platform: matrix, room: "{r}"}}' for i, r in enumerate(rooms))
        settings = settings_from_text(CONFIG.format(groups=groups), "<bench>")
        db = open_engine(args.db or f"sqlite:///{workdir / 'qunyun.db'}")
        migrate(db)
        stack.callback(db.dispose)
        mx = MatrixSettings(homeserver=server.url, user_id=bot.user_id, access_token_env="UNUSED",
                            state_file=str(workdir / "matrix-state.json"),
                            limits={"per_group": None, "overall": None})
        adapter = MatrixAdapter(mx, rooms=rooms_of(settings, "matrix"), access_token=bot.access_token)
        engine = Engine(db, settings, clock=SystemClock(), capabilities={"matrix": adapter.capabilities})

        handed: dict[str, float] = {}     # event id → the adapter handed it to the runtime
        in_engine: dict[str, tuple[float, float]] = {}
        delivering: dict[str, tuple[float, float]] = {}  # cause → deliver start, end
        doubled: list[str] = []
        engine_cpu = [0.0]

        handle = engine.handle

        def timed_handle(event: Any) -> Any:
            t0, c0 = time.monotonic(), time.thread_time()
            out = handle(event)
            in_engine[event.id] = (t0, time.monotonic())
            engine_cpu[0] += time.thread_time() - c0
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
                          concurrency=args.concurrency)
        task = asyncio.create_task(runtime.run())
        while adapter._sink is None or adapter.syncs < 1:
            await asyncio.sleep(0.05)
        sink = adapter._sink

        async def timed_sink(event: Any) -> bool:
            handed[event.id] = time.monotonic()
            return await sink(event)

        adapter._sink = timed_sink

        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        loadgen = ctx.Process(target=people, args=(there, server.url, [p.access_token for p in senders], rooms,
                                                   rate, seconds), daemon=True)
        loadgen.start()
        stack.callback(loadgen.kill)
        await asyncio.sleep(1.0)  # let it import aiohttp before the clock starts
        assert server.proc is not None and loadgen.pid is not None
        backends = pg_backends(args.pg_admin, dbname) if dbname else []
        pids = {"synapse": [server.proc.pid], "synapse's PostgreSQL": backends, "people": [loadgen.pid]}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        own0 = os.times()
        hs0 = synapse_cpu(metrics_url)
        load0 = os.getloadavg()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.monotonic() + 0.2
        here.send(start)
        sent, errors, lag = await asyncio.to_thread(here.recv)
        send_seconds = time.monotonic() - start
        drained_at = time.monotonic()
        last = -1
        while len(delivering) < len(sent) and time.monotonic() - drained_at < 30:  # give up after 30 s of no progress
            if len(delivering) != last:
                last, drained_at = len(delivering), time.monotonic()
            await asyncio.sleep(0.1)
        drain_seconds = time.monotonic() - start - send_seconds
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        own1 = os.times()
        hs1 = synapse_cpu(metrics_url)
        hs_cpu = sorted(((k, v - hs0.get(k, 0.0)) for k, v in hs1.items()), key=lambda kv: -kv[1])
        if dbname:  # connections opened during the run count from their start
            pids["synapse's PostgreSQL"] = sorted(set(backends) | set(pg_backends(args.pg_admin, dbname)))
        cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in pids.items()}
        cpu["bot (qunyun)"] = (own1.user + own1.system) - (own0.user + own0.system)
        cpu["  of it Engine.handle"] = engine_cpu[0]
        wall = time.monotonic() - start
        load1 = os.getloadavg()
        runtime.request_stop("benchmark over")
        await task

        ids = [e for e in sent if e in delivering and e in handed and e in in_engine]
        tot = [delivering[e][1] - sent[e][0] for e in ids]
        hs_in = [handed[e] - sent[e][0] for e in ids]
        eng = [in_engine[e][1] - in_engine[e][0] for e in ids]
        hs_out = [delivering[e][1] - delivering[e][0] for e in ids]
        queued = [in_engine[e][0] - handed[e] for e in ids]
        outbox = [delivering[e][0] - in_engine[e][1] for e in ids]
        parts = {"homeserver in": hs_in, "queue to engine": queued, "engine": eng, "outbox wait": outbox,
                 "homeserver out": hs_out}
        sum_total = sum(tot) or 1.0
        spans = sorted(delivering.values())
        total = int(rate * seconds)
        return {
            "rate": rate, "seconds": seconds, "senders": args.senders, "rooms": rooms_n,
            "concurrency": args.concurrency, "homeserver_db": args.homeserver_db, "sent": total,
            "send_errors": len(errors), "accepted_by_homeserver": len(sent), "answered": len(delivering),
            "lost": len(sent) - len([e for e in sent if e in delivering]), "doubled": len(doubled),
            "send_seconds": send_seconds, "achieved_rate": len(sent) / send_seconds if send_seconds else 0.0,
            "schedule_lag_ms": lag * 1000,
            "median_ms": statistics.median(tot) * 1000 if tot else float("nan"),
            "p99_ms": pct(tot, 0.99) * 1000,
            "parts": {k: {"median_ms": statistics.median(v) * 1000 if v else float("nan"),
                          "p99_ms": pct(v, 0.99) * 1000, "share": sum(v) / sum_total} for k, v in parts.items()},
            "drain_seconds": drain_seconds, "most_in_flight": flying[1],
            "deliver_throughput": len(spans) / ((spans[-1][1] - spans[0][0]) or 1.0) if spans else 0.0,
            "gaps": len(adapter.gaps), "dropped_payloads": adapter.bad_count, "errors": errors[:5],
            "syncs": adapter.syncs, "cpu": cpu, "synapse_cpu": [kv for kv in hs_cpu if kv[1] >= 0.05], "wall": wall, "load": (load0, load1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send (default 60)")
    parser.add_argument("--senders", type=int, default=10, help="people posting, round robin (default 10)")
    parser.add_argument("--rooms", type=int, default=1, help="rooms the messages are spread over (default 1)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="actions the runtime delivers at once, each of another room (default 8)")
    parser.add_argument("--homeserver-db", choices=("postgresql", "sqlite"), default="postgresql",
                        help="Synapse's database (default postgresql, as a production homeserver)")
    parser.add_argument("--pg-admin", default=PG_ADMIN,
                        help=f"PostgreSQL to create Synapse's database in (default {PG_ADMIN})")
    parser.add_argument("--synapse-python", default=sys.executable,
                        help="the interpreter that runs Synapse (needs psycopg2 for PostgreSQL; default this one)")
    parser.add_argument("--db", default=None, help="qunyun's database URL (default a fresh SQLite file)")
    parser.add_argument("--profile", default=None, help="write a cProfile of the bot's event loop to this file")
    args = parser.parse_args()
    if args.rooms < 1 or args.concurrency < 1 or args.senders < 1:
        parser.error("--rooms, --concurrency and --senders must be at least 1")
    if args.homeserver_db == "postgresql":
        import subprocess

        probe = subprocess.run([args.synapse_python, "-c", "import psycopg2, synapse"], capture_output=True)
        if probe.returncode != 0:
            parser.error(f"{args.synapse_python} cannot run Synapse on PostgreSQL (psycopg2 or synapse missing: "
                         f"{probe.stderr.decode(errors='replace').strip().splitlines()[-1:]}); install "
                         "'matrix-synapse[postgres]' there, pass --synapse-python, or use --homeserver-db sqlite")
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="qunyun-matrix-bench-") as tmp:
        r = asyncio.run(bench(args, Path(tmp)))
    report(r)


def report(r: dict[str, Any]) -> None:
    print(f"Matrix event-to-action latency: {r['sent']} messages at {r['rate']:g}/s for {r['seconds']:g} s "
          f"({r['senders']} senders, {r['rooms']} room{'s' * (r['rooms'] != 1)}, Synapse on {r['homeserver_db']}; "
          f"achieved {r['achieved_rate']:.1f}/s, schedule slipped at most {r['schedule_lag_ms']:.0f} ms)")
    print(f"  accepted by the homeserver {r['accepted_by_homeserver']}, answered {r['answered']}, "
          f"lost {r['lost']}, doubled {r['doubled']}, send errors {r['send_errors']}, sync gaps {r['gaps']}, "
          f"syncs {r['syncs']}")
    print(f"  delivery: {r['deliver_throughput']:.1f} actions/s, at most {r['most_in_flight']} in flight "
          f"(cap {r['concurrency']}); backlog drained {r['drain_seconds']:.1f} s after the last send")
    (a, _, _), (b, _, _) = r["load"]
    print(f"  load average (1 min) {a:.2f} at the start, {b:.2f} at the end")
    print(f"  total: median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    for name, p in r["parts"].items():
        print(f"  {name:16s} median {p['median_ms']:7.1f} ms  p99 {p['p99_ms']:7.1f} ms  share {p['share']:6.1%}")
    cores = os.cpu_count() or 1
    print(f"  CPU while the load ran ({r['wall']:.1f} s wall; {cores} cores = {cores * r['wall']:.0f} CPU s):")
    for name, s in r["cpu"].items():
        print(f"    {name:24s} {s:6.1f} s  ({s / r['wall']:.0%} of a core)")
    print("  Synapse's CPU by endpoint and background task (its own accounting):")
    for name, s in [kv for kv in r["synapse_cpu"] if not kv[0].startswith("db ")][:10]:
        print(f"    {name:44s} {s:6.1f} s")
    print("  Synapse's database transactions by name (wall time, summed over its connections):")
    for name, s in [kv for kv in r["synapse_cpu"] if kv[0].startswith("db ")][:10]:
        print(f"    {name[3:]:44s} {s:6.1f} s")
    if r["errors"]:
        print("  first send errors:", *r["errors"], sep="\n    ")


if __name__ == "__main__":
    main()
