"""report: the weekly summary to the admins, on the fake clock (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from qunyun.config.model import settings_from_text
from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]


def config(report: dict[str, object] | None = None, *, locale: str = "zh-CN") -> str:
    return yaml.safe_dump(
        {
            "communities": [
                {
                    "id": "test",
                    "name": "读书会",
                    "timezone": "Asia/Shanghai",
                    "locale": locale,
                    "roles": {"admin": ["boss"]},
                    "groups": [{"id": "g-main"}, {"id": "g-second"}, {"id": "g-admins", "admin": True}],
                    "playbooks": {"report": dict(report or {})},
                }
            ]
        },
        allow_unicode=True,
    )


def chatter(chat: Chat) -> None:
    """Monday 2 Nov: three join, two talk; the next day one more message."""
    for u, name in (("u1", "小王"), ("u2", "小李"), ("u3", "小张")):
        chat.join(u, name)
    chat.say("u1", "大家好")
    chat.say("u1", "今天读第一章")
    chat.say("u2", "好的")
    chat.say("u1", "副群也来聊", group="g-second")
    chat.advance(days=1)
    chat.say("u2", "读完了")


def test_the_weekly_summary_goes_to_the_admins_once_per_community(make_chat: Make) -> None:
    chat = make_chat(config())
    chatter(chat)
    chat.assert_nothing_sent()
    chat.advance(days=5, hours=14)  # Monday 9 Nov, 07:00 local: not yet
    chat.assert_nothing_sent()
    chat.advance(hours=10)  # Monday 9 Nov, 09:00 local
    sent = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    text = sent[0]["text"]
    assert sent[0]["group"] == "g-admins"
    assert "读书会 运营周报（2026-11-02 至 2026-11-08）" in text
    assert "本周消息 5 条（上周没有消息），2 人发言" in text
    assert "新加入 3 人" in text
    assert "感谢本周最活跃的：小王、小李" in text
    assert chat.records("report", "report")[0]["data"]["cause"] == "schedule"
    chat.advance(days=7)  # and again the next Monday, with a quiet week
    again = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    assert "本周没有消息" in again[0]["text"]
    assert chat.failures() == []


def test_an_admin_asks_for_it_in_the_admins_group(make_chat: Make) -> None:
    chat = make_chat(config(locale="en"))
    chatter(chat)
    chat.say("u1", "weekly report", group="g-admins")  # not an admin
    chat.say("boss", "weekly report", group="g-main")  # not the admins' group
    chat.say("boss", "please send the weekly report", group="g-admins")  # not exactly the keyword
    chat.assert_nothing_sent()
    chat.say("boss", "Weekly Report", group="g-admins")
    sent = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    assert "weekly report (2026-10-27 to 2026-11-02)" in sent[0]["text"]
    assert "4 messages this week" in sent[0]["text"]


def test_the_run_command_writes_the_files(make_chat: Make, tmp_path: Path) -> None:
    chat = make_chat(config({"out_dir": str(tmp_path), "lang": "en", "weeks": 2}))
    chatter(chat)
    chat.advance(days=1)
    result = chat.command("report", "run", group="g-admins")
    assert result["data"] is True and result["end"] == "2026-11-03"
    folder = tmp_path / "test" / "2026-11-03"
    assert {p.name for p in folder.iterdir()} >= {"report.html", "summary.txt", "summary.md", "activity.png"}
    sent = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    assert str(folder) in sent[0]["text"] and "messages this week" in sent[0]["text"]
    with pytest.raises(CommandError):
        chat.command("report", "explode", group="g-admins")


def test_no_data_yet_is_said_plainly(make_chat: Make) -> None:
    chat = make_chat(config())
    chat.advance(days=7)
    sent = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    assert "还没有任何群聊数据" in sent[0]["text"]


def test_without_an_admins_group_the_first_group_makes_it(make_chat: Make) -> None:
    chat = make_chat({"report": {"schedule": "0 8 * * *"}}, groups=["g-a", "g-b"])
    chat.join("u1", "A", group="g-b")
    chat.say("u1", "hi", group="g-b")
    chat.advance(days=1)
    sent = chat.assert_sent(type="notify_admins", playbook="report", count=1)
    assert sent[0]["group"] == "g-a"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"schedule": "every monday"}, "schedule"),
        ({"weeks": 0}, "weeks"),
        ({"out_dir": "  "}, "out_dir"),
        ({"lang": "fr"}, "lang"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_refused_at_load(bad: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        settings_from_text(config(bad), "<test>")
