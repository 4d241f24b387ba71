"""Metrics on small conversations, against values worked out by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from qunyun.analytics import metrics as mx
from qunyun.testing import Chat

Make = Callable[..., Chat]

MON1 = date(2026, 11, 2)  # the harness starts Monday 2026-11-02, 17:00 in Asia/Shanghai
MON2 = date(2026, 11, 9)
MON3 = date(2026, 11, 16)
END = date(2026, 11, 22)


def three_weeks(chat: Chat) -> None:
    """Five members join on day 0; who speaks when is written next to each line.

    Messages in the window: u1 9, u2 3, u3 1, u4 1, u6 1 (15 by 5 speakers).
    """
    for u in ("u1", "u2", "u3", "u4", "u5"):
        chat.join(u, u.upper())
    for _ in range(5):
        chat.say("u1", "早")  # Nov 2
    for _ in range(3):
        chat.say("u2", "hi")
    chat.say("u3", "在吗")
    chat.advance(days=1)  # Nov 3
    chat.say("u1", "a")
    chat.say("u1", "b")
    chat.advance(days=6)  # Nov 9, week 2
    chat.say("u1", "c")
    chat.say("u4", "第一次说话")  # 7 days after joining: too late to count as activated
    chat.advance(days=1)  # Nov 10
    chat.leave("u2")
    chat.advance(days=6)  # Nov 16, week 3
    chat.say("u1", "d")
    chat.join("u6", "U6")
    chat.say("u6", "新人报到")


@pytest.fixture
def chat(make_chat: Make) -> Chat:
    c = make_chat({})
    three_weeks(c)
    return c


def _scope(chat: Chat, group: str | None = None) -> tuple[object, mx.Scope]:
    conn = chat.db.connect()
    return conn, mx.scope(conn, "test", group)


def test_series_per_week_counts_distinct_speakers_and_members_at_the_end(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        weeks = mx.series(conn, sc, MON1, END, "week")  # type: ignore[arg-type]
    assert [w.start for w in weeks] == [MON1, MON2, MON3]
    assert [(w.members, w.joins, w.leaves, w.messages, w.speakers) for w in weeks] == [
        (5, 5, 0, 11, 3),
        (4, 0, 1, 2, 2),
        (5, 1, 0, 2, 2),
    ]
    assert weeks[0].active_ratio == pytest.approx(3 / 5)
    assert weeks[0].messages_per_speaker == pytest.approx(11 / 3)


def test_series_per_day_and_month(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        days = mx.series(conn, sc, MON1, END, "day")  # type: ignore[arg-type]
        months = mx.series(conn, sc, MON1, END, "month")  # type: ignore[arg-type]
    assert len(days) == 21
    by_day = {d.start: d for d in days}
    assert (by_day[MON1].messages, by_day[MON1].speakers) == (9, 3)
    assert by_day[date(2026, 11, 9)].members == 5
    assert by_day[date(2026, 11, 10)].members == 4  # u2 left that day
    assert by_day[date(2026, 11, 12)].messages == 0
    assert [(m.start, m.end, m.messages, m.speakers, m.members) for m in months] == [
        (MON1, END, 15, 5, 5)
    ]


def test_concentration_top10_and_gini_by_hand(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        pres = mx.presences(conn, sc, MON1, END)  # type: ignore[arg-type]
        people = mx.people(pres)
        top = mx.top_contributors(conn, people, 3)  # type: ignore[arg-type]
    c = mx.concentration(p.messages for p in people.values())
    # counts ascending 1, 1, 1, 3, 9: Gini = 2·(1+2+3+12+45)/(5·15) − 6/5 = 0.48
    assert (c.speakers, c.messages) == (5, 15)
    assert c.gini == pytest.approx(0.48)
    assert c.top10_share == pytest.approx(9 / 15)  # the top 10 % of 5 speakers is 1 person
    assert c.lorenz[0] == (0.0, 0.0) and c.lorenz[-1] == (1.0, 1.0)
    assert [(t.user_id, t.name, t.messages) for t in top] == [("u1", "U1", 9), ("u2", "U2", 3), ("u3", "U3", 1)]


def test_concentration_edge_cases() -> None:
    assert mx.concentration([]).gini is None
    even = mx.concentration([4, 4, 4, 4])
    assert even.gini == pytest.approx(0.0) and even.top10_share == pytest.approx(0.25)
    one = mx.concentration([0, 0, 7])
    assert one.speakers == 1 and one.gini == pytest.approx(0.0) and one.top10_share == 1.0


def test_newcomer_activation_by_join_week(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        cohorts = mx.activation(conn, sc, MON1, END, "week")  # type: ignore[arg-type]
    # week 1: u1, u2, u3 spoke on their join day; u4 only on day 7; u5 never
    assert [(a.cohort, a.joined, a.activated) for a in cohorts] == [(MON1, 5, 3), (MON2, 0, 0), (MON3, 1, 1)]
    assert cohorts[0].rate == pytest.approx(0.6) and cohorts[1].rate is None


def test_retention_matrix_by_first_message_week(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        r = mx.retention(conn, sc, MON1, END, weeks=4)  # type: ignore[arg-type]
    assert r.cohorts == [MON1, MON2, MON3]
    assert r.sizes == [3, 1, 1]  # u1 u2 u3 | u4 | u6
    assert r.matrix[0] == [1.0, pytest.approx(1 / 3), pytest.approx(1 / 3), None]
    assert r.matrix[1] == [1.0, 0.0, None, None]
    assert r.matrix[2] == [1.0, None, None, None]


def test_lurkers_with_how_long_they_have_been_silent(chat: Chat) -> None:
    conn, sc = _scope(chat)
    with conn:  # type: ignore[attr-defined]
        found = mx.lurkers(conn, sc, END, silent_days=7)  # type: ignore[arg-type]
    # u2 left; u1 and u6 spoke 6 days ago
    assert [(lk.user_id, lk.silent_days, lk.last_spoke) for lk in found] == [
        ("u3", 20, MON1),
        ("u5", 20, None),
        ("u4", 13, MON2),
    ]
    assert found[0].groups == ["g-main"]


def test_one_group_scope_and_the_dashboard(make_chat: Make) -> None:
    chat = make_chat({}, groups=["g-main", "g-side"])
    three_weeks(chat)
    chat.say("u1", "另一个群", group="g-side")
    chat.say("u9", "只在这里", group="g-side")
    conn = chat.db.connect()
    with conn:
        main = mx.scope(conn, "test", "g-main")
        side = mx.scope(conn, "test", "g-side")
        everyone = mx.scope(conn, "test")
        assert sum(p.messages for p in mx.series(conn, main, MON1, END, "month")) == 15
        assert [(p.messages, p.speakers, p.members) for p in mx.series(conn, side, MON3, END, "month")] == [(2, 2, 2)]
        # u1 spoke in both groups that week: one speaker community-wide
        assert mx.series(conn, everyone, MON3, END, "week")[0].speakers == 3
        dash = mx.dashboard(conn, main, END, days=21, silent_days=7)
        assert dash.start == MON1 and len(dash.daily) == 21 and len(dash.weekly) == 3
        assert dash.concentration.gini == pytest.approx(0.48)
        assert dash.lurkers == 3  # u3, u4, u5
        with pytest.raises(mx.AnalyticsError, match="no group 'g-nope'"):
            mx.scope(conn, "test", "g-nope")
        with pytest.raises(mx.AnalyticsError, match="no community"):
            mx.scope(conn, "nope")


def test_checkin_rate_and_streaks(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reply": False, "reminder": None}})
    chat.join("u1", "A")
    chat.join("u2", "B")
    for day in range(3):
        chat.say("u1", "打卡 读书")
        if day == 1:
            chat.say("u2", "打卡")
        if day < 2:
            chat.advance(days=1)
    conn = chat.db.connect()
    with conn:
        sc = mx.scope(conn, "test")
        end = date(2026, 11, 4)
        stats = mx.checkin_stats(conn, sc, MON1, end, mx.member_counter(conn, sc, end))
    assert stats.checkin_days == 4 and stats.member_days == 6
    assert stats.rate == pytest.approx(4 / 6)
    assert stats.longest == {"1": 1, "2-6": 1, "7-13": 0, "14-29": 0, "30+": 0}
    # u1's streak reaches the last day; u2's ended the day before it
    assert stats.current == {"1": 1, "2-6": 1, "7-13": 0, "14-29": 0, "30+": 0}


def test_size_buckets_from_group_activity() -> None:
    groups = [
        mx.GroupActivity(1, "a", None, 40, 20, 280, 28),
        mx.GroupActivity(2, "b", None, 41, 10, 0, 28),
        mx.GroupActivity(3, "c", None, 300, 30, 840, 28),
        mx.GroupActivity(4, "d", None, 301, 3, 0, 28),
        mx.GroupActivity(5, "e", None, 0, 0, 0, 28),  # empty: in no bucket
    ]
    buckets = {b.label: b for b in mx.size_buckets(groups)}
    assert [b.groups for b in buckets.values()] == [1, 1, 1, 1]
    assert buckets["≤40"].active_ratio == pytest.approx(0.5)
    assert buckets["≤40"].per_capita == pytest.approx(280 / 40 / 28)
    assert buckets["101-300"].per_capita == pytest.approx(0.1)


def test_periods_and_keys() -> None:
    assert mx.periods(date(2026, 11, 4), date(2026, 11, 17), "week") == [
        date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)
    ]
    assert mx.periods(date(2026, 12, 30), date(2027, 2, 1), "month") == [
        date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)
    ]
    assert mx.period_end(date(2028, 2, 1), "month") == date(2028, 2, 29)
    assert mx._key_to_start(mx.day_number(date(2026, 11, 4)) // 7, "week") == date(2026, 11, 2)
