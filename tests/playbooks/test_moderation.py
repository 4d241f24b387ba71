"""moderation: every rule, the strike ladder, exemptions, suppression, hostile input."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from qunyun.config import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.testing import Chat, community_config

MakeChat = Callable[..., Chat]

#: What must never appear in the bot's own words (newlines are ours to use).
UNSAFE = re.compile(
    "[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]"
)


def mod(**settings: Any) -> dict[str, Any]:
    return {"moderation": settings}


def types(actions: list[dict[str, Any]]) -> list[str]:
    return [a["type"] for a in actions]


def assert_hit(chat: Chat, msg_id: str, user: str, warning: str, strike: int = 1) -> None:
    """Exactly: the message deleted, then one warning mentioning the sender."""
    actions = chat.take()
    assert types(actions) == ["delete", "send"], actions
    assert actions[0]["msg_id"] == msg_id
    assert actions[1]["mentions"] == [user]
    assert warning in actions[1]["text"]
    assert f"第 {strike} 次" in actions[1]["text"]
    assert all(a["playbook"] == "moderation" for a in actions)


def last_hit(chat: Chat) -> dict[str, Any]:
    hits = chat.records("moderation", "hit")
    assert hits, "no hit was recorded"
    return hits[-1]


# ------------------------------------------------------------------- links


def test_link_is_deleted_warned_and_logged(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    msg = chat.say("u1", "快来看 https://spam.example.cn/deal?id=1", name="小李")
    assert_hit(chat, msg, "u1", "外部链接")
    hit = last_hit(chat)
    assert hit["member"] == "u1"
    assert hit["data"] == {
        "rule": "links",
        "msg_id": msg,
        "excerpt": "快来看 https://spam.example.cn/deal?id=1",
        "strikes": 1,
    }
    assert chat.state("moderation", "m:u1")["strikes"][0]["rule"] == "links"


@pytest.mark.parametrize(
    "text",
    [
        "见 www.spam.cn",
        "百度一下baidu.com就知道",
        "t.me/spamchannel",
        "http://example.com@evil.cn/x",
    ],
)
def test_bare_and_disguised_links_count(make_chat: MakeChat, text: str) -> None:
    chat = make_chat(mod(links={"allow_domains": ["example.com"]}))
    msg = chat.say("u1", text)
    assert_hit(chat, msg, "u1", "外部链接")


def test_allowed_domain_and_its_subdomains_pass(make_chat: MakeChat) -> None:
    chat = make_chat(mod(links={"allow_domains": ["example.com", "*.docs.org"]}))
    chat.say("u1", "文档在 https://example.com/guide")
    chat.say("u2", "also https://wiki.Example.com/a and help.docs.org")
    chat.assert_nothing_sent()
    msg = chat.say("u3", "not this one: https://notexample.com/a")
    assert_hit(chat, msg, "u3", "外部链接")
    msg = chat.say("u4", "nor example.com.evil.cn/x")
    assert_hit(chat, msg, "u4", "外部链接")


def test_dotted_words_that_are_not_links(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "升级到 v1.2.3 了，node.js 和 setup.py 都改了，e.g. readme.md")
    chat.say("u2", "价格是 3.5 元。下次见")
    chat.assert_nothing_sent()


def test_link_cards(make_chat: MakeChat) -> None:
    chat = make_chat(mod(links={"allow_domains": ["mp.weixin.qq.com"]}))
    chat.say("u1", "一篇好文章", content_type="link", url="https://mp.weixin.qq.com/s/abc")
    chat.assert_nothing_sent()
    msg = chat.say("u2", "限时抢购", content_type="link", url="https://shop.cn/x")
    assert_hit(chat, msg, "u2", "外部链接")
    msg = chat.say("u3", "一张看不到地址的卡片", content_type="link")
    assert_hit(chat, msg, "u3", "外部链接")


def test_links_rule_can_be_switched_off(make_chat: MakeChat) -> None:
    chat = make_chat(mod(links=False))
    chat.say("u1", "https://anything.cn")
    chat.assert_nothing_sent()


# --------------------------------------------------------- ads, blacklist


@pytest.mark.parametrize(
    "text", ["加微信领优惠券", "招兼职，日结", "DM me for details", "use PROMO CODE xyz"]
)
def test_default_ad_words(make_chat: MakeChat, text: str) -> None:
    chat = make_chat(mod())
    msg = chat.say("u1", text)
    assert_hit(chat, msg, "u1", "广告")
    assert last_hit(chat)["data"]["rule"] == "ads"


def test_latin_ad_words_need_word_boundaries(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "the DM meeting notes are up")
    chat.say("u2", "promo codex is a project name")
    chat.assert_nothing_sent()


def test_ads_rule_custom_words_and_off(make_chat: MakeChat) -> None:
    chat = make_chat(mod(ads={"keywords": ["团购"]}))
    chat.say("u1", "我是代理")  # not in the custom list any more
    chat.assert_nothing_sent()
    msg = chat.say("u2", "团购价")
    assert_hit(chat, msg, "u2", "广告")


def test_ads_rule_off(make_chat: MakeChat) -> None:
    chat = make_chat(mod(ads=False))
    chat.say("u1", "加微信")
    chat.assert_nothing_sent()


def test_blacklist_is_empty_by_default(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "这个瓜保熟吗")
    chat.assert_nothing_sent()


def test_blacklist_wins_over_ads(make_chat: MakeChat) -> None:
    chat = make_chat(mod(blacklist={"keywords": ["保熟", "代理"]}))
    msg = chat.say("u1", "这个瓜保熟吗")
    assert_hit(chat, msg, "u1", "禁用的词")
    msg = chat.say("u2", "我是代理")  # in both lists: the banned word is named
    assert_hit(chat, msg, "u2", "禁用的词")
    msg = chat.say("u3", "加微信，保熟")  # an ad word first, a banned word later
    assert_hit(chat, msg, "u3", "禁用的词")
    assert last_hit(chat)["data"]["rule"] == "blacklist"


# ----------------------------------------------------------------- contact


@pytest.mark.parametrize(
    "text",
    [
        "有事打我电话 13812345678",
        "电话 138-1234-5678",
        "+86 139 1234 5678",
        "全角 １３８１２３４５６７８",
        "加我 vx: abc12345",
        "V信 zhang_san88",
        "微信号：hello_world",
        "QQ 12345678",
    ],
)
def test_contact_details(make_chat: MakeChat, text: str) -> None:
    chat = make_chat(mod())
    msg = chat.say("u1", text)
    assert_hit(chat, msg, "u1", "联系方式")
    assert last_hit(chat)["data"]["rule"] == "contact"


@pytest.mark.parametrize(
    "text",
    [
        "订单号 2013812345678",
        "wechat payment is convenient",
        "我们用微信沟通吧",
        "wxpython rocks",
        "会议号 12345678901",
    ],
)
def test_not_contact_details(make_chat: MakeChat, text: str) -> None:
    chat = make_chat(mod())
    chat.say("u1", text)
    chat.assert_nothing_sent()


def test_contact_switches(make_chat: MakeChat) -> None:
    chat = make_chat(mod(contact={"phone": False, "patterns": [r"tg\s*@\w{5,}"]}))
    chat.say("u1", "13812345678")
    chat.assert_nothing_sent()
    msg = chat.say("u2", "find me: TG @spammer_bot")
    assert_hit(chat, msg, "u2", "联系方式")


# ---------------------------------------------------------------------- qr


def test_qr_image_flagged_by_the_adapter(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    msg = chat.say("u1", "", content_type="image", qr=True)
    assert_hit(chat, msg, "u1", "二维码")
    chat.say("u2", "", content_type="image")
    chat.say("u3", "", content_type="image", qr=False)
    chat.say("u4", "qr", content_type="text", qr=True)  # only images carry QR codes
    chat.assert_nothing_sent()


def test_qr_rule_off(make_chat: MakeChat) -> None:
    chat = make_chat(mod(qr=False))
    chat.say("u1", "", content_type="image", qr=True)
    chat.assert_nothing_sent()


# ---------------------------------------------------------------- oversize


def test_wall_of_text_and_unwanted_media(make_chat: MakeChat) -> None:
    chat = make_chat(mod(oversize={"max_text_chars": 100, "content_types": ["voice"]}))
    chat.say("u1", "字" * 100)
    chat.assert_nothing_sent()
    msg = chat.say("u2", "字" * 101)
    assert_hit(chat, msg, "u2", "太长")
    msg = chat.say("u3", "", content_type="voice")
    assert_hit(chat, msg, "u3", "太长")


def test_one_megabyte_message(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    big = "长" * 1_000_000
    msg = chat.say("u1", big)
    assert_hit(chat, msg, "u1", "太长")
    hit = last_hit(chat)
    assert hit["data"]["rule"] == "oversize"
    assert len(hit["data"]["excerpt"]) == 80
    assert chat.failures() == []


def test_one_megabyte_message_without_the_size_rule(make_chat: MakeChat) -> None:
    chat = make_chat(mod(oversize=False))
    chat.say("u1", "a. 价格 " * 150_000)
    chat.assert_nothing_sent()
    msg = chat.say("u2", "x" * 1_000_000 + " https://spam.cn")
    assert_hit(chat, msg, "u2", "外部链接")
    assert chat.failures() == []


# ------------------------------------------------------------------- flood


def test_flood_by_rate_just_under_and_over(make_chat: MakeChat) -> None:
    chat = make_chat(mod())  # 6 messages in 10 seconds are fine, the 7th is not
    for i in range(6):
        chat.say("u1", f"第 {i} 句")
        chat.advance(seconds=1)
    chat.assert_nothing_sent()
    msg = chat.say("u1", "第 6 句")  # 6 s after the first: 7 inside the window
    assert_hit(chat, msg, "u1", "刷屏")
    assert last_hit(chat)["data"]["detail"] == "rate"


def test_flood_window_slides(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    for i in range(6):  # t = 0..5
        chat.say("u1", f"第 {i} 句")
        chat.advance(seconds=1)
    chat.advance(seconds=4)  # t = 10: the message at t = 0 has left the window
    chat.say("u1", "again")
    chat.assert_nothing_sent()
    msg = chat.say("u1", "and again")  # t = 10: 1..5 and two now: 7
    assert_hit(chat, msg, "u1", "刷屏")


def test_flood_counts_each_member_and_group_apart(make_chat: MakeChat) -> None:
    chat = make_chat(mod(), groups=["g1", "g2"], group="g1")
    for i in range(6):
        chat.say("u1", f"a{i}", group="g1")
        chat.say("u1", f"b{i}", group="g2")
        chat.say("u2", f"c{i}", group="g1")
    chat.assert_nothing_sent()


def test_quiet_groups_leave_the_flood_state(make_chat: MakeChat) -> None:
    chat = make_chat(mod(), groups=["g1", "g2"], group="g1")
    chat.say("u1", "hi", group="g1")
    chat.say("u1", "hi", group="g2")
    assert set(chat.state("moderation", "m:u1")["flood"]) == {"sim/g1", "sim/g2"}
    chat.advance(seconds=61)
    chat.say("u1", "hello", group="g2")
    assert set(chat.state("moderation", "m:u1")["flood"]) == {"sim/g2"}
    chat.assert_nothing_sent()


def test_flood_by_repetition(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "来人啊")
    chat.advance(seconds=30)
    chat.say("u1", "来人啊")
    chat.advance(seconds=29)  # 59 s after the first: still inside 60 s
    chat.assert_nothing_sent()
    msg = chat.say("u1", " 来人啊 ")
    assert_hit(chat, msg, "u1", "刷屏")
    assert last_hit(chat)["data"]["detail"] == "repeat"


def test_repetition_outside_the_window_is_fine(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "早")
    chat.advance(seconds=30)
    chat.say("u1", "早")
    chat.advance(seconds=30)  # 60 s after the first: it has just left the window
    chat.say("u1", "早")
    chat.assert_nothing_sent()
    msg = chat.say("u1", "早")  # 30 s, 60 s, 60 s: three inside the window
    assert_hit(chat, msg, "u1", "刷屏")


def test_flood_thresholds_are_settings(make_chat: MakeChat) -> None:
    chat = make_chat(mod(flood={"max_messages": 2, "per_seconds": 5, "max_repeats": 2}))
    chat.say("u1", "one")
    chat.say("u1", "two")
    chat.assert_nothing_sent()
    msg = chat.say("u1", "three")
    assert_hit(chat, msg, "u1", "刷屏")
    chat.advance(seconds=10)
    chat.say("u2", "same")
    msg = chat.say("u2", "same")
    assert_hit(chat, msg, "u2", "刷屏")


def test_flood_state_stays_bounded(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    for i in range(120):
        chat.say("u1", f"msg {i % 2}")  # two texts in turn: never three alike in 60 s
        chat.advance(seconds=25)
    chat.assert_nothing_sent()
    window = chat.state("moderation", "m:u1")["flood"]["sim/g-main"]
    assert len(window["t"]) <= 6
    assert len(window["r"]) <= 3
    for i in range(40):  # 30 different texts inside one minute, none too fast
        chat.say("u2", f"line {i}")
        chat.advance(seconds=2)
    chat.assert_nothing_sent()
    window = chat.state("moderation", "m:u2")["flood"]["sim/g-main"]
    assert len(window["t"]) == 5
    assert len(window["r"]) == 12  # 4 x max_repeats
    chat.advance(minutes=5)
    chat.say("u2", "back", group="g-main")
    assert len(chat.state("moderation", "m:u2")["flood"]["sim/g-main"]["r"]) == 1


def test_a_content_hit_is_not_also_a_flood_hit(make_chat: MakeChat) -> None:
    chat = make_chat(mod(max_strikes=0))
    for _ in range(8):
        chat.say("u1", "加微信")
    hits = chat.records("moderation", "hit")
    assert [h["data"]["rule"] for h in hits] == ["ads"] * 8


# ------------------------------------------------------- one strike a message


def test_only_the_first_rule_counts(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    msg = chat.say("u1", "加微信 13812345678 https://spam.cn")
    assert_hit(chat, msg, "u1", "广告")
    hits = chat.records("moderation", "hit")
    assert len(hits) == 1
    assert hits[0]["data"]["rule"] == "ads"
    assert len(chat.state("moderation", "m:u1")["strikes"]) == 1


# ----------------------------------------------------------- strike ladder


def test_three_strikes_remove_the_member(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.join("u1", "小张")
    chat.take()
    msg = chat.say("u1", "https://a.cn")
    assert_hit(chat, msg, "u1", "外部链接", strike=1)
    chat.advance(days=1)
    msg = chat.say("u1", "加微信")
    assert_hit(chat, msg, "u1", "广告", strike=2)
    chat.advance(days=1)
    msg = chat.say("u1", "13812345678")
    actions = chat.take()
    assert types(actions) == ["delete", "send", "remove", "notify_admins"]
    deleted, notice, removal, admins = actions
    assert deleted["msg_id"] == msg
    assert notice["mentions"] == ["u1"]
    assert notice["text"] == "小张 多次违反群规（留联系方式），已移出本群。"
    assert removal["member"] == "u1"
    assert removal["reason"] == "留联系方式：30 天内违规 3 次"
    assert "小张（u1）" in admins["text"]
    assert "13812345678" in admins["text"]
    assert chat.state("moderation", "m:u1") is None  # a fresh start if readmitted
    removed = chat.records("moderation", "removed")
    assert [(r["member"], r["data"]["rule"], r["data"]["strikes"]) for r in removed] == [
        ("u1", "contact", 3)
    ]


def test_strikes_count_across_groups(make_chat: MakeChat) -> None:
    chat = make_chat(mod(max_strikes=2, announce_removal=False), groups=["g1", "g2"], group="g1")
    chat.say("u1", "https://a.cn", group="g1")
    chat.take()
    chat.say("u1", "https://a.cn", group="g2")
    actions = chat.take()
    assert types(actions) == ["delete", "remove", "notify_admins"]
    assert actions[1]["group"] == "g2"


def test_strikes_expire_after_the_window(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "https://a.cn")
    chat.say("u1", "https://b.cn")
    chat.take()
    chat.advance(days=30, seconds=1)
    msg = chat.say("u1", "https://c.cn")
    assert_hit(chat, msg, "u1", "外部链接", strike=1)
    assert len(chat.state("moderation", "m:u1")["strikes"]) == 1


def test_strikes_just_inside_the_window_still_count(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "https://a.cn")
    chat.advance(days=29)
    chat.say("u1", "https://b.cn")
    chat.advance(days=1, seconds=-1)  # 29 d 23:59:59 after the first
    chat.take()
    chat.say("u1", "https://c.cn")
    assert "remove" in types(chat.take())


def test_max_strikes_zero_never_removes(make_chat: MakeChat) -> None:
    chat = make_chat(mod(max_strikes=0))
    for _ in range(5):
        chat.say("u1", "https://a.cn")
        actions = chat.take()
        assert types(actions) == ["delete", "send"]
        assert "次" not in actions[1]["text"]  # no strike counter without a limit


def test_warnings_can_be_silent(make_chat: MakeChat) -> None:
    chat = make_chat(mod(warn=False))
    msg = chat.say("u1", "https://a.cn")
    actions = chat.take()
    assert types(actions) == ["delete"]
    assert actions[0]["msg_id"] == msg


def test_banned_member_rejoining_is_removed_again(make_chat: MakeChat) -> None:
    chat = make_chat(mod(max_strikes=1, ban_on_removal=True), groups=["g1", "g2"], group="g1")
    chat.say("u1", "https://a.cn", group="g1")
    assert "remove" in types(chat.take())
    chat.join("u1", group="g2")
    actions = chat.take()
    assert types(actions) == ["remove", "notify_admins"]
    assert actions[0]["group"] == "g2"
    assert actions[0]["member"] == "u1"
    chat.join("u2", group="g2")
    chat.assert_nothing_sent()


def test_removed_member_without_ban_may_rejoin(make_chat: MakeChat) -> None:
    chat = make_chat(mod(max_strikes=1))
    chat.say("u1", "https://a.cn")
    chat.take()
    chat.join("u1")
    chat.assert_nothing_sent()


# --------------------------------------------------------------- exemptions


def test_exempt_roles_and_allow_list(make_chat: MakeChat) -> None:
    chat = make_chat(
        mod(allow_users=["partner"]),
        roles={"admin": ["boss"], "guest": ["kol"], "assistant": ["helper"], "owner": ["founder"]},
    )
    for uid in ("boss", "kol", "helper", "founder", "partner"):
        chat.say(uid, "活动报名 https://event.cn 加微信 13812345678")
        for _ in range(10):
            chat.say(uid, "刷一下")
    chat.assert_nothing_sent()
    assert chat.records("moderation") == []
    assert chat.state("moderation", "m:boss") is None


def test_exempt_roles_can_be_narrowed(make_chat: MakeChat) -> None:
    chat = make_chat(mod(exempt_roles=["owner"]), roles={"admin": ["boss"]})
    msg = chat.say("boss", "https://a.cn")
    assert_hit(chat, msg, "boss", "外部链接")


# ------------------------------------------------------------ suppression


def test_spam_check_in_does_not_check_in(make_chat: MakeChat) -> None:
    chat = make_chat({"moderation": {}, "checkin": {}})
    msg = chat.say("u1", "打卡 https://spam.cn")
    actions = chat.take()
    assert types(actions) == ["delete", "send"]
    assert {a["playbook"] for a in actions} == {"moderation"}
    assert actions[0]["msg_id"] == msg
    assert chat.points("u1") == 0
    assert chat.state("checkin", "m:u1") is None
    chat.say("u2", "打卡 今天读完一章")  # an honest check-in still works
    chat.assert_sent("连续 1 天", playbook="checkin", count=1)


def test_spam_question_gets_no_answer(make_chat: MakeChat) -> None:
    chat = make_chat(
        {
            "moderation": {},
            "faq": {"entries": [{"keywords": ["价格"], "answer": "价格见群公告"}]},
        }
    )
    chat.say("u1", "价格优惠券大放送")
    assert {a["playbook"] for a in chat.take()} == {"moderation"}
    chat.say("u2", "请问价格？")
    chat.assert_sent("价格见群公告", playbook="faq", count=1)


# ------------------------------------------------------- platform, locale


def test_delete_is_downgraded_where_the_platform_cannot(make_chat: MakeChat) -> None:
    chat = make_chat(mod(), capabilities={"sim": frozenset({"send", "remove", "notify_admins"})})
    msg = chat.say("u1", "https://a.cn")
    actions = chat.take()
    assert types(actions) == ["notify_admins", "send"]
    assert "撤回消息" in actions[0]["text"] and "m-1" in actions[0]["text"]
    assert msg in actions[0]["text"]
    assert actions[1]["mentions"] == ["u1"]


def test_english_community(make_chat: MakeChat) -> None:
    chat = make_chat(mod(), locale="en")
    msg = chat.say("u1", "click https://a.cn", name="Sam")
    actions = chat.take()
    assert types(actions) == ["delete", "send"]
    assert actions[0]["msg_id"] == msg
    assert actions[1]["text"] == (
        "Sam, outside links are not open in this group, so that message was taken down."
        " (warning 1 of 3 within 30 days; at 3 you leave the group)"
    )
    chat.say("u1", "DM me")
    chat.take()
    chat.say("u1", "promo code SAVE10")
    actions = chat.take()
    assert types(actions) == ["delete", "send", "remove", "notify_admins"]
    assert (
        actions[1]["text"]
        == "Sam has been removed after breaking the group rules again (advertising)."
    )
    assert actions[2]["reason"] == "advertising: 3 strikes within 30 days"
    assert actions[3]["text"].startswith(
        "🚫 Removed Sam (u1) from g-main: 3 strikes within 30 days"
    )


def test_templates_can_be_overridden(make_chat: MakeChat) -> None:
    chat = make_chat(
        mod(max_strikes=0),
        templates={"moderation.warn_links": "{name}：链接请发到公告区（第 {strikes} 次，{rule}）"},
    )
    chat.say("u1", "https://a.cn", name="阿明")
    chat.advance(minutes=1)
    chat.say("u1", "https://a.cn")
    actions = chat.take()
    assert [a["text"] for a in actions if a["type"] == "send"] == [
        "阿明：链接请发到公告区（第 1 次，发外部链接）",
        "阿明：链接请发到公告区（第 2 次，发外部链接）",
    ]


# ---------------------------------------------------------- hostile input


def test_hostile_names_and_text_never_reach_bot_words(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    evil = "\u202eevil\u0007\u200f\u2066name\x1b[31m"
    for i in range(3):
        chat.say("u1", f"https://a.cn \u202e{i}\u0000 加\u2067微信\n", name=evil)
        chat.advance(minutes=1)
    actions = chat.take()
    assert "remove" in types(actions)
    for action in actions:
        for field in ("text", "reason"):
            if field in action:
                assert not UNSAFE.search(action[field]), action
    assert "evilname[31m" in actions[-1]["text"]
    excerpt = last_hit(chat)["data"]["excerpt"]
    assert not UNSAFE.search(excerpt)


def test_sql_looking_text_is_only_text(make_chat: MakeChat) -> None:
    chat = make_chat(mod(blacklist={"keywords": ["DROP TABLE"]}))
    chat.say("u1", "Robert'); DELETE FROM members; --", name="x'; DROP TABLE members;--")
    chat.assert_nothing_sent()
    msg = chat.say("u2", "'; drop table playbook_state; --")
    assert_hit(chat, msg, "u2", "禁用的词")
    assert last_hit(chat)["data"]["excerpt"] == "'; drop table playbook_state; --"
    assert chat.scalar("SELECT count(*) FROM members") >= 2
    assert chat.failures() == []


def test_empty_and_system_messages(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "")
    chat.say("u1", "   ")
    chat.say("sys", "https://a.cn 加微信", content_type="system")
    chat.assert_nothing_sent()
    assert chat.failures() == []


# ------------------------------------------------------ configuration


def test_group_overrides_get_their_own_rules(make_chat: MakeChat) -> None:
    chat = make_chat(
        mod(),
        groups=["g1", "g2"],
        group="g1",
        group_overrides={"g2": {"moderation": {"links": {"allow_domains": ["a.cn"]}}}},
    )
    chat.say("u1", "https://a.cn", group="g2")
    chat.assert_nothing_sent()
    chat.say("u2", "https://a.cn", group="g1")
    assert types(chat.take()) == ["delete", "send"]


@pytest.mark.parametrize(
    ("settings", "where", "what"),
    [
        (
            {"links": {"allow_domains": ["https://"]}},
            "moderation.links.allow_domains",
            "not a domain",
        ),
        ({"ads": {"keywords": ["ok", " "]}}, "moderation.ads.keywords", "keyword 2 is empty"),
        ({"exempt_roles": ["boss"]}, "moderation.exempt_roles", "unknown role 'boss'"),
        (
            {"oversize": {"content_types": ["gif"]}},
            "moderation.oversize.content_types",
            "unknown content type",
        ),
        (
            {"contact": {"patterns": ["("]}},
            "moderation.contact.patterns",
            "invalid regular expression",
        ),
        (
            {"flood": {"max_messages": 0}},
            "moderation.flood.max_messages",
            "greater than or equal to 1",
        ),
        ({"max_strike": 3}, "moderation.max_strike", "did you mean 'max_strikes'"),
    ],
)
def test_config_errors_name_the_key(settings: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_text(community_config(mod(**settings)))
    message = str(info.value)
    assert where in message
    assert what in message


# ----------------------------------------------------------------- privacy


def test_erase_member_is_exact(make_chat: MakeChat) -> None:
    chat = make_chat(mod())
    chat.say("u1", "https://a.cn")
    chat.say("u10", "https://a.cn")
    chat.take()
    exported = chat.engine.export_member("test", "sim", "u1")["playbooks"]["moderation"]
    assert list(exported) == ["m:u1"]
    assert exported["m:u1"]["strikes"][0]["rule"] == "links"
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("moderation", "m:u1") is None
    assert chat.state("moderation", "m:u10") is not None  # not a prefix match
    assert chat.engine.export_member("test", "sim", "u1")["playbooks"]["moderation"] == {}
    msg = chat.say("u1", "https://b.cn")
    assert_hit(chat, msg, "u1", "外部链接", strike=1)
