"""structure: roles and activity tiers from the rollups; a drift warning, and none within the threshold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")
ROLES = {"owner": ["own"], "admin": ["adm"], "assistant": ["ast"], "guest": ["kol"]}
# small thresholds so a test can make people active: 10+ → big, 3+ → mid
CFG = {"big_at": 10, "mid_at": 3, "min_members": 10, "score_weights": {"messages": 1}, "interaction_accounts": ["alt"]}
MONDAY_CHECK = datetime(2026, 11, 9, 10, 0, tzinfo=SH).astimezone(UTC)


def _community(chat: Chat, *, big: int, mid: int, ordinary: int) -> None:
    """That many members of each tier join and talk today; the staff join too."""
    n = 0
    for tier, count, says in (("b", big, 10), ("m", mid, 3), ("o", ordinary, 1)):
        for i in range(count):
            uid = f"{tier}{i}"
            chat.join(uid)
            for _ in range(says if tier != "o" or i % 2 else 0):  # half the ordinary stay silent
                chat.say(uid, f"消息 {n}")
                n += 1
    for staff in ("own", "adm", "ast", "alt"):
        chat.join(staff)
        for _ in range(20):
            chat.say(staff, "管理员发言")


def test_a_drifted_mix_warns_the_admins(make_chat: Make) -> None:
    chat = make_chat({"structure": CFG}, roles=ROLES)
    _community(chat, big=3, mid=2, ordinary=5)  # 30 % big, 20 % mid, 50 % ordinary
    chat.take()
    chat.advance_to(MONDAY_CHECK)
    [warning] = chat.assert_sent(type="notify_admins", playbook="structure")
    assert "偏离目标超过 10 个百分点：大咖 30.0%（目标 5%）、普通 50.0%（目标 75%）" in warning["text"]
    assert "运营团队：群主 1，管理员 1，助理 1，小号 1" in warning["text"]
    [check] = chat.records("structure", "check")
    assert check["data"]["tiers"] == {"big": 3, "mid": 2, "ordinary": 5}
    assert check["data"]["drifted"] == ["big", "ordinary"]


def test_no_warning_within_the_threshold(make_chat: Make) -> None:
    chat = make_chat({"structure": CFG}, roles=ROLES)
    chat.join("kol")  # a guest counts as a big name, whatever they say
    _community(chat, big=0, mid=4, ordinary=15)  # 1/20 big, 4/20 mid, 15/20 ordinary: on target
    chat.take()
    chat.advance_to(MONDAY_CHECK)
    chat.assert_nothing_sent()
    mix = chat.command("structure", "mix")
    assert mix["tiers"] == {"big": 1, "mid": 4, "ordinary": 15}
    assert mix["shares"] == {"big": 5.0, "mid": 20.0, "ordinary": 75.0}
    assert mix["roles"]["guest"] == 1 and mix["roles"]["member"] == 19 and mix["drifted"] == []


def test_just_past_the_threshold_warns_and_just_within_does_not(make_chat: Make) -> None:
    # 10 in the mix, threshold 15: ordinary at 60 % is exactly 15 points off (no warning) ...
    chat = make_chat({"structure": {**CFG, "threshold": 15}}, roles=ROLES)
    _community(chat, big=1, mid=3, ordinary=6)  # 10 / 30 / 60
    chat.advance_to(MONDAY_CHECK)
    assert chat.sent(type="notify_admins") == []
    # ... and a week later, with one more mid member, 10/36.4/54.5: mid and ordinary drift
    chat.take()
    chat.join("m9")
    for _ in range(3):
        chat.say("m9", "来了")
    chat.advance(days=7)
    [warning] = chat.assert_sent(type="notify_admins")
    assert "中坚 36.4%（目标 20%）" in warning["text"]


def test_too_few_members_stay_quiet_and_old_activity_falls_out(make_chat: Make) -> None:
    chat = make_chat({"structure": CFG}, roles=ROLES)
    _community(chat, big=3, mid=0, ordinary=2)  # 60 % big, but only 5 people
    chat.advance_to(MONDAY_CHECK)
    assert chat.sent(type="notify_admins") == []
    assert chat.command("structure", "mix")["tiers"]["big"] == 3
    chat.advance(days=31)  # the talk is older than the window now
    assert chat.command("structure", "mix")["tiers"] == {"big": 0, "mid": 0, "ordinary": 5}


def test_mix_keyword_for_admins_only(make_chat: Make) -> None:
    chat = make_chat({"structure": CFG}, roles=ROLES, locale="en")
    _community(chat, big=1, mid=1, ordinary=2)
    chat.advance(days=1)
    chat.take()
    chat.say("o1", "member mix")
    chat.assert_nothing_sent()
    chat.say("adm", "member mix")
    [reply] = chat.assert_sent(playbook="structure")
    assert "big 1 (25.0%), mid 1 (25.0%), ordinary 2 (50.0%); target 5/20/75" in reply["text"]


def test_members_who_left_are_not_counted(make_chat: Make) -> None:
    chat = make_chat({"structure": CFG})
    chat.join("u1")
    chat.join("u2")
    chat.leave("u2")
    chat.advance(days=1)
    assert chat.command("structure", "mix")["population"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"target": {"big": 10, "mid": 20, "ordinary": 75}},
        {"target": {"big": 5, "mid": 95}},
        {"score_weights": {"likes": 1}},
        {"score_weights": {"messages": 0}},
        {"big_at": 5, "mid_at": 5},
        {"check": "weekly"},
    ],
)
def test_bad_settings_fail_at_load_time(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Chat({"structure": bad}).close()
