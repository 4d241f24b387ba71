"""Event-to-action latency through the Matrix adapter, against a local Synapse.

    python benchmarks/matrix_latency.py                      # 50 events/s for 60 s: a group chat's mix, 20 rooms
    python benchmarks/matrix_latency.py --rate 50 --seconds 10
    python benchmarks/matrix_latency.py --mix questions      # every message a question the bot answers
    python benchmarks/matrix_latency.py --homeserver-db sqlite   # Synapse on SQLite, as the tests run it
    python benchmarks/matrix_latency.py --rate 100 --homeserver-only   # no bot: what Synapse alone takes
    python benchmarks/matrix_latency.py --synapse-python /path/to/venv/bin/python   # one with psycopg2

Starts Synapse on loopback (the generated config of the tests' fixture,
``tests/adapters/synapse.py``, set up for load: PostgreSQL by default, see
:data:`TUNING`), registers a bot and ``--senders`` people (each a member of two of the
``--rooms`` rooms), and runs the real stack: ``MatrixAdapter`` → ``Runtime``
→ ``Engine`` (SQLite unless ``--db``; the ``checkin``, ``faq`` and
``moderation`` playbooks) → outbox → ``deliver``. The people post ``--rate``
events per second, spread over the rooms (each a group of the community).

``--mix chat`` (the default) is what a busy group chat sends: of every 100
events, 72 are talk (the engine counts them, moderation checks them, no
answer), 10 are questions the FAQ answers, 10 are check-ins (confirmed the
first time a member checks in that day, told "already" once, then quiet) and
8 are reactions. ``--mix questions`` makes every message a question, so every
event is answered: twice the homeserver's work per event.

The runtime delivers up to ``--concurrency`` actions at once, each of a
different room (a room's answers go out in order).

The people are a separate process (``PUT /send`` with plain aiohttp, as
their own clients would be), so their CPU is not the bot's. Synapse needs
``psycopg2`` for PostgreSQL and ``txredisapi`` for its workers; the test
extras (``pip install -e '.[test]'``) bring both, and ``--synapse-python``
can name another interpreter that has them.

For each event it measures, on one monotonic clock (shared by the
processes), **handled**: the person starts sending → the engine committed
it; and for each action the bot sent:

- **total**: the person starts sending → the homeserver accepted the bot's action;
- **homeserver in**: send → the adapter's /sync handed the event over;
- **engine**: ``Engine.handle`` for that event (the whole transaction);
- **queue to engine**: waiting in the runtime's event queue;
- **outbox wait**: committed → the delivery loop starts the action (behind the room's earlier ones);
- **homeserver out**: the ``deliver`` call (PUT …/send/m.room.message/{txnId}).

and reports the median and p99 of each, the share of the total spent in
each part, whether anything was lost (an event the engine never handled, an
action it decided but never delivered) or doubled (an action delivered twice), the pause between a
room's actions when the next one was already waiting (the runtime's bookkeeping, and waiting for a free
delivery slot when more rooms are busy than ``--concurrency``), and the CPU seconds each
process used while the load ran (Synapse, its PostgreSQL connections, the
bot process and, in it, ``Engine.handle``, the people), with Synapse's own
accounting per endpoint, background task and database transaction (its
Prometheus metrics, on a second loopback port).

Experiments: ``--synapse-set KEY=YAML`` changes one homeserver setting;
``--state-save-seconds`` how often the adapter writes its sync position;
``--skip-own-events`` leaves the bot's own events out of its /sync (not how
the adapter runs: it would miss the removals it makes itself).
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
      checkin: {{}}
      moderation: {{}}
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
    # the people are registered before the clock starts; cheap password hashing keeps that short
    "bcrypt_rounds": 4,
}

#: what the people send, per 100 events (--mix chat): see the module's docstring
CHAT_MIX = (("talk", 72), ("question", 10), ("checkin", 10), ("reaction", 8))
TALK = ("今天的作业第{n}题大家怎么理解的", "同意楼上，补充一点：先看第二章", "晚上的分享几点开始呀",
        "刚看完回放，收获很大", "有没有人一起组队复盘", "这个方法我试了，效果不错", "周末线下活动还有名额吗",
        "笔记整理好了，稍后发群文件", "第{n}课的练习我卡住了", "谢谢老师的讲解")

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


def tune(config_path: Path, pg: dict[str, Any] | None, metrics_port: int, extra: list[str] | None = None,
         workers: Workers | None = None, redis_url: str = "") -> None:
    """Rewrite the fixture's homeserver.yaml for the benchmark: PostgreSQL (if given), :data:`TUNING`, metrics,
    workers (if any) and the ``--synapse-set KEY=YAML`` overrides."""
    import yaml

    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if pg is not None:
        config["database"] = {"name": "psycopg2", "args": {**pg, "cp_min": 5, "cp_max": 10}}
    config.update(TUNING)
    for item in extra or []:  # KEY=YAML, KEY may be dotted: database.args.options=-c synchronous_commit=off
        key, _, value = item.partition("=")
        *parents, last = key.strip().split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    # Prometheus metrics on a second loopback port: where Synapse spends its CPU, per endpoint and per task
    config["enable_metrics"] = True
    config["listeners"].append({"port": metrics_port, "type": "metrics", "bind_addresses": ["127.0.0.1"]})
    if workers is not None:
        workers.configure(config, redis_url)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


class Workers:
    """Synapse's event persisters as worker processes (``--synapse-workers N``), so that persisting events no
    longer shares the main process's one core. Needs Redis (``--redis``) for replication and PostgreSQL."""

    def __init__(self, directory: Path, python: str, count: int) -> None:
        self.dir, self.python, self.count = directory, python, count
        self.names = [f"persister{i + 1}" for i in range(count)]
        self.ports = {name: free_port_() for name in self.names}
        self.metrics = {name: free_port_() for name in self.names}
        self.main_replication = free_port_()
        self.procs: list[Any] = []

    def configure(self, config: dict[str, Any], redis_url: str) -> None:
        """Add replication to the main process's config and write each worker's file."""
        from urllib.parse import urlparse

        import yaml

        u = urlparse(redis_url)
        config["redis"] = {"enabled": True, "host": u.hostname or "127.0.0.1", "port": u.port or 6379,
                           "dbid": int((u.path or "/0").lstrip("/") or 0)}
        config["instance_map"] = {"main": {"host": "127.0.0.1", "port": self.main_replication},
                                  **{n: {"host": "127.0.0.1", "port": p} for n, p in self.ports.items()}}
        config["stream_writers"] = {"events": list(self.names)}
        config["listeners"].append({"port": self.main_replication, "type": "http", "bind_addresses": ["127.0.0.1"],
                                    "resources": [{"names": ["replication"]}]})
        for name in self.names:
            worker = {
                "worker_app": "synapse.app.generic_worker", "worker_name": name,
                "worker_listeners": [
                    {"type": "http", "port": self.ports[name], "bind_addresses": ["127.0.0.1"],
                     "resources": [{"names": ["replication"]}]},
                    {"type": "metrics", "port": self.metrics[name], "bind_addresses": ["127.0.0.1"]},
                ],
                "worker_log_config": str(self.dir / "log.config"),
            }
            (self.dir / f"{name}.yaml").write_text(yaml.safe_dump(worker, sort_keys=False), encoding="utf-8")

    def start(self) -> None:
        import socket
        import subprocess

        for name in self.names:
            out = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
            self.procs.append(subprocess.Popen(
                [self.python, "-m", "synapse.app.generic_worker", "-c", str(self.dir / "homeserver.yaml"),
                 "-c", str(self.dir / f"{name}.yaml")], stdout=out, stderr=subprocess.STDOUT, cwd=self.dir))
            out.close()
        deadline = time.monotonic() + 90
        for name, proc in zip(self.names, self.procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"Synapse worker {name} exited: "
                                     f"{(self.dir / f'{name}.log').read_text(errors='replace')[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"Synapse worker {name} did not listen within 90 s") from None
                    time.sleep(0.2)

    def stop(self) -> None:
        import subprocess

        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def metrics_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}/_synapse/metrics" for p in self.metrics.values()]


