"""`qunyun replay`: hand-written events, bad input, re-runs and crashes.

The crash tests kill a real `qunyun replay` process with SIGKILL at chosen
points (QUNYUN_FAULT), run the same replay again, and compare the final state
and the actions file with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers commands)
from qunyun.cli.app import app
from qunyun.store import models as m
from qunyun.testing import check_ledger

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def _replay(args: list[str]) -> Any:
    return runner.invoke(app, ["replay", *args, "--quiet"])


def _actions(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_hand_written_events_give_the_expected_actions(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    result = _replay([str(DATA / "hand.jsonl"), "--config", str(DATA / "hand.yaml"), "--db", db_url, "--actions", str(out)])
    assert result.exit_code == 0, result.output
    acts = _actions(out)
    kinds = [(a["playbook"], a["type"]) for a in acts]
    assert kinds == [
        ("welcome", "send"),  # two joins complete a batch of 2 at once
        ("checkin", "send"),
        ("faq", "send"),
        ("moderation", "delete"),
        ("moderation", "send"),
        ("welcome", "send"),  # the third newcomer, 10 minutes after joining
    ]
    assert acts[0]["mentions"] == ["u1", "u2"]
    assert "小王" in acts[1]["text"] and acts[1]["reply_to"] == "m1"
    assert acts[2]["text"] == "发「打卡 + 今天做了什么」就行。"
    assert acts[3]["msg_id"] == "m3"
    assert acts[5]["mentions"] == ["u4"]
    assert acts[5]["cause"].startswith("job:") and acts[5]["ts"] == "2026-11-02T01:30:00+00:00"
    for a in acts:
        assert a["v"] == 1 and a["id"].startswith("act-")
    check_ledger(create_engine(db_url))


def test_replaying_the_same_file_again_changes_nothing(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    args = [str(DATA / "hand.jsonl"), "--config", str(DATA / "hand.yaml"), "--db", db_url, "--actions", str(out)]
    assert _replay(args).exit_code == 0
    first = out.read_bytes()
    again = _replay(args)
    assert again.exit_code == 0, again.output
    assert "duplicate" in again.output
    assert out.read_bytes() == first
    eng = create_engine(db_url)
    with eng.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 7
        assert conn.execute(text("SELECT count(*) FROM actions")).scalar() == 6


BAD_LINES = [
    "{not json",
    '["an", "array"]',
    '{"v":1,"id":"b1","ts":"2026-11-02T09:00:00","platform":"sim","group":"g-main","type":"message","actor":{"id":"u1"},"msg_id":"x"}',
    '{"v":1,"id":"b2","ts":"2026-11-02T09:00:00+08:00","platform":"sim","group":"g-main","type":"teleport","actor":{"id":"u1"}}',
    '{"v":1,"id":"b3","ts":"2026-11-02T09:00:00+08:00","platform":"sim","group":"g-main","type":"message","actor":{"id":"u1"}}',
    '{"v":1,"id":"b4","ts":"2026-11-02T09:00:00+08:00","platform":"sim","group":"g-main","type":"payment","actor":{"id":"u1"},"amount":9.99,"currency":"CNY"}',
    '{"v":2,"id":"b5","ts":"2026-11-02T09:00:00+08:00","platform":"sim","group":"g-main","type":"message","actor":{"id":"u1"},"msg_id":"y"}',
]


def _event(n: int, minute: int, **fields: Any) -> str:
    base = {
        "v": 1, "id": f"ok{n}", "ts": f"2026-11-02T10:{minute:02d}:00+08:00", "platform": "sim",
        "group": "g-main", "type": "message", "actor": {"id": f"u{n}", "name": f"成员{n}"},
        "msg_id": f"ok-m{n}", "text": "你好", "content_type": "text", "mentions": [], "reply_to": None,
    }
    base.update(fields)
    return json.dumps(base, ensure_ascii=False)


def test_bad_lines_are_reported_with_line_numbers_and_nothing_else_is_lost(db_url: str, tmp_path: Path) -> None:
    good = [
        _event(1, 1),
        _event(2, 3, actor={"id": "u2", "name": "\u202eevil\u0007name"}),
        _event(3, 2, text="'; DROP TABLE members; --"),  # out of order within the group
        _event(4, 4, text="长" * (1024 * 1024)),  # a 1 MB message
        _event(1, 5),  # duplicate id
        _event(5, 6, group="g-unknown"),  # not configured
    ]
    lines = [good[0], BAD_LINES[0], good[1], BAD_LINES[1], BAD_LINES[2], good[2], BAD_LINES[3],
             BAD_LINES[4], good[3], BAD_LINES[5], BAD_LINES[6], good[4], good[5]]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _replay([str(path), "--config", str(DATA / "hand.yaml"), "--db", db_url, "--window", "0"])
    assert result.exit_code == 1
    out = result.output
    for lineno in (2, 4, 5, 7, 8, 10, 11):
        assert f"events.jsonl:{lineno}:" in out, f"line {lineno} not reported:\n{out}"
    assert "not valid JSON" in out
    assert "time zone" in out
    assert "unknown event type 'teleport'" in out
    assert "field 'msg_id'" in out
    assert "g-unknown" in out
    eng = create_engine(db_url)
    with eng.connect() as conn:
        rows = dict(conn.execute(text("SELECT event_id, status FROM events")).all())
        assert rows == {"ok1": "handled", "ok2": "handled", "ok3": "late", "ok4": "handled"}
        texts = {r[0]: r[1] for r in conn.execute(text("SELECT msg_id, text FROM messages"))}
        assert texts["ok-m3"] == "'; DROP TABLE members; --"
        assert len(texts["ok-m4"]) == 1024 * 1024
        name = conn.execute(text("SELECT name FROM members WHERE user_id = 'u2'")).scalar()
        assert name == "\u202eevil\u0007name"  # stored as given; cleaned only where displayed
        assert conn.execute(text("SELECT count(*) FROM members")).scalar() == 4


def _snapshot(db_url: str) -> dict[str, Any]:
    eng = create_engine(db_url)
    q = {
        "events": "SELECT platform, event_id, type, status FROM events ORDER BY platform, event_id",
        "messages": "SELECT msg_id, text, status FROM messages ORDER BY msg_id",
        "actions": "SELECT id, type, playbook, cause, payload FROM actions ORDER BY id",
        "state": "SELECT community_id, playbook, key, value FROM playbook_state ORDER BY 1, 2, 3",
        "accounts": "SELECT code, balance FROM ledger_accounts ORDER BY code",
        "txns": "SELECT id, reason, cause FROM ledger_transactions ORDER BY id",
        "rollups": "SELECT g.key, m.user_id, r.day, r.messages, r.checkins, r.joins, r.reactions_received "
        "FROM rollups r JOIN groups g ON g.id = r.group_id JOIN members m ON m.id = r.member_id ORDER BY 1, 2, 3",
        "records": "SELECT playbook, kind, member, cause FROM records ORDER BY cause, playbook, kind, member",
    }
    with eng.connect() as conn:
        snap = {name: [tuple(str(v) for v in row) for row in conn.execute(text(sql))] for name, sql in q.items()}
        jobs = m.Job.__table__
        # typed read: the two backends print timestamps differently
        snap["jobs"] = [tuple(map(str, r)) for r in conn.execute(select(jobs.c.id, jobs.c.due_at).order_by(jobs.c.id))]
    eng.dispose()
    return snap


def _sim_events(tmp_path: Path) -> tuple[Path, Path]:
    """A few thousand realistic events from the simulator, and its config."""
    from qunyun.adapters.sim import Simulation

    sim = Simulation(seed=3, groups=2, members=60, days=6)
    path = tmp_path / "sim.jsonl"
    with open(path, "wb") as fh:
        for day in range(6):
            for event in sim.run_day(day):
                fh.write(event.model_dump_json().encode() + b"\n")
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(sim.config_yaml("zh-CN"), encoding="utf-8")
    return path, cfg


def _run_cli(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("QUNYUN_FAULT", None)
    if fault:
        env["QUNYUN_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "qunyun.cli", "replay", *args, "--quiet"],
        env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill-after-commit:3", "kill-after-deliver:2"])
def test_a_crash_mid_replay_then_the_same_replay_gives_the_same_state(
    db_url: str, tmp_path: Path, fault: str, request: pytest.FixtureRequest
) -> None:
    events, cfg = _sim_events(tmp_path)
    # the uninterrupted reference run, in a database of its own
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    ref_actions = tmp_path / "reference.jsonl"
    ok = _run_cli([str(events), "--config", str(cfg), "--db", ref_url, "--actions", str(ref_actions), "--batch", "200"])
    assert ok.returncode == 0, ok.stdout + ok.stderr

    out = tmp_path / "actions.jsonl"
    args = [str(events), "--config", str(cfg), "--db", db_url, "--actions", str(out), "--batch", "200"]
    crashed = _run_cli(args, fault=fault)
    assert crashed.returncode == -9, f"the fault did not fire: {crashed.returncode} {crashed.stderr[-500:]}"
    partial = _snapshot(db_url)
    assert 0 < len(partial["events"]) < len(_snapshot(ref_url)["events"])

    again = _run_cli(args)
    assert again.returncode == 0, again.stdout + again.stderr

    after = _snapshot(db_url)
    reference = _snapshot(ref_url)
    for table in reference:
        if table == "jobs" or table == "actions":
            continue
        assert after[table] == reference[table], f"{table} differs after crash and re-run"
    assert [r[:4] for r in after["actions"]] == [r[:4] for r in reference["actions"]]
    assert after["jobs"] == reference["jobs"]
    written = _actions(out)
    ids = [a["id"] for a in written]
    assert len(ids) == len(set(ids)), "an action was written twice"
    assert ids == [a["id"] for a in _actions(ref_actions)]
    check_ledger(create_engine(db_url))


def test_the_summary_speaks_the_operators_language(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = [str(DATA / "hand.jsonl"), "--config", str(DATA / "hand.yaml"), "--db", db_url]
    monkeypatch.setenv("QUNYUN_LANG", "zh-CN")
    zh = _replay(args)
    assert zh.exit_code == 0 and "重放汇总" in zh.output and "已处理" in zh.output
    monkeypatch.setenv("QUNYUN_LANG", "en")
    en = _replay(args)
    assert "replay summary" in en.output and "duplicate" in en.output and "重放" not in en.output


def test_markup_in_a_bad_line_is_printed_literally(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"v":1,"id":"[bold red]x[/]","ts":"2026-11-02T09:00:00","platform":"sim"}\n', encoding="utf-8")
    result = _replay([str(path), "--config", str(DATA / "hand.yaml"), "--db", db_url])
    assert result.exit_code == 1
    assert "[bold red]x[/]" in result.output
