"""microphone: a question is passed to up to K members whose expertise it touches,
each at most once a local day, never the asker, opted-out or departed members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.playbooks.microphone import MicrophoneConfig, is_question, matching_tags
from qunyun.testing import Chat

Make = Callable[..., Chat]


def chat_with_experts(make_chat: Make, *, experts: int = 2, **mic: Any) -> Chat:
    chat = make_chat({"profile": {"confirm": False, "ask_missing": False}, "microphone": {"experts": experts, **mic}})
    chat.say("e1", "城市：上海\n擅长：私域、社群运营", name="小王")
    chat.say("e2", "城市：北京\n擅长：私域", name="小李")
    chat.say("e3", "城市：广州\n擅长：私域、直播", name="老张")
    chat.say("e4", "城市：成都\n擅长：Python, Go", name="Dev")
    chat.take()
    return chat


def test_a_question_goes_to_at_most_k_best_matching_experts(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat)
    chat.command("profile", "verify", member="e3")
    msg = chat.say("q1", "请问私域社群运营怎么做？", name="提问者")
    [sent] = chat.assert_sent(playbook="microphone", count=1)
    # e1 matches two tags; among the one-tag experts the verified e3 comes first; K = 2
    assert sent["mentions"] == ["e1", "e3"]
    assert sent["reply_to"] == msg
    assert "@小王 @老张" in sent["text"] and "私域" in sent["text"]
    assert [r["member"] for r in chat.records("microphone", "passed")] == ["e1", "e3"]


def test_not_asked_twice_in_one_local_day(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=1)
    chat.say("q1", "私域流量怎么起步？")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e1"]
    chat.say("q2", "私域有没有好的工具推荐")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e2"]
    chat.say("q3", "私域转化率为什么这么低?")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e3"]
    chat.say("q4", "还有人懂私域吗？")  # everyone who knows was asked today
    chat.assert_nothing_sent()
    chat.advance(days=1)  # a new local day
    chat.say("q4", "还有人懂私域吗？")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e1"]


def test_nothing_is_sent_without_a_matching_expert_or_a_question(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat)
    chat.say("q1", "请问明天几点开会？")  # a question nobody's tags touch
    chat.say("q1", "私域真是个好东西，我们今天讨论了很久")  # not a question
    chat.say("q1", "私域?")  # too short
    chat.say("q1", "/ask 私域怎么做？")  # a bot command
    chat.say("q1", "@小王 私域怎么做？", mentions=["e1"])  # already addressed to someone
    chat.say("q1", "私域怎么做？", content_type="image")
    chat.assert_nothing_sent()


def test_never_the_asker_nor_opted_out_nor_departed_members(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=5)
    chat.say("e2", "退出名录")
    chat.leave("e3")
    chat.take()
    chat.say("e1", "请问私域怎么做？")
    chat.assert_nothing_sent()  # e1 asked; e2 opted out; e3 left
    chat.join("e3")
    chat.say("e1", "请问私域怎么做？")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e3"]


def test_only_current_members_of_this_group(make_chat: Make) -> None:
    chat = make_chat({"profile": {"confirm": False}, "microphone": {}}, groups=("g-main", "g-other"))
    chat.say("e1", "城市：上海\n擅长：私域", group="g-other")  # an expert, but never seen in g-main
    chat.take()
    chat.say("q1", "请问私域怎么做？")
    chat.assert_nothing_sent()
    chat.say("q1", "请问私域怎么做？", group="g-other")
    [sent] = chat.assert_sent(playbook="microphone")
    assert sent["group"] == "g-other" and sent["mentions"] == ["e1"]


def test_members_sharing_only_with_admins_are_not_announced(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=5)
    chat.say("e1", "directory admins")
    chat.take()
    chat.say("q1", "请问私域怎么做？")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e2", "e3"]


def test_daily_cap_per_group(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=1, daily_cap=2)
    chat.say("q1", "请问私域怎么做？")
    chat.say("q2", "请问私域怎么做？")
    assert len(chat.sent(playbook="microphone")) == 2
    chat.take()
    chat.say("q3", "请问私域怎么做？")  # e3 is still free, but the group had its two for today
    chat.assert_nothing_sent()


def test_english_questions_match_whole_words(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=2)
    chat.say("q1", "Does anyone use Google Sheets for this")  # "go" is not inside "google"
    chat.assert_nothing_sent()
    chat.say("q1", "how do I profile a Go program")
    [sent] = chat.assert_sent(playbook="microphone")
    assert sent["mentions"] == ["e4"] and "go" in sent["text"]


def test_prefixed_tags_only_when_asked_for(make_chat: Make) -> None:
    chat = make_chat({"profile": {"confirm": False}, "microphone": {"tag_prefixes": ["hobby"]}})
    chat.say("e1", "城市：上海\n爱好：摄影", name="小王")
    chat.take()
    chat.say("q1", "有没有人懂摄影，想买相机")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e1"]
    chat.say("q1", "上海有什么好玩的？")  # city tags are never expertise
    chat.assert_nothing_sent()


def test_erase_forgets_the_expert(make_chat: Make) -> None:
    chat = chat_with_experts(make_chat, experts=1)
    chat.say("q1", "私域怎么做？")
    chat.take()
    assert chat.engine.erase_member("test", "sim", "e1") == []
    assert chat.state("microphone", "m:e1") is None
    chat.advance(days=1)
    chat.say("q1", "私域怎么做？")
    assert chat.assert_sent(playbook="microphone")[0]["mentions"] == ["e2"]


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("这个报错怎么解决", True),
        ("How do I export the data", True),
        ("anyone know a good dentist", True),
        ("今天天气不错吧？ 😀", True),
        ("Is the meetup still on?~", True),
        ("somewhat related note here", False),
        ("我们下午三点开会。", False),
        ("好?", False),
        ("!why is this", False),
    ],
)
def test_question_rules(text: str, question: bool) -> None:
    assert is_question(text, MicrophoneConfig()) is question


def test_matching_tags() -> None:
    tags = {"私域", "go", "data analysis", "c++", "运营"}
    assert matching_tags("想学 Data-Analysis 和 C++，还有私域", tags) == {"data analysis", "c++", "私域"}
    assert matching_tags("google golang", tags) == set()