def free_port_() -> int:
    from tests.adapters.synapse import free_port

    return free_port()


_CPU_METRICS = {
    "synapse_http_server_response_ru_utime_seconds_total": "servlet",
    "synapse_http_server_response_ru_stime_seconds_total": "servlet",
    "synapse_background_process_ru_utime_seconds_total": "name",
    "synapse_background_process_ru_stime_seconds_total": "name",
    "synapse_storage_transaction_time_sum_total": "desc",
}


def synapse_cpu(metrics_urls: list[str]) -> dict[str, float]:
    """Synapse's CPU seconds so far by endpoint (``GET SyncRestServlet``) and background task (``bg persist_events``),
    summed over its processes."""
    import re
    import urllib.request

    text = ""
    for url in metrics_urls:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text += resp.read().decode() + "\n"
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

def plan(total: int, rooms: int, members: list[list[int]], mix: str, seed: int = 42) -> list[tuple[int, int, str]]:
    """(room, sender, kind) for each of ``total`` events: rooms in turn, each room's members in turn."""
    import random

    rng = random.Random(seed)
    kinds = [k for k, n in CHAT_MIX for _ in range(n)] if mix == "chat" else ["question"]
    turn = [0] * rooms
    out = []
    for i in range(total):
        room = i % rooms
        sender = members[room][turn[room] % len(members[room])]
        turn[room] += 1
        out.append((room, sender, rng.choice(kinds)))
    return out


