"""Scheduled jobs: once / interval / cron, in the community's time zone.

Jobs fire in time order as the clock passes them (a fake clock here; never
``sleep``), live in the database across restarts, and coalesce missed runs
when a real clock jumps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine as SAEngine
from sqlalchemy import text

from qunyun.config.model import Settings, settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.errors import ClockError
from qunyun.engine import Context, Engine, JobCall, Playbook, PlaybookConfig, Registry
from qunyun.engine.scheduler import next_cron, next_due, validate_cron
from qunyun.playbooks.checkin import Checkin
from qunyun.store.db import migrate, open_engine
from qunyun.testing import Chat, community_config
from qunyun.testing.harness import DEFAULT_START

START = DEFAULT_START  # 2026-11-02 09:00 UTC, 17:00 in Asia/Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


class ClockworkConfig(PlaybookConfig):
    cron: str | None = None
    every_minutes: int | None = None
    once_at: datetime | None = None
    fail_on: str | None = None


class Clockwork(Playbook):
    """Schedules what its configuration says; says what fired and when."""

    id = "clockwork"
    config_model = ClockworkConfig
    handles = frozenset({"message"})
    emits = frozenset({"send"})

    def setup(self, ctx: Context) -> None:
        cfg: ClockworkConfig = ctx.config
        if cfg.cron:
            ctx.schedule("evening", cron=cfg.cron, payload={"what": "cron"})
        if cfg.every_minutes:
            ctx.schedule("pulse", every=timedelta(minutes=cfg.every_minutes))
        if cfg.once_at and cfg.once_at > ctx.now:  # setup runs on every start
            ctx.schedule("once", at=cfg.once_at, payload={"what": "once"})

    def on_job(self, ctx: Context, job: JobCall) -> None:
        cfg: ClockworkConfig = ctx.config
        if cfg.fail_on == job.name:
            ctx.send("never delivered")
            raise RuntimeError(f"{job.name} failed")
        ctx.send(f"{job.name} {ctx.now.isoformat()} {ctx.local_now.strftime('%H:%M')} "
                 f"{job.kind} {job.payload}")

    def on_event(self, ctx: Context, event: Any) -> None:
        words = event.text.split()
        if not words:
            return
        cmd, args = words[0], words[1:]
        if cmd == "cancel":
            ctx.cancel(args[0])
        elif cmd == "remind-at":
            ctx.schedule(args[0], at=datetime.fromisoformat(args[1]), key=args[0])
        elif cmd == "cron":
            ctx.schedule("custom", cron=" ".join(args))
        elif cmd == "due":
            ctx.send(f"due {ctx.job_due(args[0])}")
        elif cmd == "both":
            ctx.schedule("x", at=ctx.now, every=timedelta(hours=1))
        elif cmd == "naive":
            ctx.schedule("x", at=datetime(2026, 11, 3, 9, 0))
        elif cmd == "zero":
            ctx.schedule("x", every=timedelta(0))


REG = Registry({c.id: c for c in (Clockwork, Checkin)})

MakeChat = Callable[..., Chat]


def clockwork(make_chat: MakeChat, **cfg: Any) -> Chat:
    chat: Chat = make_chat({"clockwork": cfg}, registry=REG)
    return chat


def fired(chat: Chat) -> list[tuple[str, str]]:
    """(job name, UTC time) of each job action since the last take."""
    return [
        (a["text"].split()[0], a["text"].split()[1])
        for a in chat.take()
        if a["playbook"] == "clockwork" and a["cause"].startswith("job:")
    ]


def jobs(db: SAEngine) -> dict[str, datetime]:
    with db.connect() as conn:
        got = conn.execute(text("SELECT name, due_at FROM jobs")).all()
    out = {}
    for name, due in got:
        if isinstance(due, str):  # SQLite hands back text for raw SQL
            due = datetime.fromisoformat(due).replace(tzinfo=UTC)
        out[name] = due.astimezone(UTC)
    return out


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


# --------------------------------------------------------------------------- firing


def test_jobs_fire_in_time_order_as_the_clock_passes_them(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, cron="0 21 * * *", every_minutes=360,
                     once_at="2026-11-02T14:30:00+00:00")
    assert chat.advance(hours=3) == 0
    assert fired(chat) == []
    n = chat.advance(hours=21)  # to 2026-11-03 09:00 UTC
    assert n == 6
    assert fired(chat) == [
        ("evening", "2026-11-02T13:00:00+00:00"),
        ("once", "2026-11-02T14:30:00+00:00"),
        ("pulse", "2026-11-02T15:00:00+00:00"),
        ("pulse", "2026-11-02T21:00:00+00:00"),
        ("pulse", "2026-11-03T03:00:00+00:00"),
        ("pulse", "2026-11-03T09:00:00+00:00"),  # due exactly now: fires
    ]
    assert set(jobs(chat.db)) == {"evening", "pulse"}  # the one-shot is gone


def test_a_job_sees_its_time_kind_and_payload(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, cron="0 21 * * *", once_at="2026-11-02T10:00:00+00:00")
    chat.advance(hours=5)
    texts = [a["text"] for a in chat.take()]
    assert texts == [
        "once 2026-11-02T10:00:00+00:00 18:00 once {'what': 'once'}",
        "evening 2026-11-02T13:00:00+00:00 21:00 cron {'what': 'cron'}",
    ]


def test_cron_runs_in_the_community_time_zone(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, cron="0 21 * * *")
    chat.advance(days=3)
    times = [t for name, t in fired(chat) if name == "evening"]
    # 21:00 in Asia/Shanghai is 13:00 UTC
    assert times == [
        "2026-11-02T13:00:00+00:00",
        "2026-11-03T13:00:00+00:00",
        "2026-11-04T13:00:00+00:00",
    ]


def test_cron_follows_daylight_saving_time(make_chat: MakeChat) -> None:
    # Europe/Berlin leaves CET (+1) for CEST (+2) on 2026-03-29
    chat: Chat = make_chat({"clockwork": {"cron": "0 21 * * *"}}, registry=REG,
                           timezone="Europe/Berlin",
                           start=datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    chat.advance(days=3)
    assert [t for _, t in fired(chat)] == [
        "2026-03-27T20:00:00+00:00",
        "2026-03-28T20:00:00+00:00",
        "2026-03-29T19:00:00+00:00",
    ]


@pytest.mark.parametrize("tzname", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "30 1 * * *", "0 0 * * *", "0 21 * * *"])
def test_a_daily_cron_fires_once_every_local_day_across_dst(tzname: str, expr: str) -> None:
    tz = ZoneInfo(tzname)
    minute, hour = (int(x) for x in expr.split()[:2])
    for start in (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 9, 25, tzinfo=UTC),
                  datetime(2026, 10, 15, tzinfo=UTC)):
        t, fires = start, []
        for _ in range(45):
            nxt = next_cron(expr, t, tz)
            assert nxt > t
            fires.append(nxt.astimezone(tz))
            t = nxt
        days = [f.date() for f in fires]
        assert days == [days[0] + timedelta(days=i) for i in range(len(days))], tzname
        # at the wall time asked for, except where a DST gap skipped it
        on_time = [f for f in fires if (f.hour, f.minute) == (hour, minute)]
        assert len(on_time) >= len(fires) - 1


def test_a_weekly_cron_fires_once_when_the_clock_falls_back(make_chat: MakeChat) -> None:
    chat: Chat = make_chat({"clockwork": {"cron": "30 2 * * 0"}}, registry=REG,
                           timezone="Europe/Berlin",
                           start=datetime(2026, 10, 20, 12, 0, tzinfo=UTC))
    chat.advance(days=14)
    assert [t for _, t in fired(chat)] == [
        "2026-10-25T00:30:00+00:00",  # 02:30 CEST
        "2026-11-01T01:30:00+00:00",  # 02:30 CET
    ]


def test_jobs_due_before_an_event_fire_before_it(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, every_minutes=60)
    chat.event("message", "u1", ts=START + timedelta(hours=2, minutes=30),
               msg_id="m-1", text="due pulse")
    got = chat.take()
    assert [a["text"].split()[0] for a in got] == ["pulse", "pulse", "due"]
    assert got[0]["ts"] < got[1]["ts"] < got[2]["ts"]
    # the clock is event time: the event's ctx.now is the event's ts
    assert got[2]["ts"] == "2026-11-02T11:30:00+00:00"
    assert got[2]["text"] == "due 2026-11-02 12:00:00+00:00"


def test_a_one_shot_in_the_past_fires_at_the_next_tick(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat)
    chat.say("u1", "remind-at late 2026-11-01T00:00:00+00:00")
    chat.take()
    assert chat.advance(seconds=1) == 1
    # the clock never goes back: the job runs at the current time, not in the past
    assert fired(chat) == [("late", "2026-11-02T09:00:00+00:00")]
    assert chat.advance(days=1) == 0


def test_a_rescheduled_one_shot_fires_once_at_its_new_time(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat)
    chat.say("u1", "remind-at r 2026-11-02T12:00:00+00:00")
    chat.say("u1", "remind-at r 2026-11-02T14:00:00+00:00")
    chat.take()
    chat.advance(hours=10)
    assert fired(chat) == [("r", "2026-11-02T14:00:00+00:00")]


def test_cancel(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, every_minutes=60)
    chat.advance(hours=2)
    assert len(fired(chat)) == 2
    chat.say("u1", "cancel pulse")
    chat.say("u1", "cancel no-such-job")  # no error
    assert chat.failures() == []
    assert "pulse" not in jobs(chat.db)
    chat.take()
    assert chat.advance(days=1) == 0
    chat.assert_nothing_sent()


def test_job_due_reports_the_next_time(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, cron="0 21 * * *")
    chat.say("u1", "due evening")
    chat.assert_sent("due 2026-11-02 13:00:00+00:00", count=1)
    chat.say("u1", "due nothing")
    chat.assert_sent("due None", count=1)


def test_a_failing_job_is_recorded_and_keeps_its_rhythm(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat, every_minutes=60, fail_on="pulse")
    assert chat.advance(hours=3) == 3
    chat.assert_nothing_sent()
    failures = chat.failures()
    assert len(failures) == 3
    assert all(f["cause"].startswith("job:") for f in failures)
    assert "pulse failed" in failures[0]["error"]
    assert jobs(chat.db)["pulse"] == START + timedelta(hours=4)


def test_jobs_are_per_group(make_chat: MakeChat) -> None:
    chat: Chat = make_chat({"clockwork": {"cron": "0 21 * * *"}}, registry=REG,
                           groups=("g-a", "g-b"))
    chat.advance(days=1)
    groups = sorted(a["group"] for a in chat.take())
    assert groups == ["g-a", "g-b"]


def test_job_action_ids_are_stable_across_replays(db_url: str, tmp_path: Any) -> None:
    def run(url: str) -> list[str]:
        with Chat({"clockwork": {"every_minutes": 90}}, db_url=url, registry=REG) as chat:
            chat.advance(hours=6)
            return [a["id"] for a in chat.actions]

    first = run(db_url)
    second = run(f"sqlite:///{tmp_path / 'replay.db'}")
    assert len(first) == 4
    assert first == second


# --------------------------------------------------------------------------- restarts


def _engine(db: SAEngine, settings: Settings, at: datetime) -> Engine:
    return Engine(db, settings, clock=FakeClock(at), registry=REG)


def _sends(db: SAEngine) -> list[str]:
    with db.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM actions ORDER BY seq"))]


def test_jobs_persist_across_a_restart_and_fire_once(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    settings = settings_from_text(
        community_config({"clockwork": {"every_minutes": 360,
                                        "once_at": "2026-11-02T14:30:00+00:00"}}),
        registry=REG,
    )
    first = _engine(db, settings, START)
    first.setup_groups()
    assert first.advance_to(START + timedelta(hours=7)) == 2  # once 14:30, pulse 15:00
    assert jobs(db) == {"pulse": START + timedelta(hours=12)}

    # a new process at 17:00 UTC: setup runs again but keeps the due time
    second = _engine(db, settings, START + timedelta(hours=8))
    second.setup_groups()
    assert jobs(db) == {"pulse": START + timedelta(hours=12)}
    assert second.advance_to(START + timedelta(hours=11, minutes=59)) == 0
    assert second.advance_to(START + timedelta(hours=12)) == 1

    third = _engine(db, settings, START + timedelta(hours=12, minutes=1))
    assert third.advance_to(START + timedelta(hours=13)) == 0
    ids = _sends(db)
    assert len(ids) == 3
    assert len(set(ids)) == 3
    db.dispose()


def test_a_restart_with_a_changed_schedule_moves_the_job(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)

    def settings(every: int) -> Settings:
        return settings_from_text(community_config({"clockwork": {"every_minutes": every}}),
                                  registry=REG)

    first = _engine(db, settings(360), START)
    first.setup_groups()
    assert jobs(db) == {"pulse": START + timedelta(hours=6)}
    second = _engine(db, settings(60), START + timedelta(hours=1, minutes=30))
    second.setup_groups()
    assert jobs(db) == {"pulse": START + timedelta(hours=2, minutes=30)}
    db.dispose()


def test_a_job_whose_playbook_was_switched_off_is_dropped(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    on = settings_from_text(community_config({"clockwork": {"every_minutes": 60}}), registry=REG)
    first = _engine(db, on, START)
    first.setup_groups()
    assert set(jobs(db)) == {"pulse"}
    off = settings_from_text(community_config({"checkin": {"reminder": None}}), registry=REG)
    second = _engine(db, off, START + timedelta(minutes=30))
    assert second.advance_to(START + timedelta(hours=3)) == 1  # comes due once, then dropped
    assert jobs(db) == {}
    assert _sends(db) == []
    db.dispose()


def test_re_scheduling_an_identical_recurring_job_keeps_its_due_time(make_chat: MakeChat) -> None:
    chat = clockwork(make_chat)
    chat.say("u1", "cron 0 21 * * *")
    due = jobs(chat.db)["custom"]
    assert due == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    chat.advance(hours=1)
    chat.say("u1", "cron 0 21 * * *")
    assert jobs(chat.db)["custom"] == due
    chat.say("u1", "cron 0 22 * * *")  # a different schedule replaces it
    assert jobs(chat.db)["custom"] == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_checkin_reminder_persists_and_fires_in_local_evening(make_chat: MakeChat) -> None:
    chat: Chat = make_chat({"checkin": {}}, registry=REG)
    assert jobs(chat.db) == {"reminder": datetime(2026, 11, 2, 13, 0, tzinfo=UTC)}
    chat.say("u1", "打卡")
    chat.take()
    chat.advance(days=1)  # 21:00 on Nov 2: nobody checked in on Nov 1: quiet
    chat.assert_nothing_sent()
    chat.advance(days=1)  # 21:00 on Nov 3: u1 checked in yesterday, not today
    sent = chat.assert_sent(playbook="checkin", count=1)
    assert sent[0]["ts"] == "2026-11-03T13:00:00+00:00"
    assert sent[0]["mentions"] == ["u1"]


# --------------------------------------------------------------------------- real clocks


class WallClock:
    """A clock the test moves by hand that the engine cannot drive (like SystemClock)."""

    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t


def test_missed_runs_coalesce_when_a_real_clock_jumps(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    settings = settings_from_text(
        community_config({"clockwork": {"every_minutes": 360, "cron": "0 21 * * *"}}),
        registry=REG,
    )
    clock = WallClock(START)
    engine = Engine(db, settings, clock=clock, registry=REG)
    engine.setup_groups()
    clock.t = START + timedelta(days=10, hours=1)  # ten days of downtime
    assert engine.advance_to(clock.now()) == 2  # each job once, not forty times
    assert jobs(db) == {
        "pulse": START + timedelta(days=10, hours=6),  # back in its rhythm
        "evening": datetime(2026, 11, 12, 13, 0, tzinfo=UTC),
    }
    db.dispose()


def test_next_due_interval_keeps_rhythm_and_coalesces() -> None:
    due = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    hour = "3600.0"
    # on time: the next slot
    assert next_due("interval", hour, due, due, SHANGHAI) == due + timedelta(hours=1)
    # a little late: still the next slot of the rhythm
    assert next_due("interval", hour, due, due + timedelta(minutes=20), SHANGHAI) == (
        due + timedelta(hours=1)
    )
    # ten and a half hours late: one firing, then the next slot after now
    assert next_due("interval", hour, due, due + timedelta(hours=10, minutes=30), SHANGHAI) == (
        due + timedelta(hours=11)
    )
    # exactly on a later slot: strictly after now
    assert next_due("interval", hour, due, due + timedelta(hours=3), SHANGHAI) == (
        due + timedelta(hours=4)
    )


def test_next_due_cron_coalesces_to_after_now() -> None:
    due = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    now = datetime(2026, 11, 7, 15, 0, tzinfo=UTC)
    assert next_due("cron", "0 21 * * *", due, due, SHANGHAI) == datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    assert next_due("cron", "0 21 * * *", due, now, SHANGHAI) == datetime(2026, 11, 8, 13, 0, tzinfo=UTC)


def test_next_due_once_is_none() -> None:
    due = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    assert next_due("once", "", due, due, SHANGHAI) is None


def test_next_cron_is_strictly_after_and_utc() -> None:
    at_nine = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai
    nxt = next_cron("0 21 * * *", at_nine, SHANGHAI)
    assert nxt == datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    assert nxt.utcoffset() == timedelta(0)
    weekly = next_cron("30 8 * * 1", at_nine, SHANGHAI)  # Mondays 08:30 local
    assert weekly == datetime(2026, 11, 9, 0, 30, tzinfo=UTC)
    with pytest.raises(ClockError):
        next_cron("0 21 * * *", datetime(2026, 11, 2, 13, 0), SHANGHAI)


# --------------------------------------------------------------------------- bad schedules


@pytest.mark.parametrize("expr", ["0 21 * * *", "*/5 * * * *", "30 8 * * 1-5", "0 0 1 * *"])
def test_valid_cron(expr: str) -> None:
    assert validate_cron(expr) == expr


@pytest.mark.parametrize(
    "expr", ["0 25 * * *", "61 * * * *", "* * * *", "0 21 * * * *", "every day", "", "0 21 * * mon-"]
)
def test_invalid_cron_gives_a_clear_error(expr: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_cron(expr)
    message = str(info.value)
    assert repr(expr) in message
    assert "five fields" in message
    assert "0 21 * * *" in message  # an example of what to write


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("cron 0 25 * * *", "invalid cron expression"),
        ("both", "exactly one of"),
        ("naive", "aware datetime"),
        ("zero", "positive interval"),
    ],
)
def test_bad_schedules_fail_the_playbook_with_playbook_error(
    make_chat: MakeChat, command: str, message: str
) -> None:
    chat = clockwork(make_chat)
    chat.say("u1", command)
    failures = chat.failures()
    assert len(failures) == 1
    assert "PlaybookError" in failures[0]["error"]
    assert message in failures[0]["error"]
    assert jobs(chat.db) == {}
