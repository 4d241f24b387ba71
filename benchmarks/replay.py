"""Replay benchmark: a seeded 1,000,000-event log through all five playbooks.

    python benchmarks/replay.py                      # SQLite, 1M events
    python benchmarks/replay.py --db postgresql+psycopg://postgres@127.0.0.1/bench
    python benchmarks/replay.py --events 100000      # a quicker run

Steps, each in its own process so its peak memory is its own:
1. generate  — 300 groups, 30,000 members, 90 days (seeded; written once, reused);
2. parse     — only read and validate every line (the floor for the engine);
3. replay    — the engine with moderation, welcome, checkin, faq and levels.
Prints events/s for parse and replay, their ratio, and each step's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
CONFIG = """
communities:
  - id: bench
    name: 基准社群
    timezone: Asia/Shanghai
    locale: zh-CN
    catch_all: true
    roles:
      admin: [u-0, u-1]
    playbooks:
      moderation:
        links:
          allow_domains: [example.org]
      welcome: {}
      checkin: {}
      faq:
        entries:
          - keywords: [怎么打卡, how to check in]
            answer: 每天发「打卡 + 今天做了什么」即可。
          - keywords: [群规, rules]
            answer: 群规见群公告，欢迎先读一读。
          - keywords: [资料, materials]
            answer: 学习资料在群文件「资料」目录。
      levels: {}