def people(conn: Connection, url: str, tokens: list[str], rooms: list[str], members: list[list[int]], mix: str,
           rate: float, seconds: float) -> None:
    """Post ``rate`` events per second for ``seconds`` (see :func:`plan`).

    Waits for the start time on ``conn``; sends back ``(sent, kinds, errors, lag)``:
    event id → monotonic times the PUT started and was answered, event id →
    kind, the errors, the most the schedule slipped.
    """
    import aiohttp

    async def run() -> tuple[dict[str, tuple[float, float]], dict[str, str], list[str], float]:
        start = conn.recv()
        sent: dict[str, tuple[float, float]] = {}
        kinds: dict[str, str] = {}
        last_in_room: dict[str, str] = {}  # what a reaction reacts to
        errors: list[str] = []
        lag = 0.0
        txn = secrets.token_hex(4)
        total = int(rate * seconds)
        steps = plan(total, len(rooms), members, mix)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

            async def send(i: int) -> None:
                r, sender, kind = steps[i]
                room = rooms[r]
                headers = {"Authorization": f"Bearer {tokens[sender]}"}
                etype = "m.room.message"
                if kind == "question":
                    body: dict[str, Any] = {"msgtype": "m.text", "body": f"请问多少钱？#{i}"}
                elif kind == "checkin":
                    body = {"msgtype": "m.text", "body": f"打卡 今天读完第{i % 97 + 1}页"}
                elif kind == "reaction" and room in last_in_room:
                    etype = "m.reaction"
                    body = {"m.relates_to": {"rel_type": "m.annotation", "event_id": last_in_room[room], "key": "👍"}}
                else:
                    kind = "talk"
                    body = {"msgtype": "m.text", "body": TALK[i % len(TALK)].format(n=i % 13 + 1) + f"（{i}）"}
                t0 = time.monotonic()
                try:
                    async with session.put(f"{url}/_matrix/client/v3/rooms/{room}/send/{etype}/{txn}-{i}",
                                           json=body, headers=headers) as resp:
                        data = await resp.json(content_type=None)
                        if resp.status != 200:
                            errors.append(f"HTTP {resp.status}: {str(data)[:200]}")
                            return
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                sent[str(data["event_id"])] = (t0, time.monotonic())
                kinds[str(data["event_id"])] = kind
                if etype == "m.room.message":
                    last_in_room[room] = str(data["event_id"])

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
        return sent, kinds, errors, lag

    conn.send(asyncio.run(run()))


# ------------------------------------------------------------------ the benchmark

async def _call(session: Any, url: str, method: str, path: str, token: str, body: Any = None) -> Any:
    async with session.request(method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data}")
        return data


