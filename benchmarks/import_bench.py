"""Import benchmark: parse a generated 1,000,000-message Telegram export and WeChat CSV.

    python benchmarks/import_bench.py                     # 1M messages each, parse only
    python benchmarks/import_bench.py --messages 200000   # a quicker run
    python benchmarks/import_bench.py --engine 100000     # also: the first 100k through the engine (SQLite)

Steps, each in its own process so its peak memory is its own:
1. generate — a Telegram Desktop ``result.json`` (one supergroup; text as
   strings and as entity arrays, replies, photos, stickers, joins) and a
   WeChatMsg 12-column CSV, seeded, in a temporary directory;
2. parse    — the importer streams the file into validated events (the
   parse-to-events rate: what the importer itself costs);
3. engine   — optionally, ``import_files`` with the engine on SQLite, playbooks
   off (the end-to-end rate; the engine, not the parser, is the limit there).
Prints messages/s by the wall clock and per CPU-second (on a shared machine
the wall clock also counts time spent waiting for a CPU), and each step's
peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ["今天", "读书会", "几点", "开始", "大家", "早上好", "这个", "问题", "我", "也", "遇到", "过", "谢谢", "分享", "链接", "在", "这里", "hello", "everyone", "what", "time", "does", "the", "meetup", "start", "thanks", "for", "sharing", "the", "link", "is", "here"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 18)))


def generate_telegram(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = 1_700_000_000
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{\n "name": "Benchmark Group",\n "type": "private_supergroup",\n "id": 1555000111,\n "messages": [\n')
        for i in range(1, n + 1):
            uid = rng.randint(1, 5000)
            ts = start + i * 3
            msg: dict[str, object] = {
                "id": i,
                "type": "message",
                "date": "2023-11-14T22:13:20",
                "date_unixtime": str(ts),
                "from": f"member {uid}",
                "from_id": f"user{uid}" if uid % 3 else uid,
            }
            roll = rng.random()
            if roll < 0.02:
                msg = {
                    "id": i, "type": "service", "date": "2023-11-14T22:13:20", "date_unixtime": str(ts),
                    "actor": f"member {uid}", "actor_id": f"user{uid}", "action": "join_group_by_link",
                    "text": "",
                }
            elif roll < 0.10:
                msg["photo"] = "(File not included. Change data exporting settings to download.)"
                msg["text"] = ""
            elif roll < 0.14:
                msg["file"] = "(File not included. Change data exporting settings to download.)"
                msg["media_type"] = "sticker"
                msg["text"] = ""
            elif roll < 0.30:
                other = rng.randint(1, 5000)
                msg["text"] = [
                    _text(rng) + " ",
                    {"type": "mention_name", "text": f"member {other}", "user_id": other},
                    " ",
                    {"type": "link", "text": "https://example.org/x"},
                ]
            else:
                msg["text"] = _text(rng)
            if roll > 0.6 and i > 10:
                msg["reply_to_message_id"] = i - rng.randint(1, 10)
            fh.write(("  " if i == 1 else ",\n  ") + json.dumps(msg, ensure_ascii=False, indent=1).replace("\n", "\n  "))
        fh.write("\n ]\n}\n")


def generate_wechat(path: Path, n: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    start = 1_700_000_000
    talker = "38999000111@chatroom"
    types = [(1, 0)] * 80 + [(3, 0)] * 8 + [(47, 0)] * 5 + [(34, 0)] * 3 + [(49, 5)] * 2 + [(49, 57)] * 2
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status",
             "StrContent", "StrTime", "Remark", "NickName", "Sender"]
        )
        for i in range(1, n + 1):
            uid = rng.randint(1, 5000)
            kind, sub = rng.choice(types)
            content = _text(rng) if kind == 1 else "<msg><img length=\"1\" /></msg>"
            out.writerow(
                [i, talker, kind, sub, int(uid == 1), start + i * 3, 2, content,
                 "2023-11-15 06:13:20", "", f"成员{uid}", f"wxid_{uid:06d}"]
            )


def _cpu() -> float:
    """CPU seconds of this process: on a shared machine, what the work itself cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def step_parse(fmt: str, path: str) -> None:
    from qunyun.core.clock import monotonic
    from qunyun.importers import FORMATS, BadRow

    importer = FORMATS[fmt]()
    events = bad = 0
    cpu = _cpu()
    started = monotonic()
    for item in importer.read(path):
        if isinstance(item, BadRow):
            bad += 1
        else:
            events += 1
    seconds = monotonic() - started
    print(json.dumps({"events": events, "bad": bad, "seconds": seconds, "cpu": _cpu() - cpu, "rss_mb": _rss_mb()}))


def step_engine(fmt: str, path: str, limit: int, db: str) -> None:
    from itertools import islice

    from qunyun.core.clock import monotonic
    from qunyun.importers import FORMATS
    from qunyun.importers.run import import_files
    from qunyun.store.db import migrate, open_engine

    # Cut the file's events to `limit` by importing a prefix copy.
    importer = FORMATS[fmt]()
    small = Path(path).with_suffix(".prefix" + Path(path).suffix)
    if fmt == "wechatmsg":
        with open(path, encoding="utf-8-sig", newline="") as src, open(small, "w", encoding="utf-8-sig", newline="") as dst:
            dst.writelines(islice(src, limit + 1))
    else:
        generate_telegram(small, limit)
    engine = open_engine(db)
    migrate(engine)
    cpu = _cpu()
    started = monotonic()
    report = import_files(importer, [small], db=engine, batch_size=1000)
    seconds = monotonic() - started
    print(json.dumps({
        "events": report.total, "stored": report.outcomes.get("handled", 0), "seconds": seconds,
        "cpu": _cpu() - cpu, "rss_mb": _rss_mb(),
    }))


def _run(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--engine", type=int, default=0, help="also run this many events through the engine")
    parser.add_argument("--db", default=None, help="database URL for --engine (default: a temporary SQLite file)")
    parser.add_argument("--step", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        kind, *rest = args.step
        if kind == "parse":
            step_parse(rest[0], rest[1])
        elif kind == "engine":
            step_engine(rest[0], rest[1], int(rest[2]), rest[3])
        return
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs (a busy machine slows the wall-clock rates)")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"telegram": Path(tmp) / "result.json", "wechatmsg": Path(tmp) / "wechat.csv"}
        generate_telegram(files["telegram"], args.messages)
        generate_wechat(files["wechatmsg"], args.messages)
        for fmt, path in files.items():
            size = path.stat().st_size / 1e6
            parse = _run("--step", "parse", fmt, str(path))
            rate = parse["events"] / parse["seconds"]
            print(
                f"{fmt:9} parse   {parse['events']:>9,.0f} events  {size:8.1f} MB  "
                f"{parse['seconds']:6.1f} s  {rate:>9,.0f} messages/s  "
                f"({parse['events'] / parse['cpu']:,.0f}/CPU-s)  peak RSS {parse['rss_mb']:.0f} MB"
            )
            if args.engine:
                db = args.db or f"sqlite:///{Path(tmp) / (fmt + '.db')}"
                done = _run("--step", "engine", fmt, str(path), str(args.engine), db)
                print(
                    f"{fmt:9} engine  {done['events']:>9,.0f} events  {'':8}     "
                    f"{done['seconds']:6.1f} s  {done['events'] / done['seconds']:>9,.0f} events/s    "
                    f"({done['events'] / done['cpu']:,.0f}/CPU-s)  peak RSS {done['rss_mb']:.0f} MB"
                )


if __name__ == "__main__":
    main()
