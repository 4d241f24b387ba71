"""hours: open windows in the community's time zone, notices at boundaries, reminders and strikes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import ConfigError
from qunyun.playbooks.hours import HoursConfig, _compile, parse_days
from qunyun.testing import Chat

Make = Callable[..., Chat]
# the harness starts on Monday 2026-11-02 09:00 UTC = 17:00 in Asia/Shanghai
NEWS = {"mon-fri": ["08:30-09:00", "20:00-22:00"]}


def notices(actions: list[dict]) -> list[tuple[str, str]]:
    """(UTC time, "open" or "closed") of the hours notices among ``actions``."""
    return [
        (a["ts"][:16], "open" if a["text"].startswith("☀") else "closed")
        for a in actions
        if a["playbook"] == "hours" and not a.get("mentions")
    ]


def test_open_and_closed_notices_at_each_boundary(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": NEWS}})
    chat.advance(hours=2, minutes=59)  # 19:59 local
    chat.assert_nothing_sent()
    chat.advance(minutes=1)  # 20:00 local = 12:00 UTC
    [opened] = chat.assert_sent(playbook="hours")
    assert opened["ts"].startswith("2026-11-02T12:00") and "开放到 22:00" in opened["text"]
    chat.advance(hours=2)
    [closed] = chat.assert_sent(playbook="hours")
    assert "11-03 08:30 再开放" in closed["text"]
    chat.advance(hours=12)  # through 08:30-09:00 on Tuesday
    assert notices(chat.take()) == [("2026-11-03T00:30", "open"), ("2026-11-03T01:00", "closed")]


def test_a_reminder_once_per_closed_period(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": NEWS, "notices": False}})
    msg = chat.say("u1", "有人吗", name="小王")  # 17:00: closed
    [reminder] = chat.assert_sent("小王，现在是休息时间", playbook="hours")
    assert reminder["mentions"] == ["u1"] and reminder["reply_to"] == msg and "20:00 再开放" in reminder["text"]
    chat.say("u1", "还在吗")
    chat.say("u1", "在吗在吗")
    chat.assert_nothing_sent()  # strikes are off: one reminder is all
    chat.advance(hours=3, minutes=30)  # 20:30 open
    chat.say("u1", "终于开了")
    chat.assert_nothing_sent()
    chat.advance(hours=2)  # 22:30: a new closed period
    chat.say("u1", "晚安")
    chat.assert_sent("11-03 08:30 再开放", count=1)
    assert len(chat.records("hours", "reminder")) == 2


def test_a_window_across_midnight(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": {"daily": ["22:00-01:00"]}}})
    chat.advance(hours=5)  # 22:00
    chat.assert_sent("开放到 11-03 01:00")
    chat.advance(hours=2, minutes=30)  # 00:30, the next local day, still open
    chat.say("u1", "夜聊")
    chat.assert_nothing_sent()
    chat.advance(minutes=30)  # 01:00
    chat.assert_sent("22:00 再开放", count=1)
    chat.advance(minutes=30)
    chat.say("u1", "还有人吗")
    chat.assert_sent("现在是休息时间", count=1)


def test_touching_windows_make_one_opening(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": {"mon": ["20:00-24:00"], "tue": ["00:00-02:00"]}}})
    chat.advance(hours=12)  # to 05:00 Tuesday
    assert notices(chat.take()) == [("2026-11-02T12:00", "open"), ("2026-11-02T18:00", "closed")]


def test_strikes_then_a_mute_until_the_group_opens(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": NEWS, "strikes": True, "max_strikes": 2, "strike_action": "mute"}})
    chat.say("u1", "a")
    chat.assert_sent("休息时间", count=1)
    chat.say("u1", "b")
    chat.assert_sent("第 1/2 次提醒", count=1)
    chat.say("u1", "c")
    found = chat.assert_sent(playbook="hours")
    [mute] = [a for a in found if a["type"] == "mute"]
    assert mute["member"] == "u1" and mute["until"].startswith("2026-11-02T12:00")
    assert any("禁言到 20:00" in a.get("text", "") for a in found)
    assert [r["data"]["strikes"] for r in chat.records("hours", "strike")] == [1, 2]


def test_strikes_can_notify_the_admins_instead(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": NEWS, "remind": False, "strikes": True, "max_strikes": 1}})
    chat.say("u1", "a", name="\u202e小王")
    [alert] = chat.assert_sent(type="notify_admins", count=1)
    assert "小王（u1）" in alert["text"] and "\u202e" not in alert["text"]


def test_admins_guests_and_system_messages_are_exempt(make_chat: Make) -> None:
    chat = make_chat({"hours": {"windows": NEWS}}, roles={"admin": ["a1"], "guest": ["g1"]})
    chat.say("a1", "公告")
    chat.say("g1", "嘉宾来了")
    chat.say("u1", "入群通知", content_type="system")
    chat.assert_nothing_sent()


def test_spring_forward_in_new_york(make_chat: Make) -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT: 08:30 local is 13:30 UTC on the 7th, 12:30 UTC on the 8th
    chat = make_chat(
        {"hours": {"windows": {"daily": ["08:30-09:00", "01:00-03:00"]}}},
        timezone="America/New_York",
        start=datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
        locale="en",
    )
    chat.advance(days=2)
    assert [ts for ts, _ in notices(chat.take())] == [
        "2026-03-07T13:30", "2026-03-07T14:00",
        "2026-03-08T06:00", "2026-03-08T07:00",  # 01:00 EST to 03:00 EDT: one real hour
        "2026-03-08T12:30", "2026-03-08T13:00",
        "2026-03-09T05:00", "2026-03-09T07:00",
    ]


def test_fall_back_in_new_york(make_chat: Make) -> None:
    # 2026-11-01 02:00 EDT → 01:00 EST: a 00:30-01:30 window ends at the first 01:30
    chat = make_chat(
        {"hours": {"windows": {"daily": ["00:30-01:30", "08:30-09:00"]}}},
        timezone="America/New_York",
        start=datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
        locale="en",
    )
    chat.advance(hours=31)
    assert [ts for ts, _ in notices(chat.take())] == [
        "2026-11-01T04:30", "2026-11-01T05:30",
        "2026-11-01T13:30", "2026-11-01T14:00",  # EST now: 08:30 is 13:30 UTC
        "2026-11-02T05:30",
    ]


def test_shanghai_has_no_dst_and_the_schedule_is_pure() -> None:
    schedule = _compile(HoursConfig(windows={"daily": ["08:30-09:00"]}))
    tz = ZoneInfo("Asia/Shanghai")
    for month in (1, 3, 7, 11):
        is_open, nxt = schedule.status(tz, datetime(2026, month, 10, 0, 40, tzinfo=UTC))
        assert is_open and nxt == datetime(2026, month, 10, 1, 0, tzinfo=UTC)


def test_open_and_closed_dates(make_chat: Make) -> None:
    chat = make_chat(
        {"hours": {"windows": NEWS, "closed_dates": [date(2026, 11, 3)], "open_dates": [date(2026, 11, 7)],
                   "notices": False}}
    )
    chat.advance(hours=13)  # Tuesday 06:00, a holiday
    chat.advance(hours=3)  # 09:00 would be open on a Tuesday: the first message is reminded
    chat.say("u1", "放假了")
    chat.assert_sent("11-04 08:30 再开放")
    chat.advance_to(datetime(2026, 11, 7, 4, 0, tzinfo=UTC))  # Saturday noon, opened all day
    chat.say("u2", "周六好")
    chat.assert_nothing_sent()


def test_parse_days() -> None:
    assert parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_days("fri-mon") == (0, 4, 5, 6)
    assert parse_days("sat,sun") == parse_days("weekends") == (5, 6)
    assert parse_days("daily") == tuple(range(7))


def test_invalid_settings_are_refused() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (
        ({"windows": {"mon": ["8-9"]}}, "must look like 08:30-09:00"),
        ({"windows": {"mon": ["25:00-26:00"]}}, "impossible time"),
        ({"windows": {"mon": ["09:00-09:00"]}}, "is empty"),
        ({"windows": {"monday": ["09:00-10:00"]}}, "unknown day"),
        ({"strike_action": "remove"}, "strike_action"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"hours": bad}))
        assert needle in str(err.value), str(err.value)
