"""levels: up at once with a cheer, down only at period boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qunyun.config import settings_from_text
from qunyun.core.errors import ConfigError
from qunyun.engine import Context, Playbook
from qunyun.engine.registry import Registry
from qunyun.playbooks.checkin import Checkin
from qunyun.playbooks.levels import Levels
from qunyun.testing import Chat, community_config

#: The first monthly boundary after the harness's start (2026-11-02 17:00 in
#: Shanghai): 2026-12-01 00:00 Asia/Shanghai.
BOUNDARY = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)

LADDER = [
    {"name": "学徒", "min_points": 0},
    {"name": "新秀", "min_points": 20},
    {"name": {"zh-CN": "达人", "en": "Regular"}, "min_points": 40},
]


class Bank(Playbook):
    """A test-only playbook that moves points on command: `award N`, `fine N`, `coins N`."""

    id = "bank"
    handles = frozenset({"message"})

    def on_event(self, ctx: Context, event: Any) -> None:
        verb, _, amount = event.text.partition(" ")
        if not amount.isdigit():
            return
        uid, n = event.actor.id, int(amount)
        if verb == "award":
            ctx.ledger.award_points(uid, n, "test award")
        elif verb == "fine":
            ctx.ledger.transfer(
                ctx.ledger.member_account(uid, "POINTS"),
                ctx.ledger.issuance_account("POINTS"),
                n,
                "POINTS",
                "test fine",
            )
        elif verb == "coins":
            ctx.ledger.award_points(uid, n, "test coins", currency="COINS")


REGISTRY = Registry({"checkin": Checkin, "levels": Levels, "bank": Bank})


def make(make_chat, levels: dict[str, Any] | None = None, **options: Any) -> Chat:
    config = {
        "checkin": {"reminder": None},
        "bank": {},
        "levels": {"levels": LADDER, **(levels or {})},
    }
    return make_chat(config, registry=REGISTRY, **options)


def checkin_days(chat: Chat, uid: str, days: int) -> None:
    """Check ``uid`` in on ``days`` consecutive local days (10 points each by default)."""
    for i in range(days):
        if i:
            chat.advance(days=1)
        chat.say(uid, "打卡")


def level_ups(chat: Chat) -> list[dict[str, Any]]:
    return chat.sent(playbook="levels")


def member_op(chat: Chat, op: str, member: str) -> Any:
    """Run ``Levels.export_member`` / ``erase_member`` the way the engine runs handlers."""
    engine = chat.engine
    group = chat.settings.group(chat.platform, chat.group)
    assert group is not None
    pb = engine.playbook("levels")
    with engine.transaction():
        layer = engine._layer("levels", f"{op}:{member}", group.community.id)
        result = getattr(pb, op)(Context(engine, pb, layer, group, chat.now), member)
        engine._merge(layer, group)
    return result


# ------------------------------------------------------------------- going up


def test_default_ladder_levels_up_after_five_checkins(make_chat):
    chat = make_chat({"checkin": {"reminder": None}, "levels": {}})
    chat.join("u1", "小王")
    checkin_days(chat, "u1", 4)
    assert chat.sent(playbook="levels") == []
    assert chat.state("levels", "m:u1") is None
    chat.take()
    chat.advance(days=1)
    chat.say("u1", "打卡")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert up["type"] == "send"
    assert up["mentions"] == ["u1"]
    assert "@小王" in up["text"]
    assert "新秀" in up["text"]
    assert "50" in up["text"]
    assert "再得 150 分升「达人」" in up["text"]
    assert chat.state("levels", "m:u1")["level"] == 1
    assert chat.records("levels", "level_up")[0]["data"] == {
        "level": 1,
        "previous": 0,
        "points": 50,
    }
    chat.assert_ledger_balanced()


def test_level_up_is_announced_once(make_chat):
    chat = make(make_chat)
    checkin_days(chat, "u1", 2)  # 20 points: 新秀
    assert len(level_ups(chat)) == 1
    chat.take()
    chat.advance(days=1)
    chat.say("u1", "award 5")  # 25 points, still 新秀
    chat.assert_nothing_sent()
    assert len(chat.records("levels", "level_up")) == 1


def test_jump_over_several_levels_announces_the_highest(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 100")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert "达人" in up["text"]
    assert "新秀" not in up["text"]
    assert "最高等级" in up["text"]
    assert chat.state("levels", "m:u1")["level"] == 2


def test_announce_off_still_levels_up(make_chat):
    chat = make(make_chat, {"announce": False})
    chat.say("u1", "award 25")
    chat.assert_nothing_sent()
    assert chat.state("levels", "m:u1")["level"] == 1
    assert len(chat.records("levels", "level_up")) == 1


def test_other_currencies_do_not_count(make_chat):
    chat = make(make_chat)
    chat.say("u1", "coins 500")
    chat.assert_nothing_sent()
    assert chat.state("levels", "m:u1") is None


def test_custom_currency(make_chat):
    chat = make(make_chat, {"currency": "COINS"})
    chat.say("u1", "award 500")
    chat.assert_nothing_sent()
    chat.say("u1", "coins 20")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert "新秀" in up["text"]


# --------------------------------------------------------------- going down


def test_fine_does_not_lower_the_level_mid_period_but_the_boundary_does(make_chat):
    chat = make(make_chat)
    checkin_days(chat, "u1", 2)
    assert chat.state("levels", "m:u1")["level"] == 1
    chat.take()
    chat.say("u1", "fine 15")
    assert chat.points("u1") == 5
    chat.assert_nothing_sent()
    assert chat.state("levels", "m:u1")["level"] == 1
    # Still 新秀 when asked, with the real balance.
    chat.say("u1", "我的等级")
    [reply] = chat.assert_sent(playbook="levels", count=1)
    assert "新秀" in reply["text"]
    assert "5 积分" in reply["text"]

    chat.advance_to(BOUNDARY - timedelta(seconds=1))
    assert chat.state("levels", "m:u1")["level"] == 1
    assert chat.records("levels", "level_down") == []

    chat.advance_to(BOUNDARY)
    assert chat.state("levels", "m:u1") == {"level": 0, "since": BOUNDARY.isoformat()}
    [down] = chat.records("levels", "level_down")
    assert down["member"] == "u1"
    assert down["data"] == {"level": 0, "previous": 1, "points": 5}
    chat.assert_nothing_sent()  # no announcement by default
    chat.assert_ledger_balanced()


def test_boundary_keeps_members_who_still_have_the_points(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 45")  # 达人
    chat.say("u1", "fine 5")  # 40: exactly the threshold
    chat.say("u2", "award 25")  # 新秀
    chat.say("u2", "fine 10")  # 15: below
    chat.take()
    chat.advance_to(BOUNDARY)
    assert chat.state("levels", "m:u1")["level"] == 2
    assert chat.state("levels", "m:u2")["level"] == 0
    assert [r["member"] for r in chat.records("levels", "level_down")] == ["u2"]


def test_boundary_lowers_to_the_level_the_balance_earns(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 50")  # 达人
    chat.say("u1", "fine 25")  # 25: 新秀 territory
    chat.advance_to(BOUNDARY)
    assert chat.state("levels", "m:u1")["level"] == 1


def test_boundary_announces_by_direct_message_when_asked(make_chat):
    chat = make(make_chat, {"announce_down": True})
    chat.say("u1", "award 25")
    chat.say("u1", "fine 25")
    chat.take()
    chat.advance_to(BOUNDARY)
    [dm] = chat.assert_sent(playbook="levels", count=1)
    assert dm["type"] == "direct"
    assert dm["member"] == "u1"
    assert "学徒" in dm["text"]
    assert "再得 20 分升「新秀」" in dm["text"]


def test_regaining_points_after_a_drop_is_a_new_level_up(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 25")
    chat.say("u1", "fine 25")
    chat.advance_to(BOUNDARY)
    chat.take()
    chat.say("u1", "award 20")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert "新秀" in up["text"]
    assert len(chat.records("levels", "level_up")) == 2


def test_the_period_is_configurable_and_recurs(make_chat):
    chat = make(make_chat, {"period": "0 0 * * 1"})  # Mondays 00:00 Shanghai
    chat.say("u1", "award 25")
    chat.say("u1", "fine 10")
    # 2026-11-02 is a Monday; the next boundary is 2026-11-09 00:00 +08:00.
    monday = datetime(2026, 11, 8, 16, 0, tzinfo=UTC)
    chat.advance_to(monday - timedelta(minutes=1))
    assert chat.state("levels", "m:u1")["level"] == 1
    chat.advance_to(monday)
    assert chat.state("levels", "m:u1")["level"] == 0
    chat.say("u1", "award 40")  # 55: 达人 at once
    chat.say("u1", "fine 30")  # 25
    chat.advance_to(monday + timedelta(days=7))
    assert chat.state("levels", "m:u1")["level"] == 1


def test_period_job_is_registered_at_setup(make_chat):
    chat = make(make_chat)
    assert chat.scalar("SELECT COUNT(*) FROM jobs WHERE playbook = 'levels' AND kind = 'cron'") == 1
    due = chat.scalar("SELECT due_at FROM jobs WHERE playbook = 'levels'")
    if isinstance(due, str):  # SQLite may hand the text back
        due = datetime.fromisoformat(due)
    assert due.replace(tzinfo=UTC) == BOUNDARY


# -------------------------------------------------------------------- asking


def test_my_level_before_any_points(make_chat):
    chat = make(make_chat)
    msg = chat.say("u1", "我的等级", name="小王")
    [reply] = chat.assert_sent(playbook="levels", count=1)
    assert reply["reply_to"] == msg
    assert reply["mentions"] == ["u1"]
    assert reply["text"] == "小王：等级「学徒」，0 积分，再得 20 分升「新秀」。"


def test_my_level_in_english_is_case_insensitive(make_chat):
    chat = make(make_chat, locale="en")
    chat.say("u1", "award 45", name="Wang")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert (
        up["text"]
        == "🎖️ Congratulations @Wang, you are now Regular! 45 points. That is the top level 🏆"
    )
    chat.say("u1", "  My Level ")
    [reply] = chat.assert_sent(playbook="levels", count=1)
    assert reply["text"] == "Wang: level Regular, 45 points. That is the top level 🏆"


def test_points_from_before_levels_was_enabled_count_when_asked(make_chat):
    chat = make(make_chat)
    # Points exist, but levels never saw them (the ledger watcher sees only new postings).
    chat.say("u1", "award 25")
    chat.take()
    member_op(chat, "erase_member", "u1")
    chat.say("u1", "my level")
    up, reply = chat.take()
    assert "恭喜" in up["text"] and "新秀" in up["text"]
    assert "新秀" in reply["text"]


def test_other_messages_are_ignored(make_chat):
    chat = make(make_chat)
    for text in ("", "   ", "我的等级呢？", "查看我的等级", "x" * 10_000):
        chat.say("u1", text)
    chat.assert_nothing_sent()
    assert chat.failures() == []


def test_custom_query_keywords(make_chat):
    chat = make(make_chat, {"query_keywords": ["等级", "Rank"]})
    chat.say("u1", "我的等级")
    chat.assert_nothing_sent()
    chat.say("u1", "rank")
    chat.assert_sent(playbook="levels", count=1)


def test_hostile_names_are_cleaned(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 25", name="\u202e坏\u0007人\u2066")
    [up] = chat.assert_sent(playbook="levels", count=1)
    assert "@坏人" in up["text"]
    for bad in ("\u202e", "\u0007", "\u2066"):
        assert bad not in up["text"]


# ------------------------------------------------------------------- privacy


def test_export_and_erase_member(make_chat):
    chat = make(make_chat)
    chat.say("u1", "award 25")
    chat.say("u10", "award 25")
    assert member_op(chat, "export_member", "u1") == {"m:u1": chat.state("levels", "m:u1")}
    member_op(chat, "erase_member", "u1")
    assert chat.state("levels", "m:u1") is None
    # "m:u1" is a prefix of "m:u10": erasing u1 must not touch u10.
    assert chat.state("levels", "m:u10")["level"] == 1
    assert member_op(chat, "export_member", "u1") == {}
    chat.assert_ledger_balanced()


def test_many_members_over_a_month_keep_the_ledger_balanced(make_chat):
    chat = make_chat({"checkin": {"reminder": None}, "levels": {}})
    for day in range(35):
        for i in range(4):
            if (day + i) % (i + 1) == 0:
                chat.say(f"u{i}", "打卡", name=f"成员{i}")
        chat.advance(days=1)
    assert chat.failures() == []
    chat.assert_ledger_balanced()
    for i in range(4):
        held = (chat.state("levels", f"m:u{i}") or {}).get("level", 0)
        points = chat.points(f"u{i}")
        thresholds = [0, 50, 200, 600, 1500]
        assert thresholds[held] <= points
        assert held == len(thresholds) - 1 or points < thresholds[held + 1]


# -------------------------------------------------------------------- config


def _levels_error(settings: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        settings_from_text(community_config({"levels": settings}), registry=REGISTRY)
    return str(err.value)


def test_first_level_must_start_at_zero():
    msg = _levels_error(
        {"levels": [{"name": "新秀", "min_points": 10}, {"name": "达人", "min_points": 20}]}
    )
    assert "playbooks.levels.levels" in msg
    assert "min_points 0" in msg


def test_thresholds_must_strictly_increase():
    msg = _levels_error(
        {"levels": [{"name": "学徒", "min_points": 0}, {"name": "新秀", "min_points": 0}]}
    )
    assert "playbooks.levels.levels" in msg
    assert "strictly increase" in msg and "新秀 (0)" in msg
    msg = _levels_error(
        {
            "levels": [
                {"name": "A", "min_points": 0},
                {"name": "B", "min_points": 50},
                {"name": "C", "min_points": 30},
            ]
        }
    )
    assert "C (30) is not above B (50)" in msg


def test_at_least_one_level():
    assert "at least one level" in _levels_error({"levels": []})


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"period": "monthly"}, "period"),
        ({"period": "0 0 1 *"}, "period"),
        ({"levels": [{"name": "", "min_points": 0}]}, "levels.0.name"),
        ({"levels": [{"name": "学徒", "min_points": -1}]}, "levels.0.min_points"),
        ({"levels": [{"name": "学徒", "points": 0}]}, "levels.0"),
        ({"query_keywords": [" "]}, "query_keywords"),
        ({"announce": "maybe"}, "announce"),
    ],
)
def test_bad_config_names_the_key(settings, key):
    assert f"playbooks.levels.{key}" in _levels_error(settings)


def test_defaults():
    cfg = Levels.config_model()
    assert [(lv.title("zh-CN"), lv.title("en"), lv.min_points) for lv in cfg.levels] == [
        ("学徒", "Apprentice", 0),
        ("新秀", "Rookie", 50),
        ("达人", "Regular", 200),
        ("骨干", "Core", 600),
        ("导师", "Mentor", 1500),
    ]
    assert cfg.period == "0 0 1 * *"
    assert cfg.announce is True and cfg.announce_down is False
    for name, field in Levels.config_model.model_fields.items():
        assert name == "enabled" or field.description, name
    for name, texts in Levels.templates.items():
        assert set(texts) == {"zh-CN", "en"}, name
