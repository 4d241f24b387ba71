"""profile: intros parsed into profiles and tags, missing fields asked once, verification,
the directory's sharing levels and opt-outs, operator commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.playbooks.profile import ProfileConfig, normalize_tag, parse_intro, profile_of, tags_of
from qunyun.testing import Chat

Make = Callable[..., Chat]


def card(chat: Chat, uid: str) -> dict[str, Any]:
    return chat.state("profile", f"m:{uid}")


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "text",
    [
        "城市：上海\n擅长：运营",  # full-width colons
        "城市:上海\n擅长: 运营",  # half-width
        "所在地：上海\n专长：运营",  # synonyms
        "City: 上海\nSkills: 运营",  # English labels, any case
        "【城市】上海\n【擅长】运营",  # brackets
        "【城市】上海【擅长】运营",  # two brackets on one line
        "- **城市** ： 上海\n* 擅长 = 运营",  # list markers, bold, spaces, '='
        "#自我介绍 大家好！\n坐标：上海\n特长：运营\n时间：晚上有空",  # keyword, an unknown label
    ],
)
def test_intro_variants_are_understood(make_chat: Make, text: str) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", text, name="小王")
    fields = card(chat, "u1")["fields"]
    assert fields == {"city": "上海", "expertise": "运营"}
    chat.assert_sent("已记下 小王 的名片：擅长、城市", playbook="profile", count=1)


def test_english_intro_with_keyword_and_tags(make_chat: Make) -> None:
    chat = make_chat({"profile": {}}, locale="en")
    chat.say("u1", "#intro\nLocation: Shanghai\nGood at: Data Analysis, ＰＹＴＨＯＮ/SQL\nHobbies: hiking")
    st = card(chat, "u1")
    assert st["fields"]["expertise"] == "Data Analysis, ＰＹＴＨＯＮ/SQL"
    assert st["tags"] == ["city:shanghai", "data analysis", "hobby:hiking", "python", "sql"]
    chat.assert_sent("your card now has Expertise, Hobbies, City", count=1)


def test_chinese_values_split_on_separators_and_spaces(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", "城市：深圳\n擅长：社群运营、增长 私域；直播,短视频")
    assert set(card(chat, "u1")["tags"]) == {"city:深圳", "社群运营", "增长", "私域", "直播", "短视频"}


def test_a_single_line_or_a_conversation_is_not_an_intro(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", "城市：上海")
    chat.say("u1", "会议时间：明天 10:00\n地点：3楼")
    chat.say("u1", "看这个 https://example.com/a:b")
    chat.assert_nothing_sent()
    assert card(chat, "u1") is None


def test_a_later_intro_updates_only_what_it_says(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", "城市：上海\n擅长：运营\n爱好：摄影")
    chat.say("u1", "城市：杭州\n行业：电商")
    fields = card(chat, "u1")["fields"]
    assert fields == {"city": "杭州", "expertise": "运营", "hobbies": "摄影", "industry": "电商"}
    assert "city:上海" not in card(chat, "u1")["tags"] and "city:杭州" in card(chat, "u1")["tags"]


# --------------------------------------------------------- missing fields


def test_missing_required_fields_are_asked_once_by_direct_message(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    chat.say("u1", "#自我介绍\n职位：设计师\n爱好：猫", name="小李")
    [dm] = chat.assert_sent(type="direct", count=1)
    assert dm["member"] == "u1"
    assert "擅长、城市" in dm["text"] and "擅长：…" in dm["text"]
    chat.say("u1", "#自我介绍\n职位：资深设计师\n爱好：猫、狗")  # still missing: not asked again
    assert chat.sent(type="direct") == []
    chat.take()
    chat.say("u1", "城市：成都")  # one line is enough to fill in what was asked for
    chat.assert_sent("已记下 小李 的名片：城市", count=1)
    assert card(chat, "u1")["fields"]["city"] == "成都"
    chat.say("u1", "行业：游戏")  # but not any single line: nothing was asked about it
    chat.assert_nothing_sent()
    assert "industry" not in card(chat, "u1")["fields"]


def test_a_keyword_with_no_fields_asks_for_the_format(make_chat: Make) -> None:
    chat = make_chat({"profile": {}}, locale="en")
    chat.say("u1", "#intro hi all, glad to be here!")
    [dm] = chat.assert_sent(type="direct", count=1)
    assert "Expertise, City" in dm["text"]
    assert chat.sent(type="send") == []


def test_asking_can_be_switched_off(make_chat: Make) -> None:
    chat = make_chat({"profile": {"ask_missing": False, "confirm": False}})
    chat.say("u1", "#自我介绍\n职位：设计师")
    chat.assert_nothing_sent()
    assert card(chat, "u1")["fields"] == {"position": "设计师"}


# --------------------------------------------------------- hostile input


def test_a_ten_thousand_field_intro_is_cheap_and_bounded(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    junk = "\n".join(f"城市：c{i}" if i % 2 == 0 else f"擅长：e{i}" for i in range(10_000))
    chat.say("u1", junk + "\n行业：在最后")
    st = card(chat, "u1")
    # max_fields (30) lines are read; the later ones are never looked at
    assert st["fields"] == {"city": "c28", "expertise": "e29"}
    assert chat.failures() == []


def test_only_the_head_of_a_long_message_is_read() -> None:
    cfg = ProfileConfig()
    text = "x" * 5000 + "\n城市：上海\n擅长：运营"
    assert parse_intro(text, cfg) == (False, {})
    assert parse_intro("城市：上海\n擅长：运营", cfg) == (False, {"city": "上海", "expertise": "运营"})


def test_hostile_markup_is_stored_as_text_clipped_and_never_interpreted(make_chat: Make) -> None:
    chat = make_chat({"profile": {"sharing": "open"}})
    chat.say("u1", "城市：<script>alert(1)</script>{name}\u202e\u0007\n擅长：" + "长" * 1000, name="<b>W</b>")
    st = card(chat, "u1")
    assert st["fields"]["city"] == "<script>alert(1)</script>{name}"
    assert len(st["fields"]["expertise"]) == 120 and st["fields"]["expertise"].endswith("…")
    chat.take()
    chat.say("u2", "找 script")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "<script>alert(1)</script>{name}" in reply["text"]  # shown literally, not filled in
    assert "\u202e" not in reply["text"] and "\u0007" not in reply["text"]
    assert chat.failures() == []


# -------------------------------------------------------------- tags helpers


class _FakeState:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class _FakeCtx:
    def __init__(self, **by_playbook: dict[str, Any]) -> None:
        self.by_playbook = by_playbook

    def state_of(self, pid: str) -> _FakeState:
        return _FakeState(self.by_playbook.get(pid, {}))


def test_profile_of_merges_the_gate_answers_and_tags_of_normalises() -> None:
    stored = {"fields": {"city": "上海"}, "tags": ["City:上海", " ＡＩ ", "", 7], "verified": True,
              "sharing": None, "opt_out": False, "updated": "x"}
    ctx: Any = _FakeCtx(profile={"m:u1": stored}, gate={"m:u1": {"answers": {"为什么加入？": "学习"}},
                                                         "m:u2": {"answers": {"q": "a"}}})
    p = profile_of(ctx, "u1")
    assert p is not None and p["fields"] == {"city": "上海"} and p["verified"] is True
    assert p["application"] == {"为什么加入？": "学习"}
    assert tags_of(ctx, "u1") == {"city:上海", "ai"}
    only_gate = profile_of(ctx, "u2")
    assert only_gate is not None and only_gate["fields"] == {} and only_gate["application"] == {"q": "a"}
    assert profile_of(ctx, "u3") is None and tags_of(ctx, "u3") == set()
    assert normalize_tag("  Ｐｙｔｈｏｎ   开发 ") == "python 开发"


# ------------------------------------------------------------- verification


def test_verification_by_an_admin_in_chat_and_refused_for_others(make_chat: Make) -> None:
    chat = make_chat({"profile": {}}, roles={"admin": ["boss"]})
    chat.join("u1", "小王")
    chat.say("u2", "认证 @小王", mentions=["u1"], name="路人")
    chat.assert_sent("只能由管理员", count=1)
    assert card(chat, "u1") is None
    assert chat.records("profile", "verify_refused")[0]["member"] == "u2"
    chat.say("boss", "认证 @小王", mentions=["u1"])
    chat.assert_sent("✅ 小王 已通过认证", count=1)
    assert card(chat, "u1")["verified"] is True
    chat.say("boss", "取消认证 @小王", mentions=["u1"])
    chat.assert_sent("已取消 小王 的认证", count=1)
    assert card(chat, "u1")["verified"] is False
    chat.say("boss", "认证一下流程是什么")  # no mention: not a command
    chat.assert_nothing_sent()


def test_verify_command(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    assert chat.command("profile", "verify", member="u1") == {"member": "u1", "verified": True}
    assert card(chat, "u1")["verified"] is True
    with pytest.raises(CommandError, match="needs member"):
        chat.command("profile", "verify")
    with pytest.raises(CommandError, match="true or false"):
        chat.command("profile", "verify", member="u1", verified="yes")


# ----------------------------------------------------------- the directory


def _directory(make_chat: Make, sharing: str, **options: Any) -> Chat:
    chat = make_chat({"profile": {"sharing": sharing}}, **options)
    chat.say("u1", "城市：上海\n擅长：运营\n公司：星辰科技", name="小王")
    chat.say("u2", "城市：上海\n擅长：设计", name="小李")
    chat.say("u3", "城市：北京\n擅长：运营", name="老张")
    chat.take()
    return chat


def test_open_level_shows_names_and_everything(make_chat: Make) -> None:
    chat = _directory(make_chat, "open")
    chat.say("u9", "找 上海 运营")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "找到 1 位" in reply["text"] and "小王" in reply["text"] and "星辰科技" in reply["text"]
    assert reply["mentions"] == []  # nobody is pinged by a search
    chat.say("u9", "找 星辰")  # the company is searchable at the open level
    chat.assert_sent("小王", count=1)


def test_community_level_hides_names_and_private_fields_from_members(make_chat: Make) -> None:
    chat = _directory(make_chat, "community")
    chat.say("u9", "找 上海 运营")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "一位成员" in reply["text"] and "管理员引荐" in reply["text"]
    assert "小王" not in reply["text"] and "星辰科技" not in reply["text"]
    chat.say("u9", "找 星辰")  # a private field cannot be searched either: it would reveal it
    chat.assert_sent("没有符合「星辰」", count=1)
    rows = chat.command("profile", "search", text="上海", viewer_role="member")["rows"]
    assert [r["name"] for r in rows] == [None, None]
    assert all("company" not in r["fields"] and r["member"] is None for r in rows)
    rows = chat.command("profile", "search", text="星辰", viewer_role="admin")["rows"]
    assert [(r["member"], r["name"], r["fields"]["company"]) for r in rows] == [("u1", "小王", "星辰科技")]


def test_admins_see_everything_in_the_admins_group_only(make_chat: Make) -> None:
    from qunyun.config.model import settings_from_text

    yaml_text = """
