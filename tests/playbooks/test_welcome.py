"""welcome: batched welcomes, the charter every K newcomers, nobody welcomed twice."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from sqlalchemy import insert

from qunyun.config import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.engine import Context
from qunyun.playbooks.welcome import Welcome
from qunyun.store import models as m
from qunyun.testing import Chat, community_config

GKEY = "g:sim:g-main"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"


def welcomes(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The welcome messages among ``actions`` (not the charter)."""
    return [a for a in actions if a["playbook"] == "welcome" and "@" in a["text"]]


def chat_with_titles(
    make_chat, config: Any, titles: dict[str, tuple[str, str]], **options: Any
) -> Chat:
    """A chat whose members ``{uid: (name, title)}`` already hold conferred titles.

    There is no API to confer a title yet, and the engine reads members (with
    their titles) from the database when it starts. So: start once to create
    the community, write the members, and start again on the same database.
    """
    first = make_chat(config, **options)
    with first.db.begin() as conn:
        for uid, (name, title) in titles.items():
            conn.execute(
                insert(m.Member.__table__).values(
                    community_id="test",
                    platform=first.platform,
                    user_id=uid,
                    name=name,
                    title=title,
                    first_seen_at=first.now,
                    last_seen_at=first.now,
                    erased=False,
                )
            )
    return make_chat(config, **options)


def member_op(chat: Chat, op: str, member: str) -> Any:
    """Run ``Welcome.export_member`` / ``erase_member`` the way the engine runs handlers."""
    engine = chat.engine
    group = chat.settings.group(chat.platform, chat.group)
    assert group is not None
    pb = engine.playbook("welcome")
    with engine.transaction():
        layer = engine._layer("welcome", f"{op}:{member}", group.community.id)
        result = getattr(pb, op)(Context(engine, pb, layer, group, chat.now), member)
        engine._merge(layer, group)
    return result


def welcome_job_count(chat: Chat) -> int:
    return int(chat.scalar("SELECT COUNT(*) FROM jobs WHERE playbook = 'welcome'"))


# ------------------------------------------------------------------ batching


def test_batch_goes_out_when_enough_newcomers_are_waiting(make_chat):
    chat = make_chat({"welcome": {}})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.assert_nothing_sent()
    chat.join("u3", "小张")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["type"] == "send"
    assert sent["mentions"] == ["u1", "u2", "u3"]
    assert "@小王、@小李、@小张" in sent["text"]
    assert "测试社群" in sent["text"]
    assert "城市 / 职业 / 擅长 / 想收获" in sent["text"]
    assert "打个招呼" in sent["text"]  # greet_prompt defaults to on
    assert [r["member"] for r in chat.records("welcome", "welcomed")] == ["u1", "u2", "u3"]
    assert chat.state("welcome", GKEY)["pending"] == []
    # The timer started by u1 was cancelled: nothing more, ever.
    assert welcome_job_count(chat) == 0
    chat.advance(minutes=30)
    chat.assert_nothing_sent()
    assert chat.failures() == []


def test_batch_goes_out_minutes_after_the_first_join(make_chat):
    chat = make_chat({"welcome": {}})
    chat.join("u1", "小王")
    chat.advance(minutes=9, seconds=59)
    chat.assert_nothing_sent()
    chat.advance(seconds=1)
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1"]
    assert "@小王" in sent["text"]
    assert chat.records("welcome", "welcomed")[0]["data"]["trigger"] == "time"


def test_timer_runs_from_the_first_waiting_join_not_the_last(make_chat):
    chat = make_chat({"welcome": {"batch_size": 5, "batch_minutes": 10}})
    chat.join("u1", "小王")
    chat.advance(minutes=6)
    chat.join("u2", "小李")
    chat.advance(minutes=3)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)  # 10 minutes after u1, 4 after u2
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1", "u2"]
    # A new round starts its own timer.
    chat.join("u3", "小张")
    chat.advance(minutes=9)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u3"]


