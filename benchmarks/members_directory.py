"""Member directory benchmark: searches over a 100,000-member community.

    python benchmarks/members_directory.py                       # SQLite, 100,000 members
    python benchmarks/members_directory.py --db sqlite --db postgresql+psycopg://postgres@127.0.0.1/bench
    python benchmarks/members_directory.py --members 20000       # a quicker run

Generates members, memberships, profiles (60% of members, default fields,
cities and expertise drawn from small vocabularies, 3% opted out, 5% with
their own sharing level), levels state, points accounts and per-group
totals with bulk inserts. Then it builds the directory's search table
(``qunyun.console.directory``, timed: the first use), times the check that
finds it current, and an incremental refresh after 200 profiles changed;
then times the console's directory query
(``qunyun.console.pages.members.directory``) — the currency check, the
count and one page of 50 rows — for typical searches as an admin and as a
viewer, and prints the median of several runs of each (milliseconds,
server time, no HTTP). ``--db`` may be given several times (``sqlite``: a
file in a temporary directory). The load average is printed: on a busy
machine the wall clock also counts time spent waiting for a CPU.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from qunyun.config.model import settings_from_text  # noqa: E402
from qunyun.console import directory as directory_index  # noqa: E402
from qunyun.console.pages import members as directory_page  # noqa: E402
from qunyun.core.clock import SystemClock  # noqa: E402
from qunyun.store.db import migrate, open_engine  # noqa: E402
from qunyun.store.models import PlaybookState, table  # noqa: E402

CITIES = ["上海", "北京", "深圳", "杭州", "成都", "广州", "南京", "苏州", "武汉", "西安", "Berlin", "London"]
SKILLS = ["社群运营", "用户增长", "数据分析", "产品设计", "写作", "摄影", "阅读方法", "python", "design", "marketing"]
POSITIONS = ["运营经理", "产品经理", "设计师", "研究生", "工程师", "会计", "教师", "founder"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
CONFIG = """
communities:
  - id: bench
    name: Bench
    timezone: Asia/Shanghai
    locale: zh-CN
    groups:
{groups}
    playbooks:
      profile: {{}}
      levels: {{}}
"""


def generate(url: str, members: int, groups: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    engine = open_engine(url)
    migrate(engine)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM members WHERE community_id = 'bench'")).scalar():
            engine.dispose()
            return
        conn.execute(text("INSERT INTO communities (id, name, timezone, locale, created_at, epoch) "
                          "VALUES ('bench', 'Bench', 'Asia/Shanghai', 'zh-CN', :t, 0)"), {"t": now})
        for g in range(groups):
            conn.execute(text("INSERT INTO groups (id, community_id, platform, key, name, created_at) "
                              "VALUES (:i, 'bench', 'sim', :k, :n, :t)"),
                         {"i": g + 1, "k": f"g-{g}", "n": f"Group {g}", "t": now})
        batch = 5000
        for start in range(0, members, batch):
            rows, ms, mg, ps, lv, acc = [], [], [], [], [], []
            for i in range(start, min(members, start + batch)):
                mid = i + 1
                uid = f"u-{mid:06d}"
                name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.5 else "")
                first = now - timedelta(days=rng.randint(1, 700))
                last = first + timedelta(days=rng.randint(0, (now - first).days))
                rows.append({"id": mid, "uid": uid, "name": name, "f": first, "l": last})
                g = rng.randrange(groups)
                status = rng.choices(["active", "left", "removed"], [85, 10, 5])[0]
                ms.append({"g": g + 1, "m": mid, "s": status, "j": first})
                mg.append({"g": g + 1, "m": mid, "d": first.date(), "n": int(rng.paretovariate(1.2))})
                points = int(rng.paretovariate(1.1) * 20)
                acc.append({"code": f"member:sim:{uid}:POINTS", "m": mid, "b": points, "t": now})
                if rng.random() < 0.4:
                    lv.append({"k": f"m:{uid}", "v": orjson.dumps({"level": min(4, points // 200)}).decode(), "t": now})
                if rng.random() < 0.6:
                    city, skills = rng.choice(CITIES), rng.sample(SKILLS, rng.randint(1, 3))
                    fields = {"city": city, "expertise": "、".join(skills), "position": rng.choice(POSITIONS),
                              "needs": "认识更多朋友"}
                    tags = sorted({f"city:{city.lower()}", *(s.lower() for s in skills),
                                   f"position:{fields['position'].lower()}", "need:认识更多朋友"})
                    ps.append({"k": f"m:{uid}", "t": now, "v": orjson.dumps({
                        "fields": fields, "tags": tags, "verified": rng.random() < 0.1,
                        "sharing": rng.choice(["open", "admins"]) if rng.random() < 0.05 else None,
                        "opt_out": rng.random() < 0.03, "updated": now.isoformat(), "asked": None}).decode()})
            conn.execute(text("INSERT INTO members (id, community_id, platform, user_id, name, first_seen_at, "
                              "last_seen_at, erased) VALUES (:id, 'bench', 'sim', :uid, :name, :f, :l, false)"), rows)
            conn.execute(text("INSERT INTO memberships (group_id, member_id, role, status, joined_at) "
                              "VALUES (:g, :m, 'member', :s, :j)"), ms)
            conn.execute(text("INSERT INTO member_groups (group_id, member_id, community_id, first_day, messages, "
                              "checkin_days) VALUES (:g, :m, 'bench', :d, :n, 0)"), mg)
            conn.execute(text("INSERT INTO ledger_accounts (community_id, code, kind, member_id, currency, balance, "
                              "created_at) VALUES ('bench', :code, 'member', :m, 'POINTS', :b, :t)"), acc)
            if ps:
                conn.execute(text("INSERT INTO playbook_state (community_id, playbook, key, value, updated_at) "
                                  "VALUES ('bench', 'profile', :k, :v, :t)"), ps)
            if lv:
                conn.execute(text("INSERT INTO playbook_state (community_id, playbook, key, value, updated_at) "
                                  "VALUES ('bench', 'levels', :k, :v, :t)"), lv)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("browse (last seen)", {}, None),
    ("browse by points", {}, "points"),
    ("free text: a name", {"q": "王伟"}, None),
    ("free text: two words", {"q": "上海 运营"}, None),
    ("city", {"city": "深圳"}, None),
    ("tag", {"tag": "city:杭州"}, None),
    ("expertise", {"expertise": "python"}, None),
    ("group + status", {"group": "g-3", "status": "active"}, None),
    ("level", {"level": "2"}, "points"),
    ("no match", {"q": "' OR 1=1 --"}, None),
]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def _touch(engine: Any, count: int, seed: int = 11) -> None:
    """Change ``count`` profiles (a new city) the way the engine would, and bump the epoch."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        keys = [r[0] for r in conn.execute(text(
            "SELECT key FROM playbook_state WHERE community_id = 'bench' AND playbook = 'profile' ORDER BY key"))]
        latest = conn.execute(text("SELECT max(updated_at) FROM playbook_state WHERE community_id = 'bench'")).scalar()
        latest = latest if isinstance(latest, datetime) else datetime.fromisoformat(str(latest))
        later = (latest if latest.tzinfo else latest.replace(tzinfo=UTC)) + timedelta(hours=1)
        for key in rng.sample(keys, min(count, len(keys))):
            value = orjson.loads(conn.execute(text(
                "SELECT value FROM playbook_state WHERE community_id = 'bench' AND playbook = 'profile' AND key = :k"),
                {"k": key}).scalar())
            value["fields"]["city"] = rng.choice(CITIES)
            st = table(PlaybookState)  # typed: the time is stored as the engine stores it
            conn.execute(update(st).where(st.c.community_id == "bench", st.c.playbook == "profile", st.c.key == key)
                         .values(value=value, updated_at=later))
        conn.execute(text("UPDATE communities SET epoch = epoch + 1 WHERE id = 'bench'"))


