"""medals: every rule source awards its medal once — on the member's own events, on
ledger postings, or by the daily job — and announces it; boards, show, erase.

``checkin`` and ``referrals`` are the real playbooks. For ``qa``, ``essence``
and ``digest``, small stand-ins registered under their ids write state and
records in the shape of the issue's contract (``m:<uid>`` counters,
``digest_included`` records); the last test drives the real ``qa``,
``essence`` and ``digest`` by conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import ConfigError
from qunyun.engine import Command, Context, Playbook, Registry
from qunyun.playbooks.checkin import Checkin
from qunyun.playbooks.medals import Medals
from qunyun.playbooks.referrals import Referrals
from qunyun.testing import Chat

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")


class _StandIn(Playbook):
    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {
        "put": "Store args.value under args.key.",
        "include": "Record that args.member is in a digest.",
        "bonus": "Award args.member args.points points.",
    }

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        a = command.args
        if command.name == "put":
            ctx.state.put(a["key"], a["value"])
        elif command.name == "include":
            ctx.record("digest_included", a["member"], day="2026-11-02")
        else:
            ctx.ledger.award_points(a["member"], a["points"], "bonus")
        return {}


class QaStandIn(_StandIn):
    id = "qa"


class EssenceStandIn(_StandIn):
    id = "essence"


class DigestStandIn(_StandIn):
    id = "digest"


REG = Registry(
    {
        "checkin": Checkin,
        "referrals": Referrals,
        "qa": QaStandIn,
        "essence": EssenceStandIn,
        "digest": DigestStandIn,
        "medals": Medals,
    }
)


def _medal(mid: str, source: str, key: str, at_least: int, zh: str) -> dict[str, Any]:
    return {"id": mid, "name": {"zh-CN": zh, "en": mid}, "rule": {"source": source, "key": key, "at_least": at_least}}


MEDALS = [
    _medal("first-essence", "essence", "essence", 1, "首篇精华"),
    _medal("streak-3", "checkin", "best", 3, "连续打卡 3 天"),
    _medal("best-2", "qa", "best", 2, "两个最佳回答"),
    _medal("digest", "digest", "included", 1, "精华作者"),
    _medal("referrals-2", "referrals", "invited", 2, "拉新达人"),
    _medal("points-25", "points", "balance", 25, "积分达人"),
]


def _chat(make_chat: Make, **medals: Any) -> Chat:
    return make_chat(
        {
            "checkin": {"reminder": None, "reply": False},
            "referrals": {"notify_inviter": False},
            "qa": {},
            "essence": {},
            "digest": {},
            "medals": {"medals": MEDALS, **medals},  # last: sees what the others counted
        },
        registry=REG,
    )


def _awards(chat: Chat, member: str) -> list[str]:
    return [r["data"]["medal"] for r in chat.records("medals", "medal") if r["member"] == member]


def test_a_state_counter_is_awarded_on_the_members_next_event_once(make_chat: Make) -> None:
    chat = _chat(make_chat)
    chat.command("essence", "put", key="m:u1", value={"essence": 1, "first": "2026-11-02T09:00:00+00:00"})
    chat.command("qa", "put", key="m:u1", value={"asked": 0, "answers": 5, "best": 1, "votes": 7})
    chat.assert_nothing_sent()
    chat.say("u1", "大家好", name="小王")
    [sent] = chat.assert_sent(playbook="medals")
    assert sent["text"] == "🏅 恭喜 @小王 获得勋章：「首篇精华」！" and sent["mentions"] == ["u1"]
    chat.say("u1", "再说一句")
    chat.assert_nothing_sent()  # awarded once
    chat.command("qa", "put", key="m:u1", value={"asked": 0, "answers": 6, "best": 2, "votes": 9})
    chat.say("u1", "第三句")
    chat.assert_sent("「两个最佳回答」", count=1)
    assert _awards(chat, "u1") == ["first-essence", "best-2"]
    assert set(chat.state("medals", "m:u1")["medals"]) == {"first-essence", "best-2"}


def test_a_checkin_streak_is_awarded_in_the_event_that_reaches_it(make_chat: Make) -> None:
    chat = _chat(make_chat, medals=[MEDALS[1]])
    for day in range(4):
        chat.say("u1", "打卡", name="小王")
        found = chat.sent(playbook="medals")
        assert len(found) == (1 if day == 2 else 0), day
        chat.take()
        chat.advance(days=1)
    assert _awards(chat, "u1") == ["streak-3"]


def test_points_are_checked_on_ledger_postings(make_chat: Make) -> None:
    chat = _chat(make_chat, medals=[MEDALS[5]])
    chat.command("digest", "bonus", member="u1", points=20)  # no event of u1's: on_postings sees it
    chat.assert_nothing_sent()
    chat.command("digest", "bonus", member="u1", points=5)
    [sent] = chat.assert_sent(playbook="medals")
    assert "积分达人" in sent["text"]
    chat.command("digest", "bonus", member="u1", points=100)
    chat.assert_nothing_sent()
    assert _awards(chat, "u1") == ["points-25"]
    chat.assert_ledger_balanced()


def test_digest_inclusions_and_referrals_are_caught_by_the_daily_job(make_chat: Make) -> None:
    chat = _chat(make_chat)
    chat.command("digest", "include", member="u2")
    chat.join("n1", inviter="u3")
    chat.join("n2", inviter="u3")
    assert chat.state("referrals", "m:u3")["invited"] == 2
    chat.say("u2", "hi")  # records are not counted on every message
    chat.take()
    chat.advance_to(datetime(2026, 11, 3, 0, 30, tzinfo=SH).astimezone(UTC))
    sent = chat.assert_sent(playbook="medals", count=2)
    assert {tuple(a["mentions"]) for a in sent} == {("u2",), ("u3",)}
    assert _awards(chat, "u2") == ["digest"] and _awards(chat, "u3") == ["referrals-2"]
    chat.command("digest", "include", member="u2")
    chat.advance(days=1)
    chat.assert_nothing_sent()  # each once
    assert chat.command("medals", "check") == {"awarded": {}}


def test_check_command_show_and_board(make_chat: Make) -> None:
    chat = _chat(make_chat, announce="none")
    chat.command("essence", "put", key="m:u1", value={"essence": 2})
    chat.command("essence", "put", key="m:u2", value={"essence": 1})
    chat.command("qa", "put", key="m:u2", value={"best": 3})
    assert chat.command("medals", "check") == {
        "awarded": {"u1": ["first-essence"], "u2": ["first-essence", "best-2"]}
    }
    chat.assert_nothing_sent()  # announce: none
    shown = chat.command("medals", "show", member="u2")["medals"]
    assert shown["best-2"]["name"] == "两个最佳回答"
    assert chat.command("medals", "board")["board"] == [{"member": "u2", "count": 2}, {"member": "u1", "count": 1}]
    chat.say("u2", "我的勋章", name="小李")
    [mine] = chat.assert_sent()
    assert "小李 的勋章（2 枚）" in mine["text"] and "2026-11-02" in mine["text"]
    chat.say("u1", "勋章榜", name="小王")
    [board] = chat.assert_sent()
    assert board["text"] == "🏅 勋章榜：\n1. 小李 · 2 枚\n2. 小王 · 1 枚"
    chat.say("u9", "我的勋章")
    chat.assert_sent("还没有勋章")


def test_direct_announcement_and_an_empty_board(make_chat: Make) -> None:
    chat = make_chat({"medals": {"announce": "direct"}}, locale="en")
    chat.say("u1", "medal board")
    chat.assert_sent("Nobody has earned a medal yet.")
    chat.say("u1", "hello")
    chat.assert_nothing_sent()


def test_default_medals_with_the_real_checkin(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None, "reply": False}, "medals": {"announce": "direct"}})
    for _ in range(29):
        chat.say("u1", "打卡")
        chat.advance(days=1)
    chat.take()
    assert chat.state("medals", "m:u1") is None
    chat.say("u1", "打卡")  # the 30th: awarded in this very event
    # 30 × 10 points plus the 7- and 30-day bonuses is 480: no 1,000-point medal yet
    [direct] = chat.assert_sent(playbook="medals")
    assert direct["type"] == "direct" and direct["text"] == "🏅 恭喜你获得勋章：「连续打卡 30 天」！"
    assert "streak-30" in chat.state("medals", "m:u1")["medals"]


def test_erase(make_chat: Make) -> None:
    chat = _chat(make_chat)
    for u in ("u1", "u10"):
        chat.command("essence", "put", key=f"m:{u}", value={"essence": 1})
    chat.command("medals", "check")
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("medals", "m:u1") is None
    assert chat.state("medals", "m:u10") is not None


@pytest.mark.parametrize(
    "rule",
    [
        {"source": "eval", "key": "x", "at_least": 1},
        {"source": "checkin", "key": "__class__", "at_least": 1},
        {"source": "checkin", "key": "best", "at_least": 0},
        {"source": "checkin", "key": "best"},
        {"source": "checkin", "key": "best", "at_least": 1, "expr": "1+1"},
    ],
)
def test_bad_rules_fail_at_load_time(rule: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Chat({"medals": {"medals": [{"id": "m", "name": "x", "rule": rule}]}}).close()


def test_duplicate_ids_and_bad_cron_fail_at_load_time() -> None:
    twice = [_medal("a", "checkin", "best", 1, "x"), _medal("a", "qa", "best", 1, "y")]
    with pytest.raises(ConfigError, match="appears twice"):
        Chat({"medals": {"medals": twice}}).close()
    with pytest.raises(ConfigError):
        Chat({"medals": {"check": "daily"}}).close()


def test_the_digest_medal_with_the_real_qa_essence_and_digest(make_chat: Make) -> None:
    """A best answer goes into the next day's digest; the daily check awards its author."""
    chat = make_chat({"qa": {}, "essence": {}, "digest": {}, "medals": {}}, roles={"admin": ["boss"]})
    q = chat.say("asker", "#提问 Python 入门应该看哪本书？")
    best = chat.say("a1", "推荐《流畅的Python》", reply_to=q, name="答主")
    chat.say("boss", "最佳", reply_to=best)
    chat.take()
    chat.advance(days=2)
    [medal] = chat.sent(playbook="medals")
    assert medal["text"] == "🏅 恭喜 @答主 获得勋章：「精华作者」！"
    assert _awards(chat, "a1") == ["digest"]
