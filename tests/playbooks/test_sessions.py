"""sessions: the pipeline's reminders, warm-ups, questions, the floor, no-shows and the summary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from qunyun.config import settings_from_text
from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat, community_config

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")
START = "2026-11-12 20:00"  # a Thursday; the chat starts Monday 2026-11-02 17:00 Shanghai
ROLES = {"admin": ["boss"]}


def local(action: dict[str, Any], tz: ZoneInfo = SH) -> datetime:
    return datetime.fromisoformat(action["ts"]).astimezone(tz)


def setup_chat(make_chat: Make, **cfg: Any) -> Chat:
    chat = make_chat({"sessions": cfg}, roles=ROLES)
    for uid, name in (("sp", "讲者老张"), ("ho", "主持小李"), ("u1", "小王"), ("u2", "小赵"), ("boss", "群主")):
        chat.join(uid, name)
    return chat


def create(chat: Chat, **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"speaker": "sp", "host": "ho", "topic": "冷启动社群", "starts_at": START}
    args.update(over)
    return chat.command("sessions", "create", **args)


def test_pipeline_reminders_on_the_right_local_days_and_overdue_once(make_chat: Make) -> None:
    chat = setup_chat(make_chat)
    s = create(chat, stages={"design": {"owner": "u2"}})
    assert s["id"] == "1" and s["status"] == "scheduled" and s["starts_at"] == "2026-11-12T20:00:00+08:00"
    chat.take()
    # the design stage (due 11-05) is done early: never reminded, never overdue
    chat.advance(days=1)
    chat.command("sessions", "stage", session="1", stage="design", done=True)
    chat.advance_to(datetime(2026, 11, 12, 12, 5, tzinfo=UTC))
    chat.say("sp", "开始啦")  # the speaker shows up: the stages after the start still run
    chat.advance(days=20)
    acts = chat.take()
    reminders = [a for a in acts if "截止日，" in a.get("text", "") or "截止日，负责人" in a.get("text", "")]
    seen = {(a["type"], a.get("member"), local(a).strftime("%m-%d %H:%M")) for a in reminders}
    # invite (due 10-29) was already past when planned: not reminded;
    # interview (due today, 10:00 already past) right away; the others at 10:00 local on their day
    assert ("direct", "ho", "11-02 17:00") in seen  # interview: host
    assert ("direct", "ho", "11-09 10:00") in seen  # questions
    assert ("notify_admins", None, "11-09 10:00") in seen  # warmup: admins
    assert ("direct", "ho", "11-11 10:00") in seen  # host
    assert ("direct", "ho", "11-12 10:00") in seen  # floor
    assert ("notify_admins", None, "11-13 10:00") in seen  # promotion
    assert ("direct", "ho", "11-14 10:00") in seen  # summary
    assert not any("邀请讲者" in a["text"] or "海报设计" in a["text"] for a in reminders)
    overdue = [a for a in acts if "已过截止日" in a.get("text", "")]
    assert all(a["type"] == "notify_admins" for a in overdue)
    # every still-open stage reported exactly once, the day after it was due
    labels = [a["text"].split("「")[2].split("」")[0] for a in overdue]
    assert sorted(labels) == sorted(["讲前访谈", "征集问题", "预热宣传", "主持准备", "控场", "会后推广", "会后总结"])
    assert {local(a).strftime("%m-%d") for a in overdue if "会后总结" in a["text"]} == {"11-15"}
    shown = chat.command("sessions", "show", session="1")
    design = next(st for st in shown["stages"] if st["stage"] == "design")
    assert design["done"] and design["done_by"] == "cli" and design["owner"] == "u2"
    assert next(st for st in shown["stages"] if st["stage"] == "invite")["late"] is True


def test_a_stage_moved_or_reassigned_reminds_the_new_owner_on_the_new_day(make_chat: Make) -> None:
    chat = setup_chat(make_chat, report_overdue=False, reminder_time="09:30")
    create(chat)
    chat.command("sessions", "stage", session="1", stage="design", due="2026-11-06", owner="speaker")
    chat.take()
    chat.advance(days=5)
    acts = [a for a in chat.take() if "海报设计" in a.get("text", "")]
    assert [(a["type"], a["member"], local(a).strftime("%m-%d %H:%M")) for a in acts] == [
        ("direct", "sp", "11-06 09:30")
    ]
    chat.advance(days=30)
    assert not [a for a in chat.take() if "已过截止日" in a.get("text", "")]


def test_warmups_go_out_at_the_right_local_times(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[])
    create(chat)
    chat.take()
    chat.advance(days=10, hours=2)  # 11-12 19:00 local, the last warm-up
    posts = chat.take()
    assert [(a["type"], local(a).strftime("%m-%d %H:%M")) for a in posts] == [
        ("send", "11-09 20:00"),
        ("send", "11-11 20:00"),
        ("send", "11-12 19:00"),
    ]
    assert "3 天后" in posts[0]["text"] and "明天" in posts[1]["text"] and "1 小时后" in posts[2]["text"]
    assert all("冷启动社群" in p["text"] and "讲者老张" in p["text"] and "主持小李" in p["text"] for p in posts)
    # a session planned 2 days ahead skips the 3-day warm-up
    create(chat, starts_at="2026-11-14 20:00", topic="第二场")
    chat.advance(days=3)
    late = [a for a in chat.take() if "第二场" in a.get("text", "") and a["type"] == "send"]
    assert [local(a).strftime("%m-%d %H:%M") for a in late][:2] == ["11-13 20:00", "11-14 19:00"]


def test_questions_are_collected_in_the_window_only(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[], max_questions_per_member=2)
    create(chat)
    chat.take()
    chat.advance(days=7)  # 11-09 17:00: the window opens at 20:00
    chat.say("u1", "#问 太早的问题")
    chat.assert_nothing_sent()
    chat.advance(hours=4)
    chat.say("u1", "随便聊聊")  # no keyword
    chat.say("u1", "#问")  # nothing asked
    chat.assert_nothing_sent()
    q1 = chat.say("u1", "#问 冷启动第一步做什么？")
    chat.assert_sent("收到 小王 的问题（第 1 个）", playbook="sessions", count=1)
    chat.say("u2", "q： \u202e<b>{name}</b>\u0000 how?")
    [ack] = chat.assert_sent(playbook="sessions", count=1)
    assert ack["reply_to"] and ack["mentions"] == ["u2"]
    chat.say("u1", "Q: 第二个")
    chat.say("u1", "Q: 第三个，超过上限")
    chat.assert_sent(count=1)
    result = chat.command("sessions", "questions", session="1")
    texts = [(q["by"], q["text"]) for q in result["questions"]]
    assert texts == [("u1", "冷启动第一步做什么？"), ("u2", "<b>{name}</b> how?"), ("u1", "第二个")]
    assert result["questions"][0]["msg"] == q1
    assert chat.state("sessions", "s:1")["questions"] == 3


def test_floor_mode_speaker_and_host_speak_others_are_collected_with_one_notice(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[])
    create(chat)
    chat.take()
    chat.advance_to(datetime(2026, 11, 12, 12, 0, tzinfo=UTC))  # 20:00 local
    [start] = chat.assert_sent(type="send", playbook="sessions")
    assert "讲者和主持发言" in start["text"]
    chat.say("sp", "大家好，我开始了")
    chat.say("ho", "欢迎老张")
    chat.say("boss", "（群主）录屏已开")
    chat.assert_nothing_sent()
    chat.say("u1", "老师好！")
    chat.say("u1", "怎么找到第一批种子用户？")
    chat.say("u2", "图片", content_type="image")
    acts = chat.take()
    notices = [a for a in acts if a["type"] == "direct"]
    assert [n["member"] for n in notices] == ["u1", "u2"]  # once per member, not per message
    assert all(a["type"] == "direct" for a in acts)
    q = chat.command("sessions", "questions", session="1")["questions"]
    assert [(x["by"], x["text"], x["during"]) for x in q] == [
        ("u1", "老师好！", True), ("u1", "怎么找到第一批种子用户？", True), ("u2", "图片", True),
    ]
    chat.advance(hours=1)  # the end: the floor opens
    chat.assert_sent("发言恢复自由", type="send", count=1)
    chat.say("u1", "谢谢老师")
    chat.assert_nothing_sent()
    assert chat.state("sessions", "s:1")["status"] == "done"
    assert not {a["type"] for a in chat.actions} & {"remove", "mute", "delete"}


def test_floor_delete_and_group_notice_when_configured(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[], floor_delete=True, floor_notice="group",
                      floor_exempt_roles=[])
    create(chat)
    chat.advance_to(datetime(2026, 11, 12, 12, 1, tzinfo=UTC))
    chat.take()
    m1 = chat.say("u1", "插一句")
    m2 = chat.say("u1", "再插一句")
    m3 = chat.say("boss", "群主也守规矩")
    acts = chat.take()
    assert [a["msg_id"] for a in acts if a["type"] == "delete"] == [m1, m2, m3]
    notices = [a for a in acts if a["type"] == "send"]
    assert [n["mentions"] for n in notices] == [["u1"], ["boss"]]
    assert not {a["type"] for a in chat.actions} & {"remove", "mute"}


def test_a_speaker_who_never_shows(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[], no_show_minutes=15)
    create(chat)
    chat.advance_to(datetime(2026, 11, 12, 12, 14, tzinfo=UTC))
    chat.take()
    chat.say("u1", "讲者呢？")
    chat.assert_sent(type="direct", count=1)  # floor mode still on
    chat.advance(minutes=1)
    acts = chat.take()
    assert {a["type"] for a in acts} == {"notify_admins", "direct", "send"}
    assert [a["member"] for a in acts if a["type"] == "direct"] == ["ho"]
    assert "15 分钟" in next(a for a in acts if a["type"] == "notify_admins")["text"]
    assert chat.state("sessions", "s:1")["status"] == "no_show"
    chat.say("u2", "那我们自由聊吧")  # floor mode has ended
    chat.advance(days=3)
    chat.assert_nothing_sent()  # no end notice, no summary
    assert chat.records("sessions", "shared") == []
    assert [r["member"] for r in chat.records("sessions", "no_show")] == ["sp"]


def test_a_speaker_who_speaks_just_before_the_start_is_present(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[])
    create(chat)
    chat.advance_to(datetime(2026, 11, 12, 11, 55, tzinfo=UTC))
    chat.say("sp", "我到了，5 分钟后开始")
    chat.advance(minutes=30)
    assert chat.state("sessions", "s:1")["status"] == "live"


def test_summary_draft_shares_and_week_aggregate(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[], speaker_points=50, summary_delay=20)
    create(chat)
    chat.advance_to(datetime(2026, 11, 10, 4, 0, tzinfo=UTC))
    q1 = chat.say("u1", "#问 第一批用户从哪来？")
    chat.advance_to(datetime(2026, 11, 12, 12, 0, tzinfo=UTC))
    chat.say("sp", "开讲")
    q2 = chat.say("u2", "要不要收费？")
    chat.say("sp", "先从身边的朋友开始", reply_to=q1)
    chat.say("sp", "补充一句", reply_to=q1)  # the first reply is the linked answer
    chat.advance(hours=1, minutes=10)
    chat.take()
    chat.say("sp", "收费要看阶段", reply_to=q2)  # still before the draft
    chat.advance(minutes=10)
    [draft] = chat.assert_sent(type="notify_admins", count=1)
    text = draft["text"]
    assert "冷启动社群" in text and "讲者老张" in text and "主持小李" in text
    assert "收到问题 2 个，讲者已回复 2 个" in text
    assert "1. 小王：第一批用户从哪来？\n   ↳ 讲者回复：先从身边的朋友开始" in text
    assert "2. 小赵：要不要收费？\n   ↳ 讲者回复：收费要看阶段" in text
    assert chat.state("sessions", "s:1")["summary"] == text
    assert chat.state("sessions", "week:2026-W46") == {"shares": {"sp": 1}}
    assert chat.state("sessions", "m:sp") == {"shares": 1}
    [rec] = chat.records("sessions", "shared")
    assert rec["member"] == "sp" and rec["data"]["week"] == "2026-W46" and rec["data"]["session"] == "1"
    assert chat.points("sp") == 50
    chat.assert_ledger_balanced()
    # a reply after the draft is not linked; the summary command rebuilds and resends
    chat.say("sp", "晚到的回复", reply_to=q1)
    again = chat.command("sessions", "summary", session="1")
    assert again["summary"] == text
    chat.assert_sent(type="notify_admins", count=1)
    # a second session by the same speaker in the same week adds up
    create(chat, starts_at="2026-11-14 10:00", topic="第二场")
    chat.advance_to(datetime(2026, 11, 14, 2, 5, tzinfo=UTC))
    chat.say("sp", "第二场开始")
    chat.advance(hours=2)
    assert chat.state("sessions", "week:2026-W46") == {"shares": {"sp": 2}}
    assert chat.state("sessions", "m:sp") == {"shares": 2}
    assert chat.points("sp") == 100
    chat.assert_ledger_balanced()


def test_cancel_tells_the_group_only_after_warmups_and_stops_everything(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[])
    create(chat)
    create(chat, starts_at="2026-11-20 20:00", topic="下周那场")
    chat.advance_to(datetime(2026, 11, 10, 0, 0, tzinfo=UTC))  # the 3-day warm-up of #1 is out
    chat.take()
    out = chat.command("sessions", "cancel", session="1", reason="讲者临时出差")
    assert out["announced"] is True and out["status"] == "cancelled"
    [notice] = chat.assert_sent(type="send", count=1)
    assert "取消" in notice["text"] and "讲者临时出差" in notice["text"]
    assert chat.command("sessions", "cancel", session="#2")["announced"] is False
    chat.assert_nothing_sent()
    chat.say("u1", "#问 还在吗？")
    chat.advance(days=15)
    chat.assert_nothing_sent()
    with pytest.raises(CommandError, match="cancelled"):
        chat.command("sessions", "cancel", session="1")
    listed = chat.command("sessions", "list", status="cancelled")["sessions"]
    assert [s["id"] for s in listed] == ["2", "1"]


def test_bad_commands_are_refused_and_hostile_topics_are_cleaned(make_chat: Make) -> None:
    chat = setup_chat(make_chat)
    with pytest.raises(CommandError, match="not in the future"):
        create(chat, starts_at="2026-11-01 20:00")
    with pytest.raises(CommandError, match="not a date"):
        create(chat, starts_at="下周四晚上")
    with pytest.raises(CommandError, match="topic"):
        create(chat, topic="\u202e \u0000")
    with pytest.raises(CommandError, match="speaker"):
        create(chat, speaker="")
    with pytest.raises(CommandError, match="duration"):
        create(chat, duration=2)
    with pytest.raises(CommandError, match="unknown stage"):
        create(chat, stages={"party": {"owner": "u1"}})
    with pytest.raises(CommandError, match="no session"):
        chat.command("sessions", "show", session="42")
    assert chat.state("sessions", "seq") is None  # nothing kept from a refused command
    s = create(chat, topic="\u202e<script>{speaker}</script>\u0007" + "长" * 500, starts_at="2026-11-12T12:00:00+00:00")
    assert s["topic"].startswith("<script>{speaker}</script>") and len(s["topic"]) == 120
    assert s["local"] == "2026-11-12 20:00"
    with pytest.raises(CommandError, match="no stage"):
        chat.command("sessions", "stage", session="1", stage="nope", done=True)
    with pytest.raises(CommandError, match="not a day"):
        chat.command("sessions", "stage", session="1", stage="design", due="明天")
    with pytest.raises(CommandError, match="nothing to change"):
        chat.command("sessions", "stage", session="1", stage="design")
    with pytest.raises(CommandError, match="has not been held"):
        chat.command("sessions", "summary", session="1")
    chat.take()
    chat.advance(days=8)
    for action in chat.take():
        assert "\u202e" not in action.get("text", "") and "\u0007" not in action.get("text", "")
        if "<script>" in action.get("text", ""):
            assert "{speaker}" in action["text"]  # a value is never read as a template
    assert chat.failures() == []


def test_bad_configuration_is_refused() -> None:
    for bad in ({"reminder_time": "25:00"}, {"warmups": ["soon"]}, {"questions_open": "0m"},
                {"stages": [{"id": "a", "offset_days": 1}, {"id": "a", "offset_days": 2}]},
                {"stages": [{"id": "Bad Id", "offset_days": 1}]}, {"question_keywords": [" "]},
                {"floor_notice": "shout"}):
        with pytest.raises(ConfigError):
            settings_from_text(community_config({"sessions": bad}), "<test>")


def test_erasing_an_asker_and_a_speaker(make_chat: Make) -> None:
    chat = setup_chat(make_chat, stages=[], warmups=[])
    create(chat)
    chat.advance_to(datetime(2026, 11, 12, 12, 0, tzinfo=UTC))
    chat.say("sp", "开讲")
    q = chat.say("u1", "我的私人问题")
    chat.say("u2", "别人的问题")
    chat.say("sp", "回答", reply_to=q)
    chat.advance(hours=2)
    assert chat.engine.export_member("test", "sim", "u1")["playbooks"]["sessions"]
    before = chat.engine.export_member("test", "sim", "u2")["playbooks"]["sessions"]
    chat.engine.erase_member("test", "sim", "u1")
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"].get("sessions")
    assert chat.engine.export_member("test", "sim", "u2")["playbooks"]["sessions"] == before
    summary = chat.state("sessions", "s:1")["summary"]
    assert "我的私人问题" not in summary and "小王" not in summary and "别人的问题" in summary
    chat.engine.erase_member("test", "sim", "sp")
    assert not chat.engine.export_member("test", "sim", "sp")["playbooks"].get("sessions")
    s = chat.state("sessions", "s:1")
    assert s["speaker"] is None and "讲者老张" not in s["summary"]
    assert chat.state("sessions", "week:2026-W46") == {"shares": {}}
