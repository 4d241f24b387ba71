"""The report's shortcuts give what the long way gives.

The full report counts member values without reading names, reads the last
weeks' speakers per group from the aggregates, settles most newcomer
activations from ``member_groups``, and links only the groups that asked a
question. Each is checked here against the long way, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import text

from qunyun.analytics import metrics as mx
from qunyun.analytics import replies as R
from qunyun.analytics import value as V
from qunyun.testing import Chat

Make = Callable[..., Chat]
DAY0 = date(2026, 11, 2)


def _community(make_chat: Make) -> Chat:
    chat = make_chat({}, roles={"owner": ["boss"]}, groups=["g-main", "g-quiet"])
    for u in ("boss", "star", "sharer", "asker", "helper", "quiet", "fan1", "fan2", "gone", "back", "again", "late"):
        chat.join(u, f"name-{u}")
    chat.join("quiet", group="g-quiet")
    chat.join("late", group="g-quiet")
    chat.say("boss", "欢迎大家")
    hits = [chat.say("star", f"今天的心得 {i}") for i in range(4)]
    for fan in ("fan1", "fan2"):
        for h in hits:
            chat.react(fan, h)
    for i in range(4):
        chat.say("sharer", f"推荐一篇文章 https://example.org/{i}")
    asked = [chat.say("asker", q) for q in ("请问怎么打卡？", "资料在哪里？", "几点上课？")]
    chat.advance(minutes=3)
    for q in asked:
        chat.say("helper", "看群公告就有", reply_to=q)
    chat.say("gone", "我也想问几点上课？")
    chat.say("back", "第一天来")
    chat.say("again", "第一天来")
    chat.leave("again")
    chat.say("quiet", "这边没人", group="g-quiet")  # a group with messages but no question
    chat.leave("back")
    chat.advance(days=9)
    chat.say("late", "来晚了", group="g-quiet")  # first message 9 days after joining: not activated
    chat.join("back", "name-back")  # came back: spoke before, speaks again within the week
    chat.join("again", "name-again")  # came back too, but speaks again only after the week
    chat.advance(days=2)
    chat.say("back", "我回来了")
    chat.say("star", "新的心得")
    chat.join("fan1", group="g-quiet")  # joins a second group and never speaks there
    chat.advance(days=7)
    chat.say("again", "又回来了")
    chat.advance(days=20)
    chat.say("star", "一个月后")  # day 38, the last day with data
    with chat.db.begin() as conn:
        conn.execute(text("UPDATE members SET erased = :t WHERE user_id = 'gone'"), {"t": True})
    return chat


def test_value_counts_equal_the_member_values_counted(make_chat: Make) -> None:
    chat = _community(make_chat)
    with chat.db.connect() as conn:
        for as_of in (DAY0 + timedelta(days=11), date(2026, 12, 1), DAY0 + timedelta(days=38), DAY0 + timedelta(days=45)):
            for kept in (None, False):
                values = V.member_values(conn, "test", as_of, kept=kept)
                expected: dict[tuple[str, str], int] = {}
                for v in values:
                    expected[(v.archetype, v.level)] = expected.get((v.archetype, v.level), 0) + 1
                got = V.value_counts(conn, "test", as_of, kept=kept)
                assert got == expected
                assert list(got) == list(expected)  # the same order: first appearance by score
    # the erased member is left out; the helper still answers (user ids mapped without names)
    assert "name-gone" not in {v.name for v in values}
    assert sum(got.values()) == len(values)
    with chat.db.connect() as conn:
        early = V.value_counts(conn, "test", DAY0 + timedelta(days=11))
    assert early[("answerer", "casual")] == 1 and early[("asker", "casual")] == 1


def test_activation_from_member_groups_equals_the_rollups(make_chat: Make) -> None:
    chat = _community(make_chat)
    with chat.db.connect() as conn:
        sc = mx.scope(conn, "test")
        rows = conn.execute(text("SELECT group_id, member_id, day, joins, messages FROM rollups")).all()
        for grain in ("day", "week", "month"):
            got = mx.activation(conn, sc, DAY0, DAY0 + timedelta(days=20), grain)
            spoke = {(g, m, mx._as_date(d)) for g, m, d, _, n in rows if n > 0}
            joined: dict[date, list[int]] = {}
            for g, m, d, j, _ in rows:
                if j > 0:
                    day = mx._as_date(d)
                    assert day is not None
                    ok = any((g, m, day + timedelta(days=k)) in spoke for k in range(mx.ACTIVATION_DAYS))
                    cell = joined.setdefault(mx.period_start(day, grain), [0, 0])
                    cell[0] += 1
                    cell[1] += ok
            assert {a.cohort: [a.joined, a.activated] for a in got if a.joined} == joined
    # who came back and spoke again counts; the late speaker and the silent second join do not
    week = {a.cohort: a for a in got}[date(2026, 11, 1)]
    assert week.activated < week.joined


def test_recent_speakers_per_group_from_the_aggregates(make_chat: Make) -> None:
    chat = _community(make_chat)
    end = DAY0 + timedelta(days=38)  # the last day with data
    with chat.db.connect() as conn:
        sc = mx.scope(conn, "test")
        long_way = mx.group_activity(sc, mx.presences(conn, sc, DAY0, end), DAY0, end)
        recent = mx.recent_by_group(conn, sc, end)
        assert recent is not None
        short = mx.group_activity(sc, mx.presences(conn, sc, DAY0, end, recent=False), DAY0, end, recent)
        assert mx.recent_by_group(conn, sc, end - timedelta(days=1)) is None  # data after the end: not exact
    assert short == long_way
    assert {g.key: g.speakers for g in short} == {"g-main": 3, "g-quiet": 0}  # back, again, star


def test_only_groups_with_a_question_are_linked(make_chat: Make) -> None:
    chat = _community(make_chat)
    with chat.db.connect() as conn:
        start, end = R._bounds(conn, "test", DAY0, DAY0)
        asking = R._groups_with_questions(conn, "test", start, end, None)
        questions = R.questions_in_period(conn, "test", DAY0, DAY0)
        later = R.questions_in_period(conn, "test", DAY0 + timedelta(days=9), DAY0 + timedelta(days=12))
    assert asking == {"g-main"}
    assert sorted(q.author for q in questions) == ["asker", "asker", "asker", "gone"]
    assert sum(len(q.answerers) for q in questions) == 3
    assert later == []  # messages, but no question: nothing is linked
