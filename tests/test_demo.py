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
from sqlalchemy import distinct, func, select
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.config.model import load_settings
from qunyun.core.clock import FakeClock
from qunyun.core.events import MemberJoined, Message, Reaction, parse_event
from qunyun.demo import MARKER, STREAK_BUCKETS, prepare_out, read_commands, run_demo
from qunyun.engine.engine import Engine, run_events
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

SMALL = ["--groups", "1", "--members", "40", "--days", "5", "--no-console"]
#: The demo's playbooks in the order they run (open hours only in the reading club).
# every playbook the demo runs, in the built-ins' working order
PLAYBOOK_ORDER = [
    "moderation", "gate", "rules", "referrals", "challenge", "fund", "welcome", "profile",
    "activation", "guard", "sessions", "checkin", "faq", "microphone", "qa", "essence", "digest",
    "titles", "medals", "levels", "duty", "elimination",
]  # fmt: skip


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
    assert list(community.groups[("sim", "g-main")].playbooks) == PLAYBOOK_ORDER


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
            "--no-console",
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
    # every removal the bot made became a `member_left` by the bot; the
    # spammer is removed by moderation or, failing that, at the gate's deadline
    assert s.removed_by.get("moderation", 0) == s.removals
    assert s.moderation_hits >= 1
    assert 0 < s.removed <= sum(s.removed_by.values())
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
        # the operator's commands, each given where the demo gave it
        commands = read_commands(run.commands_path)
        # 8 days: the challenge, but not the session (planned for day 9)
        assert [(c["playbook"], c["name"]) for c in commands] == [("challenge", "create")]
        outcomes = []
        rest = events
        for c in commands:
            at = datetime.fromisoformat(c["at"])
            before = [e for e in rest if e.ts < at]
            rest = rest[len(before):]
            outcomes += run_events(engine, before)
            engine.advance_to(at)
            engine.command(c["community"], c["playbook"], c["name"], c["args"], actor=c["actor"], id=c["id"])
        outcomes += run_events(engine, rest)
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


def test_qunyun_replay_reads_the_demo_files(tmp_path: Path) -> None:
    # without the operator's commands the events file is the whole story
    run = run_demo(seed=5, groups=2, members=40, days=6, out=tmp_path / "demo", commands=False)
    assert run.commands_path.read_bytes() == b""
    assert run.summary.challenge is None and run.summary.sessions_held == 0
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


# ------------------------------------------------- the member lifecycle


