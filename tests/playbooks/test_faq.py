"""faq: keyword matching, preference, cooldowns per group, configuration errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from qunyun.config import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.testing import Chat, community_config

MakeChat = Callable[..., Chat]

UNSAFE = re.compile(
    "[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]"
)

PRICE = {
    "id": "price",
    "keywords": ["价格", "多少钱", "price"],
    "answer": "课程价格请看群公告第 2 条。",
}
VIP = {"id": "vip", "keywords": ["会员价格"], "answer": "会员一律八折。"}
CAT = {"id": "cat", "keywords": ["cat"], "answer": "Meow."}


def faq(*entries: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"faq": {"entries": list(entries), **settings}}


def answers(chat: Chat) -> list[str]:
    """The texts of the new actions; every one must be an FAQ send."""
    actions = chat.take()
    assert all(a["type"] == "send" and a["playbook"] == "faq" for a in actions), actions
    return [a["text"] for a in actions]


# ---------------------------------------------------------------- matching


def test_a_question_gets_the_answer_as_a_reply(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    msg = chat.say("u1", "请问这个课多少钱呀？")
    actions = chat.take()
    assert len(actions) == 1
    action = actions[0]
    assert action["type"] == "send"
    assert action["playbook"] == "faq"
    assert action["text"] == "课程价格请看群公告第 2 条。"
    assert action["reply_to"] == msg
    assert action["mentions"] == []
    records = chat.records("faq", "answered")
    assert [(r["member"], r["data"]["entry"]) for r in records] == [("u1", "price")]


def test_no_keyword_no_answer(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    chat.say("u1", "今天天气不错")
    chat.say("u1", "")
    chat.say("u1", "", content_type="image")
    chat.assert_nothing_sent()
    assert chat.records("faq") == []


def test_reply_can_be_switched_off(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, reply=False))
    chat.say("u1", "价格？")
    actions = chat.take()
    assert len(actions) == 1
    assert actions[0]["reply_to"] is None


def test_latin_keywords_match_whole_words_only(make_chat: MakeChat) -> None:
    chat = make_chat(faq(CAT, cooldown_minutes=0))
    chat.say("u1", "please concatenate these")
    chat.say("u1", "cats and category")
    chat.say("u1", "bobcat_1")
    chat.say("u1", "a bobcat!")  # only the left edge is inside a word
    chat.assert_nothing_sent()
    chat.say("u1", "my cat.")
    chat.say("u1", "Cat!")
    chat.say("u1", "我的cat呢")  # CJK around a Latin word is a boundary
    assert answers(chat) == ["Meow."] * 3


def test_cjk_keywords_match_anywhere(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    chat.say("u1", "想了解一下价格和时间")
    assert answers(chat) == ["课程价格请看群公告第 2 条。"]


def test_case_and_width_are_ignored_by_default(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, cooldown_minutes=0))
    chat.say("u1", "PRICE please")
    chat.say("u1", "ｐｒｉｃｅ？")  # full-width letters
    assert len(answers(chat)) == 2


def test_case_sensitive(make_chat: MakeChat) -> None:
    chat = make_chat(faq({"keywords": ["API"], "answer": "文档见 wiki"}, case_sensitive=True))
    chat.say("u1", "rapid api changes")
    chat.assert_nothing_sent()
    chat.say("u1", "API 在哪")
    assert answers(chat) == ["文档见 wiki"]


# ------------------------------------------------------------ preference


def test_longest_keyword_wins(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, VIP))  # PRICE is listed first, VIP's keyword is longer
    chat.say("u1", "会员价格是多少")
    assert answers(chat) == ["会员一律八折。"]


def test_entry_order_breaks_ties(make_chat: MakeChat) -> None:
    first = {"id": "time", "keywords": ["时间"], "answer": "每周三晚八点。"}
    second = {"id": "place", "keywords": ["地点"], "answer": "线上腾讯会议。"}
    chat = make_chat(faq(first, second))
    chat.say("u1", "地点和时间？")
    assert answers(chat) == ["每周三晚八点。"]


def test_several_answers_when_allowed(make_chat: MakeChat) -> None:
    first = {"id": "time", "keywords": ["时间"], "answer": "每周三晚八点。"}
    chat = make_chat(faq(first, PRICE, VIP, max_answers_per_message=3))
    chat.say("u1", "会员价格和时间")
    # 价格 inside 会员价格 does not answer a second time
    assert answers(chat) == ["会员一律八折。", "每周三晚八点。"]
    recorded = [r["data"]["entry"] for r in chat.records("faq", "answered")]
    assert recorded == ["vip", "time"]


def test_shorter_keyword_elsewhere_still_counts(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, VIP, max_answers_per_message=2))
    chat.say("u1", "会员价格？普通价格？")
    assert answers(chat) == ["会员一律八折。", "课程价格请看群公告第 2 条。"]


# -------------------------------------------------------------- cooldown


def test_cooldown_is_per_group(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE), groups=["g1", "g2"], group="g1")
    chat.say("u1", "价格？", group="g1")
    assert len(answers(chat)) == 1
    chat.say("u2", "价格多少", group="g1")
    chat.assert_nothing_sent()
    msg = chat.say("u3", "价格多少", group="g2")
    actions = chat.take()
    assert [(a["group"], a["reply_to"]) for a in actions] == [("g2", msg)]


def test_cooldown_expires(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    chat.say("u1", "价格？")
    chat.take()
    chat.advance(minutes=29, seconds=59)
    chat.say("u2", "价格？")
    chat.assert_nothing_sent()
    chat.advance(seconds=1)  # 30 minutes after the answer
    chat.say("u3", "价格？")
    assert len(answers(chat)) == 1


def test_cooldown_is_per_entry(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, VIP))
    chat.say("u1", "价格？")
    chat.say("u1", "会员价格？")
    assert answers(chat) == ["课程价格请看群公告第 2 条。", "会员一律八折。"]


def test_an_entry_may_override_the_cooldown(make_chat: MakeChat) -> None:
    rules = {"id": "rules", "keywords": ["群规"], "answer": "群规见公告。", "cooldown_minutes": 0}
    slow = {
        "id": "slow",
        "keywords": ["退款"],
        "answer": "退款请私信助教。",
        "cooldown_minutes": 120,
    }
    chat = make_chat(faq(rules, slow))
    chat.say("u1", "群规")
    chat.say("u2", "群规")
    assert len(answers(chat)) == 2
    chat.say("u1", "退款")
    chat.take()
    chat.advance(minutes=90)  # past the playbook's 30 minutes, not the entry's 120
    chat.say("u2", "退款")
    chat.assert_nothing_sent()
    chat.advance(minutes=30)
    chat.say("u3", "退款")
    assert answers(chat) == ["退款请私信助教。"]


def test_cooldown_survives_a_restart(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    chat.say("u1", "价格？")
    chat.take()
    assert chat.state("faq", "cd:sim:g-main:price") == chat.now.isoformat()
    again = make_chat(faq(PRICE))  # a new engine on the same database
    again.say("u2", "价格？", id="after-restart-1")
    again.assert_nothing_sent()
    assert again.outcomes[-1].status == "handled"


# -------------------------------------------------------------- locales


def test_answer_in_the_community_language(make_chat: MakeChat) -> None:
    entry = {
        "keywords": ["price", "价格"],
        "answer": {"zh-CN": "见公告。", "en": "See the pinned note."},
    }
    chat = make_chat(faq(entry), locale="en")
    chat.say("u1", "what's the price?")
    assert answers(chat) == ["See the pinned note."]


def test_answer_falls_back_to_the_language_it_has(make_chat: MakeChat) -> None:
    entry = {"keywords": ["price"], "answer": {"zh-CN": "见公告。"}}
    chat = make_chat(faq(entry), locale="en")
    chat.say("u1", "price?")
    assert answers(chat) == ["见公告。"]


def test_answer_template_with_hostile_name(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE), templates={"faq.answer": "{name}：{answer}"})
    chat.say("u1", "价格", name="\u202e管理员\u0007\u2066")
    (text,) = answers(chat)
    assert text == "管理员：课程价格请看群公告第 2 条。"
    assert not UNSAFE.search(text)


# ---------------------------------------------------------- hostile input


def test_one_megabyte_message(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE, VIP, max_answers_per_message=2))
    chat.say("u1", "价格" * 500_000)
    assert answers(chat) == ["课程价格请看群公告第 2 条。"]
    chat.say("u2", "x" * 1_000_000)
    chat.assert_nothing_sent()
    assert chat.failures() == []


def test_sql_looking_text(make_chat: MakeChat) -> None:
    entry = {"id": "drop", "keywords": ["DROP TABLE"], "answer": "'; SELECT 1; --"}
    chat = make_chat(faq(entry))
    chat.say("u1", "x'); DROP TABLE members; --", name="Robert'); --")
    assert answers(chat) == ["'; SELECT 1; --"]
    assert chat.scalar("SELECT count(*) FROM members") == 1
    assert chat.failures() == []


# --------------------------------------------------------- configuration


def test_entry_ids_default_to_their_position(make_chat: MakeChat) -> None:
    chat = make_chat(faq({"keywords": ["a1"], "answer": "A"}, {"keywords": ["b2"], "answer": "B"}))
    chat.say("u1", "b2")
    chat.take()
    assert chat.records("faq", "answered")[0]["data"]["entry"] == "entry-2"


@pytest.mark.parametrize(
    ("settings", "where", "what"),
    [
        (
            faq(
                {"id": "x", "keywords": ["a"], "answer": "1"},
                {"id": "x", "keywords": ["b"], "answer": "2"},
            ),
            "faq.entries",
            "entries 1 and 2 both have the id 'x'",
        ),
        (faq({"keywords": [], "answer": "1"}), "faq.entries.0.keywords", "at least 1 item"),
        (
            faq({"keywords": ["ok", "  "], "answer": "1"}),
            "faq.entries.0.keywords",
            "keyword 2 is empty",
        ),
        (
            faq(
                {"id": "a", "keywords": ["Price"], "answer": "1"},
                {"id": "b", "keywords": ["price"], "answer": "2"},
            ),
            "faq.entries",
            "keyword 'price' of entry 'b' is already a keyword of entry 'a'",
        ),
        (faq({"keywords": ["a"], "answer": " "}), "faq.entries.0.answer", "the answer is empty"),
        (faq({"keywords": ["a"]}), "faq.entries.0.answer", "required key is missing"),
        (
            faq({"id": "bad id!", "keywords": ["a"], "answer": "1"}),
            "faq.entries.0.id",
            "must be 1-64 letters",
        ),
        (
            faq({"keywords": ["a"], "answer": "1"}, cooldown_minutes=-1),
            "faq.cooldown_minutes",
            "greater than",
        ),
        ({"faq": {"entrys": []}}, "faq.entrys", "did you mean 'entries'"),
    ],
)
def test_config_errors_name_the_key(settings: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_text(community_config(settings))
    message = str(info.value)
    assert where in message
    assert what in message


def test_same_keyword_in_two_cases_is_fine_when_case_sensitive() -> None:
    settings = settings_from_text(
        community_config(
            faq(
                {"id": "a", "keywords": ["Price"], "answer": "1"},
                {"id": "b", "keywords": ["price"], "answer": "2"},
                case_sensitive=True,
            )
        )
    )
    group = next(iter(settings.communities["test"].groups.values()))
    assert [e.id for e in group.playbooks["faq"].entries] == ["a", "b"]


def test_each_group_uses_its_own_entries(make_chat: MakeChat) -> None:
    chat = make_chat(
        faq(PRICE),
        groups=["g1", "g2"],
        group="g1",
        group_overrides={"g2": {"faq": {"entries": [CAT]}}},
    )
    chat.say("u1", "价格 cat", group="g1")
    chat.say("u1", "价格 cat", group="g2")
    assert [(a["group"], a["text"]) for a in chat.take()] == [
        ("g1", "课程价格请看群公告第 2 条。"),
        ("g2", "Meow."),
    ]


# ---------------------------------------------------------------- privacy


def test_erase_member_keeps_only_anonymous_cooldowns(make_chat: MakeChat) -> None:
    chat = make_chat(faq(PRICE))
    chat.say("u1", "价格")
    chat.take()
    assert chat.engine.export_member("test", "sim", "u1")["playbooks"] == {"faq": {}}
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("faq", "cd:sim:g-main:price") is not None
    assert chat.failures() == []


# ----------------------------------------------------------------- the cache


def test_compiled_keywords_are_cached_per_config_and_shared_by_equal_ones() -> None:
    import gc

    from qunyun.playbooks.faq import ConfigCache, FaqConfig

    builds: list[FaqConfig] = []

    def build(cfg: FaqConfig) -> list[str]:
        builds.append(cfg)
        return [k for e in cfg.entries for k in e.keywords]

    cache: ConfigCache[FaqConfig, list[str]] = ConfigCache(build)
    one = FaqConfig.model_validate({"entries": [PRICE]})
    twin = FaqConfig.model_validate({"entries": [PRICE]})
    other = FaqConfig.model_validate({"entries": [CAT]})
    assert cache.get(one) is cache.get(one)
    assert cache.get(twin) is cache.get(one)  # same content: built once
    assert cache.get(other) == ["cat"]
    assert len(builds) == 2
    del one, twin, builds[:]
    gc.collect()
    assert len(cache._by_id) == 1  # entries of dead configurations are dropped