"""

CHATTER = [
    "今天的分享太有收获了", "有人一起复盘吗", "同意楼上", "这个思路不错", "周末有线下活动吗",
    "刚看完第三章", "求推荐入门书", "谢谢大家的建议", "早上好", "晚安各位", "学到了",
    "这个问题我也遇到过", "可以展开讲讲吗", "明天继续", "收藏了", "good point", "thanks all",
]
QUESTIONS = ["请问怎么打卡？", "群规在哪里看？", "有没有资料可以分享？", "新人请问资料在哪", "how to check in?"]
CHECKINS = ["打卡 读书30页", "打卡 跑步5公里", "打卡 背单词", "打卡", "打卡 复盘一周"]
SPAM = ["加微信领优惠券 vx123456", "兼职日结，私聊", "免费领取课程 https://spam.example.com/x"]


def generate(path: Path, events: int, groups: int, members: int, days: int, seed: int) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    span = days * 86400
    step = span / events
    group_of = [f"g-{rng.randrange(groups):03d}" for _ in range(members)]
    joined = [False] * members
    recent: dict[str, list[str]] = {}
    t = 0.0
    n = 0
    out = []
    with open(path, "wb") as fh:
        # an initial core: 60% of members are there from the start
        for uid in range(members):
            if rng.random() < 0.6:
                joined[uid] = True
                ts = (start + timedelta(seconds=rng.random() * 3600)).isoformat()
                out.append(_ev(n, ts, group_of[uid], uid, "member_joined", via="link"))
                n += 1
        out.sort(key=lambda e: e["ts"])
        fh.write(b"".join(orjson.dumps(e) + b"\n" for e in out))
        t = 3600.0
        step = (span - 3600) / max(1, events - n)
        buf = []
        while n < events:
            t += rng.expovariate(1 / step)
            ts = (start + timedelta(seconds=t)).isoformat()
            uid = min(int(rng.paretovariate(1.2)) - 1, members - 1) if rng.random() < 0.5 else rng.randrange(members)
            g = group_of[uid]
            if not joined[uid]:
                joined[uid] = True
                buf.append(_ev(n, ts, g, uid, "member_joined", via="invite", inviter=f"u-{rng.randrange(members)}"))
                n += 1
                continue
            r = rng.random()
            msgs = recent.setdefault(g, [])
            if r < 0.10 and msgs:
                buf.append(_ev(n, ts, g, uid, "reaction", target=rng.choice(msgs), emoji="👍"))
            elif r < 0.105:
                joined[uid] = False
                buf.append(_ev(n, ts, g, uid, "member_left"))
            else:
                r2 = rng.random()
                if r2 < 0.06:
                    text = rng.choice(CHECKINS)
                elif r2 < 0.08:
                    text = rng.choice(QUESTIONS)
                elif r2 < 0.082:
                    text = rng.choice(SPAM)
                else:
                    text = rng.choice(CHATTER)
                mid = f"m-{n}"
                fields = {"msg_id": mid, "text": text, "content_type": "text", "mentions": [], "reply_to": None}
                if msgs and rng.random() < 0.15:
                    fields["reply_to"] = rng.choice(msgs)
                if rng.random() < 0.05:
                    fields["mentions"] = [f"u-{rng.randrange(members)}"]
                buf.append(_ev(n, ts, g, uid, "message", **fields))
                msgs.append(mid)
                if len(msgs) > 20:
                    del msgs[0]
            n += 1
            if len(buf) >= 10000:
                fh.write(b"".join(orjson.dumps(e) + b"\n" for e in buf))
                buf.clear()
        fh.write(b"".join(orjson.dumps(e) + b"\n" for e in buf))


def _ev(n: int, ts: str, group: str, uid: int, type_: str, **fields: object) -> dict[str, object]:
    return {
        "v": 1, "id": f"e-{n}", "ts": ts, "platform": "bench", "group": group, "type": type_,
        "actor": {"id": f"u-{uid}", "name": f"成员{uid}"}, **fields,
    }


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_parse(path: Path) -> dict[str, float]:
    from qunyun.adapters.replay import BadLine, read_events

    t0 = time.perf_counter()
    count = sum(1 for item in read_events(path) if not isinstance(item, BadLine))
    secs = time.perf_counter() - t0
    return {"events": count, "seconds": secs, "rate": count / secs, "peak_mb": peak_mb()}


def step_replay(path: Path, db: str, batch: int) -> dict[str, float]:
    from qunyun.config import settings_from_text
    from qunyun.replay import replay_file
    from qunyun.store.db import migrate, open_engine

    engine = open_engine(db)
    migrate(engine)
    settings = settings_from_text(CONFIG, "benchmark config")
    report = replay_file(path, settings, engine, batch_size=batch, window=0)
    return {
        "events": report.events,
        "seconds": report.seconds,
        "rate": report.rate,
        "peak_mb": peak_mb(),
        "handled": report.outcomes.get("handled", 0),
        "jobs": report.jobs_fired,
        "failures": report.playbook_failures,
    }


def fresh_db(url: str | None, workdir: Path) -> str:
    if url is None:
        target = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{target}"
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--members", type=int, default=30_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1000, help="events per transaction")
    ap.add_argument("--db", default=None, help="PostgreSQL URL (its public schema is wiped!); default SQLite")
    ap.add_argument("--workdir", type=Path, default=HERE / "out")
    ap.add_argument("--step", choices=["parse", "replay"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.step == "parse":
        print(json.dumps(step_parse(args.file)))
        return
    if args.step == "replay":
        print(json.dumps(step_replay(args.file, args.db, args.batch)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"events-{args.events}-{args.groups}-{args.members}-{args.days}-{args.seed}.jsonl"
    if not path.exists():
        print(f"generating {args.events:,} events → {path}", flush=True)
        t0 = time.perf_counter()
        generate(path, args.events, args.groups, args.members, args.days, args.seed)
        print(f"  generated in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
    db = fresh_db(args.db, args.workdir)

    def child(step: str) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--step", step, "--file", str(path), "--batch", str(args.batch)]
        if step == "replay":
            cmd += ["--db", db]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    parse = child("parse")
    print(f"parse+validate: {parse['events']:,.0f} events in {parse['seconds']:.1f} s = "
          f"{parse['rate']:,.0f} events/s, peak {parse['peak_mb']:.0f} MB")
    rep = child("replay")
    backend = "PostgreSQL" if args.db else "SQLite"
    print(f"replay ({backend}, 5 playbooks, batch {args.batch}): {rep['events']:,.0f} events in "
          f"{rep['seconds']:.1f} s = {rep['rate']:,.0f} events/s, peak {rep['peak_mb']:.0f} MB "
          f"(jobs fired {rep['jobs']:,.0f}, playbook failures {rep['failures']:,.0f})")
    print(f"engine/parse time ratio: {rep['seconds'] / parse['seconds']:.1f}x")


if __name__ == "__main__":
    main()
