"""Console benchmark: page times on the 1,000-group, 20 M-message community under load.

    python benchmarks/console.py --db sqlite:////tmp/bench/bench.db      # a database from benchmarks/report.py
    python benchmarks/console.py --db postgresql+psycopg://postgres@127.0.0.1/qunyun_bench
    python benchmarks/console.py --users 20 --seconds 60                   # the defaults

Steps:
1. the data — the community of ``benchmarks/report.py`` (1,000 groups, one
   year, ≈ 20 M messages in the rollups, ≈ 100,000 members); without
   ``--db`` it is generated into a temporary SQLite file first (minutes);
   member profiles (city, tags, expertise) are added once for the directory;
2. the server — the console as ``qunyun console`` runs it (dashboards
   computed once at start, then served up to 5 minutes stale while being
   refreshed) in a separate process (uvicorn, one worker) on a loopback
   port, its clock at the end of the data's year;
3. single requests — each page alone, ``--samples`` times, median and p99 of
   the app's own time (its ``Server-Timing`` header) and of the client's;
4. load — ``--users`` concurrent signed-in users for ``--seconds``, each
   looping over a mix (overview, the groups table, a random group's page, a
   directory search for a random term): requests/s, p50/p99 per page, errors;
   once with operators pausing about ``--think`` seconds between clicks (as
   people do), once without pausing (a saturation test: with 20 users and
   no pause the median is 20 ÷ requests per second, whatever the page).

Targets (the console issue): overview and group pages ≤ 200 ms server time
(median); directory search ≤ 100 ms over 100,000 members; zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from qunyun.console.accounts import Accounts  # noqa: E402
from qunyun.core.clock import SystemClock  # noqa: E402
from qunyun.store.db import migrate, open_engine  # noqa: E402
from qunyun.store.models import PlaybookState, table  # noqa: E402

COMMUNITY = "bench"
CITIES = ["北京", "上海", "深圳", "杭州", "成都", "广州", "武汉", "西安", "南京", "Singapore", "London", "Toronto"]
TAGS = ["python", "设计", "产品", "运营", "数据分析", "写作", "摄影", "AI", "前端", "后端", "投资", "英语"]
TERMS = ["python", "上海", "设计", "成员12", "member 4", "数据", "London", "运营", "AI", "写作"]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ensure_data(url: str | None) -> str:
    if url:
        return url
    tmp = Path(tempfile.mkdtemp(prefix="qunyun-console-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    print(f"generating the 1,000-group community into {url} (benchmarks/report.py --generate-only) …")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--db", url, "--generate-only"], check=True)
    return url


def write_config(url: str, where: Path) -> Path:
    engine = open_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, timezone, locale FROM communities WHERE id = :c"), {"c": COMMUNITY}).first()
        if row is None:
            raise SystemExit(f"{url} holds no community {COMMUNITY!r}: make it with benchmarks/report.py")
        groups = conn.execute(
            text("SELECT platform, key, name FROM groups WHERE community_id = :c ORDER BY key"), {"c": COMMUNITY}
        ).all()
    engine.dispose()
    config = {
        "communities": [{
            "id": COMMUNITY, "name": row.name, "timezone": row.timezone, "locale": row.locale,
            "groups": [{"id": g.key, "platform": g.platform, "name": g.name or g.key} for g in groups],
            "playbooks": {"profile": {"enabled": True}},
        }],
        "deployment": {"database": url},
    }
    path = where / "qunyun.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def ensure_profiles(url: str) -> int:
    """Give every member a profile (city, tags) in the profile playbook's state, once."""
    engine = open_engine(url)
    with engine.connect() as conn:
        have = conn.execute(
            text("SELECT count(*) FROM playbook_state WHERE community_id = :c AND playbook = 'profile'"), {"c": COMMUNITY}
        ).scalar_one()
        members = conn.execute(text("SELECT user_id FROM members WHERE community_id = :c"), {"c": COMMUNITY}).scalars().all()
    if have:
        engine.dispose()
        return len(members)
    rng = random.Random(3)
    now = datetime(2025, 12, 31, tzinfo=UTC)
    rows = []
    for uid in members:
        card = {"fields": {"city": rng.choice(CITIES), "expertise": rng.choice(TAGS)},
                "tags": rng.sample(TAGS, 2), "verified": False, "sharing": None}
        rows.append({"community_id": COMMUNITY, "playbook": "profile", "key": f"m:{uid}", "value": card,
                     "updated_at": now})
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(table(PlaybookState)), rows[i:i + 5000])
    engine.dispose()
    return len(members)


def start_server(config: Path, url: str, port: int, end: str) -> subprocess.Popen[bytes]:
    code = (
        "import sys, uvicorn\n"
        "from datetime import datetime, timedelta\n"
        "from qunyun.console.app import create_app\n"
        "from qunyun.core.clock import FakeClock\n"
        f"app = create_app({str(config)!r}, {url!r}, clock=FakeClock(datetime.fromisoformat({end!r})), "
        "stale_for=timedelta(minutes=5), warm=True)\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the console did not start")


def sign_in(base: str, username: str, password: str) -> httpx.Cookies:
    with httpx.Client(base_url=base) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        answer = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
        if "qunyun_session" not in client.cookies:
            raise SystemExit(f"sign-in failed: {answer.status_code} {answer.headers.get('location')}")
        return client.cookies


def server_ms(response: httpx.Response) -> float:
    found = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
    return float(found.group(1)) if found else float("nan")