def test_count_can_beat_a_running_timer(make_chat):
    chat = make_chat({"welcome": {"batch_size": 3, "batch_minutes": 10}})
    chat.join("u1", "小王")
    chat.advance(minutes=5)
    chat.join("u2", "小李")
    chat.join("u3", "小张")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1", "u2", "u3"]
    chat.advance(minutes=10)
    chat.assert_nothing_sent()
    assert chat.records("welcome", "welcomed")[0]["data"] == {"batch": 3, "trigger": "count"}


def test_batch_size_one_welcomes_at_once(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1}})
    chat.join("u1", "小王")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1"]
    assert welcome_job_count(chat) == 0


def test_repeated_join_event_while_waiting_counts_once(make_chat):
    chat = make_chat({"welcome": {"batch_size": 2}})
    chat.join("u1", "小王")
    chat.join("u1", "小王")
    chat.assert_nothing_sent()
    chat.join("u2", "小李")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1", "u2"]


def test_groups_batch_separately(make_chat):
    chat = make_chat({"welcome": {"batch_size": 2}}, groups=("g-main", "g-two"))
    chat.join("u1", "小王")
    chat.join("u2", "小李", group="g-two")
    chat.assert_nothing_sent()
    chat.join("u3", "小张")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["group"] == "g-main"
    assert sent["mentions"] == ["u1", "u3"]
    chat.advance(minutes=10)
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["group"] == "g-two"
    assert sent["mentions"] == ["u2"]


# --------------------------------------------------------- leaving, rejoining


def test_who_leaves_before_the_batch_is_not_welcomed(make_chat):
    chat = make_chat({"welcome": {"batch_size": 3, "batch_minutes": 10}})
    chat.join("u1", "小王")
    chat.advance(minutes=4)
    chat.join("u2", "小李")
    chat.advance(minutes=1)
    chat.leave("u1")
    # u1 was the earliest: the timer now runs from u2's join (minute 4).
    chat.advance(minutes=5)  # minute 10
    chat.assert_nothing_sent()
    chat.join("u3", "小张")
    chat.assert_nothing_sent()  # two waiting, not three: u1 no longer counts
    chat.advance(minutes=4)  # minute 14
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u2", "u3"]
    assert "小王" not in sent["text"]
    assert [r["member"] for r in chat.records("welcome", "welcomed")] == ["u2", "u3"]


def test_when_everyone_waiting_leaves_the_timer_is_cancelled(make_chat):
    chat = make_chat({"welcome": {}})
    chat.join("u1", "小王")
    assert welcome_job_count(chat) == 1
    chat.leave("u1", by="admin-1")
    assert welcome_job_count(chat) == 0
    chat.advance(hours=1)
    chat.assert_nothing_sent()
    assert chat.records("welcome") == []


def test_leaving_without_waiting_does_nothing(make_chat):
    chat = make_chat({"welcome": {}})
    chat.join("u1", "小王")
    chat.leave("u9")
    chat.assert_nothing_sent()
    assert chat.state("welcome", GKEY)["pending"][0][0] == "u1"


def test_rejoin_is_not_welcomed_again(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1}})
    chat.join("u1", "小王")
    chat.assert_sent(playbook="welcome", count=1)
    chat.leave("u1")
    chat.advance(days=3)
    chat.join("u1", "小王")
    chat.advance(hours=1)
    chat.assert_nothing_sent()
    assert len(chat.records("welcome", "welcomed")) == 1
    assert GKEY in chat.state("welcome", "m:u1")["welcomed"]


def test_rejoin_after_leaving_unwelcomed_is_welcomed(make_chat):
    chat = make_chat({"welcome": {}})
    chat.join("u1", "小王")
    chat.leave("u1")
    chat.join("u1", "小王")
    chat.advance(minutes=10)
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1"]


def test_welcomed_in_one_group_is_still_welcomed_in_another(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1}}, groups=("g-main", "g-two"))
    chat.join("u1", "小王")
    chat.assert_sent(playbook="welcome", count=1)
    chat.join("u1", "小王", group="g-two")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["group"] == "g-two"
    chat.join("u1", "小王", group="g-two")
    chat.assert_nothing_sent()


