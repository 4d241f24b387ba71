"""duty: sign-up queue, weekly rotation, checklist and reminders, KPI, pay from the dues, mid-week leaving.

The harness starts on Monday 2026-11-02 17:00 in Asia/Shanghai (ISO week
2026-W45), after that week's 09:00 rotation; the first rotation a test sees
is Monday 2026-11-09 09:00 (2026-W46).

Most KPI tests pin the issue's state contract with small stand-ins
registered under the ids ``qa`` and ``digest`` that only write state in its
shape (``qa`` ``week:<W>``, ``digest`` ``published:<period>``), so they do not
depend on how those playbooks count; the last test drives the real ``qa``,
``essence`` and ``digest`` by conversation. A ``dues`` stand-in moves money
into ``community:dues:CNY`` the way ``fund`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import CommandError, ConfigError
from qunyun.engine import Command, Context, Playbook, Registry
from qunyun.playbooks.duty import Duty, split_capped
from qunyun.testing import Chat

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(UTC)


class _StateWriter(Playbook):
    """Writes contract-shaped state on command (stands in for a playbook built elsewhere)."""

    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {"put": "Store args.value under args.key."}

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        ctx.state.put(command.args["key"], command.args["value"])
        return {}


class QaStandIn(_StateWriter):
    id = "qa"


class DigestStandIn(_StateWriter):
    id = "digest"


class DuesStandIn(Playbook):
    """Collects admin dues from outside money into community:dues:CNY."""

    id = "dues"
    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {"collect": "args.amount into the dues"}

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        ctx.ledger.transfer("external:payments:CNY", "community:dues:CNY", command.args["amount"], "CNY", "dues")
        return {}


REG = Registry({"duty": Duty, "qa": QaStandIn, "digest": DigestStandIn, "dues": DuesStandIn})
ADMINS = {"admin": ["boss"]}


def _signup(chat: Chat, *users: str) -> None:
    for u in users:
        chat.say(u, "报名值班", name={"u1": "小王", "u2": "小李", "u3": "小张"}.get(u, u))
    chat.take()


def test_signup_queue_and_rotation_in_signup_order(make_chat: Make) -> None:
    chat = make_chat({"duty": {}}, roles=ADMINS)
    chat.say("u1", "报名值班", name="小王")
    [reply] = chat.assert_sent("第 1 位", playbook="duty")
    assert reply["mentions"] == ["u1"]
    chat.say("u2", "报名值班", name="小李")
    chat.assert_sent("第 2 位（共 2 人）")
    chat.say("u1", "报名值班")
    chat.assert_sent("已经在值班名单里了（第 1 位）")
    chat.say("u3", "报名值班", name="小张")
    chat.take()
    assert chat.state("duty", "queue") == ["u1", "u2", "u3"]
    assert chat.state("duty", "current") is None
    chat.advance_to(local(2026, 11, 9, 8, 59))
    chat.assert_nothing_sent()  # nobody is on duty before the first rotation
    chat.advance_to(local(2026, 11, 9, 9, 0))
    [first] = chat.assert_sent(type="notify_admins")
    assert "2026-W46" in first["text"] and "@小王" in first["text"]
    assert chat.state("duty", "current") == ["u1"]
    assert chat.state("duty", "current_week") == "2026-W46"
    [dm] = [a for a in chat.actions if a["type"] == "direct"]
    assert dm["member"] == "u1" and "收集本周的问题" in dm["text"] and "完成 1" in dm["text"]
    seen = []
    for _ in range(3):
        chat.advance(days=7)
        handover = chat.sent(type="notify_admins")[0]["text"]
        chat.take()
        seen.append((chat.state("duty", "current"), handover.split("\n")[0]))
    assert seen[0] == (["u2"], "🔁 值班交接（2026-W47）：@小王 → @小李")
    assert seen[1] == (["u3"], "🔁 值班交接（2026-W48）：@小李 → @小张")
    assert seen[2][0] == ["u1"]  # wraps around in sign-up order
    chat.assert_ledger_balanced()


def test_several_per_week_and_an_empty_roster_stays_quiet(make_chat: Make) -> None:
    chat = make_chat({"duty": {"per_week": 2}})
    chat.advance(days=8)
    chat.assert_nothing_sent()  # no roster at all: no noise
    _signup(chat, "u1", "u2", "u3")
    chat.advance(days=7)
    assert chat.state("duty", "current") == ["u1", "u2"]
    assert len(chat.sent(type="direct")) == 2
    chat.take()
    chat.advance(days=7)
    assert chat.state("duty", "current") == ["u3", "u1"]


def test_checklist_ticks_by_duty_member_admin_or_command_and_reminders(make_chat: Make) -> None:
    chat = make_chat({"duty": {}}, roles=ADMINS)
    _signup(chat, "u1", "u2")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.say("u2", "完成 1")  # not on duty: ordinary chat
    chat.assert_nothing_sent()
    chat.say("u1", "完成 1")
    chat.assert_sent("✅ 已完成「收集本周的问题」（1/4）", count=1)
    chat.say("u1", "完成 1")
    chat.assert_sent("之前已经完成了（1/4）")
    chat.say("u1", "完成 9")
    chat.assert_sent("清单里没有「9」")
    chat.say("boss", "完成 warmup")
    chat.assert_sent("（2/4）")
    # Wednesday 10:00: the open items only, privately to the member on duty
    chat.advance_to(local(2026, 11, 11, 10, 0))
    [reminder] = chat.assert_sent(type="direct")
    assert reminder["member"] == "u1"
    assert "还有 2 项没完成" in reminder["text"]
    assert "答疑人" in reminder["text"] and "收集本周的问题" not in reminder["text"]
    result = chat.command("duty", "tick", item="answerers")
    assert result["ticked"] is True and result["kpi"]["checklist_done"] == 3
    chat.command("duty", "tick", item=4)
    with pytest.raises(CommandError):
        chat.command("duty", "tick", item="nonsense")
    chat.advance_to(local(2026, 11, 13, 12, 0))  # Friday: everything is done, no reminder
    chat.assert_nothing_sent()
    assert chat.state("duty", "kpi:2026-W46")["checklist_done"] == 4


def test_kpi_from_qa_and_digest_state_in_the_handover(make_chat: Make) -> None:
    chat = make_chat({"duty": {}, "qa": {}, "digest": {}}, registry=REG)
    _signup(chat, "u1", "u2")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.say("u1", "完成 1")
    chat.command(
        "qa", "put", key="week:2026-W46",
        value={"answerers": {"a1": 3, "a2": 1}, "askers": {"q1": 2}, "resolved": 1, "asked": 2, "votes": 5},
    )
    chat.command("qa", "put", key="week:2026-W47", value={"answerers": {"x": 9}, "votes": 9, "resolved": 9})
    chat.command("digest", "put", key="published:2026-11-12", value={"ts": "2026-11-12T20:00:00+08:00", "entries": 3})
    chat.take()
    live = chat.command("duty", "kpi")
    assert (live["answerers"], live["votes"], live["resolved"], live["digest"]) == (2, 5, 1, True)
    assert live["final"] is False
    chat.advance(days=7)
    [handover] = chat.assert_sent(type="notify_admins")
    assert "上周（2026-W46）值班成绩：答疑 2 人，回答得票 5，解决问题 1 个，精华已发布，清单完成 1/4" in handover["text"]
    kpi = chat.state("duty", "kpi:2026-W46")
    assert kpi["final"] is True and kpi["members"] == ["u1"] and kpi["asked"] == 2
    assert chat.command("duty", "kpi", week="2026-W46") == kpi
    # the week after: no digest published that week
    chat.advance(days=7)
    [second] = chat.assert_sent(type="notify_admins")
    assert "答疑 1 人，回答得票 9，解决问题 9 个，精华未发布，清单完成 0/4" in second["text"]


def test_kpi_sources_that_do_not_run_show_a_dash(make_chat: Make) -> None:
    chat = make_chat({"duty": {}}, locale="en")
    _signup(chat, "u1")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.advance(days=7)
    [handover] = chat.assert_sent(type="notify_admins")
    assert "— answerers, — votes on answers, — questions resolved, digest —, checklist 0/4" in handover["text"]
    kpi = chat.state("duty", "kpi:2026-W46")
    assert kpi["answerers"] is None and kpi["digest"] is None


def test_duty_pay_is_limited_by_the_dues_and_the_ledger_balances(make_chat: Make) -> None:
    chat = make_chat({"duty": {"per_week": 2, "pay_per_week": 5000}, "dues": {}}, registry=REG)
    _signup(chat, "u2", "u1", "u3")
    chat.command("dues", "collect", amount=12000)
    chat.advance_to(local(2026, 11, 9, 9, 0))  # u2, u1 on duty
    chat.take()
    chat.advance(days=7)  # full pay: 2 × 5000
    [handover] = chat.assert_sent(type="notify_admins")
    assert "值班津贴" in handover["text"] and "50.00 CNY" in handover["text"]
    assert chat.balance("member:sim:u1:CNY") == 5000 and chat.balance("member:sim:u2:CNY") == 5000
    assert chat.balance("community:dues:CNY") == 2000
    # u3, u2 on duty; only 2000 left for 10000 earned: split, never below zero
    chat.advance(days=7)
    [short] = chat.assert_sent(type="notify_admins")
    assert "管理费余额不足：应发 100.00 CNY，实发 20.00 CNY" in short["text"]
    assert chat.balance("member:sim:u3:CNY") == 1000
    assert chat.balance("member:sim:u2:CNY") == 6000
    assert chat.balance("community:dues:CNY") == 0
    kpi = chat.state("duty", "kpi:2026-W47")
    assert kpi["owed"] == {"u2": 5000, "u3": 5000} and kpi["paid_total"] == 2000
    # an empty dues account pays nothing and posts nothing
    chat.advance(days=7)
    assert chat.balance("community:dues:CNY") == 0
    assert chat.state("duty", "kpi:2026-W48")["paid_total"] == 0
    # conservation: everything paid out came from the dues, which came from outside
    paid = sum(chat.balance(f"member:sim:{u}:CNY") for u in ("u1", "u2", "u3"))
    assert paid + chat.balance("community:dues:CNY") == 12000 == -chat.balance("external:payments:CNY")
    assert len(chat.records("duty", "duty_pay")) == 4
    chat.assert_ledger_balanced()


def test_split_capped_is_largest_remainder_with_ties_by_user_id() -> None:
    assert split_capped({"b": 5000, "a": 5000}, 7001) == {"a": 3501, "b": 3500}
    assert split_capped({"a": 1428, "b": 3571}, 10_000) == {"a": 1428, "b": 3571}
    assert split_capped({"a": 1, "b": 2}, 0) == {"a": 0, "b": 0}
    shares = split_capped({"a": 3, "b": 3, "c": 3}, 5)
    assert sum(shares.values()) == 5 and shares == {"a": 2, "b": 2, "c": 1}


def test_a_member_leaving_mid_week_gets_a_stand_in_and_pay_pro_rata(make_chat: Make) -> None:
    chat = make_chat({"duty": {"pay_per_week": 7000}, "dues": {}}, registry=REG)
    _signup(chat, "u1", "u2", "u3")
    chat.command("dues", "collect", amount=100_000)
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.advance_to(local(2026, 11, 11, 15, 0))  # Wednesday
    chat.take()
    chat.say("u1", "退出值班")
    chat.assert_sent("已退出值班名单")  # (consumes the rest too)
    assert chat.state("duty", "current") == ["u2"]
    assert chat.state("duty", "queue") == ["u2", "u3"]
    actions = chat.actions
    [step] = [a for a in actions if a["type"] == "direct" and a["member"] == "u2"]
    assert "接班" in step["text"]
    [note] = [a for a in actions if a["type"] == "notify_admins" and "退出了本周" in a.get("text", "")]
    assert "已请 小李 接班" in note["text"]
    chat.say("u2", "完成 2")  # the stand-in may tick
    chat.assert_sent("（1/4）")
    chat.say("u1", "完成 3")  # the one who left may not
    chat.assert_nothing_sent()
    chat.advance_to(local(2026, 11, 16, 9, 0))
    # u1 served Mon–Wed (2 days), u2 Wed–Mon (5 days)
    assert chat.balance("member:sim:u1:CNY") == 2000
    assert chat.balance("member:sim:u2:CNY") == 5000
    assert chat.balance("community:dues:CNY") == 93_000
    # the stand-in's own turn is not used up
    assert chat.state("duty", "current") == ["u2"]
    chat.assert_ledger_balanced()


def test_leaving_the_group_takes_a_member_off_duty(make_chat: Make) -> None:
    chat = make_chat({"duty": {}})
    _signup(chat, "u1", "u2")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.leave("u1")
    assert chat.state("duty", "current") == ["u2"]
    assert chat.state("duty", "queue") == ["u2"]
    [note] = chat.sent(type="notify_admins")
    assert "小王" in note["text"]
    chat.take()
    chat.leave("u2")  # nobody left to step in
    [alone] = chat.assert_sent(type="notify_admins")
    assert "没有人可以接班" in alone["text"]
    assert chat.state("duty", "current") == []


def test_quit_when_not_signed_up_and_roles_not_eligible(make_chat: Make) -> None:
    chat = make_chat({"duty": {"eligible_roles": ["admin", "assistant"]}}, roles={"assistant": ["helper"]})
    chat.say("u1", "退出值班")
    chat.assert_sent("不在值班名单里")
    chat.say("u1", "报名值班")
    chat.assert_sent("目前还不能报名值班")
    assert chat.state("duty", "queue") is None
    chat.say("helper", "报名值班")
    chat.assert_sent("第 1 位")
    with pytest.raises(CommandError):
        chat.command("duty", "signup", member="u9")


def test_roster_rotate_command_and_nothing_sent_on_chatter(make_chat: Make) -> None:
    chat = make_chat({"duty": {}})
    chat.say("u1", "值班表")
    chat.assert_sent("还没有人报名值班")
    chat.say("u1", "完成 1")
    chat.say("u1", "今天天气不错")
    chat.assert_nothing_sent()
    chat.command("duty", "signup", member="u1")
    chat.command("duty", "signup", member="u2")
    result = chat.command("duty", "rotate")  # start at once, mid-week
    assert result["incoming"] == ["u1"] and result["week"] == "2026-W45"
    with pytest.raises(CommandError, match="already rotated"):
        chat.command("duty", "rotate")
    chat.take()
    chat.say("u3", "值班表", name="小张")
    [roster] = chat.assert_sent("本周（2026-W45）值班：@u1")
    assert "u1 → u2" in roster["text"]
    assert chat.command("duty", "roster")["current"] == ["u1"]
    chat.advance_to(local(2026, 11, 9, 9, 0))  # the scheduled rotation still comes
    assert chat.state("duty", "current") == ["u2"]
    assert chat.state("duty", "kpi:2026-W45")["final"] is True


def test_erase_removes_the_member_from_queue_duty_and_kpis(make_chat: Make) -> None:
    chat = make_chat({"duty": {"pay_per_week": 700}, "dues": {}}, registry=REG)
    _signup(chat, "u1", "u10")
    chat.command("dues", "collect", amount=5000)
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.say("u1", "完成 1")
    chat.advance(days=7)
    before = chat.engine.export_member("test", "sim", "u1")["playbooks"]["duty"]
    assert before["weeks"]["2026-W46"]["pay"]["paid"] == 700
    assert before["weeks"]["2026-W46"]["ticked"] == ["questions"]
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"].get("duty")
    assert chat.state("duty", "queue") == ["u10"]
    kpi = chat.state("duty", "kpi:2026-W46")
    assert "u1" not in kpi["owed"] and kpi["paid_total"] == 700  # the aggregate stays
    chat.assert_ledger_balanced()


@pytest.mark.parametrize(
    "bad",
    [
        {"rotation": "every monday"},
        {"remind_days": [0, 8]},
        {"remind_time": "25:00"},
        {"checklist": [{"id": "a", "title": "x"}, {"id": "A", "title": "y"}]},
        {"checklist": [{"id": "has space", "title": "x"}]},
        {"pay_per_week": -1},
        {"currency": "yuan"},
        {"per_week": 0},
    ],
)
def test_bad_settings_fail_at_load_time(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Chat({"duty": bad}).close()


def test_replay_gives_the_same_actions(make_chat: Make) -> None:
    def run(chat: Chat) -> list[tuple[str, str]]:
        _signup(chat, "u1", "u2")
        chat.advance(days=9)
        chat.say("u1", "完成 1")
        chat.advance(days=7)
        return [(a["id"], a["type"]) for a in chat.actions]

    with Chat({"duty": {}}) as a, Chat({"duty": {}}) as b:
        one, two = run(a), run(b)
    assert one == two and len(one) > 4


def test_kpi_with_the_real_qa_and_digest_playbooks(make_chat: Make) -> None:
    """The same KPI, driven by conversation through the real qa, essence and digest playbooks."""
    chat = make_chat({"qa": {}, "essence": {}, "digest": {}, "duty": {}}, roles=ADMINS)
    _signup(chat, "u1")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    q = chat.say("asker", "#提问 Python 入门应该看哪本书？")
    best = chat.say("a1", "推荐《流畅的Python》", reply_to=q)
    chat.say("a2", "官方教程就很好", reply_to=q)
    chat.react("v1", best, "👍")
    chat.say("boss", "最佳", reply_to=best)  # resolves the question
    chat.advance(days=1)  # the digest of Monday is published on Tuesday
    chat.take()
    chat.advance_to(local(2026, 11, 16, 9, 0))
    [handover] = chat.sent(type="notify_admins", playbook="duty")
    assert "答疑 2 人，回答得票 1，解决问题 1 个，精华已发布" in handover["text"]
    kpi = chat.state("duty", "kpi:2026-W46")
    assert (kpi["answerers"], kpi["votes"], kpi["resolved"], kpi["asked"], kpi["digest"]) == (2, 1, 1, 1, True)


def test_launch_and_duty_share_the_done_keyword_without_double_replies(make_chat: Make) -> None:
    """Both listen to ``完成 <x>``: a launch task id is left to launch, a checklist item is ticked,
    and what neither knows gets one reply (launch's), not two."""
    tasks = [{"id": "rules", "day": 0, "title": "发群规"}, {"id": "opening", "day": 1, "title": "开场"}]
    chat = make_chat({"launch": {"tasks": tasks}, "duty": {}}, roles=ADMINS)
    _signup(chat, "u1", "u2")
    chat.advance_to(local(2026, 11, 9, 9, 0))
    chat.take()
    chat.say("boss", "完成 rules")  # launch's task: marked by launch, duty says nothing
    [reply] = chat.assert_sent(count=1)
    assert reply["playbook"] == "launch"
    assert chat.state("duty", "week:2026-W46")["done"] == {}
    chat.say("boss", "完成 digest")  # a checklist item: ticked by duty
    [reply] = chat.assert_sent(playbook="duty", count=1)
    assert "（1/4）" in reply["text"]
    chat.say("u1", "完成 1")  # the member on duty (launch ignores non-admins)
    chat.assert_sent("（2/4）", count=1)
    chat.say("boss", "完成 3")  # an admin ticks item 3: duty answers, launch leaves a number alone
    [reply] = chat.assert_sent(count=1)
    assert reply["playbook"] == "duty"
    chat.say("boss", "完成 nonsense")  # unknown to both: one reply, from launch
    [reply] = chat.assert_sent(count=1)
    assert reply["playbook"] == "launch"
    # (without launch in the group duty explains an unknown item itself: see the checklist test)
