"""rules: versioned rules, acknowledgement by keyword with deadlines, history, proposals and votes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
VOTING = {"rules": {"proposals": True, "min_votes": 3}}


def test_a_newcomer_gets_the_rules_and_acknowledges(make_chat: Make) -> None:
    chat = make_chat({"rules": {"purpose": {"zh-CN": "交流跨境电商经验", "en": "Cross-border e-commerce"}}})
    chat.join("u1", "小王")
    [rules] = chat.assert_sent("群规（第 1 版）", playbook="rules", count=1)
    assert rules["mentions"] == ["u1"]
    assert "【宗旨】交流跨境电商经验" in rules["text"] and "24 小时内回复“我已阅读”" in rules["text"]
    msg = chat.say("u1", "我已阅读，谢谢")
    [thanks] = chat.assert_sent("已记下你同意第 1 版群规", count=1)
    assert thanks["reply_to"] == msg
    chat.say("u1", "我已阅读")  # again: already on record, nothing said
    chat.advance(days=2)  # no reminder, no consequence
    chat.assert_nothing_sent()
    assert chat.state("rules", "m:u1")["acked"] == "1"


def test_reminder_then_the_consequence_at_the_deadline(make_chat: Make) -> None:
    chat = make_chat({"rules": {"consequence": "mute", "mute_hours": 6, "reminder_hours": 20}})
    chat.join("u1", "小王")
    chat.take()
    chat.advance(hours=19, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    [reminder] = chat.assert_sent("还差一步", count=1)
    assert reminder["mentions"] == ["u1"] and "11-03 17:00 前" in reminder["text"]
    chat.advance(hours=4)
    found = chat.take()
    assert [a["type"] for a in found] == ["mute", "send", "notify_admins"]
    assert found[0]["until"].startswith("2026-11-03T15:00")
    assert "禁言 6 小时" in found[2]["text"]
    chat.advance(days=3)
    chat.assert_nothing_sent()
    assert [r["member"] for r in chat.records("rules", "lapsed")] == ["u1"]


def test_remove_by_direct_message_in_english(make_chat: Make) -> None:
    chat = make_chat({"rules": {"delivery": "direct", "consequence": "remove", "reminder_hours": None}}, locale="en")
    chat.join("u1", "Ann")
    [dm] = chat.assert_sent(type="direct", count=1)
    assert dm["member"] == "u1" and "Group rules (version 1)" in dm["text"] and 'reply "我已阅读"' in dm["text"]
    chat.advance(hours=24)
    [remove, note] = chat.take()
    assert remove["type"] == "remove" and "within 24 hours" in remove["reason"]
    assert note["type"] == "notify_admins" and "Removed from the group" in note["text"]


def test_i_agree_in_any_case_and_width_acknowledges(make_chat: Make) -> None:
    chat = make_chat({"rules": {"consequence": "remove"}}, locale="en")
    chat.join("u1")
    chat.take()
    chat.say("u1", "  ｉ AGREE!")
    chat.assert_sent("you have agreed to version 1", count=1)
    chat.advance(days=2)
    chat.assert_nothing_sent()


def test_leaving_before_the_deadline_cancels_and_a_rejoin_does_not_reset_it(make_chat: Make) -> None:
    chat = make_chat({"rules": {"consequence": "remove", "reminder_hours": None}})
    chat.join("u1")
    chat.take()
    chat.advance(hours=10)
    chat.leave("u1")
    chat.advance(hours=5)
    chat.join("u1")  # back at hour 15: the deadline is still hour 24
    chat.assert_sent("群规", count=1)
    chat.advance(hours=8, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    chat.assert_sent(type="remove", count=1)
    assert chat.state("rules", "m:u1")["due"].startswith("2026-11-03T09:00")


def test_leaving_and_coming_back_after_the_deadline_does_not_escape_it(make_chat: Make) -> None:
    chat = make_chat({"rules": {"consequence": "mute", "reminder_hours": None}})
    chat.join("u1")
    chat.advance(hours=20)
    chat.leave("u1")
    chat.advance(hours=10)  # the deadline passed while away: nothing to act on
    chat.take()
    chat.join("u1")
    assert [a["type"] for a in chat.take()] == ["send", "mute", "send", "notify_admins"]
    chat.leave("u1")
    chat.join("u1")  # the consequence is applied once; the admins decide now
    [rules, note] = chat.take()
    assert rules["type"] == "send" and note["type"] == "notify_admins" and "又加入了" in note["text"]


def test_members_with_exempt_roles_are_not_asked(make_chat: Make) -> None:
    chat = make_chat({"rules": {}}, roles={"admin": ["a1"], "guest": ["g1"]})
    chat.join("a1")
    chat.join("g1")
    chat.advance(days=2)
    chat.assert_nothing_sent()


def test_history_amend_show_and_acks(make_chat: Make) -> None:
    chat = make_chat({"rules": {}})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.say("u1", "我已阅读")
    chat.take()
    assert chat.command("rules", "acks") == {
        "version": "1",
        "acknowledged": ["u1"],
        "pending": [{"member": "u2", "acked": None, "due": "2026-11-03T09:00:00+00:00", "lapsed": None}],
    }
    result = chat.command("rules", "amend", actor="ops", version="2", reason="禁止拉群", prohibitions="广告、拉群、刷屏")
    assert result == {"version": "2", "previous": "1", "history": 2}
    [announce] = chat.assert_sent("群规更新到第 2 版（禁止拉群）", count=1)
    assert "【禁止】广告、拉群、刷屏" in announce["text"] and "回复“我已阅读”" not in announce["text"]
    shown = chat.command("rules", "show")
    assert shown["version"] == "2" and shown["prohibitions"] == "广告、拉群、刷屏"
    assert shown["purpose"] == "一起学习、互相帮助、共同成长。"
    history = chat.command("rules", "history")["history"]
    assert [(h["version"], h["reason"], h["by"]) for h in history] == [
        ("1", "first version", "config"),
        ("2", "禁止拉群", "ops"),
    ]
    with pytest.raises(CommandError, match="already in the history"):
        chat.command("rules", "amend", version="2", reason="again")
    with pytest.raises(CommandError, match="reason="):
        chat.command("rules", "amend", version="3", reason=" ")
    with pytest.raises(CommandError, match="does not take"):
        chat.command("rules", "amend", version="3", reason="x", title="y")
    chat.advance(minutes=1)  # a new command, not a retry of the first "history"
    assert len(chat.command("rules", "history")["history"]) == 2  # refused commands left nothing


def test_a_new_configured_version_is_recorded_and_announced_once(make_chat: Make) -> None:
    first = make_chat({"rules": {}})
    first.event("member_joined", "u1", id="evt-a1")
    first.take()
    second = make_chat({"rules": {"version": "2026-11", "reack_on_new_version": True, "reminder_hours": 2}})
    second.advance(minutes=1)  # the announcement job set up at start
    [announce] = second.assert_sent("群规更新到第 2026-11 版（configuration）", count=1)
    assert "24 小时内回复“我已阅读”确认新版群规" in announce["text"]
    versions = [h["version"] for h in second.command("rules", "history")["history"]]
    assert versions == ["1", "2026-11"]
    second.advance(days=2)
    # u1 never acknowledged anything: no re-acknowledgement, but their own deadline still runs
    [reminder, note] = second.take()
    assert reminder["type"] == "send" and "还差一步" in reminder["text"]
    assert note["type"] == "notify_admins" and "仍未确认群规" in note["text"]


def test_re_acknowledgement_after_an_amendment(make_chat: Make) -> None:
    chat = make_chat({"rules": {"reack_on_new_version": True, "reminder_hours": 6}})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.say("u1", "我已阅读")
    chat.say("u2", "我已阅读")
    chat.take()
    chat.command("rules", "amend", version="2", reason="新增分享规则", activities="每周四晚分享")
    chat.assert_sent("确认新版群规", count=1)
    chat.say("u2", "我已阅读")
    chat.assert_sent("同意第 2 版", count=1)
    chat.advance(hours=6)
    [reminder] = chat.assert_sent("还没确认第 2 版", count=1)
    assert reminder["mentions"] == ["u1"]
    chat.advance(hours=18)
    [note] = chat.assert_sent(type="notify_admins", count=1)
    assert "1 位成员" in note["text"] and "小王" in note["text"] and "小李" not in note["text"]
    assert chat.command("rules", "acks")["acknowledged"] == ["u2"]


def test_a_proposal_vote_with_stuffing_attempts(make_chat: Make) -> None:
    chat = make_chat(VOTING)
    for uid in ("p", "v1", "v2", "v3"):
        chat.join(uid, uid.upper())
    chat.advance(hours=1)
    chat.take()
    proposal = chat.say("p", "提议 修改群规：每周五增加资源对接时间")
    [opened] = chat.assert_sent("第 1 号群规修改提议", count=1)
    assert "“每周五增加资源对接时间”" in opened["text"] and "11-05 18:00 截止" in opened["text"]
    chat.say("p", "+1", reply_to=proposal)  # the proposer already voted by proposing
    chat.react("p", proposal, "👍")
    chat.say("v1", "+1", reply_to=proposal)
    chat.say("v1", "+1", reply_to=proposal)  # a second vote
    chat.react("v1", proposal, "👍")  # and a third, by reaction
    chat.advance(minutes=1)
    chat.join("late", "LATE")
    chat.take()
    chat.say("late", "+1 #1")  # joined after the proposal
    chat.say("v2", "-1 #1")
    chat.react("v3", proposal, "🎉")  # not a vote
    chat.say("v3", "+1")  # neither a reply nor a number: ordinary chat
    chat.assert_nothing_sent()
    refused = [r["data"]["why"] for r in chat.records("rules", "vote_refused")]
    assert refused.count("already voted") == 4 and refused.count("joined after the proposal") == 1
    assert chat.state("rules", "p:1")["voters"] == {"p": 1, "v1": 1, "v2": -1}
    chat.advance(days=3)
    [result, note] = [a for a in chat.take() if "提议" in a["text"]]
    assert "第 1 号提议通过（赞成 2，反对 1）" in result["text"]
    assert note["type"] == "notify_admins" and "proposal=1" in note["text"]
    chat.say("v2", "+1 #1")  # too late
    chat.assert_nothing_sent()
    with pytest.raises(CommandError, match="no proposal"):
        chat.command("rules", "amend", version="2", reason="x", proposal=7)
    chat.command("rules", "amend", version="2", reason="采纳第 1 号提议", proposal=1)
    assert chat.command("rules", "proposals")["proposals"][0]["status"] == "adopted"
    assert chat.command("rules", "history")["history"][-1]["proposal"] == 1


def test_a_proposal_without_enough_votes_fails_and_one_at_a_time(make_chat: Make) -> None:
    chat = make_chat(VOTING, locale="en")
    chat.say("p", "propose: a quiet hour after 23:00")
    chat.assert_sent("proposes rule change #1", count=1)
    chat.say("p", "Propose: another idea")
    chat.assert_sent("your proposal #1 is still open", count=1)
    chat.say("p", "propose:   ")
    chat.assert_sent("the proposal is empty", count=1)
    chat.advance(days=3)
    chat.assert_sent("Proposal #1 did not pass (1 for, 0 against", count=1)
    chat.say("p", "propose: another idea")
    chat.assert_sent("#2", count=1)


def test_hostile_text_in_a_proposal_is_cleaned_and_clipped(make_chat: Make) -> None:
    chat = make_chat(VOTING)
    chat.say("u1", "提议 修改群规：\u202e{name}\u0000\n" + "长" * 5000, name="\u202eevil\u0007")
    [opened] = chat.assert_sent(count=1)
    text: str = opened["text"]
    for bad in ("\u202e", "\u0000", "\u0007"):
        assert bad not in text
    quoted = text.split("“")[1].split("”")[0]
    assert quoted.startswith("{name} 长") and len(quoted) == 300 and quoted.endswith("…")
    assert "evil" in text


def test_proposals_are_off_by_default(make_chat: Make) -> None:
    chat = make_chat({"rules": {}})
    chat.say("u1", "提议 修改群规：更多活动")
    chat.assert_nothing_sent()


def test_erase_removes_acks_proposals_and_votes(make_chat: Make) -> None:
    chat = make_chat(VOTING)
    chat.join("u1")
    chat.join("u10")
    chat.say("u1", "我已阅读")
    proposal = chat.say("u1", "提议 修改群规：更多分享")
    chat.say("u10", "+1", reply_to=proposal)
    before = exported(chat, "u10")
    mine: dict[str, Any] = exported(chat, "u1")
    assert mine["p:1"] == {"proposed": "更多分享", "vote": 1}
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not exported(chat, "u1")
    assert exported(chat, "u10") == before
    p = chat.state("rules", "p:1")
    assert p["by"] is None and "u1" not in p["voters"] and p["yes"] == 2


def exported(chat: Chat, member: str) -> Any:
    """What this playbook's ``export_member`` returned in the engine's export."""
    found = chat.engine.export_member("test", "sim", member)
    return found.get("playbooks", found).get("rules")


def test_invalid_settings_are_refused() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (
        ({"reminder_hours": 30}, "must be less than ack_hours"),
        ({"ack_keywords": []}, "at least one"),
        ({"consequence": "ban"}, "consequence"),
        ({"yes_votes": ["+1"], "no_votes": ["+1"]}, "share an entry"),
        ({"purpose": ""}, "non-empty"),
        ({"version": ""}, "version"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"rules": bad}))
        assert needle in str(err.value), str(err.value)