def test_skipped_roles_are_not_welcomed_nor_counted(make_chat):
    chat = make_chat(
        {"welcome": {"batch_size": 2, "skip_roles": ["admin", "assistant"]}},
        roles={"admin": ["boss"], "assistant": ["bot-1"]},
    )
    chat.join("boss", "群主")
    chat.join("bot-1", "小助手")
    chat.join("u1", "小王")
    chat.assert_nothing_sent()
    chat.join("u2", "小李")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["mentions"] == ["u1", "u2"]
    chat.advance(hours=1)
    chat.assert_nothing_sent()


# -------------------------------------------------------------------- charter


def test_charter_is_posted_again_every_k_newcomers(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1, "charter_every": 2}})
    chat.join("u1", "小王")
    assert len(chat.take()) == 1
    chat.join("u2", "小李")
    welcome, charter = chat.take()
    assert welcome["mentions"] == ["u2"]
    assert charter["playbook"] == "welcome"
    assert charter["mentions"] == []
    for part in ("宗旨", "活动", "禁止", "免打扰"):
        assert part in charter["text"]
    chat.join("u3", "小张")
    assert len(chat.take()) == 1
    chat.join("u4", "小赵")
    assert len(chat.take()) == 2


def test_charter_goes_out_with_the_batch_holding_the_kth_newcomer(make_chat):
    chat = make_chat({"welcome": {}})  # batch 3, charter every 5
    for i in range(1, 4):
        chat.join(f"u{i}", f"成员{i}")
    assert len(chat.take()) == 1
    chat.join("u4", "成员4")
    chat.join("u5", "成员5")  # the 5th newcomer: charter due
    chat.assert_nothing_sent()
    chat.advance(minutes=10)
    welcome, charter = chat.take()
    assert welcome["mentions"] == ["u4", "u5"]
    assert "群公约" in charter["text"]


def test_rejoins_do_not_count_towards_the_charter(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1, "charter_every": 2}})
    chat.join("u1", "小王")
    chat.leave("u1")
    chat.join("u1", "小王")
    chat.take()
    chat.join("u2", "小李")
    assert len(chat.take()) == 2  # u2 is the 2nd newcomer


def test_operator_charter_and_never(make_chat):
    chat = make_chat(
        {
            "welcome": {
                "batch_size": 1,
                "charter_every": 1,
                "charter": {"zh-CN": "只聊产品，不发广告。", "en": "Product talk only."},
            }
        }
    )
    chat.join("u1", "小王")
    _, charter = chat.take()
    assert "只聊产品，不发广告。" in charter["text"]
    assert "宗旨" not in charter["text"]


def test_charter_every_zero_never_posts_it(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1, "charter_every": 0}})
    for i in range(12):
        chat.join(f"u{i}", f"成员{i}")
    sent = chat.take()
    assert len(sent) == 12
    assert all(a["mentions"] for a in sent)


# ------------------------------------------------------------------- wording


def test_titles_decorate_names(make_chat):
    chat = chat_with_titles(make_chat, {"welcome": {"batch_size": 2}}, {"u1": ("小王", "资深运营")})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert "@资深运营 · 小王" in sent["text"]
    assert "@小李" in sent["text"]
    assert "· 小李" not in sent["text"]


def test_intro_template_and_greeting_are_configurable(make_chat):
    chat = make_chat(
        {
            "welcome": {
                "batch_size": 1,
                "intro_template": "昵称 / 城市 / 一个爱好",
                "greet_prompt": False,
            }
        }
    )
    chat.join("u1", "小王")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert "昵称 / 城市 / 一个爱好" in sent["text"]
    assert "城市 / 职业" not in sent["text"]
    assert "打个招呼" not in sent["text"]


def test_templates_can_be_overridden(make_chat):
    chat = make_chat(
        {"welcome": {"batch_size": 1}},
        templates={"welcome.batch": "Hi {names}, {count} of you!"},
    )
    chat.join("u1", "小王")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert sent["text"].startswith("Hi @小王, 1 of you!")


def test_english_community(make_chat):
    chat = chat_with_titles(
        make_chat,
        {"welcome": {"batch_size": 2, "charter_every": 2}},
        {"u1": ("Wang", "Senior operator")},
        locale="en",
    )
    chat.join("u1", "Wang")
    chat.join("u2", "Li")
    welcome, charter = chat.take()
    assert welcome["text"].startswith("🎉 Welcome to 测试社群, @Senior operator · Wang, @Li!")
    assert "city / work" in welcome["text"]
    assert "say hello" in welcome["text"]
    assert "Mute notifications" in charter["text"]
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in welcome["text"].replace("测试社群", ""))


