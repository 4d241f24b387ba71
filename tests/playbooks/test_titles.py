"""titles: admins confer and revoke titles in the chat or by command; nobody else can."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
ROLES = {"owner": ["boss"], "admin": ["adm"], "assistant": ["helper"]}


def test_an_admin_confers_a_title_and_the_group_is_told(make_chat: Make) -> None:
    chat = make_chat({"titles": {}}, roles=ROLES)
    chat.join("u1", "小王")
    chat.take()
    chat.say("adm", "册封 @小王 活跃之星", mentions=["u1"])
    [sent] = chat.assert_sent("恭喜 @小王 被册封为「活跃之星」", playbook="titles")
    assert sent["mentions"] == ["u1"]
    st = chat.state("titles", "m:u1")
    assert st["title"] == "活跃之星" and st["by"] == "adm" and st["ts"].startswith("2026-11-02T09:00")
    chat.say("u1", "我的头衔")
    chat.assert_sent("小王 的头衔：「活跃之星」")
    chat.say("boss", "册封 @小王 群助理", mentions=["u1"])  # replaces the old one
    chat.take()
    assert chat.state("titles", "m:u1")["title"] == "群助理"
    [first, second] = chat.records("titles", "conferred")
    assert second["data"]["previous"] == "活跃之星" and first["data"]["previous"] is None


def test_only_the_configured_roles_may_confer_or_revoke(make_chat: Make) -> None:
    chat = make_chat({"titles": {}}, roles=ROLES)
    chat.say("u2", "册封 @小王 活跃之星", mentions=["u1"])
    chat.say("helper", "册封 @小王 活跃之星", mentions=["u1"])  # assistants may not, by default
    chat.assert_nothing_sent()
    assert chat.state("titles", "m:u1") is None
    chat.say("adm", "册封 @小王 活跃之星", mentions=["u1"])
    chat.take()
    chat.say("u2", "撤销头衔 @小王", mentions=["u1"])
    chat.assert_nothing_sent()
    assert chat.state("titles", "m:u1")["title"] == "活跃之星"
    chat.say("adm", "撤销头衔 @小王", mentions=["u1"])
    chat.assert_sent("头衔「活跃之星」已撤销")
    assert chat.state("titles", "m:u1") is None
    chat.say("adm", "撤销头衔 @小王", mentions=["u1"])  # nothing to revoke: quiet
    chat.assert_nothing_sent()


def test_more_roles_can_be_allowed(make_chat: Make) -> None:
    chat = make_chat({"titles": {"roles": ["owner", "admin", "assistant"]}}, roles=ROLES)
    chat.say("helper", "册封 @小王 活跃之星", mentions=["u1"])
    chat.assert_sent("活跃之星")


def test_usage_length_allowed_list_and_plain_chat(make_chat: Make) -> None:
    chat = make_chat({"titles": {"allowed": ["活跃之星", "群助理"], "max_length": 6}}, roles=ROLES)
    chat.say("adm", "册封仪式很隆重")  # not the keyword followed by a blank or an @
    chat.assert_nothing_sent()
    chat.say("adm", "册封 活跃之星")  # nobody mentioned
    chat.assert_sent("用法")
    chat.say("adm", "册封 @小王", mentions=["u1"])  # no title
    chat.assert_sent("用法")
    chat.say("adm", "册封 @小王 一个特别特别长的头衔", mentions=["u1"])
    chat.assert_sent("最多 6 个字")
    chat.say("adm", "册封 @小王 大神", mentions=["u1"])
    chat.assert_sent("不在可册封的头衔里。可选：活跃之星、群助理")
    assert chat.state("titles", "m:u1") is None
    chat.say("adm", "册封 @小王 @小李 群助理", mentions=["u1", "u2"])
    chat.assert_sent("群助理", count=2)
    assert chat.state("titles", "m:u2")["title"] == "群助理"


def test_hostile_titles_are_cleaned(make_chat: Make) -> None:
    chat = make_chat({"titles": {}}, roles=ROLES)
    chat.say("adm", "册封 @x \u202e明星\u0007", mentions=["u1"])
    [sent] = chat.assert_sent()
    assert "\u202e" not in sent["text"] and "\u0007" not in sent["text"]
    assert chat.state("titles", "m:u1")["title"] == "明星"


def test_commands_confer_revoke_and_list(make_chat: Make) -> None:
    chat = make_chat({"titles": {"announce": False, "max_length": 20}}, locale="en")
    assert chat.command("titles", "confer", member="u1", title="Star of the month") == {
        "member": "u1", "title": "Star of the month",
    }
    chat.assert_nothing_sent()  # announce off
    assert chat.command("titles", "list") == {
        "u1": {"title": "Star of the month", "by": "cli", "ts": "2026-11-02T09:00:00+00:00"}
    }
    with pytest.raises(CommandError, match="at most 20"):
        chat.command("titles", "confer", member="u1", title="x" * 21)
    with pytest.raises(CommandError):
        chat.command("titles", "confer", member="", title="x")
    assert chat.command("titles", "revoke", member="u1") == {"member": "u1", "revoked": "Star of the month"}
    with pytest.raises(CommandError, match="holds no title"):
        chat.command("titles", "revoke", member="u1")
    chat.say("u1", "my title")
    chat.assert_sent("you hold no title yet")


def test_erase_removes_the_title_and_who_conferred_it(make_chat: Make) -> None:
    chat = make_chat({"titles": {}}, roles={"admin": ["u1"]})
    chat.say("u1", "册封 @x 活跃之星", mentions=["u10"])
    chat.say("u1", "册封 @x 群助理", mentions=["u1"])
    exported = chat.engine.export_member("test", "sim", "u1")["playbooks"]["titles"]
    assert exported["conferred_on"] == ["u1", "u10"]
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("titles", "m:u1") is None
    assert chat.state("titles", "m:u10")["title"] == "活跃之星"
    assert chat.state("titles", "m:u10")["by"] is None


def test_bad_settings_fail_at_load_time() -> None:
    with pytest.raises(ConfigError):
        Chat({"titles": {"max_length": 0}}).close()
    with pytest.raises(ConfigError):
        Chat({"titles": {"allowed": ["\u202e"]}}).close()
    with pytest.raises(ConfigError):
        Chat({"titles": {"roles": ["king"]}}).close()


def test_a_conferred_title_decorates_the_name_in_the_welcome(make_chat: Make) -> None:
    chat = make_chat({"titles": {"announce": False}, "welcome": {"batch_size": 1}})
    chat.command("titles", "confer", member="u1", title="资深运营")
    chat.join("u1", "小王")
    chat.advance(minutes=15)
    assert any("资深运营" in a.get("text", "") for a in chat.take() if a["playbook"] == "welcome")
    chat.command("titles", "revoke", member="u1")
    chat.join("u2", "小李")
    chat.advance(minutes=15)
    assert not any("资深运营" in a.get("text", "") for a in chat.take())
