"""Member value: decay, levels that only drop at period boundaries, archetypes.

Pure functions on fake dates, then the whole thing read from a real chat's
database (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from qunyun.analytics import value as V
from qunyun.testing import Chat


def test_daily_points_weigh_and_cap() -> None:
    assert V.daily_points({"messages": 3, "replies": 1, "links": 1, "checkins": 1}) == 6.0
    assert V.daily_points({"reactions_received": 4, "mentions_received": 2, "reactions_given": 5}) == 4.0
    assert V.daily_points({"messages": 500}) == V.DAILY_CAP
    assert V.daily_points({}) == 0.0
    assert V.daily_points({"messages": -3}) == 0.0


def test_the_score_halves_every_fourteen_days() -> None:
    d0 = date(2026, 11, 2)
    s = V.scores_by_day({d0: 10.0}, d0, d0 + timedelta(days=28))
    assert s[d0] == pytest.approx(10.0)
    assert s[d0 + timedelta(days=14)] == pytest.approx(5.0)
    assert s[d0 + timedelta(days=28)] == pytest.approx(2.5)
    # points on two days add up, each decaying from its own day
    two = V.scores_by_day({d0: 10.0, d0 + timedelta(days=14): 10.0}, d0 + timedelta(days=14), d0 + timedelta(days=14))
    assert two == {d0 + timedelta(days=14): pytest.approx(15.0)}
    # points after the end are ignored; before the start they count
    assert V.scores_by_day({d0 + timedelta(days=5): 9.0}, d0, d0 + timedelta(days=1)) == {
        d0: 0.0,
        d0 + timedelta(days=1): 0.0,
    }
    assert V.scores_by_day({}, d0, d0 - timedelta(days=1)) == {}


def test_levels_by_score() -> None:
    assert [V.level_of(s) for s in (0, 2.9, 3, 19.9, 20, 99.9, 100, 1e6)] == [
        "dormant", "dormant", "casual", "casual", "active", "active", "core", "core",
    ]


def test_a_level_only_falls_at_the_month_boundary() -> None:
    burst = {date(2026, 11, 10): 30.0}
    # Nov 10: 30 → active the same day
    assert V.held_level(burst, date(2026, 11, 10)) == (pytest.approx(30.0), "active")
    # Nov 30: the score has decayed to 30·2^(-20/14) ≈ 11.2 (casual) but the level holds
    score, level = V.held_level(burst, date(2026, 11, 30))
    assert score == pytest.approx(30 * 2 ** (-20 / 14))
    assert score < 20 and level == "active"
    # Dec 1 is a boundary: the level drops to what the score says
    assert V.held_level(burst, date(2026, 12, 1))[1] == "casual"
    # and it may rise again at once mid-month
    again = burst | {date(2026, 12, 9): 100.0}
    assert V.held_level(again, date(2026, 12, 8))[1] == "casual"
    assert V.held_level(again, date(2026, 12, 9))[1] == "core"


def test_weekly_periods() -> None:
    burst = {date(2026, 11, 3): 25.0}  # a Tuesday
    assert V.period_start(date(2026, 11, 8), "week") == date(2026, 11, 2)
    assert V.period_start(date(2026, 11, 8), "month") == date(2026, 11, 1)
    # Sunday Nov 8: score 25·2^(-5/14) ≈ 19.5, level held from Tuesday
    assert V.held_level(burst, date(2026, 11, 8), "week")[1] == "active"
    # Monday Nov 9 starts a new week: the level falls
    assert V.held_level(burst, date(2026, 11, 9), "week")[1] == "casual"
    # with monthly periods it would still hold
    assert V.held_level(burst, date(2026, 11, 9), "month")[1] == "active"
    with pytest.raises(ValueError, match="unknown period"):
        V.period_start(date(2026, 11, 9), "fortnight")  # type: ignore[arg-type]


def test_archetype_rules_in_order() -> None:
    cut = 30.0
    B = V.Behaviour
    assert V.archetype(B(messages=0, role="owner"), cut) == "admin"
    assert V.archetype(B(messages=2, attention=99), cut) == "lurker"
    assert V.archetype(B(messages=20, attention=30), cut) == "big_name"
    assert V.archetype(B(messages=40, attention=30), cut) == "member"  # less attention than messages
    assert V.archetype(B(messages=20, attention=25), cut) == "member"  # below the community's top 5%
    assert V.archetype(B(messages=10, attention=10), 5.0) == "member"  # top 5% but under 20 attention
    assert V.archetype(B(messages=10, answers=3, questions=2), cut) == "answerer"
    assert V.archetype(B(messages=10, answers=3, questions=3), cut) == "member"
    assert V.archetype(B(messages=10, links_media=3), cut) == "sharer"
    assert V.archetype(B(messages=20, links_media=3), cut) == "member"  # 15% of messages
    assert V.archetype(B(messages=10, questions=2), cut) == "asker"
    assert V.archetype(B(messages=10, questions=2, answers=2), cut) == "member"
    assert V.archetype(B(messages=10, answers=5, links_media=9, questions=1), cut) == "answerer"


def test_big_name_cut_is_the_top_five_percent() -> None:
    assert V.big_name_cut([0, 0, 0]) == float("inf")
    assert V.big_name_cut([50, 10, 5, 0]) == 50.0  # 5% of 4 → 1 member
    assert V.big_name_cut(list(range(40))) == 38.0  # 5% of 40 → 2 members: 39, 38


def test_every_archetype_and_level_has_both_languages() -> None:
    assert set(V.ARCHETYPES) == {"admin", "big_name", "answerer", "sharer", "asker", "lurker", "member"}
    for entry in V.ARCHETYPES.values():
        assert set(entry["label"]) == set(entry["gets"]) == {"zh-CN", "en"}
    assert set(V.LEVEL_LABELS) == {name for name, _ in V.LEVELS}


# ------------------------------------------------------------------ database


def test_member_values_from_the_database(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({}, roles={"owner": ["boss"]})
    for u in ("boss", "star", "sharer", "asker", "helper", "quiet", "fan1", "fan2", "fan3"):
        chat.join(u, f"name-{u}")
    chat.say("boss", "欢迎大家")
    hits = [chat.say("star", f"今天的心得 {i}") for i in range(4)]
    for fan in ("fan1", "fan2", "fan3"):
        for h in hits:
            chat.react(fan, h)
            chat.react(fan, h, "❤️")
    for i in range(3):
        chat.say(f"fan{i + 1}", "@star 说得好", mentions=["star"])
    for i in range(4):
        chat.say("sharer", f"推荐一篇文章 https://example.org/{i}")
    asked = [chat.say("asker", q) for q in ("请问怎么打卡？", "资料在哪里？", "几点上课？")]
    chat.advance(minutes=3)
    for q in asked:
        chat.say("helper", "看群公告就有", reply_to=q)
    chat.say("quiet", "嗯")
    as_of = date(2026, 11, 2)
    with chat.db.connect() as conn:
        values = {v.name: v for v in V.member_values(conn, "test", as_of)}
        later = {v.name: v for v in V.member_values(conn, "test", date(2026, 11, 30))}
        december = {v.name: v for v in V.member_values(conn, "test", date(2026, 12, 1))}
    kinds = {name.removeprefix("name-"): v.archetype for name, v in values.items()}
    assert kinds["boss"] == "admin"
    assert kinds["star"] == "big_name"  # 24 reactions + 3 mentions on 4 messages
    assert kinds["sharer"] == "sharer"
    assert kinds["asker"] == "asker"
    assert kinds["helper"] == "answerer"
    assert kinds["quiet"] == "lurker"
    # star: 4 messages + 12 reactions·0.5·2 + 3 mentions·0.5 = 17.5 points → casual today
    star = values["name-star"]
    assert star.score == pytest.approx(17.5)
    assert star.level == "casual"
    # sharer: 4 messages + 4 links = 8
    assert values["name-sharer"].score == pytest.approx(8.0)
    # fans only reacted and mentioned: reactions given count a little
    assert values["name-fan1"].score == pytest.approx(1 + 8 * 0.2)
    ordered = [v.score for v in values.values()]
    assert ordered == sorted(ordered, reverse=True)
    assert len(values) == 9
    # Nov 30: decayed but the level held since Nov 2; Dec 1: re-judged
    assert later["name-star"].score == pytest.approx(17.5 * 2 ** (-28 / 14), abs=0.01)  # rounded to 2 places
    assert later["name-star"].level == "casual"
    assert december["name-star"].level == "casual"
    assert december["name-sharer"].level == "dormant"  # 8·2^(-29/14) ≈ 1.9 < 3
    assert later["name-sharer"].level == "casual"  # held through November
    # archetypes look at the last 28 days only: by December everyone is a lurker (bar the owner)
    assert {v.archetype for n, v in december.items() if n != "name-boss"} == {"lurker"}
    assert december["name-boss"].archetype == "admin"


def _rollup_rows(
    chat: Chat, histories: dict[str, list[tuple[date, float]]]
) -> dict[str, dict[date, float]]:
    """Write ``(day, points)`` histories straight into the rollups, half-points as reactions received.

    A day over the daily cap gets a flooded row in one group (capped in SQL) and
    a second row in another group (the cap is per rollup row: one per member,
    group and day). Returns the points per member and day the rows are worth.
    """
    from sqlalchemy import text

    with chat.db.begin() as conn:
        gid = conn.execute(text("SELECT min(id) FROM groups")).scalar_one()
        other = conn.execute(text("SELECT max(id) FROM groups")).scalar_one()
        mids = dict(conn.execute(text("SELECT user_id, id FROM members")).all())
        conn.execute(text("DELETE FROM rollups"))
        rows = []
        worth: dict[str, dict[date, float]] = {}
        for uid, days in histories.items():
            for d, pts in days:
                # over the cap: the whole flood in one group (capped there), the excess again in another
                parts = [(gid, pts)] if pts <= V.DAILY_CAP else [(gid, pts), (other, pts - V.DAILY_CAP)]
                for g, p in parts:
                    whole = int(p)
                    rows.append({"g": g, "m": mids[uid], "d": d, "msgs": whole, "rr": round((p - whole) * 2)})
                    worth.setdefault(uid, {})[d] = worth.get(uid, {}).get(d, 0.0) + V.daily_points(
                        {"messages": whole, "reactions_received": round((p - whole) * 2)}
                    )
        if rows:
            conn.execute(
                text(
                    "INSERT INTO rollups (group_id, member_id, day, community_id, messages, characters, media, links, "
                    "replies, mentions_sent, mentions_received, reactions_given, reactions_received, joins, leaves, "
                    "checkins, points) VALUES (:g, :m, :d, 'test', :msgs, 0, 0, 0, 0, 0, 0, 0, :rr, 0, 0, 0, 0)"
                ),
                rows,
            )
    return worth


def test_the_fast_held_level_equals_the_day_by_day_walk(make_chat: Callable[..., Chat]) -> None:
    """``member_values`` (weighted sums and a running sum in SQL) agrees with :func:`held_level`.

    Random histories over the 120-day window, read on several days, monthly and
    weekly periods, on both databases. A level may differ only at an exact tie
    (the walk's peak within rounding of a threshold): the fast path then
    counts the threshold as reached.
    """
    import random

    chat = make_chat({}, groups=["g1", "g2"], group="g1")
    users = [f"u{i}" for i in range(24)]
    for u in users:
        chat.join(u)
    rng = random.Random(5)
    thresholds = [low for _, low in V.LEVELS if low > 0]
    rank = {name: i for i, (name, _) in enumerate(V.LEVELS)}
    checked = ties = 0
    for _ in range(10):
        as_of = date(2026, 3, 1) + timedelta(days=rng.randint(0, 60))
        histories: dict[str, list[tuple[date, float]]] = {}
        for u in users:
            days = {
                as_of - timedelta(days=rng.randint(0, 130)): rng.choice([0.0, 0.5, 1.0, 2.0, 3.0, 12.0, 20.0, 30.0, 45.0])
                for _ in range(rng.choice([0, 1, 2, 5, 25]))
            }
            # a few exact ties: 2 points, then 2 more fourteen days later, score exactly 3
            if rng.random() < 0.2:
                days[as_of - timedelta(days=20)] = 2.0
                days[as_of - timedelta(days=6)] = 2.0
            if days:
                histories[u] = sorted(days.items())
        worth = _rollup_rows(chat, histories)
        for period in ("month", "week"):
            with chat.db.connect() as conn:
                got = {v.name: v for v in V.member_values(conn, "test", as_of, period=period)}
            first = as_of - timedelta(days=V.LOOKBACK_DAYS)
            want_members = {u for u, days in histories.items() if any(first <= d <= as_of for d, _ in days)}
            assert set(got) == want_members
            for u in want_members:
                # the walk sees what member_values reads: the lookback window, capped per rollup row
                pts = {d: p for d, p in worth[u].items() if first <= d <= as_of}
                score, level = V.held_level(pts, as_of, period)
                assert got[u].score == round(score, 2) or abs(got[u].score - score) <= 0.005 + 1e-9
                checked += 1
                if got[u].level != level:
                    daily = V.scores_by_day(pts, V.period_start(as_of, period), as_of)
                    peak = max(daily.values())
                    assert any(0 < t - peak < V.TIE for t in thresholds), (u, as_of, period, peak, got[u], level)
                    assert rank[got[u].level] == rank[level] - 1
                    ties += 1
    assert checked > 300
    assert ties < checked / 20, (ties, checked)