CHARTS = ("activity", "speakers", "retention", "survival", "size_activity", "lorenz", "top", "lurkers")


def pages(groups: list[str], rng: random.Random) -> dict[str, str]:
    """What a visit loads: the pages, then the fragments their htmx loads (health, charts)."""
    group = rng.choice(groups)
    return {
        "overview": f"/c/{COMMUNITY}/overview",
        "overview health": f"/c/{COMMUNITY}/overview/health",
        "overview chart": f"/c/{COMMUNITY}/overview/chart/{rng.choice(CHARTS)}",
        "groups table": f"/c/{COMMUNITY}/groups",
        "group page": f"/c/{COMMUNITY}/groups/{group}",
        "group chart": f"/c/{COMMUNITY}/groups/{group}/chart",
        "directory search": f"/c/{COMMUNITY}/members?q={rng.choice(TERMS)}",
    }


def single(base: str, cookies: httpx.Cookies, groups: list[str], samples: int) -> None:
    rng = random.Random(5)
    print(f"\nsingle requests ({samples} each, one at a time; ms)")
    print(f"{'page':<18} {'server p50':>10} {'server p99':>10} {'client p50':>10} {'client p99':>10}")
    with httpx.Client(base_url=base, cookies=cookies, timeout=60) as client:
        for name in pages(groups, rng):
            srv, cli = [], []
            for i in range(samples + 2):
                path = pages(groups, rng)[name]
                t0 = time.perf_counter()
                answer = client.get(path)
                took = (time.perf_counter() - t0) * 1000
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {answer.status_code}")
                if i >= 2:  # the first two warm the caches
                    srv.append(server_ms(answer))
                    cli.append(took)
            print(f"{name:<18} {statistics.median(srv):10.1f} {_pct(srv, 0.99):10.1f} "
                  f"{statistics.median(cli):10.1f} {_pct(cli, 0.99):10.1f}")


async def load(base: str, cookies: httpx.Cookies, groups: list[str], users: int, seconds: float,
               think: float = 0.0) -> None:
    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    stop = time.perf_counter() + seconds

    async def user(n: int) -> None:
        rng = random.Random(100 + n)
        async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=120) as client:
            while time.perf_counter() < stop:
                for name, path in pages(groups, rng).items():
                    t0 = time.perf_counter()
                    try:
                        answer = await client.get(path)
                    except httpx.HTTPError:
                        errors[name] += 1
                        continue
                    took = (time.perf_counter() - t0) * 1000
                    if answer.status_code != 200:
                        errors[name] += 1
                    else:
                        results[name].append((server_ms(answer), took))
                    if think:
                        # an operator reads the page before the next click (0: no pause, a saturation test)
                        await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

    t0 = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    wall = time.perf_counter() - t0
    total = sum(len(v) for v in results.values())
    print(f"\nload: {users} concurrent users for {wall:.0f} s, {think:g} s between clicks — {total:,} answers, "
          f"{total / wall:.1f} requests/s, "
          f"{sum(errors.values())} errors")
    print(f"{'page':<18} {'requests':>8} {'server p50':>10} {'server p99':>10} {'client p50':>10} {'client p99':>10} {'errors':>6}")
    for name in results.keys() | errors.keys():
        srv = [s for s, _ in results[name]]
        cli = [c for _, c in results[name]]
        print(f"{name:<18} {len(cli):8d} {statistics.median(srv) if srv else float('nan'):10.1f} {_pct(srv, 0.99):10.1f} "
              f"{statistics.median(cli) if cli else float('nan'):10.1f} {_pct(cli, 0.99):10.1f} {errors[name]:6d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="a database made by benchmarks/report.py (default: generate one)")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--think", type=float, nargs="*", default=[1.0, 0.0],
                    help="seconds an operator pauses between clicks (one load run per value; 0 = no pause)")
    args = ap.parse_args()

    url = ensure_data(args.db)
    where = Path(tempfile.mkdtemp(prefix="qunyun-console-bench-"))
    config = write_config(url, where)
    members = ensure_profiles(url)
    engine = open_engine(url)
    accounts = Accounts(engine, SystemClock())
    password = secrets.token_urlsafe(12)
    if any(name == "bench" for name, *_ in accounts.users()):
        accounts.set_password("bench", password)
    else:
        accounts.create_user("bench", password)
    accounts.grant("bench", COMMUNITY, "owner")
    with engine.connect() as conn:
        groups = conn.execute(text("SELECT key FROM groups WHERE community_id = :c"), {"c": COMMUNITY}).scalars().all()
        messages = conn.execute(text("SELECT coalesce(sum(messages), 0) FROM rollups WHERE community_id = :c"),
                                {"c": COMMUNITY}).scalar_one()
        last = conn.execute(text("SELECT max(day) FROM group_days WHERE community_id = :c"), {"c": COMMUNITY}).scalar_one()
    engine.dispose()
    print(f"database: {engine.dialect.name}; {len(groups):,} groups, {members:,} members, {int(messages):,} messages")
    port = args.port or _free_port()
    end = f"{str(last)[:10]}T20:00:00+08:00"
    server = start_server(config, url, port, end)
    try:
        base = f"http://127.0.0.1:{port}"
        cookies = sign_in(base, "bench", password)
        print(f"console at {base}, clock at {end}; load average {os.getloadavg()[0]:.1f}")
        single(base, cookies, list(groups), args.samples)
        for think in args.think:
            asyncio.run(load(base, cookies, list(groups), args.users, args.seconds, think))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