communities:
  - id: test
    name: 测试社群
    roles: {admin: [boss]}
    groups: [{id: g-main}, {id: g-admins, admin: true}]
    playbooks: {profile: {sharing: community}}
"""
    chat = make_chat(settings_from_text(yaml_text))
    chat.say("u1", "城市：上海\n擅长：运营\n公司：星辰科技", name="小王")
    chat.take()
    chat.say("boss", "找 星辰")  # in the main group even an admin gets the members' view
    chat.assert_sent("没有符合", count=1)
    chat.say("boss", "找 星辰", group="g-admins")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "小王" in reply["text"] and "星辰科技" in reply["text"] and reply["group"] == "g-admins"


def test_admins_level_closes_the_directory_to_members(make_chat: Make) -> None:
    chat = _directory(make_chat, "admins", locale="en")
    chat.say("u9", "find 上海")
    chat.assert_sent("open to admins only", count=1)
    result = chat.command("profile", "search", city="上海", viewer_role="member")
    assert result["rows"] == [] and result["admins_only"] is True
    rows = chat.command("profile", "search", city="上海", viewer_role="admin")["rows"]
    assert sorted(r["member"] for r in rows) == ["u1", "u2"]


def test_a_member_chooses_their_own_level(make_chat: Make) -> None:
    chat = _directory(make_chat, "community")
    chat.say("u1", "名录 公开")
    chat.assert_sent("对所有人完全公开", count=1)
    chat.say("u2", "directory admins")
    chat.assert_sent("只对管理员可见", count=1)
    chat.say("u9", "找 上海")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "找到 1 位" in reply["text"] and "小王" in reply["text"] and "星辰科技" in reply["text"]
    assert card(chat, "u1")["sharing"] == "open" and card(chat, "u2")["sharing"] == "admins"


def test_opt_out_and_back_in(make_chat: Make) -> None:
    chat = _directory(make_chat, "open")
    chat.say("u2", "加入名录")  # never left: nothing to say
    chat.assert_nothing_sent()
    chat.say("u1", "退出名录")
    chat.assert_sent("你已退出成员名录", count=1)
    chat.say("u1", "退出名录")  # already out: nothing more to say
    chat.assert_nothing_sent()
    chat.say("u9", "找 运营")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "老张" in reply["text"] and "小王" not in reply["text"]
    assert [r["member"] for r in chat.command("profile", "search", expertise="运营")["rows"]] == ["u3"]
    chat.say("u1", "加入名录")
    chat.assert_sent("欢迎回到成员名录", count=1)
    chat.advance(minutes=1)  # the same command at the same instant would be a retry (a duplicate)
    assert sorted(r["member"] for r in chat.command("profile", "search", expertise="运营")["rows"]) == ["u1", "u3"]


def test_search_criteria_and_ordering(make_chat: Make) -> None:
    chat = _directory(make_chat, "open")
    chat.command("profile", "verify", member="u3")
    search = chat.command
    assert [r["member"] for r in search("profile", "search", expertise="运营")["rows"]] == ["u3", "u1"]
    assert [r["member"] for r in search("profile", "search", tag="City:北京")["rows"]] == ["u3"]
    assert [r["member"] for r in search("profile", "search", city="上海", expertise="设计")["rows"]] == ["u2"]
    assert search("profile", "search", text="上海 nothing-like-this")["rows"] == []
    assert search("profile", "search", text="上海", limit=1)["count"] == 2
    with pytest.raises(CommandError, match="viewer_role"):
        search("profile", "search", viewer_role="boss")
    chat.say("u9", "找 火星")
    chat.assert_sent("没有符合「火星」", count=1)
    chat.say("u9", "找不到我的文件了")  # no space after the keyword: just chat
    chat.say("u9", "find out more about the meetup tonight please")  # too many words for a search
    chat.assert_nothing_sent()


def test_search_reply_is_bounded(make_chat: Make) -> None:
    chat = make_chat({"profile": {"sharing": "open", "search_limit": 2}}, locale="en")
    for i in range(4):
        chat.say(f"u{i}", f"city: Oslo\nexpertise: skiing {i}")
    chat.take()
    chat.say("u9", "find oslo")
    [reply] = chat.assert_sent(playbook="profile", count=1)
    assert "4 found" in reply["text"] and "and 2 more" in reply["text"]


# ------------------------------------------------------------------ commands


def test_set_command_changes_fields_and_tags_or_refuses_whole(make_chat: Make) -> None:
    chat = make_chat({"profile": {}})
    result = chat.command("profile", "set", member="u1", fields={"city": "广州", "expertise": "法务、财税"},
                          sharing="open")
    assert result["profile"]["tags"] == ["city:广州", "法务", "财税"]
    assert card(chat, "u1")["sharing"] == "open"
    chat.command("profile", "set", member="u1", fields={"city": None})
    assert card(chat, "u1")["fields"] == {"expertise": "法务、财税"}
    with pytest.raises(CommandError, match="unknown profile field 'cty'"):
        chat.command("profile", "set", member="u1", fields={"expertise": "新的", "cty": "x"})
    assert card(chat, "u1")["fields"] == {"expertise": "法务、财税"}  # nothing of it was kept
    with pytest.raises(CommandError, match="sharing"):
        chat.command("profile", "set", member="u1", sharing="everyone")
    shown = chat.command("profile", "show", member="u1")
    assert shown["profile"]["fields"] == {"expertise": "法务、财税"}
    assert chat.command("profile", "show", member="nobody")["profile"] is None
    with pytest.raises(CommandError, match="no command"):
        chat.command("profile", "fly", member="u1")
    chat.assert_nothing_sent()


# ------------------------------------------------------------- configuration


def test_custom_fields_and_invalid_settings() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    good = {"fields": [{"id": "school", "labels": {"zh-CN": "学校", "en": "School"}, "synonyms": ["母校"],
                        "is_tag": True, "tag_prefix": "school", "required": True}]}
    settings_from_text(community_config({"profile": good}))
    for bad, needle in (
        ({"fields": []}, "at least one profile field"),
        ({"fields": [good["fields"][0], {**good["fields"][0], "id": "uni"}]}, "belongs to both"),
        ({"fields": [{"id": "Bad Id", "labels": {"en": "x"}}]}, "fields.0.id"),
        ({"fields": [{"id": "x", "labels": {"en": " "}}]}, "non-empty label"),
        ({"fields": [{"id": "x", "labels": {"en": "X"}, "tag_prefix": "City!"}]}, "tag_prefix"),
        ({"sharing": "public"}, "sharing"),
        ({"search_keywords": [""]}, "non-empty"),
        ({"opt_in_keywords": ["退出名录"]}, "must not share"),
        ({"shareing": "open"}, "did you mean 'sharing'"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"profile": bad}))
        assert needle in str(err.value), str(err.value)


def test_custom_fields_work_end_to_end(make_chat: Make) -> None:
    fields = [{"id": "school", "labels": {"zh-CN": "学校", "en": "School"}, "synonyms": ["母校"], "is_tag": True,
               "tag_prefix": "school"},
              {"id": "major", "labels": {"zh-CN": "专业", "en": "Major"}, "is_tag": True, "required": True}]
    chat = make_chat({"profile": {"fields": fields, "min_fields": 1}})
    chat.say("u1", "母校：复旦")
    st = card(chat, "u1")
    assert st["fields"] == {"school": "复旦"} and st["tags"] == ["school:复旦"]
    [dm] = chat.assert_sent(type="direct")
    assert "专业" in dm["text"]
