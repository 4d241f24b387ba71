"""launch: the dated checklist, reminders on due days, done tasks left alone, overdue reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from qunyun.config.model import settings_from_text
from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat
from qunyun.testing.harness import community_config

Make = Callable[..., Chat]
# The harness starts 2026-11-02 17:00 Asia/Shanghai; reminders at 09:00 local = 01:00 UTC.

TASKS: list[dict[str, Any]] = [
    {"id": "seed", "title": "种子成员就位", "day": 0, "owner": "admin"},
    {"id": "rules", "title": {"zh-CN": "发布群规", "en": "Post the rules"}, "day": 2, "owner": "lead"},
    {"id": "quiet", "title": "不提醒的任务", "day": 3, "reminder": False},
]


def _launch(**over: Any) -> dict[str, Any]:
    return {"launch": {"tasks": TASKS, "overdue_days": 2, **over}}


def _day(chat: Chat) -> list[tuple[str, str]]:
    """(type, text or member) of the new launch actions."""
    return [(a["type"], a.get("text") or a.get("member", "")) for a in chat.take() if a["playbook"] == "launch"]


def test_the_plan_is_sent_then_each_task_is_reminded_on_its_due_day(make_chat: Make) -> None:
    chat = make_chat(_launch(), roles={"admin": ["a1"]})
    chat.advance(minutes=1)  # the kickoff job
    [(kind, plan), (kind2, due)] = _day(chat)
    assert kind == kind2 == "notify_admins"
    assert "建群计划（2026-11-02 开始）" in plan
    assert "⬜ 11-04 发布群规（lead）[rules]" in plan and "📌 11-02 种子成员就位（管理员）[seed]" in plan
    assert "今天要完成" in due and "[seed]" in due and "[rules]" not in due
    chat.advance_to(datetime(2026, 11, 3, 1, 0, tzinfo=UTC))  # 11-03 09:00: seed is overdue
    [(kind, text)] = _day(chat)
    assert kind == "notify_admins" and "逾期" in text and "[seed]" in text
    chat.say("a1", "完成 seed")
    [(_, reply)] = _day(chat)
    assert reply == "✅ 已完成：种子成员就位"
    chat.advance(days=1)  # 11-04 09:00: rules due for "lead" (a user id: privately); seed done, not reported
    [(kind, text)] = [(a["type"], a) for a in chat.take() if a["playbook"] == "launch"]
    assert kind == "direct" and text["member"] == "lead" and "[rules]" in text["text"]
    chat.advance(days=1)  # 11-05: quiet is due but has no reminder; rules overdue
    [(kind, text)] = _day(chat)
    assert kind == "notify_admins" and "[rules]" in text and "[quiet]" not in text
    chat.say("lead", "done rules")  # the task's owner may mark it done
    chat.take()
    chat.advance(days=1)  # 11-06: only quiet is overdue now
    [(kind, text)] = _day(chat)
    assert "[quiet]" in text and "[rules]" not in text
    chat.advance(days=1)  # 11-07: quiet's last overdue report (overdue_days: 2)
    assert len(_day(chat)) == 1
    chat.advance(days=5)
    assert _day(chat) == []
    assert chat.state("launch", "g:g-main")["finished"] is True
    assert chat.scalar("SELECT count(*) FROM jobs WHERE playbook = 'launch'") == 0


def test_only_admins_and_the_owner_mark_tasks_done(make_chat: Make) -> None:
    chat = make_chat(_launch(), roles={"owner": ["boss"]}, locale="en")
    chat.advance(minutes=1)
    chat.take()
    chat.say("u1", "done seed")  # an ordinary member: ignored, silently
    chat.say("u1", "done")
    chat.say("boss", "done nothing-like-this")
    [(_, reply)] = _day(chat)
    assert reply == "There is no task nothing-like-this. Tasks: seed, rules, quiet"
    assert chat.command("launch", "plan")["tasks"][0]["status"] == "due"
    chat.say("boss", "DONE seed")
    assert _day(chat) == [("send", "✅ Done: 种子成员就位")]
    assert [r["data"]["by"] for r in chat.records("launch", "done")] == ["boss"]


def test_plan_and_done_commands(make_chat: Make) -> None:
    chat = make_chat(_launch())
    chat.advance(days=3)  # 11-05 17:00
    plan = chat.command("launch", "plan")
    status = {t["id"]: t["status"] for t in plan["tasks"]}
    assert plan["start"] == "2026-11-02"
    assert status == {"seed": "overdue", "rules": "overdue", "quiet": "due"}
    assert chat.command("launch", "done", task="rules") == {"group": "g-main", "done": "rules"}
    again = chat.command("launch", "plan", id="plan-again")  # same clock and args: a new id
    assert {t["id"]: t["status"] for t in again["tasks"]}["rules"] == "done"
    with pytest.raises(CommandError, match="no task 'nope'"):
        chat.command("launch", "done", task="nope")
    with pytest.raises(CommandError, match="no group"):
        chat.command("launch", "plan", group="g-other")


def test_the_default_plan_and_its_daily_review(make_chat: Make) -> None:
    chat = make_chat({"launch": {}}, locale="en")
    chat.advance(minutes=1)
    [plan, due] = [a["text"] for a in chat.take()]
    for task in ("seed", "rules", "opening", "activity-1", "activity-2", "review"):
        assert f"[{task}]" in plan
    assert "[seed]" in due and "[review]" in due
    chat.command("launch", "done", task="review")  # today's review only
    chat.advance_to(datetime(2026, 11, 3, 1, 0, tzinfo=UTC))
    [overdue, due] = sorted((a["text"] for a in chat.take()), key=lambda t: "Due" in t)
    assert "[seed]" in overdue and "[review]" not in overdue  # yesterday's review was done
    assert "[review]" in due
    chat.advance(days=1)  # yesterday's review was not done: reported once
    texts = [a["text"] for a in chat.take()]
    assert any("Overdue" in t and "[review]" in t for t in texts)
    review = next(t for t in chat.command("launch", "plan")["tasks"] if t["id"] == "review")
    assert review["days_done"] == 1 and review["until"] == "2026-12-01"


def test_role_tasks_can_be_reminded_privately(make_chat: Make) -> None:
    chat = make_chat(_launch(remind_by="direct"), roles={"admin": ["a1", "a2"]})
    chat.advance(minutes=1)
    kinds = [(a["type"], a.get("member")) for a in chat.take()]
    assert kinds == [("notify_admins", None), ("direct", "a1"), ("direct", "a2")]


def test_a_plan_that_starts_later_counts_from_its_start(make_chat: Make) -> None:
    chat = make_chat(_launch(starts_on="2026-11-10"))
    chat.advance(minutes=1)
    [(_, plan)] = _day(chat)  # the plan is shown at once; nothing is due yet
    assert "11-12" in plan
    chat.advance_to(datetime(2026, 11, 10, 1, 0, tzinfo=UTC))
    [(_, due)] = _day(chat)
    assert "[seed]" in due


def test_the_plan_keyword_shows_the_status_to_admins(make_chat: Make) -> None:
    chat = make_chat(_launch(), roles={"admin": ["a1"]})
    chat.advance(minutes=1)
    chat.take()
    chat.say("u1", "建群计划")
    chat.assert_nothing_sent()
    chat.say("a1", "建群计划")
    [reply] = chat.assert_sent(playbook="launch")
    assert "📌 11-02 种子成员就位" in reply["text"]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"tasks": [{"id": "a", "title": "x", "day": 0}, {"id": "a", "title": "y", "day": 1}]}, "appears twice"),
        ({"tasks": [{"id": "has space", "title": "x", "day": 0}]}, "task id"),
        ({"tasks": [{"id": "a", "title": " ", "day": 0}]}, "non-empty"),
        ({"tasks": [{"id": "a", "title": "x", "day": -1}]}, "greater than or equal to 0"),
        ({"remind_time": "9am"}, "HH:MM"),
    ],
)
def test_bad_settings_fail_at_load_time(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_text(community_config({"launch": bad}))
    assert needle in str(err.value), str(err.value)
