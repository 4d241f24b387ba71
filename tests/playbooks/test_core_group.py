"""core_group: each period the top N contributors not yet in the core group are invited, once.

Points come from the real ``checkin`` playbook (10 a check-in). The ``qa``,
``essence`` and ``sessions`` playbooks are built by other engineers at the
same time; stand-ins registered under their ids write state in the shape of
the issue's contract for the weighted-score test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.engine import Command, Context, Playbook, Registry
from qunyun.playbooks.core_group import CoreGroup
from qunyun.testing import Chat

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")
ROLES = {"admin": ["boss"]}


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(UTC)


def _chat(make_chat: Make, **cfg: Any) -> Chat:
    return make_chat(
        {
            "checkin": {"reminder": None, "reply": False},
            "core_group": {"core_group": "g-core", "top": 2, "exempt": ["bot1"], **cfg},
        },
        groups=("g-main", "g-core"),
        roles=ROLES,
    )


def _checkins(chat: Chat, days: dict[str, int]) -> None:
    """Each user checks in on that many consecutive days (from today)."""
    for day in range(max(days.values())):
        for uid, n in days.items():
            if day < n:
                chat.say(uid, "打卡", name=uid.upper())
        chat.advance(days=1)
    chat.take()


def test_the_top_contributors_not_yet_inside_are_invited_once(make_chat: Make) -> None:
    chat = _chat(make_chat)
    chat.join("u2", group="g-core")  # already in the core group
    _checkins(chat, {"u1": 5, "u2": 3, "u3": 1, "u4": 2, "boss": 6, "bot1": 6})
    preview = chat.command("core_group", "preview")
    assert preview["window"] == ["2026-10-09", "2026-11-07"]
    assert preview["top"] == [
        {"member": "u1", "score": 50, "in_core_group": False},
        {"member": "u2", "score": 30, "in_core_group": True},
    ]
    assert preview["invite"] == ["u1"]
    chat.assert_nothing_sent()  # a preview acts on nothing
    chat.advance_to(local(2026, 12, 1, 9, 59))
    chat.assert_nothing_sent()
    chat.advance_to(local(2026, 12, 1, 10, 0))
    actions = chat.take()
    [invite] = [a for a in actions if a["type"] == "invite"]
    assert invite["member"] == "u1" and invite["group"] == "g-core"
    [dm] = [a for a in actions if a["type"] == "direct"]
    assert dm["member"] == "u1" and "2026-11-01 至 2026-11-30" in dm["text"] and "贡献分 50" in dm["text"]
    [summary] = [a for a in actions if a["type"] == "notify_admins"]
    assert "U1（50）" in summary["text"]
    assert len(actions) == 3
    assert chat.state("core_group", "m:u1")["score"] == 50
    # December: u1 again and u3; u1 was invited already, so only u3 is asked
    _checkins(chat, {"u1": 2, "u3": 1})
    chat.advance_to(local(2027, 1, 1, 10, 0))
    [invite] = chat.sent(type="invite")
    assert invite["member"] == "u3"
    chat.take()
    chat.join("u3", group="g-core")
    assert chat.state("core_group", "m:u3")["joined"].startswith("2027-01-01")
    chat.advance_to(local(2027, 2, 1, 10, 0))  # January: nobody earned anything
    chat.assert_nothing_sent()
    assert [r["data"]["invited"] for r in chat.records("core_group", "period")] == [["u1"], ["u3"], []]


def test_a_run_by_command_and_min_score(make_chat: Make) -> None:
    chat = _chat(make_chat, min_score=30, top=5)
    _checkins(chat, {"u1": 3, "u2": 2})
    result = chat.command("core_group", "run")
    assert result["invite"] == ["u1"]
    assert chat.command("core_group", "run")["invite"] == []  # once
    chat.assert_sent(type="invite", count=1)


class _StateWriter(Playbook):
    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {"put": "Store args.value under args.key."}

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        ctx.state.put(command.args["key"], command.args["value"])
        return {}


class QaStandIn(_StateWriter):
    id = "qa"


class EssenceStandIn(_StateWriter):
    id = "essence"


class SessionsStandIn(_StateWriter):
    id = "sessions"


def test_a_weighted_score_from_qa_essence_and_shares(make_chat: Make) -> None:
    reg = Registry({"qa": QaStandIn, "essence": EssenceStandIn, "sessions": SessionsStandIn, "core_group": CoreGroup})
    chat = make_chat(
        {
            "qa": {},
            "essence": {},
            "sessions": {},
            "core_group": {"core_group": "g-core", "top": 2, "weights": {"qa": 1, "essence": 5, "shares": 10}},
        },
        groups=("g-main", "g-core"),
        registry=reg,
    )
    # the window measured on 2026-12-01 is 2026-11-01..30: weeks W44 (its Sunday is 11-01) to W48 count
    chat.command("qa", "put", key="week:2026-W44", value={"answerers": {"u1": 100}})
    chat.command("qa", "put", key="week:2026-W46", value={"answerers": {"u1": 7, "u2": 3}})
    chat.command("qa", "put", key="week:2026-W48", value={"answerers": {"u2": 4, "u3": True}})
    chat.command("essence", "put", key="e:m-1", value={"by": "u3", "day": "2026-11-05"})
    chat.command("essence", "put", key="e:m-2", value={"by": "u3", "day": "2026-10-31"})
    chat.command("sessions", "put", key="week:2026-W47", value={"shares": {"u2": 1}})
    chat.advance_to(local(2026, 12, 1, 9, 0))
    preview = chat.command("core_group", "preview")
    # u1: 100 (W44, but its Sunday 11-01 is in the window) + 7; u2: 3 + 4 + 10; u3: 5
    assert [(r["member"], r["score"]) for r in preview["top"]] == [("u1", 107), ("u2", 17)]
    chat.advance_to(local(2026, 12, 1, 10, 0))
    assert sorted(a["member"] for a in chat.sent(type="invite")) == ["u1", "u2"]
    assert chat.command("core_group", "preview")["top"] == []  # the period just measured is not measured again


def test_unconfigured_or_missing_core_group(make_chat: Make) -> None:
    chat = make_chat({"core_group": {}}, roles=ROLES)
    chat.advance(days=40)
    chat.assert_nothing_sent()
    with pytest.raises(CommandError, match="no core group"):
        chat.command("core_group", "run")
    other = make_chat({"core_group": {"core_group": "g-nowhere"}})
    other.command("core_group", "run")
    [note] = other.assert_sent(type="notify_admins")
    assert "g-nowhere" in note["text"]


def test_erase(make_chat: Make) -> None:
    chat = _chat(make_chat, top=5)
    _checkins(chat, {"u1": 1, "u10": 1})
    chat.command("core_group", "run")
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("core_group", "m:u1") is None
    assert chat.state("core_group", "m:u10") is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"weights": {"likes": 1}},
        {"weights": {"points": 0}},
        {"weights": {"points": -1}},
        {"period": "monthly"},
        {"top": 0},
        {"core_group": " "},
        {"protected_roles": ["king"]},
    ],
)
def test_bad_settings_fail_at_load_time(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Chat({"core_group": bad}).close()
