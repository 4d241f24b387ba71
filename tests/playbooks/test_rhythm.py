"""rhythm: weekly posts and reminders at local times, the pre-arranged askers, silence without a template."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from qunyun.config import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.testing import Chat, community_config

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def when(action: dict[str, Any], tz: ZoneInfo = SH) -> str:
    return datetime.fromisoformat(action["ts"]).astimezone(tz).strftime("%a %m-%d %H:%M")


def test_the_weekly_template_posts_at_the_right_local_times(make_chat: Make) -> None:
    chat = make_chat({"rhythm": {"askers": ["a1", "a2", "a3"]}})  # starts Mon 2026-11-02 17:00 Shanghai
    chat.advance(days=7)
    acts = chat.take()
    assert [(a["type"], when(a)) for a in acts] == [
        ("send", "Tue 11-03 20:00"),  # material share
        ("direct", "Tue 11-03 21:00"),  # the askers are told the evening before
        ("direct", "Tue 11-03 21:00"),
        ("direct", "Tue 11-03 21:00"),
        ("send", "Wed 11-04 11:00"),  # Q&A opens with the askers
        ("send", "Wed 11-04 12:00"),  # Q&A closes
        ("send", "Wed 11-04 14:00"),  # open discussion Wed-Fri
        ("send", "Thu 11-05 20:00"),  # material share
        ("send", "Sat 11-07 10:00"),  # weekend benefit
    ]
    assert "资料分享" in acts[0]["text"] and "福利" in acts[-1]["text"]
    assert [a["member"] for a in acts[1:4]] == ["a1", "a2", "a3"]
    assert acts[4]["mentions"] == ["a1", "a2", "a3"] and "@a1、@a2、@a3" in acts[4]["text"]
    assert "自由讨论" in acts[6]["text"]
    assert len(chat.records("rhythm", "posted")) == 7  # one per slot fired


def test_posts_keep_local_time_across_a_dst_change(make_chat: Make) -> None:
    # New York leaves daylight saving time on Sunday 2026-11-01
    chat = make_chat(
        {"rhythm": {"template": None, "slots": [{"weekdays": ["tue", "thu"], "time": "20:00", "text": "share"}]}},
        timezone="America/New_York", locale="en", start=datetime(2026, 10, 26, 12, 0, tzinfo=UTC),
    )
    chat.advance(days=14)
    acts = chat.take()
    assert [when(a, NY) for a in acts] == [
        "Tue 10-27 20:00", "Thu 10-29 20:00", "Tue 11-03 20:00", "Thu 11-05 20:00",
    ]
    # the same local time is a different UTC hour on each side of the change
    assert [datetime.fromisoformat(a["ts"]).astimezone(UTC).hour for a in acts] == [0, 0, 1, 1]


def test_configured_askers_are_taken_in_turn_week_after_week(make_chat: Make) -> None:
    chat = make_chat({"rhythm": {"askers": ["a1", "a2", "a3", "a4", "a5"], "askers_count": 3}})
    for uid, name in (("a1", "阿一"), ("a2", "阿二"), ("a3", "\u202e阿三"), ("a4", "阿四"), ("a5", "阿五")):
        chat.join(uid, name)
    chat.advance(days=7)
    week1 = [a for a in chat.take() if a.get("mentions")]
    chat.advance(days=7)
    week2 = [a for a in chat.take() if a.get("mentions")]
    assert [a["mentions"] for a in week1] == [["a1", "a2", "a3"]]
    assert "@阿一、@阿二、@阿三" in week1[0]["text"] and "\u202e" not in week1[0]["text"]
    assert [a["mentions"] for a in week2] == [["a4", "a5", "a1"]]
    assert chat.state("rhythm", "askers:g-main:2026-W46") == ["a4", "a5", "a1"]


def test_askers_rotate_among_recent_members_least_recently_asked_first(make_chat: Make) -> None:
    chat = make_chat({"rhythm": {"askers_count": 2, "active_days": 7}}, roles={"admin": ["boss"]})
    for uid in ("u1", "u2", "u3", "boss", "u9"):
        chat.join(uid, uid.upper())
    for uid in ("u3", "u1", "u2", "boss"):
        chat.say(uid, "大家好")
    chat.advance(days=7)
    week1 = [a for a in chat.take() if a.get("mentions")]
    assert [a["mentions"] for a in week1] == [["u1", "u2"]]  # the admin is not an asker; u9 never spoke
    for uid in ("u1", "u2", "u3"):
        chat.say(uid, "继续聊")
    chat.advance(days=7)
    week2 = [a for a in chat.take() if a.get("mentions")]
    assert [a["mentions"] for a in week2] == [["u3", "u1"]]  # u3 was never asked
    assert chat.state("rhythm", "m:u3")["asked"] == "2026-W46"


def test_nothing_is_sent_without_a_template_or_slots(make_chat: Make) -> None:
    chat = make_chat({"rhythm": {"template": None}})
    chat.say("u1", "有人吗")
    chat.advance(days=15)
    chat.assert_nothing_sent()
    assert chat.state("rhythm", "m:u1") is None  # nobody to rotate: nobody tracked


def test_the_admins_group_gets_no_posts(make_chat: Make) -> None:
    doc = yaml.safe_load(community_config({"rhythm": {"askers": ["a1"]}}, groups=("g-main", "g-admin")))
    doc["communities"][0]["groups"][1]["admin"] = True
    chat = make_chat(yaml.safe_dump(doc, allow_unicode=True))
    chat.advance(days=7)
    assert {a["group"] for a in chat.take()} == {"g-main"}


def test_custom_slots_reminders_and_placeholders(make_chat: Make) -> None:
    slots = [
        {"weekdays": ["周一"], "time": "09:00", "kind": "reminder",
         "text": {"zh-CN": "本周（{week}）素材请在周二前发给主持", "en": "Material for {week} due Tuesday"}},
        {"weekdays": [5], "time": "18:30", "kind": "reminder", "to": "owner1", "text": "写周报 {nothing}"},
        {"weekdays": [7], "time": "21:00", "template": "share", "askers": True},
    ]
    chat = make_chat({"rhythm": {"template": None, "slots": slots, "askers": ["a1"]}})
    chat.advance(days=7)
    acts = chat.take()
    assert [(a["type"], when(a)) for a in acts] == [
        ("direct", "Fri 11-06 18:30"),
        ("send", "Sun 11-08 21:00"),
        ("notify_admins", "Mon 11-09 09:00"),
    ]
    assert acts[0]["member"] == "owner1" and acts[0]["text"] == "⏰ 提醒（g-main）：写周报 {nothing}"
    assert acts[1]["mentions"] == ["a1"]
    assert acts[2]["text"] == "⏰ 提醒（g-main）：本周（2026-W46）素材请在周二前发给主持"


def test_a_changed_configuration_replaces_the_jobs(make_chat: Make, db_url: str) -> None:
    first = make_chat({"rhythm": {}})
    assert first.state("rhythm", "slots:g-main") == 6
    fewer = {"rhythm": {"template": None, "slots": [{"weekdays": [3], "time": "08:00", "text": "早"}]}}
    second = make_chat(fewer, start=first.now)
    assert second.state("rhythm", "slots:g-main") == 1
    second.advance(days=7)
    assert [(a["text"], when(a)) for a in second.take()] == [("早", "Wed 11-04 08:00")]


@pytest.mark.parametrize(
    "slot",
    [
        {"weekdays": [8], "time": "20:00", "text": "x"},
        {"weekdays": ["someday"], "time": "20:00", "text": "x"},
        {"weekdays": [], "time": "20:00", "text": "x"},
        {"weekdays": [1], "time": "24:00", "text": "x"},
        {"weekdays": [1], "time": "20:00"},
        {"weekdays": [1], "time": "20:00", "text": "x", "template": "share"},
        {"weekdays": [1], "time": "20:00", "template": "party"},
        {"weekdays": [1], "time": "20:00", "text": {"fr": "x"}},
        {"weekdays": [1], "time": "20:00", "text": "x", "kind": "shout"},
    ],
)
def test_bad_slots_are_refused(slot: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        settings_from_text(community_config({"rhythm": {"slots": [slot]}}), "<test>")


def test_erasing_a_member_removes_them_from_the_askers(make_chat: Make) -> None:
    chat = make_chat({"rhythm": {"askers_count": 2}})
    for uid in ("u1", "u2"):
        chat.say(uid, "在")
    chat.advance(days=3)
    assert chat.state("rhythm", "askers:g-main:2026-W45") == ["u1", "u2"]
    before = chat.engine.export_member("test", "sim", "u2")["playbooks"]["rhythm"]
    chat.engine.erase_member("test", "sim", "u1")
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"].get("rhythm")
    assert chat.engine.export_member("test", "sim", "u2")["playbooks"]["rhythm"] == before
    assert chat.state("rhythm", "askers:g-main:2026-W45") == ["u2"]
