"""fund: money in (fees, dues, donations, top-ups), weekly awards, tips, payouts, statements."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar

import pytest

from qunyun.config.model import settings_from_text
from qunyun.core.errors import CommandError, ConfigError
from qunyun.engine import Context, Playbook, Registry
from qunyun.playbooks.challenge import Challenge
from qunyun.playbooks.fund import Fund, fmt_money, parse_amount, weeks_remaining
from qunyun.playbooks.gate import Gate
from qunyun.testing import Chat
from qunyun.testing.harness import community_config

Make = Callable[..., Chat]

FUND = "community:fund:CNY"
DUES = "community:dues:CNY"
SUSPENSE = "community:suspense:CNY"
EXTERNAL = "external:payments:CNY"
PAYOUTS = "external:payouts:CNY"


def acct(uid: str) -> str:
    return f"member:sim:{uid}:CNY"


class WeekBoard(Playbook):
    """Stands in for ``qa`` / ``sessions``: writes their ``week:<W>`` state as the contract shapes it.

    An admin types ``SCORE 2026-W45 u1 10``; the board stores it under the
    contract's field (``answerers`` for qa, ``shares`` for sessions).
    """

    field: ClassVar[str] = ""
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "测试用。", "en": "For tests."}

    def on_event(self, ctx: Context, event: Any) -> None:
        parts = (event.text or "").split()
        if len(parts) == 4 and parts[0] == f"SCORE:{self.id}":
            key = f"week:{parts[1]}"
            week = dict(ctx.state.get(key) or {})
            week[self.field] = {**(week.get(self.field) or {}), parts[2]: int(parts[3])}
            ctx.state.put(key, week)


class FakeQA(WeekBoard):
    id = "qa"
    field = "answerers"


class FakeSessions(WeekBoard):
    id = "sessions"
    field = "shares"


REG = Registry({"gate": Gate, "challenge": Challenge, "fund": Fund, "qa": FakeQA, "sessions": FakeSessions})


def fund_chat(make: Make, fund: dict[str, Any] | None = None, *, before: dict[str, Any] | None = None,
              **options: Any) -> Chat:
    config = {**(before or {}), "fund": fund or {}}
    return make(config, registry=REG, **options)


def conserved(chat: Chat, *accounts: str) -> None:
    """The ledger balances, and nothing of the CNY money was created or lost across ``accounts``."""
    chat.assert_ledger_balanced()
    total = chat.scalar("SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE currency = 'CNY'")
    assert int(total) == 0


# ------------------------------------------------------------------- helpers


def test_money_formats_and_amount_parsing() -> None:
    assert fmt_money(1234, "CNY", "zh-CN") == "¥12.34"
    assert fmt_money(1234, "CNY", "en") == "12.34 CNY"
    assert fmt_money(-5, "USD", "zh-CN") == "-0.05 USD"
    assert parse_amount("5") == 500
    assert parse_amount("5.5") == 550
    assert parse_amount("¥0.01") == 1
    assert parse_amount("１２元") == 1200  # full-width digits
    assert parse_amount("-3") == -300
    assert parse_amount("5.555") is None
    assert parse_amount("abc") is None
    assert parse_amount("1e5") is None


def test_weeks_remaining_counts_this_week() -> None:
    start = date(2026, 11, 4)  # a Wednesday: its week is week 1
    assert weeks_remaining(start, 52, "2026-W45") == 52
    assert weeks_remaining(start, 52, "2026-W46") == 51
    assert weeks_remaining(start, 52, "2026-W44") == 0  # before the season
    assert weeks_remaining(start, 2, "2026-W47") == 0  # after it


# ------------------------------------------------------------------- money in


def test_fees_dues_and_donations_flow_into_the_fund(make_chat: Make) -> None:
    chat = fund_chat(make_chat, {"admin_dues_share": 20},
                     before={"gate": {"mode": "paid", "fee": 20000, "currency": "CNY"}})
    chat.join("u1", "小王")
    chat.pay("u1", 20000, "CNY")  # the gate takes the entry fee into the fund
    assert chat.balance(FUND) == 20000
    chat.take()
    chat.pay("u1", 1001, "CNY", "11月会费")
    [thanks] = chat.assert_sent(type="direct", count=1)
    assert "¥10.01" in thanks["text"]
    assert chat.balance(DUES) == 200  # floor(1001 * 20%)
    assert chat.balance(FUND) == 20000 + 801
    chat.pay("u1", 800, "CNY", "群管费")  # all of it for the admins
    chat.pay("u1", 5000, "CNY", "捐赠给基金")
    assert chat.balance(DUES) == 1000
    assert chat.balance(FUND) == 20801 + 5000
    assert chat.balance(EXTERNAL) == -(20000 + 1001 + 800 + 5000)
    assert chat.balance(SUSPENSE) == 0
    assert [r["data"]["purpose"] for r in chat.records("fund", "payment")] == ["dues", "admin_dues", "donation"]
    conserved(chat)


def test_a_pending_entry_fee_is_left_to_the_gate_even_when_the_fund_runs_first(make_chat: Make) -> None:
    cfg = {"fund": {}, "gate": {"mode": "paid", "fee": 20000, "currency": "CNY"}}  # fund listed first
    chat = make_chat(cfg, registry=REG)
    chat.join("u1")
    chat.pay("u1", 20000, "CNY")
    assert chat.balance(FUND) == 20000
    assert chat.balance(SUSPENSE) == 0
    assert chat.records("fund", "unmatched") == []
    conserved(chat)


def test_unmatched_and_wrong_currency_payments_wait_in_suspense(make_chat: Make) -> None:
    chat = fund_chat(make_chat)
    chat.join("u1", "小王")
    chat.pay("u1", 3000, "CNY", "红包")
    actions = chat.take()
    assert any(a["type"] == "direct" and "¥30.00" in a["text"] for a in actions)
    assert any(a["type"] == "notify_admins" and "红包" in a["text"] for a in actions)
    chat.pay("u1", 700, "USD", "会费")  # dues, but not in the fund's currency
    assert chat.balance(SUSPENSE) == 3000
    assert chat.balance("community:suspense:USD") == 700
    assert chat.balance(FUND) == 0
    report = chat.command("fund", "reconcile")
    assert sorted((u["amount"], u["currency"]) for u in report["unmatched"]) == [(700, "USD"), (3000, "CNY")]
    assert report["suspense"] == 3000
    # the admin sorts it out: 20.00 of it was dues, the rest goes back
    out = chat.command("fund", "match", member="u1", kind="dues", amount=2000)
    assert out["matched"] and chat.balance(FUND) == 2000
    chat.command("fund", "refund", member="u1")
    chat.command("fund", "refund", member="u1", currency="USD")
    assert chat.balance(SUSPENSE) == 0 and chat.balance("community:suspense:USD") == 0
    assert chat.balance(EXTERNAL) == -2000
    assert chat.command("fund", "reconcile")["unmatched"] == []
    with pytest.raises(CommandError, match="no unmatched"):
        chat.command("fund", "refund", member="u1")
    conserved(chat)


def test_zero_and_negative_payments_are_ignored(make_chat: Make) -> None:
    chat = fund_chat(make_chat)
    chat.pay("u1", 0, "CNY", "会费")
    chat.pay("u1", -500, "CNY", "会费")
    chat.assert_nothing_sent()
    assert chat.balance(FUND) == 0 and chat.balance(SUSPENSE) == 0
    chat.assert_ledger_balanced()


def test_record_command_books_money_taken_outside(make_chat: Make) -> None:
    chat = fund_chat(make_chat)
    out = chat.command("fund", "record", member="u1", amount=20000, kind="donation")
    assert out == {"member": "u1", "amount": 20000, "currency": "CNY", "kind": "donation"}
    chat.command("fund", "record", member="u2", amount=500, kind="topup")
    assert chat.balance(FUND) == 20000 and chat.balance(acct("u2")) == 500
    for bad, message in (
        ({"member": "u1", "amount": 0}, "positive"),
        ({"member": "u1", "amount": 1.5}, "positive"),
        ({"member": "", "amount": 100}, "needs a member"),
        ({"member": "u1", "amount": 100, "kind": "gift"}, "unknown kind"),
        ({"member": "u1", "amount": 100, "currency": "USD"}, "keeps CNY"),
    ):
        with pytest.raises(CommandError, match=message):
            chat.command("fund", "record", **bad)
    assert chat.balance(FUND) == 20000
    conserved(chat)


# --------------------------------------------------------------- reconcile


def test_reconcile_shows_who_paid_and_who_owes(make_chat: Make) -> None:
    chat = fund_chat(make_chat, {"dues_amount": 1000}, roles={"admin": ["boss"]})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.join("boss", "老板")
    chat.pay("u1", 1000, "CNY", "会费")
    report = chat.command("fund", "reconcile", month="2026-11")
    rows = {r["member"]: r for r in report["members"]}
    assert rows["u1"]["paid"] == 1000 and rows["u1"]["owes"] == 0
    assert rows["u2"]["owes"] == 1000
    assert rows["boss"]["exempt"] and rows["boss"]["owes"] == 0
    assert report["paid"] == ["u1"] and report["owing"] == ["u2"]
    chat.advance(days=30)  # December
    chat.leave("u2")
    report = chat.command("fund", "reconcile")
    rows = {r["member"]: r for r in report["members"]}
    assert report["month"] == "2026-12"
    assert rows["u1"]["expected"] == 2000 and rows["u1"]["owes"] == 1000
    assert rows["u2"]["owes"] == 2000  # left in December: November and December count
    assert report["totals"] == {"expected": 4000, "paid": 1000, "owed": 3000}
    with pytest.raises(CommandError, match="not a month"):
        chat.command("fund", "reconcile", month="2026-13")


# ------------------------------------------------------------------- awards


def _scores(chat: Chat, week: str, qa: dict[str, int], shares: dict[str, int]) -> None:
    for uid, n in qa.items():
        chat.say("admin", f"SCORE:qa {week} {uid} {n}")
    for uid, n in shares.items():
        chat.say("admin", f"SCORE:sessions {week} {uid} {n}")


AWARD_CFG = {"season_start": "2026-11-02", "season_weeks": 52}


def test_weekly_award_is_the_balance_over_the_weeks_left_split_by_rank(make_chat: Make) -> None:
    # the seed's example: 500 members x 200 yuan = 100,000 yuan over 52 weeks, about 1,923 a week
    chat = make_chat({"qa": {}, "sessions": {}, "fund": AWARD_CFG}, registry=REG)
    for uid, name in (("u1", "小王"), ("u2", "小李"), ("u3", "小张"), ("s1", "讲者")):
        chat.join(uid, name)
    chat.command("fund", "record", member="boss", amount=10_000_000, kind="donation")
    _scores(chat, "2026-W45", {"u1": 10, "u2": 7, "u3": 7, "u4": 1}, {"s1": 3, "s2": 1})
    chat.take()
    chat.advance_to(chat.now.replace(day=9, hour=2, minute=0))  # Monday 10:00 in Shanghai
    pool = 10_000_000 // 52
    assert pool == 192_307
    answers, shares = pool * 70 // 100, pool * 30 // 100
    want = {
        "u1": answers * 50 // 100,
        "u2": answers * 30 // 100,  # tie with u3 at 7: user id decides
        "u3": answers * 20 // 100,
        "s1": shares * 50 // 100,
        "s2": shares * 30 // 100,
    }
    for uid, amount in want.items():
        assert chat.balance(acct(uid)) == amount, uid
    assert chat.balance(acct("u4")) == 0  # fourth: no rank left
    assert chat.balance(FUND) == 10_000_000 - sum(want.values())
    [post] = chat.assert_sent(type="send", playbook="fund", count=1)
    assert "2026-W45" in post["text"] and "¥1923.07" in post["text"] and "¥673.07" in post["text"]
    assert "小王" in post["text"] and "讲者" in post["text"]
    state = chat.state("fund", "award:2026-W45")
    assert state["pool"] == pool and state["paid"] == want and state["status"] == "paid"
    assert len(chat.records("fund", "award")) == 5
    conserved(chat)
    # next week: nobody answered, nothing is paid or said; the week after counts 51 weeks left
    balance = chat.balance(FUND)
    chat.advance(days=7)
    chat.assert_nothing_sent()
    assert chat.balance(FUND) == balance
    assert chat.state("fund", "award:2026-W46")["status"] == "empty"
    _scores(chat, "2026-W47", {"u1": 2}, {})
    chat.advance(days=7)
    assert chat.state("fund", "award:2026-W47")["pool"] == balance // 50
    # running the award again for a week already awarded pays nothing twice
    again = chat.command("fund", "award", week="2026-W47")
    assert again["already"]
    conserved(chat)


def test_awards_read_qa_and_sessions_running_in_other_groups(make_chat: Make) -> None:
    """Their week state is community-wide: the award in the fund's home group finds the answerers
    and sharers even when ``qa`` and ``sessions`` run only in another group."""
    off = {"qa": {"enabled": False}, "sessions": {"enabled": False}}
    chat = make_chat({"qa": {}, "sessions": {}, "fund": {**AWARD_CFG, "season_weeks": 1}}, registry=REG,
                     groups=["g-main", "g-study"], group_overrides={"g-main": off})
    chat.command("fund", "record", member="boss", amount=1000, kind="donation")
    chat.say("admin", "SCORE:qa 2026-W45 u1 3", group="g-study")
    chat.say("admin", "SCORE:sessions 2026-W45 s1 1", group="g-study")
    assert chat.state("qa", "week:2026-W45") == {"answerers": {"u1": 3}}
    out = chat.command("fund", "award", week="2026-W45")
    assert out["paid"] == {"u1": 350, "s1": 150}
    assert chat.balance(FUND) == 500
    conserved(chat)


def test_awards_wait_for_approval_when_asked(make_chat: Make) -> None:
    chat = make_chat({"qa": {}, "fund": {**AWARD_CFG, "require_approval": True, "season_weeks": 1}},
                     registry=REG)
    chat.command("fund", "record", member="boss", amount=1000, kind="donation")
    _scores(chat, "2026-W45", {"u1": 3, "u2": 1}, {})
    chat.take()
    chat.advance_to(chat.now.replace(day=9, hour=2))
    [note] = chat.assert_sent(type="notify_admins", count=1)
    assert "approve_awards" in note["text"]
    assert chat.balance(FUND) == 1000 and chat.balance(acct("u1")) == 0
    out = chat.command("fund", "approve_awards")
    assert out["paid"] == {"u1": 350, "u2": 210}  # last week of the season: the pool is the whole fund
    assert chat.balance(FUND) == 1000 - 560
    chat.assert_sent(type="send", count=1)
    with pytest.raises(CommandError, match="no awards are waiting"):
        chat.command("fund", "approve_awards")
    conserved(chat)


def test_excluded_roles_are_not_awarded_and_off_season_weeks_pay_nothing(make_chat: Make) -> None:
    chat = make_chat({"qa": {}, "fund": {**AWARD_CFG, "exclude_roles": ["admin"]}}, registry=REG,
                     roles={"admin": ["boss"]})
    chat.command("fund", "record", member="x", amount=5200, kind="donation")
    _scores(chat, "2026-W45", {"boss": 50, "u1": 1}, {})
    chat.advance_to(chat.now.replace(day=9, hour=2))
    assert chat.state("fund", "award:2026-W45")["paid"] == {"u1": 100 * 70 // 100 * 50 // 100}
    assert chat.balance(acct("boss")) == 0
    assert chat.command("fund", "award", week="2026-W40")["pool"] == 0  # before the season
    conserved(chat)


# --------------------------------------------------------------------- tips


def test_tips_move_money_between_members_and_refuse_abuse(make_chat: Make) -> None:
    chat = fund_chat(make_chat, {"tip_max": 10000})
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.pay("u1", 1000, "CNY", "充值")
    chat.take()
    chat.say("u1", "打赏 @小李 2.5", mentions=["u2"])
    chat.assert_sent("¥2.50", count=1)
    assert chat.balance(acct("u1")) == 750 and chat.balance(acct("u2")) == 250
    refusals = [
        ("打赏 @小李 8", ["u2"], "余额不足"),  # more than the balance
        ("打赏 @小李 -1", ["u2"], "大于 0"),
        ("打赏 @小李 0", ["u2"], "大于 0"),
        ("打赏 @小李 200", ["u2"], "不超过 ¥100.00"),
        ("打赏 @小王 1", ["u1"], "不能打赏自己"),
        ("打赏 @小李 1.234", ["u2"], "打赏的写法"),
        ("打赏 @小李", ["u2"], "打赏的写法"),
    ]
    for text, mentions, expected in refusals:
        chat.say("u1", text, mentions=mentions)
        chat.assert_sent(expected, count=1)
    assert chat.balance(acct("u1")) == 750 and chat.balance(acct("u2")) == 250
    chat.say("u2", "tip @小王 2.5", mentions=["u1"])  # English keyword, the whole balance
    assert chat.balance(acct("u2")) == 0
    chat.say("u2", "tip @小王 0.01", mentions=["u1"])  # nothing left
    chat.assert_sent("余额不足", count=1)
    assert len(chat.records("fund", "tip")) == 2
    conserved(chat)


def test_tip_words_in_ordinary_talk_are_ignored(make_chat: Make) -> None:
    chat = fund_chat(make_chat)
    chat.say("u1", "打赏功能怎么用？")
    chat.say("u1", "tips for beginners")
    chat.say("u1", "基金账单怎么看")  # not a statement request either
    chat.assert_nothing_sent()


# ------------------------------------------------------- payouts, statements


def test_payout_moves_a_balance_out_and_refuses_more_than_it(make_chat: Make) -> None:
    chat = fund_chat(make_chat)
    chat.command("fund", "record", member="u1", amount=3000, kind="topup")
    with pytest.raises(CommandError, match="less than"):
        chat.command("fund", "payout", member="u1", amount=3001)
    out = chat.command("fund", "payout", member="u1", amount=3000)
    assert out["balance"] == 0
    assert chat.balance(PAYOUTS) == 3000 and chat.balance(acct("u1")) == 0
    conserved(chat)


def test_statement_in_chat_and_by_command(make_chat: Make) -> None:
    chat = fund_chat(make_chat, AWARD_CFG,
                     before={"qa": {}}, locale="en")
    chat.command("fund", "record", member="u1", amount=5200, kind="donation")
    _scores(chat, "2026-W45", {"u2": 1}, {})
    chat.take()
    chat.advance_to(chat.now.replace(day=9, hour=2))  # pays 5200 // 52 * 70% * 50% = 35
    chat.take()
    chat.say("u1", "fund statement")  # this week (W46): nothing moved yet
    [week] = chat.assert_sent(type="send", count=1)
    assert "In: 0.00 CNY" in week["text"] and "Balance now: 51.65 CNY" in week["text"]
    chat.say("u1", "fund statement month")
    [month] = chat.assert_sent(type="send", count=1)
    assert "In: 52.00 CNY" in month["text"] and "Out: 0.35 CNY" in month["text"]
    out = chat.command("fund", "statement", period="season", post=True)
    assert (out["in"], out["out"], out["balance"]) == (5200, 35, 5165)
    chat.assert_sent("the season since 2026-11-02", count=1)
    with pytest.raises(CommandError, match="unknown period"):
        chat.command("fund", "statement", period="decade")


def test_statement_counts_money_moved_where_the_fund_does_not_run(make_chat: Make) -> None:
    """The statement is read from the ledger: an entry fee the gate takes in a group without
    the fund, and a challenge's leftovers, are in it too."""
    cfg = {"gate": {"mode": "paid", "fee": 20000, "currency": "CNY"}, "challenge": {}, "fund": {}}
    chat = make_chat(cfg, registry=REG, locale="en", groups=["g-main", "g-join"],
                     group_overrides={"g-join": {"fund": {"enabled": False}, "challenge": {"enabled": False}},
                                      "g-main": {"gate": {"enabled": False}}})
    chat.join("u1", "Ann", group="g-join")
    chat.event("payment", "u1", amount=20000, currency="CNY", memo="", group="g-join")
    assert chat.balance(FUND) == 20000
    chat.command("challenge", "create", challenge="run", start="2026-11-03", days=1, deposit=500, deadline="20:00")
    chat.pay("u1", 500, "CNY", "run")  # joins; never checks in: the day's forfeit goes to the fund
    chat.advance(days=2)
    assert chat.balance(FUND) == 20500
    chat.take()
    chat.say("u2", "fund statement")
    [week] = chat.assert_sent(type="send", playbook="fund", count=1)
    assert "In: 205.00 CNY" in week["text"] and "Out: 0.00 CNY" in week["text"]
    assert "Balance now: 205.00 CNY" in week["text"]
    out = chat.command("fund", "statement", period="week")
    assert (out["in"], out["out"], out["balance"]) == (20500, 0, 20500)
    conserved(chat)


