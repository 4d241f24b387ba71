"""The member months the engine keeps for member values (SQLite and PostgreSQL).

After a conversation through the engine — two groups, four months, floods over
the daily cap, reactions and mentions, late events — the ``member_months``
rows must equal a rebuild from the rollups, and member values read from them
must equal member values read from the rollups alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from qunyun.analytics import value as V
from qunyun.store import member_months as mmk
from qunyun.testing import Chat

Make = Callable[..., Chat]
USERS = [f"u{i}" for i in range(12)]


def _rows(conn: Any) -> dict[tuple[int, str], tuple[Any, ...]]:
    cols = ", ".join(mmk.COLUMNS)
    out = {}
    for r in conn.execute(text(f"SELECT {cols} FROM member_months ORDER BY member_id, month")):
        key = (int(r[0]), str(r[1])[:10])
        out[key] = (
            str(r[2]), str(r[3])[:10], None if r[4] is None else str(r[4])[:10],
            *(round(float(x), 9) for x in r[5:7]), *(int(x) for x in r[7:10]), *(round(float(x), 9) for x in r[10:]),
        )
    return out


def kept(chat: Chat) -> dict[tuple[int, str], tuple[Any, ...]]:
    with chat.db.connect() as conn:
        return _rows(conn)


def rebuilt(chat: Chat) -> dict[tuple[int, str], tuple[Any, ...]]:
    """The rows recomputed from the rollups alone (in a transaction that is rolled back)."""
    with chat.db.connect() as conn:
        tx = conn.begin()
        mmk.rebuild(conn)
        out = _rows(conn)
        tx.rollback()
    return out


def conversation(chat: Chat, seed: int = 3) -> datetime:
    """Four months of chatter in two groups, with floods, reactions, mentions, check-ins and late events."""
    rng = random.Random(seed)
    start = chat.now
    for u in USERS:
        chat.join(u, group=rng.choice(["g-main", "g-two"]))
    sent: list[tuple[str, str]] = []
    late: list[tuple[str, str, datetime]] = []
    for day in range(0, 120, 3):
        chat.advance_to(start + timedelta(days=day, hours=1))
        talkers = rng.sample(USERS, rng.randint(1, 6))
        for u in talkers:
            group = rng.choice(["g-main", "g-two"])
            for _ in range(rng.choice([1, 1, 2, 5, 40 if rng.random() < 0.1 else 3])):
                kind = rng.random()
                if kind < 0.15:
                    sent.append((chat.say(u, f"看看 https://example.org/{rng.randint(0, 99)}", group=group), group))
                elif kind < 0.25 and sent:
                    target, g = rng.choice(sent)
                    chat.react(u, target, group=g)
                elif kind < 0.35:
                    other = rng.choice(USERS)
                    sent.append((chat.say(u, f"@{other} 你好", mentions=[other], group=group), group))
                elif kind < 0.45:
                    sent.append((chat.say(u, "打卡 今天学了一点", group=group), group))
                else:
                    sent.append((chat.say(u, f"第 {day} 天的消息", group=group), group))
        if rng.random() < 0.25 and day > 10:
            # a message that arrives late: its day is some days back
            late.append((rng.choice(USERS), rng.choice(["g-main", "g-two"]), chat.now - timedelta(days=rng.randint(1, 9))))
        while late and rng.random() < 0.6:
            u, g, when = late.pop()
            chat.event("message", u, group=g, ts=when, msg_id=f"late-{len(late)}-{day}", text="迟到的消息")
    return start


@pytest.mark.parametrize("batch", [1, 50])
def test_member_months_equal_a_rebuild_from_the_rollups(make_chat: Make, batch: int) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    chat.engine.batch_size = batch
    conversation(chat)
    got = kept(chat)
    assert got == rebuilt(chat)
    months = {k[1] for k in got}
    assert len(months) >= 4  # the conversation spans four months or more
    assert any(row[4] > 0 for row in got.values())  # points were kept


def test_member_values_from_member_months_equal_the_rollups(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    conversation(chat, seed=11)
    with chat.db.connect() as conn:
        last = date.fromisoformat(str(conn.execute(text("SELECT max(day) FROM rollups")).scalar())[:10])
        checked = 0
        for extra in (0, 1, 9, 17, 26, 40, 75):
            as_of = last + timedelta(days=extra)
            assert V._kept(conn, "test", as_of) is not None  # the fast path answers
            fast = V.member_values(conn, "test", as_of)
            slow = V.member_values(conn, "test", as_of, kept=False)
            assert [(v.member_id, v.level, v.archetype) for v in fast] == [
                (v.member_id, v.level, v.archetype) for v in slow
            ], as_of
            for a, b in zip(fast, slow, strict=True):
                assert abs(a.score - b.score) <= 0.01 + 1e-9, (as_of, a, b)
            checked += len(fast)
        # before the last day the kept rows cannot answer: the rollups are read
        assert V._kept(conn, "test", last - timedelta(days=1)) is None
        levels = {v.level for v in V.member_values(conn, "test", last)}
    assert checked > 30
    assert len(levels) >= 2  # the data is not all one level


def test_rollups_written_around_the_engine_are_not_answered_from_stale_rows(make_chat: Make) -> None:
    chat = make_chat({}, groups=["g-main"])
    chat.join("u1")
    chat.say("u1", "你好")
    with chat.db.begin() as conn:
        gid, mid = conn.execute(text("SELECT group_id, member_id FROM rollups")).first()  # type: ignore[misc]
        day = date(2026, 12, 5)
        conn.execute(
            text(
                "INSERT INTO rollups (group_id, member_id, day, community_id, messages, characters, media, links, "
                "replies, mentions_sent, mentions_received, reactions_given, reactions_received, joins, leaves, "
                "checkins, points) VALUES (:g, :m, :d, 'test', 25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            ),
            {"g": gid, "m": mid, "d": day if conn.dialect.name != "sqlite" else day.isoformat()},
        )
    with chat.db.connect() as conn:
        assert V._kept(conn, "test", day) is None
        (only,) = V.member_values(conn, "test", day)
    # 25 messages that day (read from the rollups) + the first one, 33 days earlier
    assert only.score == pytest.approx(25 + 2 ** (-33 / 14), abs=0.005)
    assert only.level == "active"


# ------------------------------------------------------------ check-in streaks


def _streaks(conn: Any) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        text("SELECT member_id, community_id, days, longest, last_day, run FROM checkin_streaks ORDER BY member_id")
    )
    return [(int(a), str(b), int(c), int(d), str(e)[:10], int(f)) for a, b, c, d, e, f in rows]


@pytest.mark.parametrize("batch", [1, 50])
def test_checkin_streaks_equal_a_rebuild_from_the_rollups(make_chat: Make, batch: int) -> None:
    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    chat.engine.batch_size = batch
    start = conversation(chat, seed=5)
    # check-ins on five days in two groups, and a late one for the day in between
    for day in (200, 201, 202, 204, 205):
        chat.advance_to(start + timedelta(days=day, hours=2))
        chat.say("u1", "打卡 连续", group="g-main")
        chat.say("u1", "打卡 另一个群", group="g-two")
    chat.event("message", "u1", group="g-two", ts=start + timedelta(days=203, hours=3), msg_id="late-ck", text="打卡 补")
    with chat.db.connect() as conn:
        tx = conn.begin()
        got = _streaks(conn)
        conn.execute(text("DELETE FROM checkin_streaks"))
        conn.exec_driver_sql(mmk.streaks_sql(conn.dialect.name))
        want = _streaks(conn)
        tx.rollback()
        mid = conn.execute(text("SELECT id FROM members WHERE user_id = 'u1'")).scalar_one()
    assert got == want
    u1 = next(r for r in got if r[0] == mid)
    # days 200-202 and 204-205 (the late check-in is not taken by the check-in playbook): the run ends on 205
    assert u1[4] == (start + timedelta(days=205)).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert u1[5] == 2
    assert u1[3] >= 3
    assert len(got) >= 3


def test_checkin_stats_from_kept_streaks_equal_the_rollups(make_chat: Make) -> None:
    from qunyun.analytics import metrics as mx

    chat = make_chat({"checkin": {}}, groups=["g-main", "g-two"])
    start = conversation(chat, seed=8)
    for day in (130, 131, 132):
        chat.advance_to(start + timedelta(days=day, hours=2))
        chat.say("u2", "打卡 第几天", group="g-two")
    with chat.db.connect() as conn:
        sc = mx.scope(conn, "test")
        first, last = mx.data_range(conn, sc)  # type: ignore[misc]
        kept_rows = mx._streaks_kept(conn, sc, first, last)
        assert kept_rows is not None  # the whole span: the kept rows answer
        assert sorted(kept_rows) == sorted(mx._streaks_scanned(conn, sc, first, last))
        assert any(best > 1 for best, *_ in kept_rows)
        # a window that cuts the data is read from the rollups
        assert mx._streaks_kept(conn, sc, first + timedelta(days=20), last) is None
        assert mx._streaks_kept(conn, mx.scope(conn, "test", "g-two"), first, last) is None