class Bot:
    """qunyun's side, instrumented: the adapter, the runtime, the engine, and when each event got where."""

    def __init__(self, args: argparse.Namespace, workdir: Path, url: str, token: str, user_id: str,
                 rooms: list[str]) -> None:
        from qunyun.adapters.matrix import MatrixAdapter, MatrixSettings
        from qunyun.config.model import settings_from_text
        from qunyun.core.clock import SystemClock
        from qunyun.engine.engine import Engine
        from qunyun.runtime import Runtime, rooms_of
        from qunyun.store.db import migrate, open_engine

        groups = "\n".join(f'      - {{id: room{i}, platform: matrix, room: "{r}"}}' for i, r in enumerate(rooms))
        settings = settings_from_text(CONFIG.format(groups=groups), "<bench>")
        self.db = open_engine(args.db or f"sqlite:///{workdir / 'qunyun.db'}")
        migrate(self.db)
        mx = MatrixSettings(homeserver=url, user_id=user_id, access_token_env="UNUSED",
                            state_file=str(workdir / "matrix-state.json"),
                            limits={"per_group": None, "overall": None})
        self.adapter = adapter = MatrixAdapter(mx, rooms=rooms_of(settings, "matrix"), access_token=token)
        if args.state_save_seconds is not None:
            adapter.STATE_SAVE_SECONDS = args.state_save_seconds
        if args.skip_own_events:  # an experiment: the bot's own events no longer wake its /sync
            call = adapter._call

            async def filtered_call(method: Any, path: Any, content: Any = None, *a: Any, **kw: Any) -> Any:
                if str(path).endswith("/filter") and isinstance(content, dict):
                    content["room"]["timeline"]["not_senders"] = [user_id]
                return await call(method, path, content, *a, **kw)

            adapter._call = filtered_call  # type: ignore[method-assign]
        engine = Engine(self.db, settings, clock=SystemClock(), capabilities={"matrix": adapter.capabilities})
        self.handed: dict[str, float] = {}     # event id → the adapter handed it to the runtime
        self.in_engine: dict[str, tuple[float, float]] = {}
        #: action id → (cause event id, deliver start, end) of every action the homeserver accepted
        self.delivered: dict[str, tuple[str, float, float]] = {}
        #: room → (start, end) of every accepted action there, to see the pause between a room's actions
        self.per_room: dict[str, list[tuple[float, float, str]]] = {}
        self.doubled: list[str] = []
        self.engine_cpu = 0.0
        self.flying = [0, 0]  # now, most
        handle = engine.handle

        def timed_handle(event: Any) -> Any:
            t0, c0 = time.monotonic(), time.thread_time()
            out = handle(event)
            self.in_engine[event.id] = (t0, time.monotonic())
            self.engine_cpu += time.thread_time() - c0
            return out

        engine.handle = timed_handle  # type: ignore[method-assign]
        deliver = adapter.deliver

        async def timed_deliver(action: dict[str, Any]) -> Any:
            t0 = time.monotonic()
            self.flying[0] += 1
            self.flying[1] = max(self.flying)
            try:
                result = await deliver(action)
            finally:
                self.flying[0] -= 1
            if result.status == "ok":
                if action["id"] in self.delivered:
                    self.doubled.append(action["id"])
                self.delivered[action["id"]] = (str(action["cause"]), t0, time.monotonic())
                self.per_room.setdefault(str(action.get("room")), []).append(
                    (t0, self.delivered[action["id"]][2], str(action["cause"])))
            return result

        adapter.deliver = timed_deliver  # type: ignore[method-assign]
        self.runtime = Runtime(engine, [adapter], poll_seconds=1.0, tick_seconds=1.0, flush_seconds=30,
                               concurrency=args.concurrency)
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runtime.run())
        while self.adapter._sink is None or self.adapter.syncs < 1:
            await asyncio.sleep(0.05)
        sink = self.adapter._sink

        async def timed_sink(event: Any) -> bool:
            self.handed[event.id] = time.monotonic()
            return await sink(event)

        self.adapter._sink = timed_sink

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.runtime.request_stop("benchmark over")
            await self.task
        self.db.dispose()

    def actions_by_status(self) -> dict[str, int]:
        """The outbox's actions by status: what the engine decided and what became of it."""
        from sqlalchemy import func, select

        from qunyun.store import models as m

        t = m.table(m.ActionRow)
        with self.db.connect() as conn:
            return {str(k): int(n) for k, n in conn.execute(select(t.c.status, func.count()).group_by(t.c.status))}


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import aiohttp
    from tests.adapters.synapse import Synapse, free_port

    rate, seconds, rooms_n = args.rate, args.seconds, args.rooms
    server = Synapse(workdir / "synapse", python=args.synapse_python)
    (workdir / "synapse").mkdir()
    server.configure()
    async with AsyncExitStack() as stack:
        pg: dict[str, Any] | None = None
        dbname = ""
        if args.homeserver_db == "postgresql":
            from sqlalchemy.engine import make_url

            dbname = stack.enter_context(synapse_database(args.pg_admin, f"synapse_bench_{os.getpid()}"))
            u = make_url(args.pg_admin)
            pg = {"user": u.username or "postgres", "host": u.host or "127.0.0.1", "port": u.port or 5432,
                  "database": dbname}
            if u.password:
                pg["password"] = u.password
        metrics_port = free_port()
        metrics_urls = [f"http://127.0.0.1:{metrics_port}/_synapse/metrics"]
        workers = Workers(workdir / "synapse", args.synapse_python, args.synapse_workers) \
            if args.synapse_workers else None
        tune(workdir / "synapse" / "homeserver.yaml", pg, metrics_port, args.synapse_set, workers, args.redis)
        server.start()
        stack.callback(server.stop)
        if workers is not None:
            workers.start()
            stack.callback(workers.stop)
            metrics_urls += workers.metrics_urls
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)

        tag = secrets.token_hex(3)
        bot_account = server.register(f"bot{tag}")
        senders = [server.register(f"p{i}{tag}", displayname=f"成员{i}") for i in range(args.senders)]
        # each person is in two rooms (one when there is one room): room k holds senders k, k+R, k+2R, ...
        # and, from the second round, the next room's ones
        members: list[list[int]] = [[] for _ in range(rooms_n)]
        for i in range(args.senders):
            members[i % rooms_n].append(i)
            if rooms_n > 1:
                members[(i + 1) % rooms_n].append(i)
        if any(not m for m in members):
            raise SystemExit(f"--senders {args.senders} leaves rooms without people; give at least --rooms")
        rooms: list[str] = []
        for k in range(rooms_n):
            owner = senders[members[k][0]]
            made = await _call(session, server.url, "POST", "/_matrix/client/v3/createRoom", owner.access_token, {
                "preset": "public_chat", "invite": [bot_account.user_id],
                "power_level_content_override": {"users": {bot_account.user_id: 50}},
            })
            room = made["room_id"]
            await asyncio.gather(*(_call(session, server.url, "POST", f"/_matrix/client/v3/join/{room}",
                                         senders[i].access_token, {}) for i in members[k][1:]))
            rooms.append(room)

        bot: Bot | None = None
        if not args.homeserver_only:
            bot = Bot(args, workdir, server.url, bot_account.access_token, bot_account.user_id, rooms)
            await bot.start()
            stack.push_async_callback(bot.stop)

        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        loadgen = ctx.Process(target=people, args=(there, server.url, [p.access_token for p in senders], rooms,
                                                   members, args.mix, rate, seconds), daemon=True)
        loadgen.start()
        stack.callback(loadgen.kill)
        await asyncio.sleep(1.0)  # let it import aiohttp before the clock starts
        assert server.proc is not None and loadgen.pid is not None
        backends = pg_backends(args.pg_admin, dbname) if dbname else []
        pids = {"synapse": [server.proc.pid, *(workers.pids if workers else [])], "synapse's PostgreSQL": backends,
                "people": [loadgen.pid]}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        own0 = os.times()
        hs0 = synapse_cpu(metrics_urls)
        load0 = os.getloadavg()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.monotonic() + 0.2
        here.send(start)
        sent, kinds, errors, lag = await asyncio.to_thread(here.recv)
        send_seconds = time.monotonic() - start
        drained_at = time.monotonic()
        last = -1

        def settled() -> bool:  # every event handled, nothing left in the outbox
            return all(e in bot.in_engine for e in sent) and bot.actions_by_status().get("pending", 0) == 0

        while bot is not None and not settled() and time.monotonic() - drained_at < 30:
            if len(bot.delivered) != last:  # give up after 30 s without progress
                last, drained_at = len(bot.delivered), time.monotonic()
            await asyncio.sleep(0.2)
        drain_seconds = time.monotonic() - start - send_seconds
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        own1 = os.times()
        hs1 = synapse_cpu(metrics_urls)
        hs_cpu = sorted(((k, v - hs0.get(k, 0.0)) for k, v in hs1.items()), key=lambda kv: -kv[1])
        if dbname:  # connections opened during the run count from their start
            pids["synapse's PostgreSQL"] = sorted(set(backends) | set(pg_backends(args.pg_admin, dbname)))
        cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in pids.items()}
        if bot is not None:
            cpu["bot (qunyun)"] = (own1.user + own1.system) - (own0.user + own0.system)
            cpu["  of it Engine.handle"] = bot.engine_cpu
        wall = time.monotonic() - start
        load1 = os.getloadavg()

        puts = [t1 - t0 for t0, t1 in sent.values()]
        r: dict[str, Any] = {
            "rate": rate, "seconds": seconds, "senders": args.senders, "rooms": rooms_n, "mix": args.mix,
            "kinds": {k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))},
            "concurrency": args.concurrency, "homeserver_db": args.homeserver_db, "sent": int(rate * seconds),
            "send_errors": len(errors), "accepted_by_homeserver": len(sent), "errors": errors[:5],
            "send_seconds": send_seconds, "achieved_rate": len(sent) / send_seconds if send_seconds else 0.0,
            "schedule_lag_ms": lag * 1000, "drain_seconds": drain_seconds,
            "people_put_ms": (statistics.median(puts) * 1000 if puts else float("nan"), pct(puts, 0.99) * 1000),
            "cpu": cpu, "synapse_cpu": [kv for kv in hs_cpu if kv[1] >= 0.05], "wall": wall, "load": (load0, load1),
            "bot": None,
        }
        if bot is None:
            return r
        # every action the homeserver accepted whose cause is one of the people's events
        acts = [(c, t0, t1) for c, t0, t1 in bot.delivered.values() if c in sent and c in bot.handed
                and c in bot.in_engine]
        tot = [t1 - sent[c][0] for c, _, t1 in acts]
        parts = {
            "homeserver in": [bot.handed[c] - sent[c][0] for c, _, _ in acts],
            "queue to engine": [bot.in_engine[c][0] - bot.handed[c] for c, _, _ in acts],
            "engine": [bot.in_engine[c][1] - bot.in_engine[c][0] for c, _, _ in acts],
            "outbox wait": [t0 - bot.in_engine[c][1] for c, t0, _ in acts],
            "homeserver out": [t1 - t0 for _, t0, t1 in acts],
        }
        handled = [bot.in_engine[e][1] - sent[e][0] for e in sent if e in bot.in_engine]
        by_status = bot.actions_by_status()
        sum_total = sum(tot) or 1.0
        spans = sorted((t0, t1) for _, t0, t1 in bot.delivered.values())
        # between one action accepted and the room's next one starting, when that next one was already
        # committed (waiting): the runtime's bookkeeping (marking it delivered, picking the next), plus the
        # wait for a free delivery slot when more rooms are busy than --concurrency
        gaps = [b[0] - a[1] for v in bot.per_room.values() for a, b in zip(sorted(v), sorted(v)[1:], strict=False)
                if b[2] in bot.in_engine and bot.in_engine[b[2]][1] <= a[1] and b[0] >= a[1]]
        r["bot"] = {
            "actions": len(acts), "answered_events": len({c for c, _, _ in acts}),
            "not_handled": len([e for e in sent if e not in bot.in_engine]),
            "undelivered": {k: n for k, n in by_status.items() if k != "delivered"},
            "doubled": len(bot.doubled),
            "handled_ms": (statistics.median(handled) * 1000 if handled else float("nan"), pct(handled, 0.99) * 1000),
            "median_ms": statistics.median(tot) * 1000 if tot else float("nan"), "p99_ms": pct(tot, 0.99) * 1000,
            "parts": {k: {"median_ms": statistics.median(v) * 1000 if v else float("nan"),
                          "p99_ms": pct(v, 0.99) * 1000, "share": sum(v) / sum_total} for k, v in parts.items()},
            "most_in_flight": bot.flying[1],
            "out_alone_ms": [(t1 - t0) * 1000 for t0, t1 in spans if t0 > start + send_seconds],
            "room_gap_ms": (statistics.median(gaps) * 1000 if gaps else float("nan"), pct(gaps, 0.99) * 1000),
            "deliver_throughput": len(spans) / ((spans[-1][1] - spans[0][0]) or 1.0) if spans else 0.0,
            "gaps": len(bot.adapter.gaps), "dropped_payloads": bot.adapter.bad_count, "syncs": bot.adapter.syncs,
        }
        return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send (default 60)")
    parser.add_argument("--mix", choices=("chat", "questions"), default="chat",
                        help="chat: a busy group's talk, questions, check-ins and reactions (default); "
                             "questions: every message a question the bot answers")
    parser.add_argument("--senders", type=int, default=100,
                        help="people posting, each in two rooms (default 100: a person sends under one message "
                             "every two seconds at 50/s, below moderation's flood limit)")
    parser.add_argument("--rooms", type=int, default=20, help="rooms the events are spread over (default 20)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="actions the runtime delivers at once, each of another room (default 8)")
    parser.add_argument("--homeserver-db", choices=("postgresql", "sqlite"), default="postgresql",
                        help="Synapse's database (default postgresql, as a production homeserver)")
    parser.add_argument("--pg-admin", default=PG_ADMIN,
                        help=f"PostgreSQL to create Synapse's database in (default {PG_ADMIN})")
    parser.add_argument("--synapse-python", default=sys.executable,
                        help="the interpreter that runs Synapse (needs psycopg2 for PostgreSQL; default this one)")
    parser.add_argument("--synapse-workers", type=int, default=0,
                        help="run Synapse's event persisting in this many worker processes (needs PostgreSQL and "
                             "Redis; default 0: one process, as the tests run it)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for Synapse's workers to talk through (default redis://127.0.0.1:6379/0)")
    parser.add_argument("--db", default=None, help="qunyun's database URL (default a fresh SQLite file)")
    parser.add_argument("--synapse-set", action="append", metavar="KEY=YAML",
                        help="override a homeserver.yaml key (dotted for nested ones) for an experiment, "
                             "e.g. 'push={enabled: false}'")
    parser.add_argument("--homeserver-only", action="store_true",
                        help="no bot: only the people post (what the homeserver alone can take on this machine)")
    parser.add_argument("--state-save-seconds", type=float, default=None,
                        help="write the sync position at most this often (default the adapter's; 0: after every sync)")
    parser.add_argument("--skip-own-events", action="store_true",
                        help="experiment: leave the bot's own events out of its /sync (it would then miss the "
                             "removals it makes itself; not how the adapter runs)")
    parser.add_argument("--profile", default=None, help="write a cProfile of the bot's event loop to this file")
    args = parser.parse_args()
    if args.rooms < 1 or args.concurrency < 1 or args.senders < 1:
        parser.error("--rooms, --concurrency and --senders must be at least 1")
    if args.synapse_workers and args.homeserver_db != "postgresql":
        parser.error("--synapse-workers needs --homeserver-db postgresql (Synapse's workers do not run on SQLite)")
    if args.homeserver_db == "postgresql":
        import subprocess

        probe = subprocess.run([args.synapse_python, "-c", "import psycopg2, synapse"], capture_output=True)
        if probe.returncode != 0:
            parser.error(f"{args.synapse_python} cannot run Synapse on PostgreSQL (psycopg2 or synapse missing: "
                         f"{probe.stderr.decode(errors='replace').strip().splitlines()[-1:]}); install psycopg2-binary "
                         "there, pass --synapse-python, or use --homeserver-db sqlite")
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="qunyun-matrix-bench-") as tmp:
        r = asyncio.run(bench(args, Path(tmp)))
    report(r)