def test_statement_cron_posts_in_the_home_group_only(make_chat: Make) -> None:
    chat = fund_chat(make_chat, {"statement_cron": "0 20 * * 0", "home_group": "g-b"}, groups=["g-a", "g-b"])
    chat.advance(days=7)
    posts = chat.assert_sent(type="send", playbook="fund")
    assert len(posts) == 1 and posts[0]["group"] == "g-b"


# ------------------------------------------------------------------ privacy


def test_erasing_a_member_owed_money_keeps_the_ledger_whole(make_chat: Make) -> None:
    chat = make_chat({"qa": {}, "fund": {**AWARD_CFG, "dues_amount": 100}}, registry=REG)
    chat.join("u1", "小王")
    chat.join("u2", "小李")
    chat.command("fund", "record", member="x", amount=520_000, kind="donation")
    chat.pay("u1", 100, "CNY", "会费")
    chat.pay("u1", 300, "CNY", "???")
    _scores(chat, "2026-W45", {"u1": 5, "u2": 1}, {})
    chat.advance_to(chat.now.replace(day=9, hour=2))
    owed = chat.balance(acct("u1"))
    assert owed > 0
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"]["fund"]
    award = chat.state("fund", "award:2026-W45")
    assert "u1" not in award["paid"] and award["paid"]["(erased)"] == owed
    assert all(line["uid"] != "u1" for line in award["lines"])
    # the account and its balance stay, under the anonymised member; the admin can still pay it out
    assert chat.balance(acct("u1")) == owed
    assert chat.balance(SUSPENSE) == 300
    chat.command("fund", "payout", member="u1", amount=owed)
    assert chat.balance(acct("u1")) == 0
    conserved(chat)


# ----------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"answers_percent": 80, "shares_percent": 30}, "at most 100"),
        ({"answer_ranks": [60, 50]}, "add up to at most 100"),
        ({"award_cron": "every monday"}, "cron"),
        ({"currency": "rmb"}, "currency code"),
        ({"dues_keywords": [" "]}, "non-empty"),
        ({"season_weeks": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_fail_at_load_time(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_text(community_config({"fund": settings}), "<test>", REG)


def test_the_fund_announces_in_english_too(make_chat: Make) -> None:
    chat = make_chat({"qa": {}, "fund": AWARD_CFG}, registry=REG, locale="en")
    chat.command("fund", "record", member="x", amount=5200, kind="donation")
    _scores(chat, "2026-W45", {"u1": 4}, {})
    chat.take()
    chat.advance_to(chat.now.replace(day=9, hour=2))
    [post] = chat.assert_sent(type="send", count=1)
    assert post["text"].startswith("🏆 Awards for 2026-W45") and "0.35 CNY" in post["text"]
