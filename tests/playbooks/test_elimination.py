"""elimination: warn the inactive, remove them at the deadline, invite the waiting list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from qunyun.config.model import settings_from_text
from qunyun.core.errors import CommandError, ConfigError
from qunyun.playbooks.elimination import EliminationConfig, kpi_met
from qunyun.testing import Chat
from qunyun.testing.harness import community_config

Make = Callable[..., Chat]
# The harness starts 2026-11-02 17:00 Asia/Shanghai. A daily period at 10:00
# local time with a 7-day window and grace keeps the tests short.
FAST: dict[str, Any] = {"period": "0 10 * * *", "window_days": 7, "grace_days": 7, "deadline_days": 3}


def _cfg(**over: Any) -> dict[str, Any]:
    return {"elimination": {**FAST, **over}}


def _warned(chat: Chat) -> list[str]:
    return [r["member"] for r in chat.records("elimination", "warned")]


def test_the_period_job_warns_then_removes_at_the_deadline(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.advance(days=5, hours=17)  # 2026-11-08 10:00 local: joined 6 days ago, still in grace
    chat.assert_nothing_sent()
    chat.say("u2", "大家好")  # u2 spoke within the window
    chat.take()
    chat.advance(days=1)  # 2026-11-09 10:00: the period job; joined 7 days ago, measured
    assert _warned(chat) == ["u1"]
    actions = chat.take()
    send = [a for a in actions if a["type"] == "send" and a["playbook"] == "elimination"]
    direct = [a for a in actions if a["type"] == "direct"]
    assert len(send) == 1 and send[0]["mentions"] == ["u1"] and "@小王" in send[0]["text"]
    assert "2026-11-12 10:00" in send[0]["text"]  # the deadline, local time
    assert [d["member"] for d in direct] == ["u1"]
    assert chat.state("elimination", "m:u1")["warned"]["g-main"]["deadline"].startswith("2026-11-12T02:00")
    chat.advance(days=1)  # the next daily period does not warn u1 again
    chat.assert_nothing_sent()
    chat.advance(days=2)  # 2026-11-12 10:00: the deadline
    [removal] = [a for a in chat.take() if a["type"] == "remove"]
    assert removal["member"] == "u1" and "messages + checkins >= 1" in removal["reason"]
    assert [r["member"] for r in chat.records("elimination", "removed")] == ["u1"]
    assert chat.state("elimination", "g:g-main:warned") is None
    chat.advance(days=1)  # u1 is gone (removed by us): nobody to warn or remove again
    chat.assert_nothing_sent()
    assert chat.failures() == []


def test_a_newcomer_in_the_grace_period_is_not_measured(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("old", "老成员")
    chat.advance(days=5)
    chat.join("new", "新人")  # joins 2026-11-07
    chat.advance(days=2, hours=17)  # 2026-11-10 10:00
    assert _warned(chat) == ["old"]
    chat.take()
    chat.advance(days=3)  # 2026-11-13: "new" joined 6 days ago, still in grace
    assert "new" not in _warned(chat)
    chat.advance(days=1)  # 2026-11-14: a week since "new" joined, and still silent
    assert _warned(chat) == ["old", "new"]


def test_a_warned_member_who_speaks_before_the_deadline_is_spared(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("u1", "小王")
    chat.advance(days=7, hours=17)  # warned on 2026-11-09 10:00, deadline 11-12 10:00
    assert _warned(chat) == ["u1"]
    chat.take()
    chat.advance(days=1)
    chat.say("u1", "我还在！")
    chat.advance(days=3)  # past the deadline
    assert not [a for a in chat.take() if a["type"] == "remove"]
    assert [r["member"] for r in chat.records("elimination", "spared")] == ["u1"]
    assert chat.state("elimination", "m:u1") is None


def test_a_check_in_counts_for_the_kpi(make_chat: Make) -> None:
    chat = make_chat({"checkin": {"reminder": None, "reply": False}, **_cfg(kpi="checkins >= 1")})
    chat.join("u1")
    chat.join("u2")
    chat.advance(days=6)
    chat.say("u1", "打卡")
    chat.say("u2", "只聊天不打卡")
    chat.advance(hours=17)
    assert _warned(chat) == ["u2"]


def test_protected_roles_and_exempt_members_are_never_warned(make_chat: Make) -> None:
    chat = make_chat(
        _cfg(exempt=["vip"]), roles={"owner": ["boss"], "admin": ["a1"], "assistant": ["bot"], "guest": ["kol"]}
    )
    for uid in ("boss", "a1", "bot", "kol", "vip", "u1"):
        chat.join(uid)
    chat.advance(days=20)
    assert set(_warned(chat)) == {"u1"}
    assert [a["member"] for a in chat.actions if a["type"] == "remove"] == ["u1"]


def test_leaving_and_rejoining_does_not_reset_the_clock(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("u1", "小王")
    chat.advance(days=5)
    chat.leave("u1")
    chat.join("u1")  # 2026-11-07: a rejoin is no new grace period
    chat.advance(days=2, hours=17)  # 2026-11-10 10:00 (warned yesterday)
    assert _warned(chat) == ["u1"]
    chat.take()
    chat.advance(days=1)
    chat.leave("u1")  # a warned member leaves and comes back before the deadline…
    chat.join("u1")
    chat.advance(days=2)  # …and is still removed at the deadline
    assert [a["member"] for a in chat.take() if a["type"] == "remove"] == ["u1"]


def test_a_warned_member_who_leaves_for_good_is_not_removed(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("u1")
    chat.advance(days=7, hours=17)
    chat.take()
    chat.leave("u1")
    chat.advance(days=3)
    assert not [a for a in chat.take() if a["type"] == "remove"]
    assert [r["member"] for r in chat.records("elimination", "gone")] == ["u1"]


def test_freed_places_go_to_the_waiting_list_one_each(make_chat: Make) -> None:
    chat = make_chat(_cfg(waitlist=["w1"]))
    assert chat.command("elimination", "waitlist_add", member="w2")["position"] == 1
    chat.command("elimination", "waitlist_add", member="w3")
    chat.join("u1")
    chat.join("u2")
    chat.join("u3")
    chat.advance(days=5)
    chat.say("u3", "在的")
    chat.advance(days=1, hours=17)  # 2026-11-09 10:00: u1 and u2 warned
    chat.advance(days=3)  # both removed
    invites = [a for a in chat.actions if a["type"] == "invite"]
    assert [a["member"] for a in invites] == ["w1", "w2"]
    assert all(a["group"] == "g-main" for a in invites)
    assert chat.command("elimination", "waitlist") == {"group": "g-main", "waiting": ["w3"], "invited": ["w1", "w2"]}
    [note] = [a for a in chat.actions if a["type"] == "notify_admins"]
    assert "2" in note["text"]


def test_someone_on_the_waiting_list_who_joins_is_taken_off_it(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.command("elimination", "waitlist_add", member="w1")
    chat.command("elimination", "waitlist_add", member="w2")
    chat.join("w1")  # came in some other way
    chat.join("u1")
    chat.advance(days=10, hours=17)
    invites = [a["member"] for a in chat.actions if a["type"] == "invite"]
    # w1 is a member now; removing u1 (and w1, also silent) frees places for w2 only
    assert invites == ["w2"]


def test_preview_lists_without_acting(make_chat: Make) -> None:
    chat = make_chat(_cfg(period="0 10 1 * *"), roles={"admin": ["a1"]})
    chat.join("u1", "小王")
    chat.join("a1")
    chat.advance(days=8)
    chat.join("new")
    chat.say("u2", "hello")  # seen acting, no join on record: still a member
    chat.take()
    before = chat.scalar("SELECT count(*) FROM playbook_state WHERE playbook = 'elimination'")
    result = chat.command("elimination", "preview")
    [group] = result["groups"]
    assert result["as_of"] == "2026-11-10"
    assert [w["member"] for w in group["warn"]] == ["u1"]
    assert group["warn"][0]["counts"] == {"messages": 0, "checkins": 0}
    assert group["warn"][0]["name"] == "小王"
    assert group["by_status"] == {"below": 1, "protected": 1, "grace": 1, "active": 1}
    assert group["remove"] == []
    chat.assert_nothing_sent()
    assert chat.records("elimination", "warned") == []
    assert chat.scalar("SELECT count(*) FROM playbook_state WHERE playbook = 'elimination'") == before
    # as of an earlier day, u1 was still in the grace period
    early = chat.command("elimination", "preview", as_of="2026-11-05")
    assert early["groups"][0]["warn"] == []
    with pytest.raises(CommandError, match="as_of"):
        chat.command("elimination", "preview", as_of="next tuesday")


def test_preview_shows_who_would_be_removed(make_chat: Make) -> None:
    chat = make_chat(_cfg())
    chat.join("u1")
    chat.advance(days=7, hours=17)
    [row] = chat.command("elimination", "preview")["groups"][0]["remove"]
    assert row["member"] == "u1" and row["deadline"].startswith("2026-11-12")


def test_approval_flow(make_chat: Make) -> None:
    chat = make_chat(_cfg(require_approval=True))
    for uid in ("u1", "u2", "u3"):
        chat.join(uid)
    chat.advance(days=6, hours=17)  # 2026-11-09 10:00: the period prepares a batch instead of warning
    [note] = chat.take()
    assert note["type"] == "notify_admins" and "warn-20261109-g-main" in note["text"]
    assert chat.records("elimination", "warned") == []
    chat.say("u3", "我在")  # became active before the approval: skipped
    chat.take()
    result = chat.command("elimination", "approve", batch="warn-20261109-g-main", exclude=["u2"])
    assert result["warned"] == ["u1"]
    assert {s["member"]: s["why"] for s in result["skipped"]} == {"u2": "excluded", "u3": "active"}
    sent = chat.take()
    assert [a["member"] for a in sent if a["type"] == "direct"] == ["u1"]
    with pytest.raises(CommandError, match="approved, not pending"):
        chat.command("elimination", "approve", batch="warn-20261109-g-main")
    chat.advance(days=3)  # the deadline prepares a removal batch
    done = chat.take()
    assert not [a for a in done if a["type"] == "remove"]
    [note] = [a for a in done if "remove-20261112-g-main" in a.get("text", "")]
    assert note["type"] == "notify_admins"
    # u2 was left out of the warning, so each later period's batch lists u2 again
    assert [e["member"] for e in chat.state("elimination", "batch:warn-20261112-g-main")["members"]] == ["u2"]
    result = chat.command("elimination", "approve", batch="remove-20261112-g-main")
    assert result["removed"] == ["u1"]
    assert [a["member"] for a in chat.take() if a["type"] == "remove"] == ["u1"]
    with pytest.raises(CommandError, match="no elimination batch"):
        chat.command("elimination", "approve", batch="nope")


def test_a_batch_can_be_discarded_and_is_replaced_by_the_next(make_chat: Make) -> None:
    chat = make_chat(_cfg(require_approval=True))
    chat.join("u1")
    chat.advance(days=6, hours=17)
    assert chat.command("elimination", "discard", batch="warn-20261109-g-main")["status"] == "discarded"
    chat.advance(days=1)  # the next period prepares a new batch
    assert chat.state("elimination", "batch:warn-20261110-g-main")["status"] == "pending"
    chat.advance(days=1)
    assert chat.state("elimination", "batch:warn-20261110-g-main")["status"] == "superseded"
    assert chat.state("elimination", "batch:warn-20261111-g-main")["members"] == [
        {"member": "u1", "counts": {"messages": 0, "checkins": 0}}
    ]


def test_scope_community_counts_activity_in_other_groups(make_chat: Make) -> None:
    chat = make_chat(_cfg(scope="community"), groups=("g-main", "g-sub"))
    chat.join("u1")
    chat.join("u2")
    chat.advance(days=6)
    chat.say("u1", "在子群说话", group="g-sub")
    chat.advance(hours=17)
    assert _warned(chat) == ["u2"]


# ------------------------------------------------------------ the KPI itself


@pytest.mark.parametrize(
    ("kpi", "counts", "met"),
    [
        ("messages + checkins >= 1", {"messages": 0, "checkins": 1}, True),
        ("messages + checkins >= 1", {}, False),
        ("messages >= 3 or checkins >= 5", {"messages": 2, "checkins": 5}, True),
        ("messages >= 3 and not replies == 0", {"messages": 3, "replies": 0}, False),
        ("2 * replies - 1 > messages", {"messages": 1, "replies": 2}, True),
        ("1 <= messages < 10", {"messages": 10}, False),
        ("-messages < 0", {"messages": 1}, True),
    ],
)
def test_kpi_expressions(kpi: str, counts: dict[str, int], met: bool) -> None:
    assert kpi_met(EliminationConfig(kpi=kpi).kpi, counts) is met


@pytest.mark.parametrize(
    ("kpi", "needle"),
    [
        ("__import__('os')", "function calls are not allowed"),
        ("__import__('os').system('id') or messages >= 1", "function calls are not allowed"),
        ("messages.real >= 1", "attribute access is not allowed"),
        ("().__class__.__bases__ == 1", "attribute access is not allowed"),
        ("followers >= 1", "unknown counter 'followers'"),
        ("messages ** 99 >= 1", "only +, - and * are allowed"),
        ("messages >= 1.5", "only whole numbers"),
        ("messages >= True", "only whole numbers"),
        ("messages in [1, 2]", "only ==, !="),
        ("messages[0] >= 1", "indexing is not allowed"),
        ("messages + checkins", "must be a comparison"),
        ("(lambda: 1)() >= 1", "not allowed"),
        ("messages >= 99999999999", "too large"),
        ("messages >=", "cannot read the KPI"),
        ("(messages >= 1) + 1 >= 1", "cannot be used as a number"),
        ("messages >= 1 if checkins else 0", "IfExp is not allowed"),
        ("", "empty"),
    ],
)
def test_bad_kpi_expressions_are_rejected_with_a_clear_message(kpi: str, needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        EliminationConfig(kpi=kpi)
    assert needle in str(err.value), str(err.value)


def test_a_bad_kpi_is_a_configuration_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_text(community_config({"elimination": {"kpi": "__import__('os')"}}))
    assert "playbooks.elimination.kpi" in str(err.value)
    assert "function calls are not allowed" in str(err.value)
    with pytest.raises(ConfigError, match="invalid cron"):
        settings_from_text(community_config({"elimination": {"period": "monthly"}}))


def test_erase_removes_the_member_from_lists_and_batches(make_chat: Make) -> None:
    chat = make_chat(_cfg(require_approval=True))
    chat.join("u1")
    chat.join("u10")
    chat.command("elimination", "waitlist_add", member="u1")
    chat.advance(days=6, hours=17)
    chat.command("elimination", "approve", batch="warn-20261109-g-main")
    assert _export(chat, "u1")
    chat.engine.erase_member("test", "sim", "u1")
    assert not _export(chat, "u1")
    assert chat.state("elimination", "g:g-main:warned") == ["u10"]
    assert [e["member"] for e in chat.state("elimination", "batch:warn-20261109-g-main")["members"]] == ["u10"]


def _export(chat: Chat, member: str) -> Any:
    found = chat.engine.export_member("test", "sim", member)
    return found.get("playbooks", found)["elimination"]