def report(r: dict[str, Any]) -> None:
    b = r["bot"]
    what = "event-to-action latency" if b else "the homeserver alone (no bot)"
    print(f"Matrix {what}: {r['sent']} events at {r['rate']:g}/s for {r['seconds']:g} s, mix {r['mix']} "
          f"({r['senders']} senders, {r['rooms']} room{'s' * (r['rooms'] != 1)}, Synapse on {r['homeserver_db']}; "
          f"achieved {r['achieved_rate']:.1f}/s, schedule slipped at most {r['schedule_lag_ms']:.0f} ms)")
    print(f"  accepted by the homeserver {r['accepted_by_homeserver']} "
          f"({', '.join(f'{k} {n}' for k, n in r['kinds'].items())}), send errors {r['send_errors']}; "
          f"the people's PUTs took median {r['people_put_ms'][0]:.1f} ms, p99 {r['people_put_ms'][1]:.1f} ms")
    if b:
        print(f"  handled by the engine: all but {b['not_handled']}; send → committed median {b['handled_ms'][0]:.1f} ms, "
              f"p99 {b['handled_ms'][1]:.1f} ms")
        undelivered = ", ".join(f"{k} {n}" for k, n in b["undelivered"].items()) or "none"
        print(f"  actions sent {b['actions']} (for {b['answered_events']} events); not delivered: {undelivered}; "
              f"doubled {b['doubled']}; sync gaps {b['gaps']}, syncs {b['syncs']}")
        print(f"  delivery: {b['deliver_throughput']:.1f} actions/s, at most {b['most_in_flight']} in flight "
              f"(cap {r['concurrency']}); backlog drained {r['drain_seconds']:.1f} s after the last send")
        alone = b["out_alone_ms"]
        if alone:
            print(f"  after the people stopped, {len(alone)} actions were sent: median {statistics.median(alone):.1f} ms, "
                  f"p99 {pct(alone, 0.99):.1f} ms each")
        if b["room_gap_ms"][0] == b["room_gap_ms"][0]:  # not NaN: some room had an action waiting
            print(f"  a room's next action started {b['room_gap_ms'][0]:.1f} ms (median; p99 "
                  f"{b['room_gap_ms'][1]:.1f} ms) after its previous one was accepted, when it was already waiting")
        else:
            print("  no room ever had an action waiting behind another")
    (a, _, _), (z, _, _) = r["load"]
    print(f"  load average (1 min) {a:.2f} at the start, {z:.2f} at the end")
    if b:
        print(f"  event → action, total: median {b['median_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms")
        for name, p in b["parts"].items():
            print(f"  {name:16s} median {p['median_ms']:7.1f} ms  p99 {p['p99_ms']:7.1f} ms  share {p['share']:6.1%}")
    cores = os.cpu_count() or 1
    print(f"  CPU while the load ran ({r['wall']:.1f} s wall; {cores} cores = {cores * r['wall']:.0f} CPU s):")
    for name, s in r["cpu"].items():
        print(f"    {name:24s} {s:6.1f} s  ({s / r['wall']:.0%} of a core)")
    print("  Synapse's CPU by endpoint and background task (its own accounting):")
    for name, s in [kv for kv in r["synapse_cpu"] if not kv[0].startswith("db ")][:8]:
        print(f"    {name:44s} {s:6.1f} s")
    print("  Synapse's database transactions by name (wall time, summed over its connections):")
    for name, s in [kv for kv in r["synapse_cpu"] if kv[0].startswith("db ")][:8]:
        print(f"    {name[3:]:52s} {s:6.1f} s")
    if r["errors"]:
        print("  first send errors:", *r["errors"], sep="\n    ")


if __name__ == "__main__":
    main()
