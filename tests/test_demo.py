"""``qunyun demo``: files written, summary computed from the database, replayable.

A small community (1 group, 40 members, 5 days) goes through the real CLI
and the real engine; the summary's numbers are checked against the events
file, and the events file is replayed through a fresh engine to give the
same actions.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.config.model import load_settings
from qunyun.core.clock import FakeClock
from qunyun.core.events import MemberJoined, Message, Reaction, parse_event
from qunyun.demo import MARKER, STREAK_BUCKETS, prepare_out, run_demo
from qunyun.engine.engine import Engine, run_events
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

SMALL = ["--groups", "1", "--members", "40", "--days", "5"]


def read_events(path: Path) -> list[Any]:
    lines = path.read_bytes().splitlines()
    return [parse_event(line, where=f"{path.name}:{i}") for i, line in enumerate(lines, 1)]


def test_the_demo_command_writes_the_files_and_prints_the_summary(
    tmp_path: Path, db_url: str
) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", *SMALL, "--out", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = result.output
    for label in (
        "概况",
        "欢迎仪式",
        "每日打卡",
        "等级",
        "关键词问答",
        "秩序",
        "最活跃的 10 位成员",
        "活跃率",
        "事件/秒",
    ):
        assert label in text, label
    assert "qunyun replay" in text and str(out / "events.jsonl") in text
    assert (out / "qunyun.yaml").is_file()
    events = read_events(out / "events.jsonl")
    assert len(events) > 200
    assert f"{len(events):,}" in text
    assert not (out / "demo.db").exists()  # --db was given
    settings = load_settings(str(out / "qunyun.yaml"))
    community = settings.communities["demo"]
    assert list(community.groups[("sim", "g-main")].playbooks) == [
        "moderation",
        "welcome",
        "checkin",
        "faq",
        "levels",
    ]


def test_english_labels_and_the_default_sqlite_file(tmp_path: Path) -> None:
    out = tmp_path / "demo-en"
    result = CliRunner().invoke(
        app, ["demo", *SMALL, "--lang", "en", "--out", str(out), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    for label in ("Overview", "Check-in", "Top 10 most active members", "Active ratio", "events/s"):
        assert label in result.output
    assert "概况" not in result.output
    assert (out / "demo.db").is_file()
    assert "sqlite:///" in result.output


def test_the_demo_refuses_a_directory_it_did_not_write_and_recreates_its_own(
    tmp_path: Path,
) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    result = CliRunner().invoke(app, ["demo", *SMALL, "--out", str(precious)])
    assert result.exit_code == 2
    assert (precious / "thesis.txt").read_text() == "do not delete"

    looks_like_ours = tmp_path / "lookalike"
    looks_like_ours.mkdir()
    (looks_like_ours / "qunyun.yaml").write_text("my real config")
    result = CliRunner().invoke(app, ["demo", *SMALL, "--out", str(looks_like_ours)])
    assert result.exit_code == 2
    assert (looks_like_ours / "qunyun.yaml").read_text() == "my real config"

    own = tmp_path / "own"
    prepare_out(own)
    (own / "events.jsonl").write_text("stale\n")
    (own / "replay.db").write_text("stale")
    prepare_out(own)
    assert [p.name for p in own.iterdir()] == [MARKER]

    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_out(empty)
    assert (empty / MARKER).is_file()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = CliRunner().invoke(app, ["demo", *SMALL, "--out", str(a_file)])
    assert result.exit_code == 2


def test_the_demo_refuses_a_database_that_already_has_events(tmp_path: Path, db_url: str) -> None:
    run_demo(groups=1, members=20, days=1, out=tmp_path / "a", db_url=db_url)
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--groups",
            "1",
            "--members",
            "20",
            "--days",
            "1",
            "--out",
            str(tmp_path / "b"),
            "--db",
            db_url,
        ],
    )
    assert result.exit_code == 2
    assert "already holds" in result.output or "already holds" in str(
        result.stderr_bytes or b"", "utf-8"
    )


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return run_demo(
        seed=5, groups=2, members=60, days=8, out=tmp_path_factory.mktemp("run") / "demo"
    )


def test_the_summary_agrees_with_the_events(small_run: Any) -> None:
    run = small_run
    s = run.summary
    events = read_events(run.events_path)
    assert run.events == s.events == len(events)
    assert s.messages == sum(isinstance(e, Message) for e in events)
    assert s.reactions == sum(isinstance(e, Reaction) for e in events)
    assert s.joins == sum(isinstance(e, MemberJoined) for e in events)
    assert s.removed == s.removals >= 1  # the spammer
    assert s.moderation_hits == s.deletions >= s.removals
    assert s.warnings >= 1
    assert s.welcome_messages >= 1 and 0 < s.newcomers_welcomed <= s.joins
    assert s.checkins >= s.checkin_members > 0
    assert sum(n for _, n in s.streaks) == s.checkin_members
    assert [label for label, _ in s.streaks] == [b[0] for b in STREAK_BUCKETS]
    assert 1 <= s.longest_streak <= 8 and s.longest_streak_member
    assert s.level_ups >= 1 and s.levels[0][0] == "新秀"
    assert s.faq_answers >= 1 and s.faq_answers == sum(n for _, n in s.faq_by_entry)
    assert sum(s.bot_actions.values()) == run.actions
    assert s.failures == 0
    assert len(s.top_members) == 10
    counts = [p.messages for p in s.top_members]
    assert counts == sorted(counts, reverse=True)
    assert all(p.points >= 10 * p.checkins for p in s.top_members)
    assert [g.key for g in s.groups] == ["g-main", "g-reading"]
    assert sum(g.members for g in s.groups) >= s.members_now
    for g in s.groups:
        assert 0 < g.speakers_7d <= g.members and 0 < g.active_ratio <= 1
    assert run.events_per_second > 0
    assert run.personas["spammer"] == 1


def test_replaying_the_events_file_gives_the_same_actions(small_run: Any, tmp_path: Path) -> None:
    run = small_run
    settings = load_settings(str(run.config_path))
    events = read_events(run.events_path)
    original = open_engine(run.db_url)
    replay = open_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    try:
        migrate(replay)
        engine = Engine(replay, settings, clock=FakeClock(events[0].ts), batch_size=500)
        engine.setup_groups()
        outcomes = run_events(engine, events)
        assert {o.status for o in outcomes} == {"handled"}
        last = events[-1].ts
        engine.advance_to(
            datetime.combine(run.summary.last_day + timedelta(days=1), time(0), tzinfo=last.tzinfo)
        )
        t = m.ActionRow.__table__
        query = select(t.c.id, t.c.type, t.c.playbook).order_by(t.c.id)
        with original.connect() as a, replay.connect() as b:
            assert a.execute(query).all() == b.execute(query).all()
    finally:
        original.dispose()
        replay.dispose()


def test_the_language_changes_the_words_not_the_community(tmp_path: Path) -> None:
    zh = run_demo(seed=8, groups=1, members=30, days=3, lang="zh-CN", out=tmp_path / "zh")
    en = run_demo(seed=8, groups=1, members=30, days=3, lang="en", out=tmp_path / "en")
    assert zh.events_path.read_bytes() == en.events_path.read_bytes()
    assert zh.summary.community == "晨光成长营" and en.summary.community != zh.summary.community


def test_qunyun_replay_reads_the_demo_files(small_run: Any, tmp_path: Path) -> None:
    run = small_run
    replay_db = tmp_path / "replay.db"
    actions = tmp_path / "actions.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "replay", str(run.events_path), "--config", str(run.config_path),
            "--db", f"sqlite:///{replay_db}", "--actions", str(actions), "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    replayed = [line for line in actions.read_bytes().splitlines() if line]
    assert len(replayed) == run.actions


def test_the_printed_database_url_hides_its_password() -> None:
    from qunyun.cli.demo import _safe_url

    assert "s3cret" not in _safe_url("postgresql+psycopg://u:s3cret@db.example/q")
    assert _safe_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
