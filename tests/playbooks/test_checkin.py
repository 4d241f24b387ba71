"""checkin: once per local day, streaks, points through the ledger, reminders, boards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from qunyun.core.errors import ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
# 2026-11-02 09:00 UTC = 17:00 in Asia/Shanghai (the harness default start)


def test_a_check_in_is_confirmed_counted_and_paid(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    chat.join("u1", "小王")
    msg = chat.say("u1", "打卡 读书30页")
    [reply] = chat.assert_sent("连续 1 天", playbook="checkin")
    assert reply["mentions"] == ["u1"] and reply["reply_to"] == msg
    assert "+10 积分" in reply["text"]
    assert chat.points("u1") == 10
    assert chat.state("checkin", "m:u1")["total"] == 1
    assert chat.scalar("SELECT sum(checkins) FROM rollups") == 1
    chat.assert_ledger_balanced()


def test_once_per_local_day_with_one_friendly_reminder(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    chat.say("u1", "打卡")
    chat.take()
    chat.say("u1", "打卡 again")
    chat.assert_sent("已经打过卡", count=1)
    chat.say("u1", "打卡 third time")
    chat.assert_nothing_sent()
    assert chat.points("u1") == 10


def test_the_day_boundary_is_the_community_midnight_not_utc(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None}}, start=datetime(2026, 11, 2, 15, 50, tzinfo=UTC))
    chat.say("u1", "打卡")  # 23:50 Shanghai
    chat.advance(minutes=20)  # 00:10 next day in Shanghai, still 2026-11-02 in UTC
    chat.take()
    chat.say("u1", "打卡")
    chat.assert_sent("连续 2 天")


def test_a_missed_day_breaks_the_streak_and_best_is_kept(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None}})
    for _ in range(3):
        chat.say("u1", "打卡")
        chat.advance(days=1)
    chat.advance(days=1)  # a day missed
    chat.take()
    chat.say("u1", "打卡")
    chat.assert_sent("连续 1 天，累计 4 天")
    st = chat.state("checkin", "m:u1")
    assert st["best"] == 3 and st["streak"] == 1


def test_streak_bonus_on_multiples_of_the_milestone(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None, "streak_bonus": {3: 5}}})
    for _ in range(6):
        chat.say("u1", "打卡")
        chat.advance(days=1)
    # 6 × 10 + bonus on day 3 and day 6
    assert chat.points("u1") == 70
    chat.assert_ledger_balanced()


def test_evening_reminder_mentions_only_streaks_at_risk(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    chat.say("u1", "打卡", name="小王")
    chat.say("u2", "打卡", name="小李")
    chat.say("u3", "随便聊聊")
    chat.advance(hours=20)  # next day 13:00 Shanghai; yesterday's 21:00 reminder found nobody at risk
    chat.take()
    chat.say("u2", "打卡")  # u2 keeps the streak today
    chat.take()
    chat.advance(hours=9)  # past 21:00 Shanghai
    [reminder] = chat.assert_sent(playbook="checkin")
    assert reminder["mentions"] == ["u1"]
    assert "@小王" in reminder["text"]
    chat.advance(days=1)  # next evening: only u2 (checked in yesterday) is at risk now
    [again] = chat.assert_sent(playbook="checkin")
    assert again["mentions"] == ["u2"]
    chat.advance(days=1)  # both streaks are gone: nobody to remind, nothing said
    chat.assert_nothing_sent()


def test_reminder_can_be_switched_off(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None}})
    chat.say("u1", "打卡")
    chat.take()
    chat.advance(days=1, hours=6)
    chat.assert_nothing_sent()


def test_min_length_and_pattern(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"min_length": 4, "pattern": r"^Day \d+"}}, locale="en")
    chat.say("u1", "打卡 ok")
    chat.assert_sent("at least 4 characters")
    assert chat.points("u1") == 0
    chat.say("u2", "Day 12: ran 5 km")
    chat.assert_sent("checked in")


def test_boards(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None}})
    chat.say("u1", "打卡榜")
    chat.assert_sent("还没有人打卡")
    chat.say("u1", "打卡", name="小王")
    chat.advance(days=1)
    chat.say("u1", "打卡")
    chat.say("u2", "打卡", name="小李")
    chat.take()
    chat.say("u3", "打卡榜")
    [board] = chat.assert_sent("今日打卡 2 人")
    assert board["text"].index("小王") < board["text"].index("小李")  # longer streak first
    chat.say("u3", "打卡周榜")
    chat.assert_sent("1. 小王 · 2 天")


def test_hostile_names_do_not_reach_the_bot_text(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    chat.say("u1", "打卡", name="\u202eevil\u0007")
    [reply] = chat.assert_sent()
    assert "\u202e" not in reply["text"] and "\u0007" not in reply["text"]
    assert "evil" in reply["text"]


def test_erase_member_is_exact_and_clears_day_lists(make_chat: Make) -> None:
    chat = make_chat({"checkin": {}})
    chat.say("u1", "打卡")
    chat.say("u10", "打卡")
    failed = chat.engine.erase_member("test", "sim", "u1")
    assert failed == []
    assert chat.state("checkin", "m:u1") is None
    assert chat.state("checkin", "m:u10") is not None
    day = [v for k, v in _state(chat).items() if ":day:" in k]
    assert day == [["u10"]]


def _state(chat: Chat) -> dict[str, object]:
    import orjson

    with chat.db.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT key, value FROM playbook_state WHERE playbook = 'checkin'")).all()
    return {k: orjson.loads(v) if isinstance(v, str) else v for k, v in rows}


def test_invalid_settings_are_refused_with_the_key() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (
        ({"reminder": "0 25 * * *"}, "invalid cron"),
        ({"pattern": "(unclosed"}, "invalid regular expression"),
        ({"streak_bonus": {0: 5}}, "streak_bonus"),
        ({"pionts": 5}, "did you mean 'points'"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"checkin": bad}))
        assert needle in str(err.value), str(err.value)
        assert "playbooks.checkin" in str(err.value)