@pytest.fixture(scope="module")
def camp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default seed, long enough for two elimination rounds (warned on day 14, removed on day 17)."""
    return run_demo(
        seed=42, groups=3, members=150, days=22, out=tmp_path_factory.mktemp("camp") / "demo"
    )


def _counts(run: Any) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[tuple[str, str], int]]:
    """Straight from the database: records (count, distinct members) and actions, by playbook and kind."""
    rec = m.Record.__table__
    act = m.ActionRow.__table__
    db = open_engine(run.db_url)
    try:
        with db.connect() as conn:
            records = {
                (pb, kind): (n, people)
                for pb, kind, n, people in conn.execute(
                    select(rec.c.playbook, rec.c.kind, func.count(), func.count(distinct(rec.c.member)))
                    .where(rec.c.community_id == "demo")
                    .group_by(rec.c.playbook, rec.c.kind)
                )
            }
            actions = {
                (pb, atype): n
                for pb, atype, n in conn.execute(
                    select(act.c.playbook, act.c.type, func.count())
                    .where(act.c.community_id == "demo")
                    .group_by(act.c.playbook, act.c.type)
                )
            }
    finally:
        db.dispose()
    return records, actions


def test_every_lifecycle_section_has_plausible_numbers(camp: Any) -> None:
    s = camp.summary
    assert s.failures == 0
    # gate: most newcomers pass the quiz, a few never answer and are removed
    assert s.gate_applicants >= 100
    assert 0.75 * s.gate_applicants <= s.gate_admitted < s.gate_applicants
    assert 1 <= s.gate_removed <= 0.2 * s.gate_applicants
    assert s.gate_failed_attempts >= 1
    # rules: most acknowledge; some did not and the admins were told
    assert s.rules_acknowledged >= 0.6 * s.gate_applicants
    assert s.rules_lapsed >= 1 and s.rules_pending >= 0
    # profiles: structured introductions fill cards, with tags and cities
    assert s.profile_intros >= s.profiles_filled >= s.profiles_with_expertise >= 10
    assert s.profiles_asked >= 1
    assert len(s.top_tags) >= 5 and len(s.top_cities) >= 3
    assert s.top_tags[0][1] >= s.top_tags[-1][1] >= 1
    # activation: cohorts per ISO week, rates between 0 and 1, some nudges
    assert s.activation_nudged >= 1
    assert len(s.cohorts) >= 3 and all(c.cohort.startswith("2026-W") for c in s.cohorts)
    assert all(0 <= c.activated <= c.joined for c in s.cohorts)
    assert sum(c.activated for c in s.cohorts) == s.activation_activated
    # hours: the reading club rests; some speak anyway and are reminded
    assert s.hours_groups == ["读书会"]
    assert s.hours_notices >= 2 * 3 * (22 - 1)  # three windows a day open and close
    assert s.hours_reminders >= s.hours_members >= 5
    assert s.hours_strikes >= 1
    # guard: quarrels are reported, each alert names two members
    assert s.guard_alerts >= 1 and 2 <= s.guard_members <= 2 * s.guard_alerts
    # microphone: questions reach experts, each pass names one or two of them
    assert s.microphone_passes >= 10
    assert s.microphone_passes <= s.microphone_asked <= 2 * s.microphone_passes
    assert 5 <= s.microphone_experts <= s.profiles_with_expertise
    # elimination: silent members warned; some come back, some are removed, the list moves up
    assert s.elimination_warned >= s.elimination_removed >= 1
    assert s.elimination_spared >= 1
    assert 1 <= s.elimination_invited <= s.elimination_removed
    # referrals: joins that name an inviter
    assert s.referrals >= 20 and 2 <= s.referrers <= s.referrals
    assert len(s.top_inviters) == 5
    assert [n for _, n in s.top_inviters] == sorted((n for _, n in s.top_inviters), reverse=True)
    # removals: moderation, the gate and elimination, each became a `member_left`
    assert set(s.removed_by) >= {"gate", "elimination"}
    assert 0 < s.removed <= sum(s.removed_by.values())


def test_the_lifecycle_numbers_are_what_the_database_says(camp: Any) -> None:
    s = camp.summary
    records, actions = _counts(camp)

    def n(playbook: str, kind: str) -> int:
        return records.get((playbook, kind), (0, 0))[0]

    def people(playbook: str, kind: str) -> int:
        return records.get((playbook, kind), (0, 0))[1]

    assert s.gate_applicants == people("gate", "applied")
    assert s.gate_admitted == people("gate", "admitted")
    assert s.gate_failed_attempts == n("gate", "quiz_failed")
    assert s.gate_blocked == n("gate", "blocked")
    assert s.gate_removed == n("gate", "removed")
    assert s.rules_acknowledged == people("rules", "ack")
    assert s.rules_lapsed == n("rules", "lapsed")
    assert s.profile_intros == n("profile", "intro")
    assert s.activation_nudged == n("activation", "nudged")
    assert s.activation_activated == n("activation", "activated")
    assert s.hours_reminders == n("hours", "reminder")
    assert s.hours_strikes == n("hours", "strike")
    assert s.hours_members == people("hours", "reminder")
    assert s.hours_admin_notes == actions.get(("hours", "notify_admins"), 0)
    assert s.guard_alerts == actions.get(("guard", "notify_admins"), 0)
    assert s.guard_members == people("guard", "alert")
    assert s.microphone_passes == actions.get(("microphone", "send"), 0)
    assert s.microphone_asked == n("microphone", "passed")
    assert s.microphone_experts == people("microphone", "passed")
    assert s.elimination_warned == n("elimination", "warned")
    assert s.elimination_spared == n("elimination", "spared")
    assert s.elimination_removed == n("elimination", "removed")
    assert s.elimination_invited == n("elimination", "invited")
    assert s.referrals == n("referrals", "referral")
    assert s.referrers == people("referrals", "referral")
    assert s.removed_by == {
        pb: count for (pb, atype), count in actions.items() if atype == "remove"
    }
    # each elimination removal is a `remove` action; each gate deadline removal too
    assert s.removed_by["elimination"] == s.elimination_removed
    assert s.removed_by["gate"] >= s.gate_removed


def test_the_lifecycle_state_numbers_are_what_the_database_says(camp: Any) -> None:
    s = camp.summary
    st = m.PlaybookState.__table__
    db = open_engine(camp.db_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(
                select(st.c.playbook, st.c.key, st.c.value).where(st.c.community_id == "demo")
            ).all()
    finally:
        db.dispose()
    cards = [v for pb, k, v in rows if pb == "profile" and k.startswith("m:")]
    assert s.profiles_filled == sum(1 for v in cards if v.get("fields"))
    assert s.profiles_with_expertise == sum(1 for v in cards if v["fields"].get("expertise"))
    top_tag, top_n = s.top_tags[0]
    assert top_n == sum(1 for v in cards if top_tag in v.get("tags", []))
    city, city_n = s.top_cities[0]
    assert city_n == sum(1 for v in cards if f"city:{city}" in v.get("tags", []))
    cohorts = {k[2:]: v for pb, k, v in rows if pb == "activation" and k.startswith("c:")}
    assert {c.cohort: (c.joined, c.activated) for c in s.cohorts} == {
        k: (v["joined"], v["activated"]) for k, v in cohorts.items()
    }
    roles = load_settings(str(camp.config_path)).communities["demo"].roles
    staff = {uid for uid, role in roles.items() if role in ("owner", "admin")}  # never asked
    assert len(staff) >= 2
    pending = [
        k for pb, k, v in rows
        if pb == "rules" and k.startswith("m:") and v.get("in") and not v.get("acked")
        and k[2:] not in staff
    ]  # fmt: skip
    assert s.rules_pending == len(pending)


def test_the_summary_prints_every_lifecycle_section(camp: Any) -> None:
    from rich.console import Console

    from qunyun.cli.demo import render

    for lang, labels in (
        ("zh-CN", ("入群验证", "群规确认", "名片登记", "新人激活", "开放时间", "吵架预警", "传麦", "末位淘汰", "邀请裂变")),
        ("en", ("Entry gate", "Group rules", "Member cards", "Activation", "Open hours", "Quarrel guard",
                "Microphone", "Elimination", "Referrals")),
    ):  # fmt: skip
        console = Console(record=True, width=120)
        render(console, camp, lang, seed=42, groups=3, members=150, days=22)
        text = console.export_text()
        for label in labels:
            assert label in text, (lang, label)
        assert s_name(camp) in text


def s_name(run: Any) -> str:
    """The name of the member who brought the most people in."""
    return str(run.summary.top_inviters[0][0])


# ------------------------------------------------- contribution and incentives


def _db_rows(run: Any, query: Any) -> list[Any]:
    db = open_engine(run.db_url)
    try:
        with db.connect() as conn:
            return list(conn.execute(query).all())
    finally:
        db.dispose()


def test_every_contribution_section_has_plausible_numbers(camp: Any) -> None:
    s = camp.summary
    assert s.failures == 0
    # Q&A: about half the ordinary questions use the qa format; most get answers quickly
    assert s.qa_questions >= 50
    assert 0.8 * s.qa_questions <= s.qa_answered <= s.qa_questions
    assert s.qa_answers >= s.qa_answered and s.qa_answerers >= 10 and s.qa_votes >= 50
    assert 10 <= s.qa_best <= s.qa_answered
    assert s.qa_median_minutes is not None and 1 <= s.qa_median_minutes <= 180
    # fund: the owner's gift and dues in, weekly awards out, by rank
    assert s.donations == 100_000 and s.dues_payments >= 50
    assert s.dues_total == 5000 * s.dues_payments
    # 20% of the dues go to the admin dues account, the rest and the gift to the fund
    assert s.fund_in == s.donations + s.dues_total * 80 // 100
    assert s.fund_out == s.fund_awards > 0 and s.fund_balance == s.fund_in - s.fund_out > 0
    assert [w.week for w in s.award_weeks] == ["2026-W45", "2026-W46", "2026-W47"]
    for w in s.award_weeks:
        assert w.pool > 0 and len(w.winners) >= 1 and 0 < w.paid <= w.pool
        answers = [amount for _, kind, _, amount in w.winners if kind == "answers"]
        assert answers == sorted(answers, reverse=True)  # paid by rank
    assert sum(w.paid for w in s.award_weeks) == s.fund_awards
    assert any(kind == "shares" for w in s.award_weeks for _, kind, _, _ in w.winners)  # the speaker
    # challenge: 14 days settled, every fen back with the participants, the pot empty
    assert s.challenge == "早起" and s.challenge_settled == s.challenge_days == 14
    assert s.challenge_participants >= 3 and s.challenge_deposits == 5000 * s.challenge_participants
    assert s.challenge_checkins == s.challenge_days_made
    assert 0.5 * 14 * s.challenge_participants <= s.challenge_checkins <= 14 * s.challenge_participants
    assert s.challenge_redistributed > 0
    assert s.challenge_refunded + s.challenge_redistributed + s.challenge_to_fund == s.challenge_deposits
    assert s.challenge_pot == 0
    # duty: three volunteers take turns from the second Monday; closed weeks are paid
    assert len(s.duty_queue) == 3
    assert [w.week for w in s.duty_weeks] == ["2026-W46", "2026-W47", "2026-W48"]
    assert [len(w.on_duty) for w in s.duty_weeks] == [1, 1, 1]
    assert [w.on_duty[0] for w in s.duty_weeks] == s.duty_queue
    closed = [w for w in s.duty_weeks if w.final]
    assert len(closed) == 2 and all(w.paid == 3000 and w.digest for w in closed)
    assert all((w.answerers or 0) > 0 and (w.resolved or 0) > 0 for w in closed)
    assert s.duty_paid == 6000
    # essence and the weekly digest, written to the demo directory
    assert s.essence_entries >= 3 and 1 <= s.essence_authors <= s.essence_entries
    assert s.digest_periods == ["2026-W45", "2026-W46", "2026-W47"]
    assert s.digest_entries >= s.essence_entries and s.digest_authors >= 10
    assert len(s.digest_files) == 2 * len(s.digest_periods)
    for path in s.digest_files:
        assert Path(path).parent == camp.out.resolve() / "digests" and Path(path).stat().st_size > 200
    # the sharing session, medals and titles
    assert s.sessions_held == 1 and s.session_questions >= 3
    assert dict(s.medals).get("坚持一周", 0) >= 5 and len(s.medals) >= 3
    assert 1 <= len(s.titles) <= len(s.award_weeks)


def test_the_contribution_numbers_are_what_the_database_says(camp: Any) -> None:
    s = camp.summary
    rec = m.Record.__table__
    st = m.PlaybookState.__table__
    acc = m.Account.__table__
    post = m.Posting.__table__
    records, _ = _counts(camp)

    def n(playbook: str, kind: str) -> int:
        return records.get((playbook, kind), (0, 0))[0]

    def count_keys(playbook: str, prefix: str) -> int:
        return _db_rows(
            camp,
            select(func.count()).where(
                st.c.community_id == "demo", st.c.playbook == playbook, st.c.key.like(prefix + "%")
            ),
        )[0][0]

    assert s.qa_questions == count_keys("qa", "q:")
    assert s.qa_best == n("qa", "best_answer")
    assert s.essence_entries == count_keys("essence", "e:")
    assert len(s.digest_periods) == count_keys("digest", "published:")
    assert s.digest_authors == records[("digest", "digest_included")][1]
    assert s.challenge_participants == n("challenge", "joined")
    assert s.challenge_checkins == n("challenge", "checkin")
    assert s.challenge_settled == n("challenge", "settled")
    assert s.dues_payments + 1 == n("fund", "payment")  # the dues and the owner's gift
    assert len([w for w in s.duty_weeks if w.final]) == n("duty", "kpi")
    assert len(s.titles) <= n("titles", "conferred")
    assert sum(h for _, h in s.medals) == n("medals", "medal")

    # the ledger: every transaction sums to zero; the balances are the postings' sums
    unbalanced = _db_rows(
        camp, select(post.c.transaction_id).group_by(post.c.transaction_id).having(func.sum(post.c.amount) != 0)
    )
    assert unbalanced == []
    mismatched = _db_rows(
        camp,
        select(acc.c.code)
        .join(post, post.c.account_id == acc.c.id)
        .group_by(acc.c.id, acc.c.code, acc.c.balance)
        .having(func.sum(post.c.amount) != acc.c.balance),
    )
    assert mismatched == []
    totals = dict(_db_rows(camp, select(acc.c.currency, func.sum(acc.c.balance)).group_by(acc.c.currency)))
    assert totals["CNY"] == 0 and totals["POINTS"] == 0  # conservation: money in = money held

    def balance(code: str) -> int:
        rows = _db_rows(camp, select(acc.c.balance).where(acc.c.community_id == "demo", acc.c.code == code))
        return rows[0][0] if rows else 0

    def moved(code: str, sign: int) -> int:
        return _db_rows(
            camp,
            select(func.coalesce(func.sum(post.c.amount), 0))
            .join(acc, acc.c.id == post.c.account_id)
            .where(acc.c.code == code, post.c.amount * sign > 0),
        )[0][0]

    assert s.fund_balance == balance("community:fund:CNY") == moved("community:fund:CNY", 1) - s.fund_out
    assert s.fund_in == moved("community:fund:CNY", 1)
    assert s.admin_dues_balance == balance("community:dues:CNY")
    # money from outside = the dues, the gift and the deposits (nothing else was paid)
    assert -balance("external:payments:CNY") == s.dues_total + s.donations + s.challenge_deposits
    assert balance("challenge:c1:pot:CNY") == s.challenge_pot == 0
    assert moved("challenge:c1:pot:CNY", 1) == s.challenge_deposits
    # awards: the fund's award records, the ledger's award postings and the summary agree
    award_data = [d for pb, kind, d in _db_rows(camp, select(rec.c.playbook, rec.c.kind, rec.c.data)) if (pb, kind) == ("fund", "award")]
    assert sum(d["amount"] for d in award_data) == s.fund_awards
    pay = [d for pb, kind, d in _db_rows(camp, select(rec.c.playbook, rec.c.kind, rec.c.data)) if (pb, kind) == ("duty", "duty_pay")]
    assert sum(d["amount"] for d in pay) == s.duty_paid


def test_the_summary_prints_every_contribution_section(camp: Any) -> None:
    from rich.console import Console

    from qunyun.cli.demo import render

    for lang, labels in (
        ("zh-CN", ("问答", "群基金", "每周奖励", "押金挑战「早起」", "值班轮换", "精华与周报", "分享会", "勋章",
                   "册封头衔", "周报文件", "¥")),
        ("en", ("Q&A", "Community fund", "Weekly awards", 'Deposit challenge "早起"', "Duty rotation",
                "Essence and digest", "Sharing sessions", "Medals", "Titles conferred", "Digest files", " CNY")),
    ):  # fmt: skip
        console = Console(record=True, width=200)
        render(console, camp, lang, seed=42, groups=3, members=150, days=22)
        text = console.export_text()
        for label in labels:
            assert label in text, (lang, label)
        for path in camp.summary.digest_files:
            assert path in text
        assert camp.summary.duty_queue[0] in text and camp.summary.award_weeks[0].winners[0][0] in text
