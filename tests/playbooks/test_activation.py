"""activation: one nudge for silent newcomers, activation per join cohort."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]
# the harness starts at 2026-11-02 09:00 UTC = Monday 17:00 in Asia/Shanghai (ISO week 2026-W45)


def test_a_silent_newcomer_gets_exactly_one_direct_message(make_chat: Make) -> None:
    chat = make_chat({"activation": {}})
    chat.join("u1", "小王")
    chat.advance(hours=23, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    [dm] = chat.assert_sent("小王", type="direct", playbook="activation", count=1)
    assert dm["member"] == "u1" and "测试社群" in dm["text"]
    chat.advance(days=3)
    chat.assert_nothing_sent()  # never twice
    assert [r["member"] for r in chat.records("activation", "nudged")] == ["u1"]


def test_no_nudge_after_the_newcomer_spoke(make_chat: Make) -> None:
    chat = make_chat({"activation": {"hours": 2}})
    chat.join("u1")
    chat.advance(hours=1)
    chat.say("u1", "大家好")
    chat.advance(hours=5)
    chat.assert_nothing_sent()


def test_no_nudge_for_someone_who_left_before_the_deadline(make_chat: Make) -> None:
    chat = make_chat({"activation": {"hours": 2}})
    chat.join("u1")
    chat.advance(hours=1)
    chat.leave("u1")
    chat.advance(hours=5)
    chat.assert_nothing_sent()


def test_a_rejoin_keeps_the_first_deadline_and_is_counted_once(make_chat: Make) -> None:
    chat = make_chat({"activation": {"hours": 4}})
    chat.join("u1")
    chat.advance(hours=1)
    chat.leave("u1")
    chat.advance(hours=1)
    chat.join("u1")  # back within the window: the nudge comes 4 h after the *first* join
    chat.advance(hours=1, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)
    chat.assert_sent(type="direct", count=1)
    chat.leave("u1")
    chat.join("u1")
    chat.advance(days=1)
    chat.assert_nothing_sent()
    assert chat.state("activation", "c:2026-W45") == {"joined": 1, "activated": 0}


def test_cohorts_count_activation_within_seven_days(make_chat: Make) -> None:
    chat = make_chat({"activation": {}}, roles={"admin": ["boss"]})
    chat.join("u1")
    chat.join("u2")
    chat.join("u3")
    chat.join("boss")  # exempt: neither nudged nor counted
    chat.advance(hours=2)
    chat.say("u1", "hi")
    chat.say("u1", "again")  # counted once
    chat.advance(days=8)  # next ISO week
    chat.say("u2", "finally here")  # too late to count as activated
    chat.join("u4")
    chat.say("u4", "hello")
    result = chat.command("activation", "cohorts")
    assert result["cohorts"] == [
        {"cohort": "2026-W45", "joined": 3, "activated": 1, "rate": 0.3333},
        {"cohort": "2026-W46", "joined": 1, "activated": 1, "rate": 1.0},
    ]
    assert chat.command("activation", "cohorts", last=1)["cohorts"][0]["cohort"] == "2026-W46"
    nudged = [a["member"] for a in chat.actions if a["type"] == "direct"]
    assert sorted(nudged) == ["u2", "u3"]


def test_the_cohort_week_is_the_community_local_week(make_chat: Make) -> None:
    # Sunday 2026-11-08 17:30 UTC is already Monday 01:30 in Shanghai: week 46, not 45
    chat = make_chat({"activation": {}}, start=datetime(2026, 11, 8, 17, 30, tzinfo=UTC))
    chat.join("u1")
    assert chat.state("activation", "c:2026-W46") == {"joined": 1, "activated": 0}


def test_a_configured_message_in_english_with_a_hostile_name(make_chat: Make) -> None:
    chat = make_chat(
        {"activation": {"hours": 1, "message": {"en": "Hey {name}, say hi in {community}!", "zh-CN": "你好 {name}"}}},
        locale="en",
    )
    chat.join("u1", "\u202eevil\u0007{community}")
    chat.advance(hours=1)
    [dm] = chat.assert_sent(type="direct")
    assert dm["text"].startswith("Hey evil{community}, say hi in 测试社群")
    assert "\u202e" not in dm["text"]


def test_bad_command_arguments_are_refused(make_chat: Make) -> None:
    chat = make_chat({"activation": {}})
    with pytest.raises(CommandError, match="positive whole number"):
        chat.command("activation", "cohorts", last=0)
    with pytest.raises(CommandError, match="no command"):
        chat.command("activation", "reset")


def test_erase_keeps_the_anonymous_cohort_counts(make_chat: Make) -> None:
    chat = make_chat({"activation": {}})
    chat.join("u1")
    chat.join("u10")
    chat.say("u1", "hi")
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("activation", "m:u1") is None
    assert chat.state("activation", "m:u10") is not None
    assert chat.state("activation", "c:2026-W45") == {"joined": 2, "activated": 1}


def test_invalid_settings_are_refused() -> None:
    from qunyun.config import settings_from_text
    from qunyun.testing import community_config

    for bad, needle in (({"hours": 0}, "hours"), ({"exempt_roles": ["boss"]}, "unknown role"), ({"message": ""}, "non-empty")):
        with pytest.raises(ConfigError) as err:
            settings_from_text(community_config({"activation": bad}))
        assert needle in str(err.value)