def test_hostile_names_and_titles_are_cleaned(make_chat):
    chat = chat_with_titles(
        make_chat, {"welcome": {"batch_size": 2}}, {"u1": ("\u202e王\u0007小", "\u202e运营\u200f")}
    )
    chat.join("u1", "\u202e王\u0007小")
    # (No NUL here: PostgreSQL refuses NUL in text columns, which the engine
    # does not strip at the edge yet — reported separately.)
    chat.join("u2", "\x7f\x1b[31m红\u2066色\u2069\x85")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    text = sent["text"]
    for ch in text:
        assert ch == "\n" or unicodedata.category(ch) != "Cc", repr(ch)
        assert ch not in BIDI, repr(ch)
    assert "运营 · 王小" in text
    assert "[31m红色" in text


def test_long_names_are_clipped(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1}})
    chat.join("u1", "长" * 500)
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert "长" * 40 not in sent["text"]
    assert "…" in sent["text"]


def test_messages_and_empty_text_are_ignored(make_chat):
    chat = make_chat({"welcome": {}})
    chat.say("u1", "")
    chat.say("u1", "   ")
    chat.say("u1", "大家好")
    chat.advance(hours=1)
    chat.assert_nothing_sent()
    assert chat.failures() == []
    assert chat.state("welcome", GKEY) is None


def test_member_without_a_name_is_welcomed_by_id(make_chat):
    chat = make_chat({"welcome": {"batch_size": 1}})
    chat.join("u-42", "")
    [sent] = chat.assert_sent(playbook="welcome", count=1)
    assert "@u-42" in sent["text"]


# -------------------------------------------------------------------- privacy


def test_export_and_erase_member(make_chat):
    chat = make_chat({"welcome": {"batch_size": 2}})
    chat.join("u1", "小王")
    chat.join("u10", "小十")
    chat.assert_sent(playbook="welcome", count=1)
    chat.join("u1x", "等待中")

    exported = member_op(chat, "export_member", "u1")
    assert list(exported) == ["m:u1"]
    assert GKEY in exported["m:u1"]["welcomed"]
    assert member_op(chat, "export_member", "u1x") == {
        f"{GKEY}:pending": {"joined_at": chat.now.isoformat()}
    }

    member_op(chat, "erase_member", "u1")
    assert chat.state("welcome", "m:u1") is None
    # "m:u1" is a prefix of "m:u10": erasing u1 must not touch u10.
    assert chat.state("welcome", "m:u10") is not None

    member_op(chat, "erase_member", "u1x")
    assert chat.state("welcome", GKEY)["pending"] == []
    chat.advance(minutes=10)
    chat.assert_nothing_sent()
    assert member_op(chat, "export_member", "u1x") == {}


# ----------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_minutes": 0}, "batch_minutes"),
        ({"charter_every": -1}, "charter_every"),
        ({"skip_roles": ["bots"]}, "skip_roles"),
        ({"charter": "  "}, "charter"),
        ({"intro_template": {"en": ""}}, "intro_template"),
        ({"batch_sise": 3}, "batch_sise"),
    ],
)
def test_bad_config_names_the_key(settings, key):
    with pytest.raises(ConfigError) as err:
        settings_from_text(community_config({"welcome": settings}))
    assert f"welcome.{key}" in str(err.value)


def test_defaults_validate_and_are_documented():
    cfg = Welcome.config_model()
    assert (cfg.batch_size, cfg.batch_minutes, cfg.charter_every) == (3, 10, 5)
    assert cfg.greet_prompt is True
    assert cfg.skip_roles == []
    for name, field in Welcome.config_model.model_fields.items():
        assert name == "enabled" or field.description, name
    assert set(Welcome.summary) == {"zh-CN", "en"}
    for name, texts in Welcome.templates.items():
        assert set(texts) == {"zh-CN", "en"}, name
