"""qa: numbered questions, linked answers, honest votes, best answers with points,
one nudge to experts for unanswered questions, boards, and a clean erase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
# 2026-11-02 09:00 UTC = Monday 17:00 in Asia/Shanghai (the harness default start): ISO week 2026-W45
WEEK = "2026-W45"
ROLES = {"owner": ["boss"], "admin": ["adm"]}


def qa_chat(make_chat: Make, playbooks: dict[str, Any] | None = None, **settings: Any) -> Chat:
    options = {k: settings.pop(k) for k in ("locale", "roles") if k in settings}
    options.setdefault("roles", ROLES)
    chat = make_chat({**(playbooks or {}), "qa": settings}, **options)
    for uid, name in (("u1", "小王"), ("u2", "小李"), ("u3", "老张"), ("u4", "阿花")):
        chat.say(uid, "大家好", name=name)
    chat.take()
    return chat


def ask(chat: Chat, uid: str = "u1", text: str = "#提问 私域社群怎么做冷启动？") -> str:
    msg = chat.say(uid, text)
    chat.take()
    return msg


# ------------------------------------------------------------------ questions


def test_a_question_gets_a_short_id_and_the_contract_shape(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    msg = chat.say("u1", "#提问  私域社群怎么做冷启动？")
    [ack] = chat.assert_sent("Q1", playbook="qa", count=1)
    assert ack["mentions"] == ["u1"] and ack["reply_to"] == msg and "答Q1" in ack["text"]
    assert chat.state("qa", "q:Q1") == {
        "asker": "u1",
        "group": "g-main",
        "msg": msg,
        "text": "私域社群怎么做冷启动？",
        "ts": "2026-11-02T09:00:00+00:00",
        "answers": {},
        "best": None,
        "status": "open",
        "first_answer_ts": None,
    }
    for text in ("问：第二个问题是什么", "Q: how do we run a weekly AMA", "#question pricing for the camp"):
        chat.say("u2", text)
    assert [chat.state("qa", f"q:Q{n}")["asker"] for n in (2, 3, 4)] == ["u2", "u2", "u2"]
    assert chat.state("qa", "q:Q4")["text"] == "pricing for the camp"
    assert chat.state("qa", f"week:{WEEK}") == {
        "answerers": {}, "askers": {"u1": 1, "u2": 3}, "resolved": 0, "asked": 4, "votes": 0,
    }
    assert chat.state("qa", "m:u2") == {"asked": 3, "answers": 0, "best": 0, "votes": 0}


def test_too_short_or_plain_messages_are_not_questions(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.say("u1", "#提问 ？")  # nothing asked
    chat.say("u1", "这个怎么弄？")  # a question mark alone is off by default
    chat.say("u1", "提问题的人真多")  # the word without the format
    chat.say("u1", "#asking for a friend: is this a question")  # #ask must be a whole word
    chat.assert_nothing_sent()
    assert chat.state("qa", "seq") is None


def test_question_marks_count_when_switched_on(make_chat: Make) -> None:
    chat = qa_chat(make_chat, question_mark_min_length=6, confirm_questions=False, locale="en")
    chat.say("u1", "ok?")  # too short
    chat.say("u1", "How do you price a paid camp?")
    chat.assert_nothing_sent()  # recorded quietly
    assert chat.state("qa", "q:Q1")["text"] == "How do you price a paid camp?"
    assert chat.state("qa", "q:Q2") is None


def test_background_is_held_for_the_next_question_or_added_to_the_last(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.say("u1", "#背景 我们是 300 人的读书会，付费 99 元")
    chat.assert_sent("会附在", playbook="qa")
    chat.advance(days=2)
    chat.say("u1", "#提问 怎么提高续费率？")
    chat.assert_sent("已附上", playbook="qa")
    assert chat.state("qa", "q:Q1")["background"] == "我们是 300 人的读书会，付费 99 元"
    assert chat.state("qa", "bg:u1") is None
    chat.say("u1", "#背景 去年续费率 40%")  # within the attach window: goes to Q1
    chat.assert_sent("补充到 Q1", playbook="qa")
    assert chat.state("qa", "q:Q1")["background"].endswith("去年续费率 40%")
    chat.say("u2", "#背景 Q1 我来帮他补充")  # not their question: held for u2 instead
    assert chat.state("qa", "bg:u2")["text"] == "Q1 我来帮他补充"
    assert "帮他" not in chat.state("qa", "q:Q1")["background"]
    chat.advance(days=8)  # held background expires
    chat.take()
    chat.say("u2", "#提问 社群怎么做分层？")
    [ack] = chat.assert_sent("Q2", playbook="qa")
    assert "已附上" not in ack["text"] and "background" not in chat.state("qa", "q:Q2")


# -------------------------------------------------------------------- answers


def test_answers_by_reply_by_hash_id_by_format_and_by_mentioning_the_asker(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a1 = chat.say("u2", "先找 20 个种子用户", reply_to=q)
    a2 = chat.say("u3", "#Q1 做一次线下活动")
    a3 = chat.say("u4", "答Q1：用内容吸引")
    a4 = chat.say("u4", "@小王 Q1 我补充一点：社群要有主题", mentions=["u1"])
    chat.say("u3", "Q1 这个我也想知道")  # a bare id without the asker: just talk
    chat.say("u2", "#Q99 没有这个问题")
    chat.assert_nothing_sent()  # answers are recorded quietly
    stored = chat.state("qa", "q:Q1")
    assert list(stored["answers"]) == [a1, a2, a3, a4]
    assert stored["answers"][a1] == {"by": "u2", "ts": "2026-11-02T09:00:00+00:00", "votes": 0}
    assert stored["status"] == "answered" and stored["first_answer_ts"] == "2026-11-02T09:00:00+00:00"
    # answer points once per member and question
    assert (chat.points("u2"), chat.points("u3"), chat.points("u4")) == (2, 2, 2)
    assert chat.state("qa", "m:u4")["answers"] == 1
    assert chat.state("qa", f"week:{WEEK}")["answerers"] == {"u2": 0, "u3": 0, "u4": 0}
    chat.assert_ledger_balanced()


def test_answering_your_own_question_does_not_count(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    chat.say("u1", "我自己先说说想法", reply_to=q)
    chat.say("u1", "答Q1：自问自答")
    stored = chat.state("qa", "q:Q1")
    assert stored["answers"] == {} and stored["status"] == "open"
    assert chat.points("u1") == 0
    assert chat.state("qa", "m:u1") == {"asked": 1, "answers": 0, "best": 0, "votes": 0}


def test_english_answer_format_and_a_plus_one_to_the_question_is_not_an_answer(make_chat: Make) -> None:
    chat = qa_chat(make_chat, locale="en")
    q = chat.say("u1", "Q: how should we onboard new members?")
    [ack] = chat.assert_sent("your question is Q1", playbook="qa")
    assert 'answer Q1:' in ack["text"]
    chat.say("u2", "+1", reply_to=q)  # "me too", not an answer
    a = chat.say("u3", "answer Q1: a welcome call in the first week")
    assert list(chat.state("qa", "q:Q1")["answers"]) == [a]


# ---------------------------------------------------------------------- votes


def test_votes_by_reaction_and_plus_one_reply(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a = chat.say("u2", "先找种子用户", reply_to=q)
    chat.react("u3", a, "👍")
    chat.react("u4", a, "❤")  # without the variation selector: the same heart
    chat.say("u1", "+1", reply_to=a)
    chat.react("boss", a, "😂")  # not a vote emoji
    chat.react("boss", q, "👍")  # on the question, not an answer
    chat.assert_nothing_sent()
    assert chat.state("qa", "q:Q1")["answers"][a]["votes"] == 3
    assert chat.state("qa", "m:u2")["votes"] == 3
    week = chat.state("qa", f"week:{WEEK}")
    assert week["votes"] == 3 and week["answerers"] == {"u2": 3}


def test_vote_stuffing_is_ignored(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.join("old", "老成员")  # seen joining before the question
    q = ask(chat)
    a = chat.say("u2", "先找种子用户", reply_to=q)
    chat.react("u2", a, "👍")  # a self-vote
    chat.say("u2", "+1", reply_to=a)  # a self-vote by reply
    chat.react("u3", a, "👍")
    chat.react("u3", a, "👍")  # a duplicate reaction
    chat.react("u3", a, "🔥")  # another emoji, still one member
    chat.say("u3", "+1", reply_to=a)  # and a +1 on top
    chat.say("u4", "+1", reply_to=a)
    chat.say("u4", "+1", reply_to=a)  # +1 twice
    chat.advance(minutes=5)
    chat.join("sock1", "小号1")  # accounts that joined after the question
    chat.join("sock2", "小号2")
    chat.react("sock1", a, "👍")
    chat.say("sock2", "+1", reply_to=a)
    chat.react("old", a, "👍")  # joined before: counts
    chat.react("never_seen", a, "👍")  # never seen joining: an old member, counts
    assert chat.state("qa", "q:Q1")["answers"][a]["votes"] == 4
    assert chat.state("qa", f"week:{WEEK}")["answerers"] == {"u2": 4}
    chat.assert_nothing_sent()


def test_a_member_who_rejoins_keeps_their_first_join(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.join("u5", "老五")
    chat.advance(minutes=1)
    q = ask(chat)
    a = chat.say("u2", "回答", reply_to=q)
    chat.leave("u5")
    chat.join("u5")
    chat.react("u5", a)
    assert chat.state("qa", "q:Q1")["answers"][a]["votes"] == 1


def test_a_late_vote_counts_for_the_answer_but_not_for_a_past_week(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a = chat.say("u2", "先找种子用户", reply_to=q)
    chat.react("u3", a)
    chat.say("adm", "最佳", reply_to=a)
    chat.take()
    chat.advance(days=7)  # the next ISO week
    chat.react("u4", a)  # after resolution, in a later week
    assert chat.state("qa", "q:Q1")["answers"][a]["votes"] == 2
    assert chat.state("qa", "m:u2")["votes"] == 2
    assert chat.state("qa", f"week:{WEEK}")["votes"] == 1
    assert chat.state("qa", f"week:{WEEK}")["answerers"] == {"u2": 1 + 5}
    assert chat.state("qa", "week:2026-W46") is None


# --------------------------------------------------------------- best answers


def test_admin_picks_the_best_answer_by_id_and_mention(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a1 = chat.say("u2", "先找种子用户", reply_to=q)
    a2 = chat.say("u3", "做内容", reply_to=q)
    chat.react("u4", a2)
    chat.say("u4", "最佳 Q1 @老张", mentions=["u3"])  # not an admin: ignored
    chat.assert_nothing_sent()
    chat.say("adm", "最佳 Q1 @老张", mentions=["u3"])
    [best] = chat.assert_sent("Q1 的最佳答案来自 老张", playbook="qa", count=1)
    assert best["mentions"] == ["u3"] and best["reply_to"] == a2 and "+20" in best["text"]
    stored = chat.state("qa", "q:Q1")
    assert stored["best"] == a2 and stored["status"] == "resolved"
    assert chat.points("u3") == 2 + 20 and chat.points("u2") == 2
    assert chat.state("qa", "m:u3") == {"asked": 0, "answers": 1, "best": 1, "votes": 1}
    week = chat.state("qa", f"week:{WEEK}")
    assert week["answerers"] == {"u2": 0, "u3": 1 + 5} and week["resolved"] == 1
    [rec] = chat.records("qa", "best_answer")
    assert rec["member"] == "u3"
    assert rec["data"] == {"question": "Q1", "answer": a2, "week": WEEK, "how": "admin"}
    chat.say("boss", "最佳", reply_to=a1)  # one best answer per question
    chat.assert_sent("已经选出最佳答案", playbook="qa")
    assert chat.state("qa", "q:Q1")["best"] == a2
    chat.assert_ledger_balanced()
    assert chat.balance("community:issuance:POINTS") == -(2 + 2 + 20)


def test_admin_pick_mistakes_get_a_helpful_reply(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a = chat.say("adm", "我来答：先定位人群", reply_to=q)
    chat.say("adm", "最佳 Q7 @小李", mentions=["u2"])
    chat.assert_sent("找不到问题 Q7")
    chat.say("adm", "最佳 Q1 @小李", mentions=["u2"])
    chat.assert_sent("小李 还没有回答 Q1")
    chat.say("adm", "最佳 Q1")
    chat.assert_sent("用法")
    chat.say("adm", "最佳", reply_to=a)  # their own answer
    chat.assert_sent("不能把自己的回答")
    assert chat.state("qa", "q:Q1")["status"] == "answered"
    chat.say("adm", "最佳实践是什么")  # just a sentence
    chat.assert_nothing_sent()


def test_the_asker_may_accept_an_answer(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    q = ask(chat)
    a = chat.say("u2", "先找种子用户", reply_to=q)
    chat.say("u3", "采纳", reply_to=a)  # not the asker
    chat.assert_nothing_sent()
    chat.say("u1", "采纳", reply_to=a)
    chat.assert_sent("提问者采纳了 小李 对 Q1 的回答", playbook="qa")
    assert chat.records("qa", "best_answer")[0]["data"]["how"] == "asker"
    assert chat.points("u2") == 22
    chat.assert_ledger_balanced()


def test_accepting_can_be_switched_off(make_chat: Make) -> None:
    chat = qa_chat(make_chat, asker_can_accept=False, points_per_best=0, points_per_answer=0)
    q = ask(chat)
    a = chat.say("u2", "先找种子用户", reply_to=q)
    chat.say("u1", "采纳", reply_to=a)
    chat.assert_nothing_sent()
    assert chat.state("qa", "q:Q1")["status"] == "answered"
    chat.say("adm", "最佳", reply_to=a)
    chat.assert_sent("+0", playbook="qa")
    assert chat.points("u2") == 0


def test_the_pick_command(make_chat: Make) -> None:
    chat = qa_chat(make_chat, locale="en")
    q = ask(chat, text="Q: where do we find speakers?")
    a1 = chat.say("u2", "ask past members", reply_to=q)
    chat.say("u3", "meetups", reply_to=q)
    with pytest.raises(CommandError, match="no question Q9"):
        chat.command("qa", "pick", question="Q9", member="u2")
    with pytest.raises(CommandError, match="u4 has not answered Q1"):
        chat.command("qa", "pick", question="Q1", member="u4")
    with pytest.raises(CommandError, match="not an answer"):
        chat.command("qa", "pick", question="Q1", answer=q)
    with pytest.raises(CommandError, match="needs question"):
        chat.command("qa", "pick", member="u2")
    assert chat.records("qa", "best_answer") == [] and chat.points("u2") == 2  # refusals leave nothing
    result = chat.command("qa", "pick", question="q1", member="u2")
    assert result == {"question": "Q1", "answer": a1, "member": "u2", "week": WEEK}
    [sent] = chat.assert_sent("Best answer to Q1", playbook="qa")
    assert sent["group"] == "g-main" and sent["reply_to"] == a1
    with pytest.raises(CommandError, match="already has a best answer"):
        chat.command("qa", "pick", question="Q1", member="u3")
    assert chat.points("u2") == 22
    chat.assert_ledger_balanced()


# --------------------------------------------------------------------- nudges


def expert_chat(make_chat: Make, **qa: Any) -> Chat:
    chat = qa_chat(
        make_chat,
        {"profile": {"confirm": False, "ask_missing": False}, "microphone": {"experts": 1}},
        nudge_after_hours=6,
        **qa,
    )
    chat.say("e1", "城市：上海\n擅长：私域、社群运营", name="小钱")
    chat.say("e2", "城市：北京\n擅长：私域", name="小孙")
    chat.say("e3", "城市：广州\n擅长：私域、直播", name="小周")
    chat.say("e4", "城市：成都\n擅长：Python", name="小吴")
    chat.take()
    return chat


def test_an_unanswered_question_is_nudged_once_with_experts(make_chat: Make) -> None:
    chat = expert_chat(make_chat)
    q = chat.say("u1", "#提问 私域社群运营怎么起步？")
    [mic] = chat.assert_sent(playbook="microphone")
    assert mic["mentions"] == ["e1"]  # the microphone already asked e1 about it
    chat.advance(hours=5, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    [nudge] = chat.assert_sent(playbook="qa", count=1)
    assert nudge["reply_to"] == q
    assert nudge["mentions"] == ["e2", "e3"]  # e1 left out; e4 does not know 私域
    assert "Q1" in nudge["text"] and "6 小时" in nudge["text"] and "@小孙 @小周" in nudge["text"]
    assert "私域社群运营怎么起步" in nudge["text"]
    assert chat.state("qa", "q:Q1")["nudged"] is True
    chat.advance(days=2)
    chat.assert_nothing_sent()  # one nudge only


def test_nudge_mentions_at_most_k_experts(make_chat: Make) -> None:
    chat = expert_chat(make_chat, nudge_experts=1)
    chat.say("u1", "#提问 私域社群运营怎么起步？")
    chat.take()
    chat.advance(hours=6)
    [nudge] = chat.assert_sent(playbook="qa", count=1)
    assert nudge["mentions"] == ["e2"]  # e1 was asked by the microphone; K = 1


def test_nudge_skips_the_asker_departed_members_and_microphone_picks(make_chat: Make) -> None:
    chat = expert_chat(make_chat)
    chat.join("e2")
    chat.leave("e2")
    chat.say("e3", "#提问 私域直播怎么做？")  # e3 asks: never nudged about their own question
    assert chat.sent(playbook="microphone")[0]["mentions"] == ["e1"]
    chat.take()
    chat.advance(hours=6)
    [nudge] = chat.assert_sent(playbook="qa", count=1)
    # e1 was just asked by the microphone, e2 left, e3 is the asker: a plain nudge
    assert nudge["mentions"] == [] and "帮帮忙" in nudge["text"]


def test_without_the_microphone_its_experts_are_nudged_too(make_chat: Make) -> None:
    chat = qa_chat(make_chat, {"profile": {"confirm": False, "ask_missing": False}}, nudge_after_hours=1)
    chat.say("e1", "#自我介绍 擅长：私域、社群运营", name="小钱")
    chat.say("e2", "城市：北京\n擅长：私域", name="小孙")
    chat.take()
    ask(chat, text="#提问 私域社群运营怎么起步？")
    chat.advance(hours=1)
    [nudge] = chat.assert_sent(playbook="qa", count=1)
    assert nudge["mentions"] == ["e1", "e2"]  # more matching tags first
    assert [r["member"] for r in chat.records("qa", "nudged")] == ["e1", "e2"]


def test_nothing_is_sent_when_the_question_was_answered(make_chat: Make) -> None:
    chat = expert_chat(make_chat)
    q = chat.say("u1", "#提问 私域社群运营怎么起步？")
    chat.advance(hours=1)
    chat.say("u2", "先做内容", reply_to=q)
    chat.take()
    chat.advance(hours=12)
    chat.assert_nothing_sent()
    assert "nudged" not in chat.state("qa", "q:Q1")


def test_an_answer_from_another_group_also_stops_the_nudge(make_chat: Make) -> None:
    chat = make_chat({"qa": {"nudge_after_hours": 3}}, groups=("g-main", "g-two"), roles=ROLES)
    chat.say("u1", "#提问 两个群的问题怎么同步？", name="小王")
    chat.take()
    chat.say("u2", "答Q1：用同一个问题编号", group="g-two")
    assert chat.state("qa", "q:Q1")["status"] == "answered"
    chat.advance(hours=4)
    chat.assert_nothing_sent()
    chat.say("adm", "最佳 Q1 @小李", mentions=["u2"], group="g-two")
    [best] = chat.assert_sent("Q1 的最佳答案", playbook="qa")
    assert best["group"] == "g-main"  # announced where the question was asked


def test_nudge_without_experts(make_chat: Make) -> None:
    chat = qa_chat(make_chat, nudge_after_hours=2, locale="en")
    ask(chat, text="Q: anyone running a book club?")
    chat.advance(hours=2)
    [nudge] = chat.assert_sent(playbook="qa")
    assert nudge["mentions"] == [] and "waited 2 hours" in nudge["text"]


def test_nudges_can_be_switched_off(make_chat: Make) -> None:
    chat = qa_chat(make_chat, nudge_after_hours=None)
    ask(chat)
    assert chat.state("qa", "q:Q1") is not None
    chat.advance(days=3)
    chat.assert_nothing_sent()


# --------------------------------------------------------------------- boards


def board_data(chat: Chat) -> None:
    q1 = ask(chat)
    ask(chat, "u4", "#提问 怎么做分享会？")
    ask(chat, "u4", "#提问 群规怎么写？")
    a1 = chat.say("u2", "先找种子用户", reply_to=q1)
    a2 = chat.say("u3", "做内容", reply_to=q1)
    chat.say("u3", "#Q2 先定主题")
    chat.react("u4", a1)
    chat.react("u4", a2)
    chat.react("u1", a2)
    chat.say("adm", "最佳", reply_to=a1)
    chat.take()


def test_board_in_chinese(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.say("u1", "问答榜")
    chat.assert_sent("还没有人回答问题")
    board_data(chat)
    chat.say("u1", "问答榜")
    [board] = chat.assert_sent(f"本周（{WEEK}）问答榜", playbook="qa")
    assert "1. 小李 · 6 分\n2. 老张 · 2 分" in board["text"]
    assert "待回答 1 个，待选最佳 1 个" in board["text"]
    chat.say("u1", "待答问题")
    [listing] = chat.assert_sent("等待回答的问题（1 个）")
    assert "Q3 · 阿花：群规怎么写？" in listing["text"]


def test_board_in_english_and_the_board_and_questions_commands(make_chat: Make) -> None:
    chat = qa_chat(make_chat, locale="en")
    chat.say("u1", "open questions")
    chat.assert_sent("No questions are waiting")
    board_data(chat)
    chat.say("u1", "QA Board")
    [board] = chat.assert_sent(f"Q&A board this week ({WEEK})")
    assert "1. 小李 · 6 points\n2. 老张 · 2 points" in board["text"]
    assert "1 waiting for an answer, 1 waiting for a best answer" in board["text"]
    data = chat.command("qa", "board")
    assert data["answerers"] == [{"member": "u2", "score": 6}, {"member": "u3", "score": 2}]
    assert (data["asked"], data["resolved"], data["votes"], data["open"], data["answered"]) == (3, 1, 3, 1, 1)
    assert chat.command("qa", "board", week="2026-W01")["answerers"] == []
    with pytest.raises(CommandError, match="week must look like"):
        chat.command("qa", "board", week="last week")
    open_ = chat.command("qa", "questions")
    assert [r["id"] for r in open_["questions"]] == ["Q3"] and open_["questions"][0]["asker"] == "u4"
    assert [r["id"] for r in chat.command("qa", "questions", status="answered")["questions"]] == ["Q2"]
    assert [r["id"] for r in chat.command("qa", "questions", status="resolved")["questions"]] == ["Q1"]
    assert chat.command("qa", "questions", status="all", limit=2)["count"] == 3
    with pytest.raises(CommandError, match="status must be"):
        chat.command("qa", "questions", status="closed")


def test_old_unresolved_questions_leave_the_lists(make_chat: Make) -> None:
    chat = qa_chat(make_chat, open_days=3, nudge_after_hours=None)
    ask(chat)
    chat.advance(days=4)
    chat.say("u1", "待答问题")
    chat.assert_sent("目前没有等待回答的问题")
    assert chat.state("qa", "q:Q1")["status"] == "open"  # the question itself stays


# -------------------------------------------------------------------- hostile


def test_hostile_question_text_is_clipped_and_cleaned(make_chat: Make) -> None:
    chat = qa_chat(make_chat, max_question_chars=50, nudge_after_hours=1)
    chat.say("u1", "#提问 \u202e反转\u0007{name}{0.__class__}" + "长" * 100_000 + "？", name="\u202e坏人")
    [ack] = chat.assert_sent("Q1", playbook="qa")
    assert "\u202e" not in ack["text"]
    text = chat.state("qa", "q:Q1")["text"]
    assert len(text) == 50 and text.endswith("…")
    assert "\u202e" not in text and "\u0007" not in text
    assert text.startswith("反转{name}{0.__class__}长")
    chat.advance(hours=1)
    [nudge] = chat.assert_sent(playbook="qa")
    assert "{0.__class__}" in nudge["text"] and "\u202e" not in nudge["text"]  # shown as typed, never evaluated
    chat.react("u2", "no-such-message", "👍")
    chat.say("u2", "+1", reply_to="no-such-message")
    chat.say("u2", "#Q999999999 hello")
    chat.say("adm", "best Q99999999999999 @x", mentions=["x"])
    assert chat.failures() == []


# ---------------------------------------------------------------------- erase


def test_erase_takes_the_persons_text_and_id_and_keeps_anonymous_counts(make_chat: Make) -> None:
    chat = qa_chat(make_chat)
    chat.join("u1")
    q1 = ask(chat)
    q2 = ask(chat, "u2", "#提问 u2 的问题是什么？")
    a1 = chat.say("u2", "先找种子用户", reply_to=q1)
    a2 = chat.say("u1", "这样回答", reply_to=q2)
    chat.react("u1", a1)
    chat.react("u3", a1)
    chat.react("u3", a2)
    chat.say("u1", "#背景 Q1 补充背景")
    chat.say("adm", "最佳", reply_to=a2)
    exported = chat.engine.export_member("test", "sim", "u1")["playbooks"]["qa"]
    assert exported["questions"][0]["id"] == "Q1" and exported["questions"][0]["background"] == "补充背景"
    assert exported["answers"] == [{"question": "Q2", "msg": a2, "ts": exported["answers"][0]["ts"], "votes": 1,
                                    "best": True}]
    assert exported["votes_given"] == [a1] and exported["weeks"][WEEK] == {"asked": 1, "score": 1 + 5}
    other_before = chat.engine.export_member("test", "sim", "u2")["playbooks"]["qa"]

    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"].get("qa")
    assert chat.engine.export_member("test", "sim", "u2")["playbooks"]["qa"] == other_before
    first = chat.state("qa", "q:Q1")
    assert first["asker"] is None and first["text"] == "" and "background" not in first
    assert first["answers"][a1]["votes"] == 2  # the count stays
    second = chat.state("qa", "q:Q2")
    assert second["answers"][a2] == {"by": None, "ts": second["answers"][a2]["ts"], "votes": 1}
    assert second["best"] == a2
    assert chat.state("qa", f"a:{a1}")["voters"] == ["u3"]
    week = chat.state("qa", f"week:{WEEK}")
    assert "u1" not in week["answerers"] and "u1" not in week["askers"]
    assert (week["asked"], week["votes"], week["resolved"]) == (2, 3, 1)  # totals stay
    assert chat.state("qa", "m:u1") is None and chat.state("qa", "j:u1") is None
    assert chat.scalar("SELECT count(*) FROM records WHERE member = 'u1'") == 0
    chat.react("u4", a2)  # a vote for an erased author counts but credits nobody
    assert chat.state("qa", "q:Q2")["answers"][a2]["votes"] == 2
    assert chat.failures() == []


# --------------------------------------------------------------------- config


def test_invalid_settings_are_refused_with_the_key() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (
        ({"question_prefixes": []}, "at least one entry"),
        ({"vote_emojis": [" "]}, "non-empty"),
        ({"nudge_after_hours": 0}, "nudge_after_hours"),
        ({"question_mark_min_length": 1}, "question_mark_min_length"),
        ({"nudge_expert": 2}, "did you mean 'nudge_experts'"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"qa": bad}))
        assert needle in str(err.value), str(err.value)
        assert "playbooks.qa" in str(err.value)