def run(url: str, members: int, groups: int, repeat: int) -> None:
    generate(url, members, groups)
    settings = settings_from_text(CONFIG.format(groups="\n".join(
        f"      - {{id: g-{g}, platform: sim, name: Group {g}}}" for g in range(groups))))
    community = settings.communities["bench"]
    engine = open_engine(url)
    clock = SystemClock()
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM members WHERE community_id = 'bench'")).scalar()
    print(f"{engine.dialect.name}: {n:,} members, {groups} groups; {_load()}")

    def timed(full: bool = False) -> tuple[float, directory_index.Outcome]:
        t0 = time.perf_counter()
        outcome = directory_index.ensure(engine, engine, community, clock, full=full)
        return (time.perf_counter() - t0) * 1000, outcome

    took, outcome = timed(full=True)
    print(f"  full build               {took:8.1f} ms   ({outcome.rows:,} rows)")
    checks = [timed()[0] for _ in range(repeat)]
    print(f"  check (nothing changed)  {statistics.median(checks):8.1f} ms")
    _touch(engine, 200)
    took, outcome = timed()
    print(f"  refresh (200 profiles)   {took:8.1f} ms   ({outcome.action}, {outcome.rows:,} rows)")
    print(f"  median of {repeat} runs: check + count + one page of 50 (wall clock; CPU of this process: on\n"
          f"  SQLite, where the database runs in-process, what the query costs without the wait); {_load()}")
    for viewer in ("admin", "viewer"):
        for label, query, sort in CASES:
            crit = directory_page.criteria_from(query)
            times, cpu, total = [], [], 0
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                directory_index.ensure(engine, engine, community, clock)
                with engine.connect() as conn:
                    found = directory_page.directory(None, conn, community, crit, admin=viewer == "admin",
                                                     sort=sort, desc=True, offset=0, limit=50)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                total = found.total
            print(f"  {viewer:6} {label:22} {statistics.median(times):8.1f} ms  (CPU of this process "
                  f"{statistics.median(cpu):6.1f} ms)   ({total:,} found)")
    print(f"  {_load()}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append",
                        help="database URL, or 'sqlite' for a file in a temporary directory (repeatable; default sqlite)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for db in args.db or ["sqlite"]:
        if db != "sqlite":
            run(db, args.members, args.groups, args.repeat)
            continue
        with tempfile.TemporaryDirectory() as where:
            run(f"sqlite:///{Path(where) / 'directory.db'}", args.members, args.groups, args.repeat)


if __name__ == "__main__":
    main()
