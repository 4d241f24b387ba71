"""flash: intro, countdown, farewell and the end, on the community's local dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from qunyun.config.model import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.playbooks.flash import add_months
from qunyun.testing import Chat
from qunyun.testing.harness import community_config

Make = Callable[..., Chat]
# The harness starts 2026-11-02 09:00 UTC = 17:00 Asia/Shanghai = 04:00 New York.


def _ts(action: dict[str, Any]) -> datetime:
    ts = action["ts"]
    return (ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)).astimezone(UTC)


def _timeline(chat: Chat) -> list[tuple[str, str, str]]:
    """(UTC time, action type, first words) of everything flash did."""
    return [
        (_ts(a).strftime("%m-%d %H:%M"), a["type"], a.get("text", "")[:6])
        for a in chat.actions
        if a["playbook"] == "flash"
    ]


def test_a_flash_group_counts_down_says_farewell_and_dissolves_on_local_dates(make_chat: Make) -> None:
    chat = make_chat({"flash": {"ends_on": "2026-11-12", "notice_time": "09:00"}})
    chat.advance(days=15)
    # 09:00 in Shanghai is 01:00 UTC
    assert _timeline(chat) == [
        ("11-02 09:00", "send", "⚡ 欢迎来到"),  # the intro, at once: the group starts today
        ("11-05 01:00", "send", "⏳「g-ma"),  # 7 days before
        ("11-09 01:00", "send", "⏳「g-ma"),  # 3 days before
        ("11-11 01:00", "send", "⏳「g-ma"),  # 1 day before…
        ("11-11 01:00", "send", "🌅「g-ma"),  # …and the farewell
        ("11-12 01:00", "send", "👋「g-ma"),
        ("11-12 01:00", "dissolve_group", ""),
    ]
    texts = [a.get("text", "") for a in chat.actions]
    assert "还有 7 天结束（2026-11-12）" in texts[1]
    assert "城市 / 昵称 / 能提供的资源" in texts[0]
    assert chat.state("flash", "g:sim:g-main")["ended"] is True
    chat.advance(days=10)
    assert len(_timeline(chat)) == 7  # nothing after the end


def test_the_local_day_decides_not_the_utc_day(make_chat: Make) -> None:
    chat = make_chat(
        {"flash": {"ends_on": "2026-11-05", "countdown_days": [1], "notice_time": "23:30", "intro": False}},
        timezone="America/New_York",
        locale="en",
    )
    chat.advance(days=5)
    # 23:30 on 2026-11-04 in New York (EST) is 04:30 on 11-05 in UTC
    assert _timeline(chat) == [
        ("11-05 04:30", "send", "⏳ 1 da"),
        ("11-05 04:30", "send", "🌅 g-ma"),
        ("11-06 04:30", "send", "👋 g-ma"),
        ("11-06 04:30", "dissolve_group", ""),
    ]


def test_lasts_days_from_the_first_setup_and_archive_mode(make_chat: Make) -> None:
    chat = make_chat({"flash": {"lasts_days": 3, "mode": "archive", "countdown_days": [2]}})
    chat.advance(days=5)
    kinds = [(t, k) for t, k, _ in _timeline(chat)]
    assert kinds == [
        ("11-02 09:00", "send"),  # intro
        ("11-03 02:00", "send"),  # 2 days before 11-05 (10:00 Shanghai)
        ("11-04 02:00", "send"),  # farewell
        ("11-05 02:00", "send"),  # archive notice
        ("11-05 02:00", "notify_admins"),
    ]
    assert "dissolve_group" not in [a["type"] for a in chat.actions]
    assert "2026-11-05" in chat.actions[-1]["text"]


def test_a_group_without_an_end_hears_nothing(make_chat: Make) -> None:
    chat = make_chat({"flash": {}})
    chat.say("u1", "倒计时")
    chat.advance(days=30)
    chat.say("u1", "countdown")
    assert _timeline(chat) == []
    assert chat.scalar("SELECT count(*) FROM jobs WHERE playbook = 'flash'") == 0


def test_a_future_start_gets_its_intro_on_the_start_day(make_chat: Make) -> None:
    chat = make_chat({"flash": {"starts_on": "2026-11-04", "lasts_days": 10, "countdown_days": []}})
    chat.advance(days=1)
    assert _timeline(chat) == []
    chat.advance(days=1)  # 2026-11-04 10:00 Shanghai
    assert _timeline(chat) == [("11-04 02:00", "send", "⚡ 欢迎来到")]
    assert "2026-11-14" in chat.actions[0]["text"]


def test_countdown_on_request(make_chat: Make) -> None:
    chat = make_chat({"flash": {"ends_on": "2026-11-12", "intro": False}}, locale="en")
    msg = chat.say("u1", "Countdown")
    [reply] = chat.assert_sent(playbook="flash")
    assert reply["text"] == "10 days left in g-main (ends on 2026-11-12)." and reply["reply_to"] == msg
    chat.say("u1", "countdown please")
    chat.assert_nothing_sent()


def test_the_3_6_9_plan(make_chat: Make) -> None:
    chat = make_chat({"flash": {"plan": "3-6-9", "countdown_days": [7], "mode": "archive"}})
    chat.advance(days=300)
    steps = [(a["type"], _ts(a).date().isoformat()) for a in chat.actions]
    assert steps == [
        ("notify_admins", "2027-02-02"),  # review at 3 months (no intro under a plan)
        ("notify_admins", "2027-05-02"),  # review at 6 months…
        ("send", "2027-05-02"),  # …and the members are told the end date
        ("send", "2027-07-26"),  # countdown, 7 days before
        ("send", "2027-08-01"),  # farewell
        ("send", "2027-08-02"),  # the end at 9 months: archive notice
        ("notify_admins", "2027-08-02"),
    ]
    assert "2027-08-02" in chat.actions[0]["text"]


def test_add_months_clamps_to_the_month_end() -> None:
    from datetime import date

    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 5, 31), 9) == date(2027, 2, 28)
    assert add_months(date(2026, 1, 15), 12) == date(2027, 1, 15)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"ends_on": "2026-12-01", "lasts_days": 3}, "either ends_on or lasts_days"),
        ({"plan": "3-6-9", "lasts_days": 3}, "sets the end itself"),
        ({"notice_time": "25:00"}, "HH:MM"),
        ({"countdown_days": [0]}, "between 1 and 366"),
        ({"starts_on": "2026-12-01", "ends_on": "2026-11-01"}, "before starts_on"),
        ({"plan": "1-2-3"}, "plan"),
    ],
)
def test_bad_settings_fail_at_load_time(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_text(community_config({"flash": bad}))
    assert needle in str(err.value), str(err.value)
