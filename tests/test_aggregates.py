"""The report aggregates the engine keeps beside the rollups (SQLite and PostgreSQL).

After a conversation through the engine, ``group_days``, ``member_groups``,
``community_days`` and ``retention_cells`` must equal what one recomputes
from ``rollups`` (and, for speakers, from the raw ``messages``) — including
after late events, members in two groups and a migration of old data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine
from qunyun.testing import Chat

Make = Callable[..., Chat]

TABLES = {
    "group_days": ("group_id, day", "community_id, messages, speakers, joins, leaves, checkins"),
    "member_groups": (
        "group_id, member_id",
        "community_id, first_day, first_message_day, last_message_day, messages, checkin_days",
    ),
    "community_days": ("community_id, day", "speakers"),
    "retention_cells": ("community_id, cohort, week", "speakers"),
}


def _norm(v: Any) -> Any:
    if isinstance(v, date):
        return v.isoformat()
    return v


def snapshot(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, (key, cols) in TABLES.items():
        zero = " WHERE speakers <> 0" if name == "retention_cells" else ""
        rows = conn.execute(text(f"SELECT {key}, {cols} FROM {name}{zero} ORDER BY {key}")).all()
        out[name] = [tuple(_norm(v) for v in r) for r in rows]
    return out


def rebuilt(chat: Chat) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates recomputed from rollups alone (in a transaction that is rolled back)."""
    with chat.db.connect() as conn:
        tx = conn.begin()
        for name in TABLES:
            conn.execute(text(f"DELETE FROM {name}"))
        for sql in m.aggregate_sql(conn.dialect.name):
            conn.execute(text(sql))
        out = snapshot(conn)
        tx.rollback()
    return out


def kept(chat: Chat) -> dict[str, list[tuple[Any, ...]]]:
    with chat.db.connect() as conn:
        return snapshot(conn)


def conversation(chat: Chat) -> None:
    """Three members over two groups and two weeks; u1 writes in both groups the same day."""
    chat.join("u1", "甲")
    chat.join("u2", "乙")
    chat.join("u1", group="g-two")
    chat.say("u1", "早")
    chat.say("u1", "又是我")
    chat.say("u1", "另一个群", group="g-two")
    chat.say("u2", "hi", mentions=["u1"])
    chat.advance(days=1)
    chat.say("u2", "第二天")
    chat.say("u2", "打卡")
    chat.say("u1", "打卡", group="g-two")
    chat.react("u1", chat.say("u3", "我是路人", group="g-two"))
    chat.advance(days=8)  # next week
    chat.say("u1", "新的一周", group="g-two")
    chat.leave("u2")
    chat.say("u3", "还在")


def test_aggregates_equal_a_recount_from_the_rollups(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    conversation(chat)
    got = kept(chat)
    assert got == rebuilt(chat)
    assert got["group_days"] and got["member_groups"] and got["community_days"] and got["retention_cells"]
    # u1 wrote in both groups on day one: the community counts that person once
    first = date(2026, 11, 2).isoformat()
    days = {d: n for _, d, n in got["community_days"]}
    assert days[first] == 2  # u1 and u2 (u3 spoke the next day)
    per_group_first_day = sum(r[4] for r in got["group_days"] if r[1] == first)
    assert per_group_first_day == 3  # u1 in two groups + u2


def test_speakers_match_the_raw_messages(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    conversation(chat)
    tz = ZoneInfo("Asia/Shanghai")
    with chat.db.connect() as conn:
        rows = conn.execute(text("SELECT group_id, member_id, ts FROM messages")).all()
        community = dict(conn.execute(text("SELECT day, speakers FROM community_days")).all())
        groups = {(g, d): n for g, d, n in conn.execute(text("SELECT group_id, day, speakers FROM group_days"))}
    from qunyun.analytics.metrics import _as_dt

    by_day: dict[str, set[int]] = defaultdict(set)
    by_group_day: dict[tuple[int, str], set[int]] = defaultdict(set)
    for g, mid, ts in rows:
        day = _as_dt(ts).astimezone(tz).date().isoformat()  # type: ignore[union-attr]
        by_day[day].add(mid)
        by_group_day[(g, day)].add(mid)
    assert {_norm(d): n for d, n in community.items()} == {d: len(s) for d, s in by_day.items()}
    assert {(g, _norm(d)): n for (g, d), n in groups.items() if n} == {k: len(s) for k, s in by_group_day.items()}


def test_late_events_and_an_earlier_first_message_move_the_cohort(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    start = chat.now
    chat.join("u1")
    chat.advance(days=10)
    chat.say("u1", "第二周才开口")
    chat.say("u2", "我也是")
    # an imported / delayed message from the first week, in another group
    chat.event("message", "u1", group="g-two", ts=start + timedelta(hours=1), msg_id="late-1", text="其实我早说过")
    chat.event("message", "u2", ts=start + timedelta(days=10, minutes=1), msg_id="late-2", text="同一天")
    chat.advance(days=1)
    got = kept(chat)
    assert got == rebuilt(chat)
    cells = {(c, w): n for _, c, w, n in got["retention_cells"]}
    week1 = date(2026, 11, 2).isoformat()
    week2 = date(2026, 11, 9).isoformat()
    assert cells == {(week1, week1): 1, (week1, week2): 1, (week2, week2): 1}


@pytest.mark.parametrize("batch", [1, 50])
def test_batches_give_the_same_aggregates(make_chat: Make, batch: int) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    chat.engine.batch_size = batch
    conversation(chat)
    assert kept(chat) == rebuilt(chat)


def test_migration_0002_backfills_an_existing_database(make_chat: Make, db_url: str) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    conversation(chat)
    expected = kept(chat)
    # back to 0001 (the aggregates are dropped), with the rollups kept, then up again
    from alembic import command

    from qunyun.store.db import alembic_config

    command.downgrade(alembic_config(chat.db), "0001")
    with chat.db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rollups")).scalar_one() > 0
    engine = open_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            assert snapshot(conn) == expected
    finally:
        engine.dispose()
