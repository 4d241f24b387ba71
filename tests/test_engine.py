"""The engine: one event, one transaction; isolation, ordering, idempotence.

These tests drive the real engine against SQLite and PostgreSQL (the
``db_url`` / ``make_chat`` fixtures) with small playbooks defined here, plus
the finished ``checkin`` playbook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy import Engine as SAEngine
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from qunyun.config.model import settings_from_text
from qunyun.core.actions import ACTION_ADAPTER
from qunyun.core.clock import FakeClock
from qunyun.core.events import BaseEvent, parse_event
from qunyun.engine import Context, Engine, Playbook, Registry, run_events
from qunyun.playbooks.checkin import Checkin
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine
from qunyun.testing import Chat, community_config
from qunyun.testing.harness import DEFAULT_START
from tests.conftest import PG_URL, _pg_url_for_schema

# --------------------------------------------------------------------------- test playbooks


class Echo(Playbook):
    """Answers every message and counts them in its state."""

    id = "echo"
    handles = frozenset({"message"})
    emits = frozenset({"send"})

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.send(f"echo: {event.text}", reply_to=event.msg_id)
        ctx.state.put("seen", ctx.state.get("seen", 0) + 1)


class Boom(Playbook):
    """Touches every kind of store, then raises on messages containing "boom"."""

    id = "boom"
    handles = frozenset({"message"})
    emits = frozenset({"send"})

    def on_event(self, ctx: Context, event: Any) -> None:
        uid = event.actor.id
        ctx.state.put(f"m:{uid}", {"touched": event.id})
        ctx.send(f"boom saw {event.id}")
        ctx.ledger.award_points(uid, 7, "boom")
        ctx.record("boom", member=uid, event=event.id)
        ctx.count("checkins", 1)
        ctx.schedule(f"later-{event.id}", at=ctx.now + timedelta(hours=1))
        if "boom" in event.text:
            raise RuntimeError("kaboom")


class Notes(Playbook):
    """Keeps notes in a table of its own, through ``ctx.db``."""

    id = "notes"
    handles = frozenset({"message"})

    def on_event(self, ctx: Context, event: Any) -> None:
        if not event.text.startswith("note "):
            return
        ctx.db.execute(text("INSERT INTO test_notes (note) VALUES (:n)"), {"n": event.text[5:]})
        ctx.state.put("last", event.text[5:])
        if "ghost" in event.text:
            ctx.name("u-ghost")  # a member nobody has seen yet
        if "fail" in event.text:
            raise RuntimeError("notes failed")


class Gate(Playbook):
    """Deletes spam and hides it from the playbooks after it."""

    id = "gate"
    handles = frozenset({"message"})
    emits = frozenset({"delete"})

    def on_event(self, ctx: Context, event: Any) -> None:
        if "spam" in event.text:
            ctx.delete(event.msg_id)
            ctx.record("spam", member=event.actor.id)
            ctx.suppress()


class Muter(Playbook):
    """Mutes on request (for contract checks on what reaches the outbox)."""

    id = "muter"
    handles = frozenset({"message"})
    emits = frozenset({"mute"})

    def on_event(self, ctx: Context, event: Any) -> None:
        if event.text == "mute me naive":
            ctx.mute(event.actor.id, datetime(2026, 11, 2, 12, 0))  # naive: a bug in a playbook
        elif event.text == "mute me":
            ctx.mute(event.actor.id, ctx.now + timedelta(minutes=10))


class Counter(Playbook):
    """Counts a rollup for every message (to see which day it lands on)."""

    id = "counter"
    handles = frozenset({"message"})

    def on_event(self, ctx: Context, event: Any) -> None:
        ctx.count("points", 5)


class Stash(Playbook):
    """Stores whatever it is told to, including values JSON cannot hold."""

    id = "stash"
    handles = frozenset({"message"})

    def on_event(self, ctx: Context, event: Any) -> None:
        if "poison" in event.text:
            ctx.state.put("bad", {1, 2})  # a set: not JSON
        elif event.text == "bad record":
            ctx.record("bad", member=event.actor.id, what={1, 2})
        elif event.text == "bad payload":
            ctx.schedule("bad", at=ctx.now + timedelta(hours=1), payload={"what": {1, 2}})


class Deferred(Playbook):
    """Writes a row that breaks a deferred foreign key: the commit fails, not the playbook."""

    id = "deferred"
    handles = frozenset({"message"})

    def on_event(self, ctx: Context, event: Any) -> None:
        if "poison" in event.text:
            ctx.db.execute(text("INSERT INTO test_child (pid) VALUES (999)"))


def make_deferred_tables(db: SAEngine) -> None:
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE test_parent (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE test_child (pid INTEGER REFERENCES test_parent (id) "
                          "DEFERRABLE INITIALLY DEFERRED)"))


class Ticker(Playbook):
    """Schedules an hourly job at setup (for batch and fallback checks)."""

    id = "ticker"
    handles = frozenset()

    def setup(self, ctx: Context) -> None:
        ctx.schedule("tick", every=timedelta(hours=1))

    def on_job(self, ctx: Context, job: Any) -> None:
        ctx.send(f"tick {ctx.now.isoformat()}")


REG = Registry(
    {
        cls.id: cls
        for cls in (Echo, Boom, Notes, Gate, Muter, Counter, Stash, Deferred, Ticker, Checkin)
    }
)

START = DEFAULT_START  # 2026-11-02 09:00 UTC = 17:00 Asia/Shanghai


def ev(n: int | str, etype: str, user: str, at: datetime, group: str = "g-main",
       platform: str = "sim", **fields: Any) -> BaseEvent:
    """An event with id ``evt-<n>`` at ``at``."""
    return parse_event(
        {
            "v": 1,
            "id": f"evt-{n}",
            "ts": at.isoformat(),
            "platform": platform,
            "group": group,
            "type": etype,
            "actor": {"id": user, "name": f"name-{user}"},
            **fields,
        }
    )


def msg(n: int | str, user: str, at: datetime, text_: str, **fields: Any) -> BaseEvent:
    return ev(n, "message", user, at, msg_id=f"m-{n}", text=text_, **fields)


_JSON_COLUMNS = frozenset({"payload", "value", "data", "mentions"})


def rows(db: SAEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a raw query as dicts, with our JSON text columns decoded."""
    with db.connect() as conn:
        out = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    for row in out:
        for key in _JSON_COLUMNS & row.keys():
            if isinstance(row[key], str):
                row[key] = orjson.loads(row[key])
    return out


