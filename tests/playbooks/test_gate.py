"""gate: the entry gate in each mode, before the join (join requests) and after it (WeChat)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import yaml

from qunyun.core.errors import CommandError, ConfigError
from qunyun.engine import Command, Context, Playbook, Registry, default_registry
from qunyun.playbooks.gate import normalize_code, valid_code
from qunyun.testing import Chat
from qunyun.testing.harness import community_config

Make = Callable[..., Chat]

ROLES = {"owner": ["own"], "admin": ["boss"], "assistant": ["helper"]}


class FakeReferrals(Playbook):
    """Stands in for the referrals playbook: issues codes under its documented state key."""

    id = "referrals"
    handles = frozenset({"message"})
    commands: ClassVar[dict[str, str]] = {"issue": "issue a code"}
    summary: ClassVar[dict[str, str]] = {"zh-CN": "邀请码（测试）", "en": "codes (test)"}

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        ctx.state.put(f"code:{command.args['code']}", {"member": command.args["member"]})
        return {}


REG = Registry({**{p.id: p for p in default_registry() if p.id != "referrals"}, "referrals": FakeReferrals})


def gate_chat(
    make: Make,
    gate: dict[str, Any],
    *,
    admin_group: bool = True,
    groups: tuple[str, ...] = ("g-main",),
    referrals: bool = False,
    locale: str = "zh-CN",
    group_overrides: dict[str, Any] | None = None,
) -> Chat:
    playbooks: dict[str, Any] = {"gate": gate}
    if referrals:
        playbooks["referrals"] = {}
    doc = yaml.safe_load(
        community_config(playbooks, groups=groups, roles=ROLES, locale=locale, group_overrides=group_overrides)
    )
    if admin_group:
        doc["communities"][0]["groups"].append({"id": "g-admin", "platform": "sim", "admin": True})
    return make(yaml.safe_dump(doc, allow_unicode=True), registry=REG)


def request(chat: Chat, user: str, answers: Any = None, name: str | None = None) -> None:
    chat.event("join_request", user, name=name, answers=answers if answers is not None else {})


def admin_says(chat: Chat, text: str, mentions: tuple[str, ...] = ()) -> None:
    chat.say("boss", text, mentions=list(mentions), group="g-admin")


def rec(chat: Chat, user: str, group: str = "g-main") -> dict[str, Any]:
    return chat.state("gate", f"m:{user}")["groups"][f"sim:{group}"]


QUIZ = [
    {"question": "本群的主题是？", "choices": ["烹饪", "社群运营", "钓鱼"], "answers": ["B"]},
    {"question": {"zh-CN": "一周分享几次？", "en": "Shares a week?"}, "answers": ["2", "两次"]},
    {"question": "群主的名字？", "answers": ["Alice"]},
    {"question": "禁止什么？", "choices": ["广告", "提问"], "answers": ["广告"]},
    {"question": "打卡关键词？", "answers": ["打卡"]},
    {"question": "答疑在周几？", "answers": ["周三", "星期三", "3"]},
]
RIGHT = {
    0: "B",
    1: "２",  # full-width digit: width-insensitive
    2: "alice",  # case-insensitive
    3: "a",
    4: "打卡",
    5: "星期三",
}


def right_answers(chat: Chat, user: str) -> str:
    return " ".join(f"{n}. {RIGHT[i]}" for n, i in enumerate(rec(chat, user)["quiz"], 1))


# -------------------------------------------------------------------- open


def test_open_does_nothing_at_all(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "open"})
    chat.join("u1")
    request(chat, "u2", {"why": "hi"})
    chat.say("u1", "邀请码 7K3M9Q")
    chat.pay("u1", 100)
    chat.advance(days=3)
    chat.assert_nothing_sent()
    assert chat.state("gate", "m:u1") is None


def test_staff_pass_without_a_word(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ})
    chat.join("boss")
    chat.join("helper")
    chat.advance(days=2)
    chat.assert_nothing_sent()
    request(chat, "own")
    [invite] = chat.assert_sent(type="invite", count=1)
    assert invite["member"] == "own" and invite["group"] == "g-main"


# ---------------------------------------------------------------- approval


def test_approval_by_request_then_admin_approves_in_the_admins_group(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {})
    request(chat, "u1", {"你是怎么知道我们的？": "朋友推荐", "你希望在这里收获什么？": "学运营"}, name="小王")
    [note] = chat.sent(type="notify_admins")
    assert "小王（u1）" in note["text"] and "朋友推荐" in note["text"] and "批准 u1" in note["text"]
    [ack] = chat.sent(type="direct")
    assert ack["member"] == "u1"
    chat.take()
    st = chat.state("gate", "m:u1")
    assert st["status"] == "pending"
    assert st["answers"] == {"你是怎么知道我们的？": "朋友推荐", "你希望在这里收获什么？": "学运营"}
    request(chat, "u1", {"你是怎么知道我们的？": "朋友推荐", "你希望在这里收获什么？": "学运营"})
    chat.assert_nothing_sent()  # the same request again: admins are not pinged twice
    admin_says(chat, "批准 @小王", mentions=("u1",))
    actions = chat.take()
    [invite] = [a for a in actions if a["type"] == "invite"]
    assert invite["member"] == "u1" and invite["group"] == "g-main"
    assert any(a["type"] == "direct" and "通过" in a["text"] for a in actions)
    assert any(a["type"] == "send" and a["group"] == "g-admin" and "已批准 小王" in a["text"] for a in actions)
    chat.join("u1", via="approve")
    chat.advance(days=2)
    chat.assert_nothing_sent()
    assert chat.state("gate", "m:u1")["status"] == "admitted"
    [admitted] = chat.records("gate", "admitted")
    assert admitted["member"] == "u1" and admitted["data"]["via"] == "approval"


def test_list_answers_are_matched_to_the_questions_and_a_rejection_gives_the_reason(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"questions": ["为什么加入？"]})
    request(chat, "u2", ["想学习", "多出来的回答"])
    assert chat.state("gate", "m:u2")["answers"] == {"为什么加入？": "想学习", "#2": "多出来的回答"}
    chat.take()
    admin_says(chat, "拒绝 u2 资料不完整")
    actions = chat.take()
    [told] = [a for a in actions if a["type"] == "direct"]
    assert told["member"] == "u2" and "资料不完整" in told["text"]
    assert not [a for a in actions if a["type"] in ("invite", "remove")]
    assert chat.state("gate", "m:u2")["status"] == "rejected"
    request(chat, "u2", ["再试一次"])  # within the block: no new application for the admins
    assert chat.sent(type="notify_admins") == []
    chat.take()
    chat.advance(hours=25)
    request(chat, "u2", ["再试一次"])
    chat.assert_sent(type="notify_admins", count=1)


def test_only_owners_and_admins_decide_and_ordinary_talk_is_left_alone(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {})
    request(chat, "u1", ["a", "b"])
    chat.take()
    chat.say("u9", "批准 u1", group="g-admin")  # not an admin
    admin_says(chat, "approve the plan for tomorrow")  # not a member with an application
    admin_says(chat, "通过率很高")
    chat.assert_nothing_sent()
    assert chat.state("gate", "m:u1")["status"] == "pending"
    admin_says(chat, "批准 u7")  # unknown to the gate: not a command either
    chat.assert_nothing_sent()


@pytest.mark.parametrize(
    ("locale", "verb", "expected"),
    [
        ("zh-CN", "拒绝", "没办成：没有来自 u1 的待处理申请"),
        ("en", "reject", "Not done: no application from u1 is waiting"),
    ],
)
def test_a_refused_admin_chat_command_replies_in_the_communitys_language(
    make_chat: Make, locale: str, verb: str, expected: str
) -> None:
    chat = gate_chat(make_chat, {}, locale=locale)
    request(chat, "u1", ["a", "b"])
    admin_says(chat, f"{verb} u1")
    chat.take()
    admin_says(chat, f"{verb} u1")  # already rejected: nothing is waiting any more
    [reply] = chat.assert_sent(type="send", count=1)
    assert reply["group"] == "g-admin"
    assert reply["text"] == expected  # the refusal alone, without its hint for the CLI
    assert chat.state("gate", "m:u1")["status"] == "rejected"


def test_admin_command_errors_are_explained_and_retries_are_idempotent(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {})
    with pytest.raises(CommandError, match="no application from nobody"):
        chat.command("gate", "approve", member="nobody")
    request(chat, "u1", ["a", "b"])
    chat.take()
    assert chat.command("gate", "approve", member="@u1", id="c1")["status"] == "admitted"
    assert chat.command("gate", "approve", member="u1", id="c1") == {"duplicate": True}
    assert len(chat.sent(type="invite")) == 1
    with pytest.raises(CommandError):
        chat.command("gate", "verify", member="u1")


def test_approval_after_the_join_collects_answers_by_message(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"questions": ["为什么加入？", "做什么工作？"]})
    chat.join("u1", "小王")
    [ask] = chat.assert_sent(type="send", count=1)
    assert ask["mentions"] == ["u1"] and "为什么加入？" in ask["text"] and "24 小时" in ask["text"]
    chat.say("u1", "想学运营")
    chat.assert_nothing_sent()
    chat.say("u1", "产品经理")
    [note] = chat.sent(type="notify_admins")
    assert "想学运营" in note["text"] and "产品经理" in note["text"]
    chat.take()
    chat.say("u1", "大家好")  # ordinary chat after answering
    chat.assert_nothing_sent()
    chat.command("gate", "approve", member="u1")
    [passed] = chat.assert_sent(type="send")
    assert passed["group"] == "g-main" and "已通过入群验证" in passed["text"]
    chat.advance(days=2)  # the deadline job finds them admitted
    chat.assert_nothing_sent()


# -------------------------------------------------------- after-join deadline


def test_after_join_reminder_then_removal_with_a_notice(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential"})
    chat.join("u1", "小王")
    chat.take()
    chat.advance(hours=19)
    chat.assert_nothing_sent()
    chat.advance(hours=1)
    [reminder] = chat.assert_sent(type="send", count=1)
    assert "4 小时" in reminder["text"] and reminder["mentions"] == ["u1"]
    chat.advance(hours=4)
    actions = chat.take()
    assert [a["type"] for a in actions] == ["remove", "send"]
    assert actions[0]["member"] == "u1" and "小王" in actions[1]["text"]
    assert rec(chat, "u1")["status"] == "expired"
    chat.leave("u1", by="bot")
    chat.advance(days=3)
    chat.assert_nothing_sent()


def test_leaving_cancels_the_pending_jobs(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential"})
    chat.join("u1")
    chat.take()
    chat.advance(hours=2)
    chat.leave("u1")
    chat.advance(days=3)
    chat.assert_nothing_sent()


def test_rejoining_does_not_renew_the_deadline(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential", "remind_before_hours": 0, "rejoin_grace_hours": 1})
    chat.join("u1")
    chat.take()
    chat.advance(hours=10)
    chat.leave("u1")
    chat.advance(hours=2)
    chat.join("u1")  # 12 h in: the instructions again, the same deadline
    chat.assert_sent(type="send", count=1)
    chat.advance(hours=11, minutes=59)
    chat.assert_nothing_sent()
    chat.advance(minutes=1)  # 24 h after the first join
    chat.assert_sent(type="remove", count=1)
    chat.leave("u1", by="bot")
    chat.advance(hours=3)
    chat.join("u1")  # after the deadline: one short grace
    chat.take()
    chat.advance(hours=1)
    chat.assert_sent(type="remove", count=1)
    chat.leave("u1", by="bot")
    chat.join("u1")  # and no second grace: out at once
    [removed] = chat.assert_sent(type="remove", count=1)
    assert removed["member"] == "u1"


def test_two_gated_groups_and_a_leave_racing_the_deadlines(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential", "remind_before_hours": 0}, groups=("g-a", "g-b"))
    chat.join("u1", group="g-a")
    chat.join("u1", group="g-b")
    chat.take()
    chat.advance(hours=23, minutes=59)
    chat.leave("u1", group="g-a")  # a minute before both deadlines
    chat.advance(hours=1)
    [removed] = chat.assert_sent(type="remove", count=1)
    assert removed["group"] == "g-b"
    chat.advance(days=2)
    chat.assert_nothing_sent()


def test_a_deadline_firing_for_someone_already_decided_does_nothing(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential", "remind_before_hours": 0})
    chat.join("u1")
    chat.say("u1", "微信好友 500")
    chat.take()
    chat.command("gate", "reject", member="u1", reason="核实不了")  # runs in the admins' group
    actions = chat.take()
    assert [a["type"] for a in actions if a["type"] in ("remove", "direct")] == ["direct", "remove"]
    assert next(a for a in actions if a["type"] == "remove")["group"] == "g-main"
    chat.advance(days=2)  # the g-main deadline job still exists and finds u1 gone
    chat.assert_nothing_sent()


# -------------------------------------------------------------------- quiz


def test_quiz_draw_is_random_but_deterministic() -> None:
    cfg = {"gate": {"mode": "quiz", "quiz": QUIZ, "quiz_count": 3, "max_attempts": 5}}
    draws = []
    for _ in range(2):
        with Chat(cfg, roles=ROLES) as chat:
            chat.join("u1")
            first = rec(chat, "u1")["quiz"]
            chat.say("u1", "1 x 2 x 3 x")
            draws.append((first, rec(chat, "u1")["quiz"]))
    assert draws[0] == draws[1]
    first, second = draws[0]
    assert len(first) == 3 and len(set(first)) == 3 and first != second


def test_quiz_passed_in_the_group_case_and_width_insensitive(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ})
    chat.join("u1", "小王")
    [ask] = chat.assert_sent(type="send", count=1)
    assert "答对 3 道" in ask["text"] and "剩余机会：3 次" in ask["text"]
    chat.say("u1", "今天天气不错")  # not an answer
    chat.assert_nothing_sent()
    answers = right_answers(chat, "u1").split(" 3. ")
    chat.say("u1", answers[0])  # answers may come in two messages
    chat.assert_nothing_sent()
    chat.say("u1", "3. " + answers[1])
    [passed] = chat.assert_sent(type="send", count=1)
    assert "已通过" in passed["text"]
    assert chat.state("gate", "m:u1")["status"] == "admitted"
    chat.advance(days=2)
    chat.assert_nothing_sent()


def test_quiz_brute_force_is_blocked_and_rejoining_gives_no_fresh_attempts(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ, "max_attempts": 3, "block_hours": None})
    chat.join("u1")
    chat.take()
    chat.say("u1", "1 x 2 x 3 x")
    [retry] = chat.assert_sent(type="send", count=1)
    assert "答对 0/3" in retry["text"] and "剩余机会：2 次" in retry["text"]
    chat.leave("u1")
    chat.join("u1")  # leave and rejoin: still one attempt used
    [again] = chat.assert_sent(type="send", count=1)
    assert "剩余机会：2 次" in again["text"]
    chat.say("u1", "1 x 2 x 3 x")
    chat.take()
    chat.say("u1", "1 y 2 y 3 y")
    actions = chat.take()
    assert [a["type"] for a in actions] == ["remove", "send"]
    assert "暂时无法再申请" in actions[1]["text"]
    assert rec(chat, "u1")["status"] == "blocked" and rec(chat, "u1")["attempts"] == 3
    chat.leave("u1", by="bot")
    chat.advance(days=30)
    chat.join("u1")  # blocked for good: out again at once
    assert [a["type"] for a in chat.take()] == ["remove", "send"]
    assert len(chat.records("gate", "quiz_failed")) == 3


def test_quiz_block_cools_down(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ, "max_attempts": 1, "block_hours": 12})
    chat.join("u1")
    chat.say("u1", "1 x 2 x 3 x")
    assert "之后可以再试" in chat.take()[-1]["text"]
    assert rec(chat, "u1")["status"] == "blocked"
    chat.leave("u1", by="bot")
    chat.advance(hours=6)
    chat.join("u1")
    chat.assert_sent(type="remove", count=1)
    chat.leave("u1", by="bot")
    chat.advance(hours=7)
    chat.join("u1")
    [ask] = chat.assert_sent(type="send", count=1)
    assert "剩余机会：1 次" in ask["text"]
    assert rec(chat, "u1")["attempt_no"] == 2  # new questions, not the failed set again


def test_quiz_by_join_request(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ, "quiz_count": 2})
    request(chat, "u1")
    [ask] = chat.assert_sent(type="direct", count=1)
    assert "1." in ask["text"] and "2." in ask["text"]
    answers = [RIGHT[i] for i in rec(chat, "u1")["quiz"]]
    request(chat, "u1", {"2": answers[1], "1": answers[0]})
    [invite] = chat.sent(type="invite")
    assert invite["member"] == "u1"


# -------------------------------------------------------------- invitation


def test_invited_by_a_member_in_good_standing(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "invitation"})
    chat.join("u1", inviter="own", via="invite")  # the owner's guest
    chat.join("u2", inviter="u1", via="invite")
    chat.assert_nothing_sent()
    assert rec(chat, "u2")["inviter"] == "u1"
    assert [r["data"]["inviter"] for r in chat.records("gate", "admitted")] == ["own", "u1"]
    chat.leave("u1")
    chat.join("u3", inviter="u1", via="invite")  # the inviter has left
    [ask] = chat.assert_sent(type="send", count=1)
    assert "邀请码" in ask["text"]
    assert rec(chat, "u3")["status"] == "pending"


def test_invite_codes_normalised_forged_and_replayed(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "invitation", "max_uses_per_code": 1}, referrals=True)
    chat.join("u1", inviter="own")
    chat.command("referrals", "issue", code="7K3M9Q", member="u1")
    chat.join("u4")
    chat.take()
    chat.say("u4", "邀请码 ZZZZZZ")  # forged
    [bad] = chat.assert_sent(type="send", count=1)
    assert "还可以再试 4 次" in bad["text"]
    chat.say("u4", "邀请码：7k3-m9o")  # normalised to 7K3M90: not the code either
    chat.take()
    chat.say("u4", "邀请码 7k3 m9q")
    [ok] = chat.assert_sent(type="send", count=1)
    assert "已通过" in ok["text"]
    st = rec(chat, "u4")
    assert st["inviter"] == "u1" and st["code"] == "7K3M9Q"
    assert chat.records("gate", "admitted")[-1]["data"] == {"inviter": "u1", "via": "code", "group": "g-main"}
    chat.join("u5")
    chat.take()
    chat.say("u5", "invite code 7K3M9Q")  # replayed: the code is used up
    chat.assert_sent("无法使用", count=1)
    assert rec(chat, "u5")["status"] == "pending"
    assert [r["data"]["why"] for r in chat.records("gate", "code_refused")] == ["unknown", "unknown", "used up"]


def test_a_code_of_a_member_who_left_and_guessing_is_limited(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "invitation", "max_code_guesses": 3}, referrals=True)
    chat.join("u1", inviter="own")
    chat.command("referrals", "issue", code="ABCDEF", member="u1")
    chat.leave("u1")
    request(chat, "u6", ["ABCDEF"])
    [told] = chat.assert_sent(type="direct", count=1)
    assert "无法使用" in told["text"]
    request(chat, "u6", ["邀请码 QQQQQQ"])
    chat.take()
    request(chat, "u6", ["邀请码 RRRRRR"])
    [blocked] = chat.assert_sent(type="direct", count=1)
    assert "次数已用完" in blocked["text"]
    request(chat, "u6", ["邀请码 ABCDEF"])
    chat.assert_sent("还不能重新申请", count=1)
    assert [r["data"]["why"] for r in chat.records("gate", "code_refused")] == ["inviter left", "unknown", "unknown"]


def test_codes_need_the_referrals_playbook(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "invitation"})
    chat.join("u4")
    chat.take()
    chat.say("u4", "邀请码 7K3M9Q")
    chat.assert_sent("不接受邀请码", count=1)
    assert int(rec(chat, "u4").get("guesses", 0)) == 0


def test_code_normalisation() -> None:
    assert normalize_code(" 7k3-m9q ") == "7K3M9Q"
    assert normalize_code("oil o1l") == "011011"
    assert valid_code("7K3M9Q") and not valid_code("7K3M9U") and not valid_code("7K3M9")
    # a code lengthened by a collision in referrals (up to 10 characters) is a code too
    assert valid_code("S7229F9") and valid_code("S7229F9ABC") and not valid_code("S7229F9ABCD")
    assert normalize_code("s722·9f–9") == "S7229F9"


# -------------------------------------------------------------------- paid

PAID = {"mode": "paid", "fee": 20000, "currency": "CNY"}


def test_paid_admits_and_fills_the_fund(make_chat: Make) -> None:
    chat = gate_chat(make_chat, PAID)
    chat.join("u1", "小王")
    [ask] = chat.assert_sent(type="send", count=1)
    assert "200.00 CNY" in ask["text"]
    chat.pay("u1", 20000, "CNY")
    [passed] = chat.assert_sent(type="send", count=1)
    assert "已通过" in passed["text"]
    assert chat.balance("community:fund:CNY") == 20000
    assert chat.balance("external:payments:CNY") == -20000
    chat.pay("u1", 500, "CNY")  # a payment from an admitted member is not an entry fee
    chat.assert_nothing_sent()
    assert chat.balance("community:fund:CNY") == 20000
    chat.assert_ledger_balanced()


def test_wrong_currency_short_and_over_payments_lose_nothing(make_chat: Make) -> None:
    chat = gate_chat(make_chat, PAID)
    chat.join("u1")
    chat.take()
    chat.pay("u1", 3000, "USD")
    actions = chat.take()
    assert any(a["type"] == "send" and "CNY" in a["text"] and "退还" in a["text"] for a in actions)
    assert any(a["type"] == "notify_admins" and "30.00 USD" in a["text"] for a in actions)
    assert chat.balance("community:suspense:USD") == 3000
    chat.pay("u1", 5000, "CNY")
    chat.assert_sent("还差 150.00 CNY", count=1)
    assert rec(chat, "u1")["status"] == "pending"
    chat.pay("u1", 20000, "CNY")  # 250.00 paid in all: 200.00 fee, 50.00 to refund
    actions = chat.take()
    assert any(a["type"] == "send" and "已通过" in a["text"] for a in actions)
    assert any(a["type"] == "notify_admins" and "50.00 CNY" in a["text"] for a in actions)
    assert chat.balance("community:fund:CNY") == 20000
    assert chat.balance("community:suspense:CNY") == 5000
    assert chat.balance("external:payments:CNY") == -25000
    assert rec(chat, "u1")["held"] == {"USD": 3000, "CNY": 5000}
    chat.assert_ledger_balanced()
    out = chat.command("gate", "refund", member="u1", currency="USD")
    assert out["refunded"] == 3000
    chat.command("gate", "refund", member="u1", currency="CNY", amount=5000)
    assert chat.balance("community:suspense:CNY") == 0 and chat.balance("community:suspense:USD") == 0
    assert chat.balance("external:payments:CNY") == -20000
    with pytest.raises(CommandError):
        chat.command("gate", "refund", member="u1")
    chat.assert_ledger_balanced()


def test_an_admin_records_a_payment_made_outside_the_chat(make_chat: Make) -> None:
    chat = gate_chat(make_chat, PAID)
    request(chat, "u5")
    chat.assert_sent("200.00 CNY", type="direct", count=1)
    with pytest.raises(CommandError, match="minor units"):
        chat.command("gate", "record_payment", member="u5", amount=1.5)
    out = chat.command("gate", "record_payment", member="u5", amount=20000)
    assert out["admitted"] is True and out["group"] == "g-main"
    [invite] = chat.sent(type="invite")
    assert invite["member"] == "u5" and invite["group"] == "g-main"
    chat.take()
    out = chat.command("gate", "record_payment", member="u8", amount=20000, group="g-main")
    assert out["admitted"] is True  # paid before applying: the application is opened and met
    assert chat.balance("community:fund:CNY") == 40000
    chat.assert_ledger_balanced()


# ------------------------------------------------------------------ bounty


def test_bounty_best_answer_enters_free_or_the_fee_admits(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "bounty", "bounties": ["如何让新群第一周不冷场？", "裂变活动怎么设计？"], "fee": 20000})
    chat.join("u1", "小王")
    [ask] = chat.assert_sent(type="send", count=1)
    assert "1. 如何让新群" in ask["text"] and "200.00 CNY" in ask["text"]
    chat.say("u1", "大家好")
    chat.assert_nothing_sent()
    chat.say("u1", "悬赏 2 先找种子用户，再设计分享奖励")
    [note] = chat.sent(type="notify_admins")
    assert "裂变活动怎么设计？" in note["text"] and "先找种子用户" in note["text"] and "最佳 u1" in note["text"]
    chat.take()
    admin_says(chat, "最佳 u1")
    actions = chat.take()
    assert any(a["type"] == "send" and a["group"] == "g-main" and "免费入群" in a["text"] for a in actions)
    assert chat.records("gate", "admitted")[-1]["data"]["via"] == "bounty"
    chat.join("u2")
    chat.take()
    chat.pay("u2", 20000)
    chat.assert_sent("已通过", count=1)
    assert chat.balance("community:fund:CNY") == 20000
    chat.assert_ledger_balanced()


# -------------------------------------------------------------- credential


def test_credential_declared_then_verified(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential", "credential": {"zh-CN": "微信好友 ≥ 300", "en": "300+ WeChat friends"}})
    request(chat, "u1")
    chat.assert_sent("微信好友 ≥ 300", type="direct", count=1)
    request(chat, "u1", {"credential": "微信好友 520 人"})
    [note] = chat.sent(type="notify_admins")
    assert "微信好友 520 人" in note["text"] and "核验 u1" in note["text"]
    assert chat.state("gate", "m:u1")["answers"] == {"资质": "微信好友 520 人"}
    chat.take()
    assert chat.command("gate", "verify", member="u1")["status"] == "admitted"
    chat.assert_sent(type="invite", count=1)


# ----------------------------------------------------- abuse, privacy, config


def test_hostile_answers_are_stored_safely_and_clipped_in_notices(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"answer_limit": 500, "notice_clip": 50})
    huge = "<script>alert(1)</script>\u202e" + "长" * 100_000
    request(chat, "u1", {"why\u0000": huge, "{name}": "\u0007<b>hi</b>"})
    st = chat.state("gate", "m:u1")
    [(k1, v1), (k2, v2)] = st["answers"].items()
    assert k1 == "why" and len(v1) <= 500 and v1.startswith("<script>alert(1)</script>")
    assert "\u202e" not in v1
    assert k2 == "{name}" and v2 == "<b>hi</b>"
    [note] = chat.sent(type="notify_admins")
    assert len(note["text"]) < 400
    assert "\u202e" not in note["text"] and "\u0007" not in note["text"] and "{name}" in note["text"]
    assert chat.failures() == []


def test_erase_removes_the_answers(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {})
    request(chat, "u1", ["私人回答", "另一个"])
    request(chat, "u10", ["别人的回答", "x"])
    assert _exported(chat, "u1")["m:u1"]["answers"]
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("gate", "m:u1") is None
    assert not _exported(chat, "u1")
    assert chat.state("gate", "m:u10")["answers"]
    assert chat.scalar("SELECT count(*) FROM records WHERE member = 'u1'") == 0
    assert chat.command("gate", "pending")["pending"][0]["member"] == "u10"


def _exported(chat: Chat, user: str) -> Any:
    found = chat.engine.export_member("test", "sim", user)
    return found.get("playbooks", found).get("gate")


def test_pending_lists_who_waits(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "credential"})
    chat.join("u1", "小王")
    request(chat, "u2", ["粉丝 1000"])
    rows = chat.command("gate", "pending")["pending"]
    assert [(r["member"], r["in_group"]) for r in rows] == [("u1", True), ("u2", False)]
    assert rows[0]["name"] == "小王" and rows[0]["deadline"] and rows[1]["credential"] == "粉丝 1000"


def test_a_group_may_use_another_mode(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "approval"}, groups=("g-main", "g-vip"), group_overrides={"g-vip": {"gate": PAID}})
    chat.join("u1", group="g-vip")
    chat.assert_sent("200.00 CNY", count=1)
    chat.pay("u1", 20000)  # the payment event comes from the main group: not the vip application
    chat.assert_nothing_sent()
    chat.event("payment", "u1", group="g-vip", amount=20000, currency="CNY")
    chat.assert_sent("已通过", count=1)
    chat.assert_ledger_balanced()


def test_english(make_chat: Make) -> None:
    chat = gate_chat(make_chat, {"mode": "quiz", "quiz": QUIZ, "quiz_count": 1}, locale="en")
    chat.join("u1", "Ann")
    [ask] = chat.assert_sent(type="send", count=1)
    assert ask["text"].startswith("Welcome, @Ann!") and "Attempts left: 3" in ask["text"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "quiz"}, "question bank"),
        ({"mode": "paid"}, "needs fee"),
        ({"mode": "bounty"}, "needs bounties"),
        ({"mode": "quiz", "quiz": QUIZ, "quiz_count": 2, "quiz_pass": 3}, "cannot exceed"),
        ({"mode": "quiz", "quiz": [{"question": "q", "choices": ["a", "b"], "answers": ["D"]}]}, "choice letter"),
        ({"mode": "lottery"}, "mode"),
        ({"questions": [""]}, "non-empty"),
    ],
)
def test_bad_settings_fail_at_load(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Chat({"gate": settings})


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"after_join": True},
        {"mode": "quiz", "quiz": QUIZ, "max_attempts": 2},
        {"mode": "invitation", "max_code_guesses": 2},
        PAID,
        {"mode": "bounty", "bounties": ["q?"], "fee": 100},
        {"mode": "credential", "after_join": False},
    ],
)
def test_every_mode_survives_hostile_input(make_chat: Make, settings: dict[str, Any]) -> None:
    chat = gate_chat(make_chat, settings, referrals=True)
    texts = ["", "\u202e邀请码 \u0000ABC-DEF", "悬赏 99 x", "1. " + "长" * 50_000, "<b>{name}</b>", "1 B 2 ２ 3 c"]
    for i, user in enumerate(("h1", "h2", "\u202eh3")):
        chat.join(user, "\u202e" + "x" * 4000, inviter="nobody" if i == 0 else None)
        request(chat, f"r{i}", {"\u0000": texts[i + 1], "": "邀请码 OIL-OIL"} if i else texts[3:])
        for text in texts:
            chat.say(user, text, mentions=[user])
        chat.pay(user, -5, "CNY")
        chat.pay(user, 1, "XXX")
        chat.say("boss", f"拒绝 @{user} \u0007", mentions=[user], group="g-admin")
    chat.leave("h2")
    chat.advance(days=3)
    assert chat.failures() == [], chat.failures()[0]["traceback"]
    for action in chat.actions:
        text = action.get("text", "")
        assert "\u202e" not in text and "\u0000" not in text and "\u0007" not in text, action
    chat.assert_ledger_balanced()


# ------------------------------------------------- with the real referrals playbook


def real_chat(make: Make, gate: dict[str, Any], **referrals: Any) -> Chat:
    """The gate next to the real ``referrals`` playbook (not the stand-in above)."""
    doc = yaml.safe_load(community_config({"gate": gate, "referrals": referrals}, roles=ROLES))
    doc["communities"][0]["groups"].append({"id": "g-admin", "platform": "sim", "admin": True})
    return make(yaml.safe_dump(doc, allow_unicode=True))


def test_real_referral_codes_of_any_length_admit_and_are_attributed(make_chat: Make) -> None:
    chat = real_chat(make_chat, {"mode": "invitation"})
    # two ids whose six-character codes collide under the key "test": the second code has 7 characters
    for uid in ("c17382", "c54373"):
        chat.join(uid, inviter="own")
        assert rec(chat, uid)["status"] == "admitted"
        chat.say(uid, "我的邀请码")
    short = chat.state("referrals", "m:c17382")["code"]
    long = chat.state("referrals", "m:c54373")["code"]
    assert len(short) == 6 and len(long) == 7
    chat.join("n1")
    chat.take()
    chat.say("n1", f"邀请码 {long[:4].lower()}-{long[4:].lower()}")
    chat.assert_sent("已通过", type="send", playbook="gate", count=1)
    assert rec(chat, "n1")["status"] == "admitted" and rec(chat, "n1")["inviter"] == "c54373"
    # the referrals playbook saw the accepted code too: the join is attributed to its owner
    assert chat.state("referrals", "m:n1")["by"] == "c54373"
    chat.join("n2")
    chat.say("n2", f"invite code {short}")
    assert rec(chat, "n2")["inviter"] == "c17382" and chat.state("referrals", "m:n2")["by"] == "c17382"
    # a refused code stays the gate's business: one answer, from the gate only
    chat.join("n3")
    chat.take()
    chat.say("n3", "邀请码 ZZZZZZZ")
    [bad] = chat.assert_sent(count=1)
    assert bad["playbook"] == "gate" and "无法使用" in bad["text"]
    assert not chat.state("referrals", "m:n3").get("by")
    assert chat.failures() == []


def test_erasing_someone_owed_a_refund_keeps_the_debt_in_their_ledger_account(make_chat: Make) -> None:
    chat = gate_chat(make_chat, PAID)
    chat.join("u1", "欠款人")
    chat.pay("u1", 3000, "USD")  # wrong currency: held for a refund
    chat.pay("u1", 25000, "CNY")  # 50.00 paid on top: held for a refund
    chat.join("u2")
    chat.pay("u2", 1000, "CNY")  # a part payment of someone else, untouched
    assert rec(chat, "u1")["held"] == {"USD": 3000, "CNY": 5000}
    chat.take()
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert chat.state("gate", "m:u1") is None
    # the money owed did not vanish with the record of whom it is owed to
    assert chat.balance("member:sim:u1:USD") == 3000 and chat.balance("member:sim:u1:CNY") == 5000
    assert chat.balance("community:suspense:USD") == 0
    assert chat.balance("community:suspense:CNY") == 1000  # u2's part payment
    assert chat.balance("community:fund:CNY") == 20000
    [note] = chat.assert_sent(type="notify_admins", playbook="gate", count=1)
    assert "30.00 USD" in note["text"] and "50.00 CNY" in note["text"] and "欠款人" not in note["text"]
    assert [r["data"] for r in chat.records("gate", "held_on_erase")] == [
        {"amounts": {"USD": 3000, "CNY": 5000}}
    ]
    chat.assert_ledger_balanced()
    assert chat.engine.erase_member("test", "sim", "u1") == []  # twice: nothing moves twice
    assert chat.balance("member:sim:u1:CNY") == 5000
    chat.assert_ledger_balanced()
