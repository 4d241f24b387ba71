"""Group lifecycle: states, survival and the early warning, on hand-computed fixtures.

The database tests run on SQLite and PostgreSQL (``make_chat``). The chat's
clock starts on Monday 2026-11-02 at 17:00 Asia/Shanghai, which is local
day 0 of every group here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from qunyun.analytics import lifecycle as L
from qunyun.testing import Chat

DAY0 = date(2026, 11, 2)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


# ------------------------------------------------------------------- states


def four_lives(make_chat: Callable[..., Chat]) -> Chat:
    """Four groups born on day 0, each scripted to end day 35 in one state.

    * g-alive: u1 and u2 speak every 3rd day all along;
    * g-declining: four people speak every week from day 0 to day 28, then
      only one of them in days 29-35 (1 speaker vs 4 a week before: < 50%);
    * g-silent: talks until day 26, then nothing (9 quiet days on day 35);
    * g-dead: talks on day 0 only (35 quiet days).
    """
    chat = make_chat({}, groups=["g-alive", "g-declining", "g-silent", "g-dead"])
    for g in ("g-alive", "g-declining", "g-silent", "g-dead"):
        for u in ("u1", "u2", "u3", "u4"):
            chat.join(u, group=g)
    for d in range(36):
        if d % 3 == 0:
            chat.say("u1", "早上好", group="g-alive")
            chat.say("u2", "早", group="g-alive")
        if d <= 28 and d % 7 in (1, 2):
            for u in ("u1", "u2", "u3", "u4"):
                chat.say(u, "本周打卡", group="g-declining")
        if d in (30, 33):
            chat.say("u1", "还有人吗", group="g-declining")
        if d <= 26 and d % 2 == 0:
            chat.say("u3", "今天读完一章", group="g-silent")
        if d == 0:
            chat.say("u4", "大家好", group="g-dead")
        chat.advance(days=1)
    return chat


def test_each_state_is_reached_then_and_earlier_and_the_survival_curve(make_chat: Callable[..., Chat]) -> None:
    chat = four_lives(make_chat)
    with chat.db.connect() as conn:
        states = {g.group_key: g for g in L.group_states(conn, "test", day(35))}
    assert {k: v.state for k, v in states.items()} == {
        "g-alive": "alive",
        "g-declining": "declining",
        "g-silent": "silent",
        "g-dead": "dead",
    }
    assert states["g-alive"].last_active == day(33)
    assert states["g-declining"].last_active == day(33)
    assert states["g-silent"].last_active == day(26)
    assert states["g-dead"].last_active == day(0)
    assert all(g.age_days == 35 for g in states.values())
    assert all(g.members == 4 for g in states.values())
    assert states["g-alive"].name == "g-alive"

    # the same groups earlier in their lives
    with chat.db.connect() as conn:
        on = {
            n: {g.group_key: g.state for g in L.group_states(conn, "test", day(n))}
            for n in (6, 7, 29, 30)
        }
        before = L.group_states(conn, "test", day(-1))
        curve = L.survival_curve(conn, "test", day(35))
    # day 0 was g-dead's only message: 6 quiet days is still alive, 7 is silent, 30 dead
    assert [on[n]["g-dead"] for n in (6, 7, 29, 30)] == ["alive", "silent", "silent", "dead"]
    # day 29: the week 23-29 still holds day 23's four speakers; day 30: the week
    # 24-30 has u1 alone against four a week in each of the three weeks before
    assert on[29]["g-declining"] == "alive"
    assert on[30]["g-declining"] == "declining"
    assert before == []  # no group is born yet

    # survival: g-dead is not alive at 7 (only day 0); the other three are, and still at 30
    assert curve.n == 4
    assert curve.at7 == pytest.approx(0.75)
    assert curve.at30 == pytest.approx(0.75)
    assert curve.ages == list(range(36))


def test_a_group_everyone_left_is_dead(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({}, groups=["g-gone"])
    chat.join("u1", group="g-gone")
    chat.join("u2", group="g-gone")
    chat.say("u1", "hello", group="g-gone")
    chat.advance(days=2)
    chat.leave("u1", group="g-gone")
    chat.leave("u2", group="g-gone")
    with chat.db.connect() as conn:
        (g,) = L.group_states(conn, "test", day(2))
        (g1,) = L.group_states(conn, "test", day(1))
    assert (g.state, g.members) == ("dead", 0)
    assert (g1.state, g1.members) == ("alive", 2)


def test_classify_rules_by_hand() -> None:
    born = day(0)
    everyday = {day(i): {"a", "b", "c", "d"} for i in range(21)}
    # three full weeks of 4 speakers, then a week of 1: declining; of 2: alive (2 = 50%, not below)
    one = dict(everyday) | {day(i): {"a"} for i in range(21, 28)}
    two = dict(everyday) | {day(i): {"a", "b"} for i in range(21, 28)}
    assert L.classify(day(27), born, one.keys(), one, 4)[0] == "declining"
    assert L.classify(day(27), born, two.keys(), two, 4)[0] == "alive"
    # a group younger than two weeks compares with the weeks it has
    young = {day(i): {"a", "b", "c"} for i in range(7)} | {day(10): {"a"}}
    assert L.classify(day(13), born, young.keys(), young, 3)[0] == "declining"
    assert L.classify(day(6), born, young.keys(), young, 3)[0] == "alive"
    # never a message: alive for 6 days, then silent, then dead
    assert L.classify(day(6), born, [], {}, 3) == ("alive", None)
    assert L.classify(day(7), born, [], {}, 3) == ("silent", None)
    assert L.classify(day(30), born, [], {}, 3) == ("dead", None)
    # later active days are ignored
    assert L.classify(day(8), born, [day(0), day(20)], {}, 3) == ("silent", day(0))


# ----------------------------------------------------------------- survival


def test_survival_of_ten_groups_of_known_lifetimes() -> None:
    # group i talks every day of its first L_i days, then never again;
    # by the rule it is alive at age a while a <= L_i + 5.
    lifetimes = [1, 2, 3, 5, 8, 10, 15, 20, 30, 40]
    lives = [(DAY0, {day(i) for i in range(n)}) for n in lifetimes]
    s = L.survival(lives, day(60), max_age=60)
    assert s.n == 10
    assert s.ages == list(range(61))
    assert s.at7 == pytest.approx(0.9)  # all but L=1 (alive until age 6)
    assert s.at30 == pytest.approx(0.2)  # L=30 (until 35) and L=40 (until 45)
    assert s.alive[0] == 1.0
    assert s.alive[6] == 1.0
    assert s.alive[46] == 0.0
    assert all(a >= b for a, b in zip(s.alive, s.alive[1:], strict=False))


def test_survival_counts_only_groups_old_enough() -> None:
    old = (DAY0, {day(i) for i in range(40)})  # alive throughout
    dead = (DAY0, {day(0)})  # silent from age 7
    baby = (day(50), {day(50)})  # 5 days old on day 55: only in ages 0-5
    s = L.survival([old, dead, baby], day(55), max_age=90)
    assert s.n == 3
    assert s.ages[-1] == 55
    assert s.alive[3] == pytest.approx(1.0)
    assert s.at7 == pytest.approx(0.5)
    assert s.at30 == pytest.approx(0.5)
    assert L.survival([], day(5)) == L.Survival([], [], None, None, 0)
    young = L.survival([baby], day(55))
    assert (young.at7, young.at30) == (None, None)


def test_base_rates_are_the_spec_numbers() -> None:
    assert (L.BASE_SILENT_WITHIN_WEEK, L.BASE_ALIVE_AFTER_MONTH) == (0.40, 0.30)


# ------------------------------------------------------------ early warning


def test_first_week_features_by_hand(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({}, groups=["g-new"])
    g = {"group": "g-new"}
    chat.join("u0", **g)
    chat.join("u1", inviter="u0", via="invite", **g)
    chat.join("u2", inviter="u0", via="invite", **g)
    for _ in range(5):
        chat.say("u0", "欢迎大家", **g)
    for _ in range(3):
        chat.say("u1", "谢谢群主", **g)
    chat.advance(days=4)
    chat.join("u3", inviter="u1", via="invite", **g)  # owner → u1 → u3: depth 2
    chat.say("u3", "我是被拉进来的", **g)
    chat.say("u3", "请多关照", **g)
    chat.advance(days=1)
    chat.join("u4", **g)
    chat.advance(days=1)
    chat.leave("u2", **g)
    chat.advance(days=1)
    chat.say("u1", "第八天的话不算", **g)  # day 7 is outside the first week
    with chat.db.connect() as conn:
        (risk,) = L.young_group_risks(conn, "test", day(7))
    f = risk.features
    assert f.size == 4  # u0 u1 u3 u4 (u2 left on day 6)
    assert f.growth == pytest.approx((4 - 3) / 3)  # 3 on day 2
    assert f.active_ratio == pytest.approx(3 / 4)
    assert f.concentration == pytest.approx(5 / 10)  # top 10% of 3 speakers = 1 speaker
    assert f.cascade_depth == 2
    assert f.messages == 10
    assert risk.age_days == 7


def test_early_warning_flags_the_group_that_looks_like_the_dead(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat({}, groups=["g-quiet", "g-lively", "g-empty"])
    for i in range(10):
        chat.join(f"u{i}", group="g-quiet")
        chat.join(f"u{i}", group="g-lively")
    chat.say("u0", "欢迎，有事说话", group="g-quiet")
    for d in range(7):
        for i in range(8):
            chat.say(f"u{i}", f"第{d}天", group="g-lively")
        chat.advance(days=1)
    with chat.db.connect() as conn:
        risks = {r.group_key: r for r in L.young_group_risks(conn, "test", day(7))}
        warnings = L.early_warning(conn, "test", day(7))
        too_young = L.early_warning(conn, "test", day(6))
        too_old = L.early_warning(conn, "test", day(7 + L.YOUNG_MAX_AGE + 1))
    assert set(risks) == {"g-quiet", "g-lively"}  # g-empty never had an event: no first week
    assert [w.group_key for w in warnings] == ["g-quiet"]
    (w,) = warnings
    assert w.score >= L.WARN_AT > risks["g-lively"].score
    assert "low_active_ratio" in w.reasons
    assert all(code in L.REASONS for code in w.reasons)
    assert all(set(text) == {"zh-CN", "en"} for text in L.REASONS.values())
    assert too_young == [] and too_old == []
    with chat.db.connect() as conn:
        states = {g.group_key: g for g in L.group_states(conn, "test", day(7))}
        curve = L.survival_curve(conn, "test", day(7))
    # a configured group without any event ages from its set-up day and is silent by now
    assert (states["g-empty"].state, states["g-empty"].last_active, states["g-empty"].members) == ("silent", None, 0)
    assert curve.n == 2


def test_risk_moves_the_right_way_with_each_feature() -> None:
    base = L.EarlyFeatures(size=30, growth=0.2, active_ratio=0.2, concentration=0.6, cascade_depth=1, messages=50)
    score, _ = L.risk_of(base)
    assert 0.0 < score < 1.0
    assert L.risk_of(L.EarlyFeatures(30, 0.2, 0.6, 0.6, 1, 50))[0] < score  # more speakers
    # concentration's sign is whatever the fit found (it has flipped between
    # simulator versions): the score must follow the weight, whichever it is
    one_voice = L.risk_of(L.EarlyFeatures(30, 0.2, 0.2, 0.95, 1, 50))[0]
    assert (one_voice > score) == (L.MODEL_WEIGHTS["concentration"] > 0)
    assert L.risk_of(L.EarlyFeatures(5, 0.2, 0.2, 0.6, 1, 50))[0] > score  # fewer people
    # reasons follow the sign of each weight against the reference group
    weights = dict.fromkeys(L.MODEL_WEIGHTS, 0.0) | {"active_ratio": -10.0}
    ref = dict.fromkeys(L.MODEL_WEIGHTS, 0.0) | {"active_ratio": 0.5}
    _, reasons = L.risk_of(base, intercept=0.0, weights=weights, reference=ref)
    assert reasons == ["low_active_ratio"]
    _, none = L.risk_of(L.EarlyFeatures(30, 0.2, 0.9, 0.6, 1, 50), intercept=0.0, weights=weights, reference=ref)
    assert none == []


def test_scores_are_at_even_odds_and_can_be_read_at_a_base_rate() -> None:
    # a group exactly as typical of the dead as of the living is 0.5, and at a
    # base rate it takes that base rate
    assert L.at_base_rate(0.5) == pytest.approx(1 - L.BASE_ALIVE_AFTER_MONTH)
    assert L.at_base_rate(0.5, 0.15) == pytest.approx(0.15)
    assert L.at_base_rate(0.8, 0.5) == pytest.approx(0.8)
    assert L.at_base_rate(0.8) > 0.8 > L.at_base_rate(0.8, 0.2)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="died_share"):
            L.at_base_rate(0.5, bad)
