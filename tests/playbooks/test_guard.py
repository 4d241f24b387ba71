"""guard: a fast, hostile back-and-forth between two members alerts the admins, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert

from qunyun.core.errors import ConfigError
from qunyun.store import models as m
from qunyun.testing import Chat

Make = Callable[..., Chat]


def fight(chat: Chat, a: str = "u1", b: str = "u2", *, rounds: int = 3, minutes: float = 1, hostile: bool = True) -> None:
    """``rounds`` × (a, b) messages, one every ``minutes``."""
    for i in range(rounds):
        chat.say(a, "你就是个白痴" if hostile and i % 2 == 0 else "你根本不懂")
        chat.advance(minutes=minutes)
        chat.say(b, "闭嘴吧你" if hostile else "是你不懂")
        chat.advance(minutes=minutes)


def test_a_heated_exchange_sends_one_alert_and_nothing_else(make_chat: Make) -> None:
    chat = make_chat({"guard": {}})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    fight(chat)
    [alert] = chat.assert_sent(playbook="guard", count=1)
    assert alert["type"] == "notify_admins"
    assert "小王" in alert["text"] and "小李" in alert["text"]
    assert "“你就是个白痴”" in alert["text"] or "“闭嘴吧你”" in alert["text"]
    assert {a["type"] for a in chat.actions if a["playbook"] == "guard"} == {"notify_admins"}
    assert sorted(r["member"] for r in chat.records("guard", "alert")) == ["u1", "u2"]


def test_the_cool_down_holds_then_a_new_fight_is_reported(make_chat: Make) -> None:
    chat = make_chat({"guard": {"cooldown_minutes": 30}})
    fight(chat)
    chat.assert_sent(type="notify_admins", count=1)
    fight(chat)  # still going within the cool-down: no second alert
    chat.assert_nothing_sent()
    chat.advance(minutes=30)
    fight(chat)
    chat.assert_sent(type="notify_admins", count=1)


def test_quiet_cases_send_nothing(make_chat: Make) -> None:
    chat = make_chat({"guard": {}}, roles={"admin": ["boss"]})
    fight(chat, hostile=False)  # a lively debate without hostile words
    chat.advance(minutes=30)
    for _ in range(8):  # one person ranting alone
        chat.say("u3", "白痴 白痴 闭嘴")
    chat.advance(minutes=30)
    fight(chat, "u4", "u5", minutes=4)  # hostile but slow: never enough inside 10 minutes
    chat.advance(minutes=30)
    fight(chat, "u6", "boss")  # an admin stepping in is not counted
    chat.assert_nothing_sent()


def test_replies_and_mentions_pair_members_across_other_chatter(make_chat: Make) -> None:
    chat = make_chat({"guard": {"min_exchanges": 4}}, locale="en")
    chat.join("u1", "Ann")
    chat.join("u2", "Bob")
    first = chat.say("u1", "you are an idiot")
    chat.say("u3", "lunch anyone?")
    second = chat.say("u2", "shut up", reply_to=first)
    chat.say("u3", "pizza?")
    chat.say("u1", "make me", reply_to=second)
    chat.say("u4", "🍕")
    chat.say("u2", "@Ann stop it", mentions=["u1"])
    [alert] = chat.assert_sent(type="notify_admins", count=1)
    assert "Ann and Bob are arguing" in alert["text"]
    assert "On duty" not in alert["text"]


def test_the_admins_on_duty_are_named(make_chat: Make) -> None:
    chat = make_chat({"guard": {}})
    with chat.db.begin() as conn:
        conn.execute(
            insert(m.PlaybookState.__table__).values(
                community_id="test", playbook="duty", key="current", value=["d1", "d2"], updated_at=chat.now
            )
        )
    chat.join("d1", "值班甲")
    chat.join("d2", "值班乙")
    fight(chat)
    [alert] = chat.assert_sent(type="notify_admins")
    assert "值班管理员：@值班甲、@值班乙" in alert["text"]


def test_hostile_names_and_text_are_cleaned_and_clipped(make_chat: Make) -> None:
    chat = make_chat({"guard": {"sample_chars": 20, "min_hostile": 1}})
    chat.join("u1", "\u202eevil\u0007")
    for _ in range(3):
        chat.say("u1", "白痴\u202e\u0000\n" + "啊" * 5000 + "{name}")
        chat.say("u2", "你才是")
    [alert] = chat.assert_sent(type="notify_admins")
    text: str = alert["text"]
    for bad in ("\u202e", "\u0000", "\u0007"):
        assert bad not in text
    assert "evil" in text
    sample = text.split("“")[1].split("”")[0]
    assert len(sample) == 20 and sample.endswith("…")


def test_erase_removes_the_member_from_the_window(make_chat: Make) -> None:
    chat = make_chat({"guard": {}})
    fight(chat, rounds=1)
    fight(chat, "u1", "u10", rounds=1)
    before = exported(chat, "u10")
    assert exported(chat, "u1")
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not exported(chat, "u1")
    assert exported(chat, "u10") == before
    st: Any = chat.state("guard", "g:sim:g-main")
    assert all("u1" not in (r[1], r[3]) for r in st["recent"])


def exported(chat: Chat, member: str) -> Any:
    """What this playbook's ``export_member`` returned in the engine's export."""
    found = chat.engine.export_member("test", "sim", member)
    return found.get("playbooks", found).get("guard")


def test_invalid_settings_are_refused() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (
        ({"hostile_words": ["ok", " "]}, "word 2 is empty"),
        ({"min_exchanges": 1}, "min_exchanges"),
        ({"exempt_roles": ["mod"]}, "unknown role"),
    ):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"guard": bad}))
        assert needle in str(err.value)