def assert_valid_actions(db: SAEngine) -> None:
    """Every action in the outbox satisfies the fixed Action contract."""
    for row in rows(db, "SELECT payload FROM actions"):
        ACTION_ADAPTER.validate_python(row["payload"])


@pytest.fixture
def second_db_url(db_url: str, tmp_path: Any) -> Iterator[str]:
    """Another fresh database on the same backend as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    assert PG_URL
    schema = "t_" + uuid.uuid4().hex[:12]
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_url_for_schema(PG_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


MakeChat = Callable[..., Chat]


def chat_with(make_chat: MakeChat, *playbooks: str, **options: Any) -> Chat:
    return make_chat({p: {} for p in playbooks}, registry=REG, **options)


# --------------------------------------------------------------------------- idempotence


def test_a_duplicate_event_id_is_a_no_op(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    first = chat.send_event(msg("dup", "u1", START, "hello"))
    second = chat.send_event(msg("dup", "u1", START + timedelta(minutes=1), "hello again"))
    assert first.status == "handled"
    assert second.status == "duplicate"
    assert second.key == "sim:evt-dup"
    assert chat.scalar("SELECT count(*) FROM events WHERE event_id = 'evt-dup'") == 1
    assert chat.scalar("SELECT count(*) FROM messages WHERE event_id = 'evt-dup'") == 1
    assert chat.scalar("SELECT count(*) FROM actions WHERE cause = 'evt-dup'") == 1
    assert chat.state("echo", "seen") == 1
    assert chat.scalar("SELECT sum(messages) FROM rollups") == 1
    chat.assert_sent("echo: hello", count=1)
    chat.assert_nothing_sent()


def test_a_duplicate_within_one_batch_is_a_no_op(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    settings = settings_from_text(community_config({"echo": {}}), registry=REG)
    engine = Engine(db, settings, clock=FakeClock(START), registry=REG, batch_size=10)
    outcomes = engine.handle_many([msg(1, "u1", START, "a"), msg(1, "u1", START, "a")])
    assert [o.status for o in outcomes] == ["handled", "duplicate"]
    assert rows(db, "SELECT count(*) AS n FROM actions")[0]["n"] == 1
    db.dispose()


def test_same_events_into_a_fresh_database_give_identical_action_ids(
    db_url: str, second_db_url: str
) -> None:
    events = [
        ev(1, "member_joined", "u1", START),
        msg(2, "u1", START + timedelta(minutes=1), "打卡 读书"),
        msg(3, "u2", START + timedelta(minutes=2), "hello"),
        msg(4, "u1", START + timedelta(days=1), "打卡"),
        msg(5, "u1", START + timedelta(days=1, minutes=1), "打卡"),
    ]

    def run(url: str) -> list[tuple[str, str, str]]:
        with Chat({"checkin": {}, "echo": {}}, db_url=url, registry=REG) as chat:
            for e in events:
                chat.send_event(e)
            got = [(r["id"], r["cause"], r["type"]) for r in
                   rows(chat.db, "SELECT id, cause, type FROM actions ORDER BY seq")]
            txns = [r["id"] for r in rows(chat.db, "SELECT id FROM ledger_transactions ORDER BY id")]
            return [*got, *((t, "", "txn") for t in txns)]

    first = run(db_url)
    second = run(second_db_url)
    assert len(first) >= 8
    assert first == second
    assert len({a for a, _, _ in first}) == len(first)


def test_the_same_event_id_on_two_platforms_gives_two_actions(db_url: str) -> None:
    doc = {
        "communities": [
            {
                "id": "test",
                "name": "t",
                "groups": [{"id": "g-main", "platform": "sim"}, {"id": "g-tg", "platform": "telegram"}],
                "playbooks": {"echo": {}},
            }
        ]
    }
    settings = settings_from_text(yaml.safe_dump(doc), registry=REG)
    db = open_engine(db_url)
    migrate(db)
    engine = Engine(db, settings, clock=FakeClock(START), registry=REG)
    a = engine.handle(msg(1, "u1", START, "hi"))
    b = engine.handle(ev(1, "message", "u1", START, group="g-tg", platform="telegram",
                         msg_id="m-1", text="hi"))
    ids = [r["id"] for r in rows(db, "SELECT id FROM actions")]
    db.dispose()
    assert (a.status, b.status) == ("handled", "handled")
    assert len(set(ids)) == 2


# --------------------------------------------------------------------------- ordering


def test_events_out_of_order_are_handled_and_marked_late(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    t0 = START
    outcomes = [
        chat.send_event(msg(1, "u1", t0 + timedelta(minutes=10), "later")),
        chat.send_event(msg(2, "u2", t0 + timedelta(minutes=5), "earlier")),
        chat.send_event(msg(3, "u1", t0 + timedelta(minutes=11), "latest")),
    ]
    assert [o.status for o in outcomes] == ["handled", "late", "handled"]
    assert "evt-2" in outcomes[1].key
    status = {r["event_id"]: r["status"] for r in rows(chat.db, "SELECT event_id, status FROM events")}
    assert status == {"evt-1": "handled", "evt-2": "late", "evt-3": "handled"}
    # nothing lost: the late message is stored, counted and answered
    assert chat.scalar("SELECT count(*) FROM messages") == 3
    assert chat.scalar("SELECT sum(messages) FROM rollups") == 3
    assert chat.state("echo", "seen") == 3
    chat.assert_sent("echo: earlier", count=1)
    # the group's high-water mark is the latest event, not the late one
    last = rows(chat.db, "SELECT last_event_at FROM groups")[0]["last_event_at"]
    assert str(last).startswith("2026-11-02 09:11")


def test_groups_are_ordered_independently(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo", groups=("g-main", "g-other"))
    a = chat.send_event(msg(1, "u1", START + timedelta(minutes=10), "a"))
    b = chat.send_event(ev(2, "message", "u1", START + timedelta(minutes=1), group="g-other",
                           msg_id="m-2", text="b"))
    c = chat.send_event(msg(3, "u1", START + timedelta(minutes=2), "c"))
    assert (a.status, b.status, c.status) == ("handled", "handled", "late")


def test_late_events_survive_an_engine_restart(db_url: str) -> None:
    settings = settings_from_text(community_config({"echo": {}}), registry=REG)
    db = open_engine(db_url)
    migrate(db)
    Engine(db, settings, clock=FakeClock(START), registry=REG).handle(
        msg(1, "u1", START + timedelta(hours=1), "x")
    )
    again = Engine(db, settings, clock=FakeClock(START), registry=REG)
    assert again.handle(msg(2, "u1", START, "y")).status == "late"
    db.dispose()


# --------------------------------------------------------------------------- isolation


def _boom_effects(chat: Chat, cause: str) -> dict[str, int]:
    q = {
        "state": "SELECT count(*) FROM playbook_state WHERE playbook = 'boom'",
        "actions": f"SELECT count(*) FROM actions WHERE playbook = 'boom' AND cause = '{cause}'",
        "txns": f"SELECT count(*) FROM ledger_transactions WHERE playbook = 'boom' AND cause = '{cause}'",
        "postings": "SELECT count(*) FROM ledger_postings",
        "records": f"SELECT count(*) FROM records WHERE playbook = 'boom' AND cause = '{cause}'",
        "jobs": f"SELECT count(*) FROM jobs WHERE playbook = 'boom' AND name = 'later-{cause}'",
        "checkins": "SELECT coalesce(sum(checkins), 0) FROM rollups",
    }
    return {k: int(chat.scalar(v)) for k, v in q.items()}


def test_a_playbook_that_succeeds_commits_every_kind_of_effect(make_chat: MakeChat) -> None:
    # the control for the rollback test below: the same playbook, not raising
    chat = chat_with(make_chat, "boom")
    chat.send_event(msg(1, "u1", START, "calm"))
    assert _boom_effects(chat, "evt-1") == {
        "state": 1, "actions": 1, "txns": 1, "postings": 2, "records": 1, "jobs": 1, "checkins": 1,
    }
    assert chat.points("u1") == 7
    assert chat.failures() == []


def test_a_playbook_that_raises_is_rolled_back_alone(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "boom", "echo")
    outcome = chat.send_event(msg(1, "u1", START, "boom!"))
    assert outcome.status == "handled"
    # none of boom's writes happened
    assert _boom_effects(chat, "evt-1") == {
        "state": 0, "actions": 0, "txns": 0, "postings": 0, "records": 0, "jobs": 0, "checkins": 0,
    }
    assert chat.points("u1") == 0
    chat.assert_ledger_balanced()
    # the failure is recorded for the operator
    failures = chat.failures()
    assert len(failures) == 1
    assert failures[0]["playbook"] == "boom"
    assert failures[0]["cause"] == "evt-1"
    assert "RuntimeError: kaboom" in failures[0]["error"]
    assert "kaboom" in failures[0]["traceback"]
    # the other playbook and the event itself committed
    chat.assert_sent("echo: boom!", playbook="echo", count=1)
    assert chat.state("echo", "seen") == 1
    assert chat.scalar("SELECT status FROM events WHERE event_id = 'evt-1'") == "handled"
    assert chat.scalar("SELECT count(*) FROM messages") == 1
    # and the next event is fine
    chat.send_event(msg(2, "u1", START + timedelta(minutes=1), "calm"))
    assert chat.points("u1") == 7
    assert len(chat.failures()) == 1


def test_a_failing_playbook_does_not_disturb_earlier_playbooks_of_the_event(
    make_chat: MakeChat,
) -> None:
    chat = chat_with(make_chat, "echo", "boom")
    chat.send_event(msg(1, "u1", START, "boom"))
    chat.assert_sent("echo: boom", count=1)
    assert chat.state("echo", "seen") == 1
    assert [f["playbook"] for f in chat.failures()] == ["boom"]


@pytest.fixture
def notes_table(db_url: str) -> str:
    db = open_engine(db_url)
    migrate(db)
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE test_notes (note VARCHAR(200) NOT NULL)"))
    db.dispose()
    return db_url


def test_sql_through_ctx_db_is_rolled_back_with_its_playbook(
    make_chat: MakeChat, notes_table: str
) -> None:
    chat = chat_with(make_chat, "notes", "echo")
    chat.send_event(msg(1, "u1", START, "note keep me"))
    chat.send_event(msg(2, "u1", START + timedelta(minutes=1), "note fail me"))
    chat.send_event(msg(3, "u1", START + timedelta(minutes=2), "note also keep"))
    notes = sorted(r["note"] for r in rows(chat.db, "SELECT note FROM test_notes"))
    assert notes == ["also keep", "keep me"]
    assert chat.state("notes", "last") == "also keep"
    assert [f["cause"] for f in chat.failures()] == ["evt-2"]
    # the event and the other playbook committed around the rolled-back savepoint
    assert chat.scalar("SELECT count(*) FROM events") == 3
    assert chat.state("echo", "seen") == 3
    assert chat.scalar("SELECT count(*) FROM actions WHERE cause = 'evt-2'") == 1


def test_on_commit_sees_actions_emitted_before_a_savepoint(
    make_chat: MakeChat, notes_table: str
) -> None:
    chat = chat_with(make_chat, "echo", "notes")
    chat.send_event(msg(1, "u1", START, "note hi"))
    assert chat.scalar("SELECT count(*) FROM actions") == 1  # it is in the outbox...
    chat.assert_sent("echo: note hi", count=1)  # ...but was it announced?


def test_identity_caches_survive_a_rolled_back_savepoint(
    make_chat: MakeChat, notes_table: str
) -> None:
    chat = chat_with(make_chat, "notes")
    chat.send_event(msg(1, "u1", START, "note ghost fail"))
    assert [f["cause"] for f in chat.failures()] == ["evt-1"]
    outcome = chat.send_event(msg(2, "u-ghost", START + timedelta(minutes=1), "hello"))
    assert outcome.status == "handled"
    assert chat.scalar("SELECT count(*) FROM messages") == 2


def test_a_state_value_json_cannot_hold_fails_only_its_playbook(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo", "stash")
    chat.send_event(msg(0, "u1", START, "fine"))
    outcome = chat.send_event(msg(1, "u1", START, "poison"))
    assert outcome.status == "handled"
    assert [f["playbook"] for f in chat.failures()] == ["stash"]
    assert chat.state("echo", "seen") == 2


@pytest.mark.parametrize(
    ("text_", "where"),
    [("bad record", "records: Bulk.json in Engine._flush"),
     ("bad payload", "jobs: JSONText at the jobs upsert in Engine._flush")],
    ids=["record", "payload"],
)
def test_record_data_and_job_payloads_json_cannot_hold_fail_only_their_playbook(
    make_chat: MakeChat, request: pytest.FixtureRequest, text_: str, where: str
) -> None:
    chat = chat_with(make_chat, "echo", "stash")
    chat.send_event(msg(0, "u1", START, "fine"))
    try:
        outcome = chat.send_event(msg(1, "u1", START, text_))
    except TypeError as exc:
        raise AssertionError(f"escaped the engine: {exc!r}") from exc
    assert outcome.status == "handled"
    assert [f["playbook"] for f in chat.failures()] == ["stash"]
    assert chat.state("echo", "seen") == 2


def test_suppress_stops_later_playbooks(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "gate", "echo")
    chat.send_event(msg(1, "u1", START, "buy spam now"))
    chat.assert_sent(type="delete", playbook="gate", count=1)
    assert chat.state("echo", "seen") is None
    assert len(chat.records("gate", "spam")) == 1
    # the event itself is still stored and counted
    assert chat.scalar("SELECT count(*) FROM events") == 1
    assert chat.scalar("SELECT sum(messages) FROM rollups") == 1
    # a normal message reaches both
    chat.send_event(msg(2, "u1", START + timedelta(minutes=1), "hello"))
    chat.assert_sent("echo: hello", count=1)
    assert chat.state("echo", "seen") == 1


def test_suppress_only_affects_later_playbooks(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo", "gate")
    chat.send_event(msg(1, "u1", START, "spam"))
    types = sorted(a["type"] for a in chat.take())
    assert types == ["delete", "send"]


# --------------------------------------------------------------------------- outbox


def test_actions_the_platform_cannot_do_are_downgraded(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "gate", "echo", capabilities={"sim": frozenset({"send"})})
    chat.send_event(msg(1, "u1", START, "spam here"))
    chat.send_event(msg(2, "u1", START + timedelta(minutes=1), "hello"))
    got = rows(chat.db, "SELECT type, downgraded_from, payload FROM actions ORDER BY seq")
    assert [(r["type"], r["downgraded_from"]) for r in got] == [
        ("notify_admins", "delete"),
        ("send", None),
    ]
    note = got[0]["payload"]
    assert note["type"] == "notify_admins"
    assert "m-1" in note["text"]  # enough for an admin to do it by hand
    assert "gate" in note["text"]
    assert note["cause"] == "evt-1"
    assert note["playbook"] == "gate"
    assert_valid_actions(chat.db)


def test_without_declared_capabilities_nothing_is_downgraded(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "gate")
    chat.send_event(msg(1, "u1", START, "spam"))
    got = rows(chat.db, "SELECT type, downgraded_from FROM actions")
    assert got == [{"type": "delete", "downgraded_from": None}]


def test_outbox_rows_carry_the_contract_fields(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo", "muter")
    chat.send_event(msg(1, "u1", START, "mute me"))
    got = rows(chat.db, "SELECT * FROM actions ORDER BY seq")
    assert [r["type"] for r in got] == ["send", "mute"]
    for r in got:
        assert r["status"] == "pending"
        assert r["attempts"] == 0
        assert r["community_id"] == "test"
        assert r["platform"] == "sim"
        assert r["group_key"] == "g-main"
        assert r["payload"]["id"] == r["id"]
        assert r["payload"]["v"] == 1
    assert_valid_actions(chat.db)
    assert chat.actions == [r["payload"] for r in got]


def test_an_action_breaking_the_contract_never_reaches_the_outbox(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "muter")
    chat.send_event(msg(1, "u1", START, "mute me naive"))
    assert_valid_actions(chat.db)
    assert [f["playbook"] for f in chat.failures()] == ["muter"]


# --------------------------------------------------------------------------- core records


def _rollups(chat: Chat) -> dict[tuple[str, date], dict[str, int]]:
    r = m.Rollup.__table__
    mem = m.Member.__table__
    with chat.db.connect() as conn:
        got = conn.execute(
            select(r, mem.c.user_id).select_from(r.join(mem, mem.c.id == r.c.member_id))
        ).mappings()
        return {
            (row["user_id"], row["day"]): {c: row[c] for c in m.ROLLUP_COUNTERS}
            for row in got
        }


def test_rollup_counters_per_member_and_local_day(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")  # Asia/Shanghai
    nov2_2330 = datetime.fromisoformat("2026-11-02T23:30:00+08:00")
    nov3_0030 = datetime.fromisoformat("2026-11-03T00:30:00+08:00")
    chat.send_event(ev(1, "member_joined", "u1", START, via="link"))
    chat.send_event(ev(2, "member_joined", "u2", START, via="invite", inviter="u1"))
    chat.send_event(msg(3, "u1", nov2_2330, "晚安 @u2", mentions=["u2", "u1"]))
    chat.send_event(ev(4, "reaction", "u2", nov2_2330 + timedelta(minutes=1), target="m-3",
                       emoji="❤️"))
    # 00:30 local on Nov 3 is still Nov 2 in UTC (16:30Z): it belongs to Nov 3
    assert nov3_0030.astimezone(tz=None).utcoffset() is not None
    chat.send_event(msg(5, "u1", nov3_0030, "早", reply_to="m-3"))
    chat.send_event(ev(6, "member_left", "u2", nov3_0030 + timedelta(minutes=1)))
    got = _rollups(chat)
    d2, d3 = date(2026, 11, 2), date(2026, 11, 3)
    assert set(got) == {("u1", d2), ("u2", d2), ("u1", d3), ("u2", d3)}
    u1d2, u2d2, u1d3, u2d3 = got[("u1", d2)], got[("u2", d2)], got[("u1", d3)], got[("u2", d3)]
    assert u1d2["joins"] == 1 and u2d2["joins"] == 1
    assert u1d2["messages"] == 1
    assert u1d2["characters"] == len("晚安 @u2")
    assert u1d2["mentions_sent"] == 2
    assert u2d2["mentions_received"] == 1
    assert u1d2["mentions_received"] == 0  # mentioning yourself does not count
    assert u2d2["reactions_given"] == 1
    assert u1d2["reactions_received"] == 1
    assert u1d2["replies"] == 0
    assert u1d3["messages"] == 1
    assert u1d3["characters"] == 1
    assert u1d3["replies"] == 1
    assert u2d3["leaves"] == 1
    assert u2d3["messages"] == 0
    assert sum(v["messages"] for v in got.values()) == 2


def test_rollup_days_follow_the_community_time_zone(make_chat: MakeChat) -> None:
    # the same instant, 2026-11-02T16:30Z, is Nov 3 in Shanghai and Nov 2 in New York
    instant = datetime.fromisoformat("2026-11-02T16:30:00+00:00")
    sh = chat_with(make_chat, "echo")
    sh.send_event(msg(1, "u1", instant, "x"))
    ny = chat_with(make_chat, "echo", timezone="America/New_York", groups=("g-ny",))
    ny.send_event(ev(2, "message", "u1", instant, group="g-ny", msg_id="m-2", text="x"))
    assert ("u1", date(2026, 11, 3)) in _rollups(sh)
    ny_days = {day for (_, day) in _rollups(ny) if _ == "u1"}
    assert date(2026, 11, 2) in ny_days


def test_link_media_and_counters_from_playbooks(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "counter")
    chat.send_event(msg(1, "u1", START, "see https://example.org"))
    chat.send_event(msg(2, "u1", START + timedelta(seconds=1), "", content_type="image"))
    got = _rollups(chat)[("u1", date(2026, 11, 2))]
    assert got["links"] == 1
    assert got["media"] == 1
    assert got["points"] == 10


def test_counters_of_a_late_event_land_on_the_event_day(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "counter")
    chat.send_event(msg(1, "u1", datetime.fromisoformat("2026-11-03T10:00:00+08:00"), "today"))
    chat.send_event(msg(2, "u1", datetime.fromisoformat("2026-11-02T22:00:00+08:00"), "yesterday"))
    got = _rollups(chat)
    assert got[("u1", date(2026, 11, 2))]["messages"] == 1
    assert got[("u1", date(2026, 11, 2))]["points"] == 5


def _memberships(chat: Chat) -> dict[str, dict[str, Any]]:
    return {
        r["user_id"]: r
        for r in rows(
            chat.db,
            "SELECT mm.user_id, ms.status, ms.via, ms.joined_at, ms.left_at, ms.role, "
            "inv.user_id AS inviter FROM memberships ms "
            "JOIN members mm ON mm.id = ms.member_id "
            "LEFT JOIN members inv ON inv.id = ms.inviter_member_id",
        )
    }


def test_memberships_follow_joins_leaves_and_removals(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo", roles={"admin": ["u-admin"]})
    t = START
    chat.send_event(ev(1, "member_joined", "u-admin", t))
    chat.send_event(ev(2, "member_joined", "u1", t + timedelta(minutes=1), via="invite",
                       inviter="u-admin"))
    chat.send_event(ev(3, "member_joined", "u2", t + timedelta(minutes=2), via="qr"))
    got = _memberships(chat)
    assert got["u1"]["status"] == "active"
    assert got["u1"]["via"] == "invite"
    assert got["u1"]["inviter"] == "u-admin"
    assert got["u-admin"]["role"] == "admin"
    assert got["u1"]["role"] == "member"
    chat.send_event(ev(4, "member_left", "u1", t + timedelta(minutes=3)))
    chat.send_event(ev(5, "member_left", "u2", t + timedelta(minutes=4), by="u-admin"))
    got = _memberships(chat)
    assert got["u1"]["status"] == "left"
    assert got["u2"]["status"] == "removed"
    assert got["u1"]["left_at"] is not None
    # back again
    chat.send_event(ev(6, "member_joined", "u1", t + timedelta(minutes=5), via="link"))
    got = _memberships(chat)
    assert got["u1"]["status"] == "active"
    assert got["u1"]["left_at"] is None
    assert got["u1"]["via"] == "link"
    assert chat.scalar("SELECT count(*) FROM memberships") == 3


def test_members_keep_raw_names_and_playbooks_see_clean_ones(make_chat: MakeChat) -> None:
    chat = make_chat({"checkin": {}}, registry=REG)
    chat.event("message", "u1", name="\u202e小王\u0007", msg_id="m-1", text="打卡")
    assert chat.scalar("SELECT name FROM members WHERE user_id = 'u1'") == "\u202e小王\u0007"
    sent = chat.assert_sent(playbook="checkin", count=1)
    assert "小王" in sent[0]["text"]
    assert "\u202e" not in sent[0]["text"]
    assert "\u0007" not in sent[0]["text"]


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "\u202e\x00\x07"], ids=["inside", "only", "mixed"])
def test_a_new_member_with_a_nul_in_their_name_is_handled(
    make_chat: MakeChat, db_url: str, request: pytest.FixtureRequest, name: str
) -> None:
    chat = chat_with(make_chat, "checkin")
    chat.event("message", "u1", name=name, msg_id="m-1", text="打卡")
    assert chat.outcomes[-1].status == "handled"
    assert chat.scalar("SELECT count(*) FROM members WHERE user_id = 'u1'") == 1
    chat.assert_sent(playbook="checkin", count=1)


def test_nul_characters_in_text_are_stored(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    chat.send_event(msg(1, "u1", START, "hello\x00world"))
    assert chat.outcomes[-1].status == "handled"
    stored = chat.scalar("SELECT text FROM messages")
    assert stored.startswith("hello") and stored.endswith("world")


def test_edits_and_recalls_update_the_message(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    chat.send_event(msg(1, "u1", START, "typo"))
    chat.send_event(ev(2, "edit", "u1", START + timedelta(minutes=1), target="m-1", text="fixed"))
    assert chat.scalar("SELECT text FROM messages WHERE msg_id = 'm-1'") == "fixed"
    chat.send_event(ev(3, "recall", "u1", START + timedelta(minutes=2), target="m-1"))
    assert chat.scalar("SELECT status FROM messages WHERE msg_id = 'm-1'") == "recalled"
    assert chat.scalar("SELECT count(*) FROM events") == 3


def test_unknown_fields_are_kept_in_the_stored_event(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    e = parse_event({"v": 1, "id": "evt-x", "ts": START.isoformat(), "platform": "sim",
                     "group": "g-main", "type": "message", "actor": {"id": "u1"},
                     "msg_id": "m-x", "text": "hi", "x_raw": {"k": [1, 2]}})
    chat.send_event(e)
    payload = rows(chat.db, "SELECT payload FROM events")[0]["payload"]
    assert payload["x_raw"] == {"k": [1, 2]}


# --------------------------------------------------------------------------- privacy


def test_export_and_erase_a_member(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "checkin", "boom")
    chat.say("u1", "打卡")
    chat.say("u10", "打卡")  # "m:u1" is a prefix of "m:u10": it must not be touched
    exported = chat.engine.export_member("test", "sim", "u1")["playbooks"]
    assert set(exported) == {"checkin", "boom"}
    assert set(exported["checkin"]) == {"m:u1"}
    assert exported["checkin"]["m:u1"]["streak"] == 1
    assert set(exported["boom"]) == {"m:u1"}
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("checkin", "m:u1") is None
    assert chat.state("boom", "m:u1") is None
    assert chat.state("checkin", "m:u10") is not None
    assert chat.engine.export_member("test", "sim", "u1")["playbooks"] == {"checkin": {}, "boom": {}}
    # the playbooks' logs keep the count, not the person
    records = chat.records("boom", "boom")
    assert len(records) == 2
    assert sorted(str(r["member"]) for r in records) == ["None", "u10"]
    erased = next(r for r in records if r["member"] is None)
    assert "u1" not in str(erased["data"])


def test_erase_reaches_a_playbook_enabled_in_any_group(make_chat: MakeChat) -> None:
    chat = chat_with(
        make_chat, "checkin", groups=("g-main", "g-study"),
        group_overrides={"g-main": {"checkin": {"enabled": False}}},
    )
    chat.say("u1", "打卡", group="g-study")
    assert chat.state("checkin", "m:u1") is not None
    assert "m:u1" in chat.engine.export_member("test", "sim", "u1")["playbooks"].get("checkin", {})
    chat.engine.erase_member("test", "sim", "u1")
    assert chat.state("checkin", "m:u1") is None


# --------------------------------------------------------------------------- configuration


def test_an_unknown_group_is_rejected_with_a_clear_message(make_chat: MakeChat) -> None:
    chat = chat_with(make_chat, "echo")
    outcome = chat.send_event(ev(1, "message", "u1", START, group="g-stranger", msg_id="m", text="x"))
    assert outcome.status == "rejected"
    assert "'g-stranger'" in outcome.detail
    assert "sim" in outcome.detail
    assert "catch_all" in outcome.detail
    assert chat.scalar("SELECT count(*) FROM events") == 0
    assert chat.scalar("SELECT count(*) FROM actions") == 0
    # a rejected event is not remembered as seen: once configured, it is handled
    assert chat.engine.stats["rejected"] == 1


def test_a_catch_all_community_takes_unknown_groups(make_chat: MakeChat) -> None:
    doc = {
        "communities": [
            {
                "id": "all",
                "name": "everything",
                "catch_all": True,
                "groups": [{"id": "g-main"}],
                "playbooks": {"echo": {}},
            }
        ]
    }
    chat = make_chat(yaml.safe_dump(doc), registry=REG)
    outcome = chat.send_event(ev(1, "message", "u1", START, group="g-new", msg_id="m", text="hi"))
    assert outcome.status == "handled"
    group = rows(chat.db, "SELECT community_id, key FROM groups WHERE key = 'g-new'")
    assert group == [{"community_id": "all", "key": "g-new"}]
    chat.assert_sent("echo: hi", count=1)
    assert chat.actions[0]["group"] == "g-new"


def test_a_group_with_a_playbook_switched_off_does_not_run_it(make_chat: MakeChat) -> None:
    chat = chat_with(
        make_chat, "echo", groups=("g-main", "g-quiet"),
        group_overrides={"g-quiet": {"echo": {"enabled": False}}},
    )
    chat.send_event(ev(1, "message", "u1", START, group="g-quiet", msg_id="m-1", text="x"))
    chat.assert_nothing_sent()
    chat.send_event(msg(2, "u1", START, "y"))
    chat.assert_sent("echo: y", count=1)


# --------------------------------------------------------------------------- batches


def _dump(db: SAEngine) -> dict[str, Any]:
    """The observable state, by natural keys (surrogate ids may differ)."""
    q = {
        "events": "SELECT platform, event_id, type, ts, actor, status, payload FROM events "
                  "ORDER BY platform, event_id",
        "messages": "SELECT msg_id, event_id, ts, text, status, mm.user_id FROM messages ms "
                    "JOIN members mm ON mm.id = ms.member_id ORDER BY event_id",
        "members": "SELECT platform, user_id, name, first_seen_at, last_seen_at FROM members "
                   "ORDER BY user_id",
        "memberships": "SELECT mm.user_id, ms.status, ms.joined_at, ms.left_at FROM memberships ms "
                       "JOIN members mm ON mm.id = ms.member_id ORDER BY mm.user_id",
        "rollups": "SELECT mm.user_id, r.day, r.messages, r.characters, r.replies, r.checkins, "
                   "r.points, r.joins, r.leaves, r.reactions_received FROM rollups r "
                   "JOIN members mm ON mm.id = r.member_id ORDER BY mm.user_id, r.day",
        "actions": "SELECT id, ts, type, playbook, cause, payload FROM actions ORDER BY id",
        "state": "SELECT playbook, key, value FROM playbook_state ORDER BY playbook, key",
        "accounts": "SELECT code, balance FROM ledger_accounts ORDER BY code",
        "txns": "SELECT id, ts, reason, cause FROM ledger_transactions ORDER BY id",
        "jobs": "SELECT id, due_at, kind, spec FROM jobs ORDER BY id",
        "groups": "SELECT key, last_event_at FROM groups ORDER BY key",
        "failures": "SELECT playbook, cause FROM failures ORDER BY playbook, cause",
    }
    return {k: rows(db, v) for k, v in q.items()}


def _story() -> list[BaseEvent]:
    out: list[BaseEvent] = []
    n = 0
    for day in range(4):
        for hour in (1, 5, 12):
            for user in ("u1", "u2", "u3"):
                n += 1
                at = START + timedelta(days=day, hours=hour, minutes=n % 7)
                if user == "u3" and day == 1:
                    continue  # u3 breaks the streak
                out.append(msg(n, user, at, "打卡" if hour == 1 else f"hi {n}",
                               reply_to=f"m-{n - 1}" if n % 4 == 0 else None))
        n += 1
        out.append(ev(n, "reaction", "u2", START + timedelta(days=day, hours=13), target=f"m-{n - 2}",
                      emoji="👍"))
    out.insert(5, ev("j1", "member_joined", "u9", START + timedelta(minutes=1)))
    out.append(ev("l1", "member_left", "u9", START + timedelta(days=3, hours=14)))
    out.append(msg("late", "u1", START + timedelta(days=3, hours=2), "late hi"))  # late
    out.append(msg(3, "u3", START + timedelta(days=5), "duplicate id"))  # duplicate
    return out


def _run(url: str, batch_size: int, playbooks: dict[str, Any],
         events: list[BaseEvent]) -> tuple[list[str], dict[str, Any]]:
    db = open_engine(url)
    migrate(db)
    if "deferred" in playbooks:
        make_deferred_tables(db)
    settings = settings_from_text(community_config(playbooks), registry=REG)
    engine = Engine(db, settings, clock=FakeClock(START), registry=REG, batch_size=batch_size)
    statuses = [o.status for o in run_events(engine, events)]
    engine.advance_to(START + timedelta(days=6))
    dumped = _dump(db)
    db.dispose()
    return statuses, dumped


def test_batch_mode_gives_the_same_final_state(db_url: str, second_db_url: str) -> None:
    playbooks = {"checkin": {}, "echo": {}, "ticker": {}}
    events = _story()
    one_status, one = _run(db_url, 1, playbooks, events)
    many_status, many = _run(second_db_url, 50, playbooks, events)
    assert "late" in one_status and "duplicate" in one_status
    assert one_status == many_status
    assert len(one["actions"]) > 40
    assert one["state"] and one["accounts"] and one["jobs"] and one["rollups"]
    for table in one:
        assert one[table] == many[table], table


def test_a_batch_that_fails_to_commit_falls_back_to_one_by_one(
    db_url: str, second_db_url: str
) -> None:
    playbooks = {"checkin": {}, "deferred": {}, "ticker": {}}
    events = [
        msg(i, f"u{i % 3}", START + timedelta(hours=3 * i), "poison" if i == 4 else "打卡")
        for i in range(10)
    ]
    one_status, one = _run(db_url, 1, playbooks, events)
    many_status, many = _run(second_db_url, 50, playbooks, events)
    # the poisoned event fails alone; its neighbours are handled either way
    assert one_status[4] == "failed"
    assert one_status.count("handled") == 9
    assert many_status == one_status
    assert [r["status"] for r in many["events"] if r["event_id"] == "evt-4"] == ["failed"]
    assert ("(engine)", "evt-4") in {(f["playbook"], f["cause"]) for f in many["failures"]}
    for table in one:
        assert one[table] == many[table], table


def test_a_batch_fallback_keeps_neighbours(db_url: str) -> None:
    # nothing but the bad event is lost, and the bad event is kept, marked failed
    db = open_engine(db_url)
    migrate(db)
    make_deferred_tables(db)
    settings = settings_from_text(community_config({"echo": {}, "deferred": {}}), registry=REG)
    engine = Engine(db, settings, clock=FakeClock(START), registry=REG, batch_size=50)
    events = [msg(i, "u1", START + timedelta(minutes=i), "poison" if i == 2 else "ok")
              for i in range(5)]
    outcomes = engine.handle_many(events)
    assert [o.status for o in outcomes] == ["handled", "handled", "failed", "handled", "handled"]
    stored = {r["event_id"]: r["status"] for r in rows(db, "SELECT event_id, status FROM events")}
    assert stored == {"evt-0": "handled", "evt-1": "handled", "evt-2": "failed",
                      "evt-3": "handled", "evt-4": "handled"}
    assert rows(db, "SELECT count(*) AS n FROM actions WHERE playbook = 'echo'")[0]["n"] == 4
    assert rows(db, "SELECT playbook, cause FROM failures") == [
        {"playbook": "(engine)", "cause": "evt-2"}
    ]
    # and a failed event is not handled again
    assert engine.handle(events[2]).status == "duplicate"
    db.dispose()
