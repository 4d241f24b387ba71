"""knowledge: capture by keyword, admin marking, review, limits, merging, curation,
faq answering from it (rebuilt only when the knowledge changes), erase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.core.errors import CommandError
from qunyun.testing import Chat

Make = Callable[..., Chat]
ROLES = {"owner": ["own"], "admin": ["boss"], "assistant": ["helper"]}


def _chat(make_chat: Make, knowledge: dict[str, Any] | None = None, faq: dict[str, Any] | None = None,
          **kw: Any) -> Chat:
    return make_chat({"knowledge": knowledge or {}, "faq": faq or {}}, roles=ROLES, **kw)


def faq_answers(chat: Chat) -> list[str]:
    return [a["text"] for a in chat.take() if a["playbook"] == "faq"]


def test_a_trusted_capture_is_saved_and_answered_by_faq(make_chat: Make) -> None:
    chat = _chat(make_chat)
    msg = chat.say("helper", "#知识 退款,退费：开课 7 天内可全额退款，找助教小周办理。")
    [ok] = chat.assert_sent("已收入知识库（#1），关键词：退款、退费", playbook="knowledge")
    assert ok["reply_to"] == msg
    entry = chat.state("knowledge", "k:1")
    assert entry["keywords"] == ["退款", "退费"] and entry["answer"] == "开课 7 天内可全额退款，找助教小周办理。"
    assert entry["active"] is True and entry["by"] == "helper" and entry["source"] == msg
    question = chat.say("u1", "请问怎么退费呀")
    [answer] = chat.assert_sent(playbook="faq")
    assert answer["text"] == "开课 7 天内可全额退款，找助教小周办理。" and answer["reply_to"] == question
    assert chat.records("faq", "answered")[0]["data"]["entry"] == "kb-1"
    chat.say("u2", "退款流程是？")  # the faq cooldown applies to knowledge entries too
    chat.assert_nothing_sent()


def test_a_members_capture_waits_for_review(make_chat: Make) -> None:
    chat = _chat(make_chat, locale="en")
    chat.say("u1", "#kb discount, coupon: use code FREE100 for everything")
    chat.assert_sent("Received (#1); it takes effect once an admin reviews it. Keywords: discount, coupon")
    assert chat.state("knowledge", "k:1")["active"] is False
    chat.say("u2", "any discount?")
    chat.assert_nothing_sent()
    assert chat.command("knowledge", "enable", entry="1")["active"] is True
    chat.say("u2", "any discount?")
    assert faq_answers(chat) == ["use code FREE100 for everything"]


def test_capture_limits_are_explained(make_chat: Make) -> None:
    chat = _chat(make_chat, {"max_keywords": 2, "max_answer_length": 20, "max_keyword_length": 4})
    for text, problem in (
        ("#知识 退款 开课七天内可退", "缺少“：”分开关键词和答案"),
        ("#知识 ：答案", "没有关键词"),
        ("#知识 甲乙,丙丁,戊己：答案", "关键词最多 2 个"),
        ("#知识 退：答案", "关键词至少 2 个字"),
        ("#知识 非常非常长的关键词：答案", "关键词最多 4 个字"),
        ("#知识 退款：", "答案是空的"),
        ("#知识 退款：" + "长" * 21, "答案最多 20 个字"),
    ):
        chat.say("boss", text)
        [reply] = chat.assert_sent(playbook="knowledge")
        assert problem in reply["text"] and "#知识 关键词1,关键词2：答案" in reply["text"], reply["text"]
    assert chat.command("knowledge", "list")["entries"] == []


def test_the_same_answer_is_merged(make_chat: Make) -> None:
    chat = _chat(make_chat)
    chat.say("boss", "#知识 回放：回放在群文件里。")
    chat.take()
    chat.say("helper", "#kb 录屏, 回放: 回放在群文件里。")  # same answer, another spelling of the keyword list
    chat.assert_sent("已合并关键词：回放、录屏")
    [entry] = chat.command("knowledge", "list")["entries"]
    assert entry["id"] == "1" and entry["keywords"] == ["回放", "录屏"]
    assert chat.records("knowledge", "knowledge_merged")[0]["member"] == "helper"


def test_an_admin_reply_saves_the_message(make_chat: Make) -> None:
    chat = _chat(make_chat)
    msg = chat.say("u1", "发票在报名后 3 个工作日内开，邮件发送。", name="小王")
    chat.say("u2", "入库 发票", reply_to=msg)  # not an admin: nothing happens
    chat.assert_nothing_sent()
    chat.say("boss", "入库 发票,开票", reply_to=msg)
    chat.assert_sent("已收入知识库（#1）", playbook="knowledge", count=1)
    entry = chat.state("knowledge", "k:1")
    assert entry["by"] == "u1" and entry["source"] == msg and entry["active"] is True
    assert entry["answer"] == "发票在报名后 3 个工作日内开，邮件发送。"
    # no keywords: the message itself reads "keywords: answer"
    own = chat.say("u1", "上课时间：每周三晚八点。")
    chat.say("boss", "入库", reply_to=own)
    chat.assert_sent("关键词：上课时间", playbook="knowledge", count=1)
    plain = chat.say("u1", "就是一句普通的话")
    chat.say("boss", "kb", reply_to=plain)
    chat.assert_sent("请在“kb”后面写上关键词", count=1)
    chat.say("boss", "入库 不存在", reply_to="m-404")
    chat.assert_sent("没有找到", count=1)
    chat.say("u3", "请问开票要多久")
    assert faq_answers(chat) == ["发票在报名后 3 个工作日内开，邮件发送。"]


def test_curation_commands_move_the_version(make_chat: Make) -> None:
    chat = _chat(make_chat, faq={"cooldown_minutes": 0})
    added = chat.command("knowledge", "add", keywords="地址, 地点", answer="线上腾讯会议。")
    assert added["id"] == "1" and added["status"] == "saved" and added["by"] is None
    v1 = chat.state("knowledge", "version")
    chat.say("u1", "地点在哪")
    assert faq_answers(chat) == ["线上腾讯会议。"]
    faq = chat.engine.playbook("faq")
    built = faq._knowledge[("test", False)]
    chat.say("u1", "地址呢")
    assert faq_answers(chat) == ["线上腾讯会议。"]
    assert faq._knowledge[("test", False)] is built  # unchanged knowledge: not rebuilt
    chat.command("knowledge", "edit", entry="1", answer="线下：北京朝阳。")
    assert chat.state("knowledge", "version") != v1
    chat.say("u1", "地点？")
    assert faq_answers(chat) == ["线下：北京朝阳。"]
    assert faq._knowledge[("test", False)] is not built
    chat.command("knowledge", "disable", entry="1")
    chat.say("u1", "地点？")
    chat.assert_nothing_sent()
    chat.command("knowledge", "enable", entry="#1")
    chat.command("knowledge", "edit", entry="1", keywords=["场地"])
    chat.say("u1", "地点？")
    chat.say("u1", "场地？")
    assert faq_answers(chat) == ["线下：北京朝阳。"]
    assert [e["id"] for e in chat.command("knowledge", "list", query="朝阳")["entries"]] == ["1"]
    assert chat.command("knowledge", "list", active=False)["entries"] == []
    assert chat.command("knowledge", "remove", entry="1") == {"id": "1", "removed": True}
    chat.say("u1", "场地？")
    chat.assert_nothing_sent()
    with pytest.raises(CommandError, match="no knowledge entry '1'"):
        chat.command("knowledge", "remove", entry="1")
    with pytest.raises(CommandError, match="at most 8 keywords"):
        chat.command("knowledge", "add", keywords=[f"词{i}号" for i in range(9)], answer="x" * 20)
    with pytest.raises(CommandError, match="the answer is empty"):
        chat.command("knowledge", "add", keywords="地址", answer="  ")


def test_configured_entries_come_first_and_captures_are_not_answered(make_chat: Make) -> None:
    price = {"id": "price", "keywords": ["价格"], "answer": "见群公告。"}
    chat = _chat(make_chat, faq={"entries": [price], "cooldown_minutes": 0})
    chat.say("boss", "#知识 价格：九九元。")  # the capture itself is not a question
    assert faq_answers(chat) == []
    chat.say("u1", "价格多少")
    assert faq_answers(chat) == ["见群公告。"]
    chat.command("knowledge", "add", keywords="会员价格", answer="会员八折。")
    chat.say("u1", "会员价格呢")  # the longer keyword wins, wherever it comes from
    assert faq_answers(chat) == ["会员八折。"]


def test_the_newest_entry_wins_a_shared_keyword(make_chat: Make) -> None:
    chat = _chat(make_chat, faq={"cooldown_minutes": 0})
    chat.command("knowledge", "add", keywords="作业", answer="周五前交。")
    chat.advance(minutes=1)
    chat.command("knowledge", "add", keywords="作业, 截止", answer="改为周日前交。")
    chat.say("u1", "作业什么时候交")
    assert faq_answers(chat) == ["改为周日前交。"]


def test_knowledge_switched_off_in_a_group_is_not_answered_there(make_chat: Make) -> None:
    chat = make_chat({"knowledge": {}, "faq": {}}, roles=ROLES, groups=["g1", "g2"], group="g1",
                     group_overrides={"g2": {"knowledge": {"enabled": False}}})
    chat.command("knowledge", "add", keywords="回放", answer="回放在群文件。")
    chat.say("u1", "回放在哪", group="g2")
    chat.assert_nothing_sent()
    chat.say("u1", "回放在哪", group="g1")
    assert faq_answers(chat) == ["回放在群文件。"]


def test_erase_removes_the_members_entries(make_chat: Make) -> None:
    chat = _chat(make_chat, faq={"cooldown_minutes": 0})
    chat.say("helper", "#知识 请假：请假找班长。")
    chat.say("boss", "#知识 班会：每周一晚。")
    chat.take()
    version = chat.state("knowledge", "version")
    assert set(chat.engine.export_member("test", "sim", "helper")["playbooks"]["knowledge"]) == {"k:1"}
    assert chat.engine.erase_member("test", "sim", "helper") == []
    assert chat.state("knowledge", "k:1") is None and chat.state("knowledge", "k:2") is not None
    assert chat.state("knowledge", "version") != version
    assert not chat.engine.export_member("test", "sim", "helper")["playbooks"]["knowledge"]
    chat.say("u1", "请假怎么办")
    chat.assert_nothing_sent()


def test_bad_settings() -> None:
    from qunyun.config import settings_from_text
    from qunyun.core.errors import ConfigError
    from qunyun.testing import community_config

    for bad, needle in (({"trusted_roles": ["vip"]}, "unknown role 'vip'"),
                        ({"capture_keywords": [" "]}, "a word is empty"),
                        ({"min_keyword_length": 9, "max_keyword_length": 4}, "min_keyword_length")):
        with pytest.raises(ConfigError, match=needle):
            settings_from_text(community_config({"knowledge": bad}))
