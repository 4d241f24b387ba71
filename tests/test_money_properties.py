"""Money properties over random histories (hypothesis).

Random sequences of entry fees, dues, unmatched payments, top-ups, tips
(valid and abusive), weekly awards, deposit challenges (joins with right
and wrong amounts, check-ins at random times), payouts, duty sign-ups,
quits and rotations (duty pay from the admin dues, pro rata, capped by what
the dues hold), erasures (also in the middle of a challenge or a duty week)
and the passing of time. After every step:
every transaction sums to zero, balances equal the sum of their postings,
and no account that must not go negative (member balances, the fund, admin
dues, suspense, challenge pots) does. At the end every finished challenge's
pot is empty, and the same history replayed into a fresh database gives the
very same postings (transaction ids, accounts, amounts).

Each example builds two databases, so the random part runs on SQLite only
(PostgreSQL would make it several times slower); one fixed history runs on
both databases through ``make_chat``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from qunyun.core.errors import CommandError
from qunyun.engine import Context, Playbook, Registry
from qunyun.playbooks.challenge import Challenge
from qunyun.playbooks.duty import Duty
from qunyun.playbooks.fund import Fund, iso_week
from qunyun.playbooks.gate import Gate
from qunyun.testing import Chat

USERS = ["u0", "u1", "u2", "u3"]
NAMES = {"u0": "阿零", "u1": "小一", "u2": "小二", "u3": "小三"}


class ScoreBoard(Playbook):
    """Stands in for ``qa``: ``SCORE <week> <uid> <n>`` writes ``week:<W>`` as the contract shapes it."""

    id = "qa"
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "测试用。", "en": "For tests."}

    def on_event(self, ctx: Context, event: Any) -> None:
        parts = (event.text or "").split()
        if len(parts) == 4 and parts[0] == "SCORE":
            key = f"week:{parts[1]}"
            week = dict(ctx.state.get(key) or {"answerers": {}})
            week["answerers"] = {**week.get("answerers", {}), parts[2]: int(parts[3])}
            ctx.state.put(key, week)


REG = Registry({"gate": Gate, "qa": ScoreBoard, "challenge": Challenge, "fund": Fund, "duty": Duty})
CONFIG = {
    "gate": {"mode": "paid", "fee": 20000, "currency": "CNY"},
    "qa": {},
    "challenge": {},
    "fund": {"season_start": "2026-11-02", "season_weeks": 8, "admin_dues_share": 30, "tip_max": 5000,
             "award_cron": None},
    # two on duty a week at 30.00 each: more than the dues usually hold, so the cap is exercised
    "duty": {"per_week": 2, "pay_per_week": 3000},
}
NON_NEGATIVE = (
    "code LIKE 'member:%' OR code LIKE 'community:fund:%' OR code LIKE 'community:dues:%' "
    "OR code LIKE 'community:suspense:%' OR code LIKE 'challenge:%'"
)

user = st.sampled_from(USERS)
small = st.integers(min_value=-500, max_value=30000)
ops = st.one_of(
    st.tuples(st.just("fee"), user),
    st.tuples(st.just("pay"), user, small, st.sampled_from(["会费", "群管费", "捐赠", "充值", "", "早起", "跑步"]),
              st.sampled_from(["CNY", "CNY", "CNY", "USD"])),
    st.tuples(st.just("tip"), user, user, st.sampled_from(["1", "2.5", "0.01", "-3", "0", "99", "1.234", "50"])),
    st.tuples(st.just("award"), st.dictionaries(user, st.integers(min_value=0, max_value=20), max_size=4)),
    # a whole challenge: who joins, who checks in each day (on time or late), maybe an erasure on a day
    st.tuples(st.just("challenge"), st.sampled_from(["早起", "跑步"]), st.integers(min_value=1, max_value=3),
              st.integers(min_value=3, max_value=3001), st.lists(user, max_size=4, unique=True),
              st.lists(st.lists(st.tuples(user, st.booleans()), max_size=4), min_size=3, max_size=3),
              st.none() | st.tuples(user, st.integers(min_value=0, max_value=2))),
    # a check-in at whatever time it is (a challenge created and left running, or none)
    st.tuples(st.just("checkin"), st.lists(user, min_size=1, max_size=4, unique=True),
              st.sampled_from(["早起", "跑步"])),
    st.tuples(st.just("payout"), user, st.integers(min_value=1, max_value=5000)),
    st.tuples(st.just("erase"), user),
    st.tuples(st.just("hours"), st.integers(min_value=1, max_value=16)),
    st.tuples(st.just("duty"), user, st.sampled_from(["报名值班", "报名值班", "退出值班"])),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("days"), st.integers(min_value=1, max_value=8)),
)
#: Every random history starts with some money about: two entry fees and a top-up each.
PREFIX: list[tuple[Any, ...]] = [("fee", "u0"), ("fee", "u1"), *(("pay", u, 2000, "充值", "CNY") for u in USERS)]


def run(chat: Chat, history: list[tuple[Any, ...]], check: Callable[[Chat], None]) -> None:
    """Play ``history`` into ``chat``, checking the invariants after every step."""
    joined: set[str] = set()
    for op in history:
        kind = op[0]
        if kind == "fee":
            if op[1] not in joined:
                chat.join(op[1], NAMES[op[1]])
                joined.add(op[1])
            chat.pay(op[1], 20000, "CNY")
        elif kind == "pay":
            chat.pay(op[1], op[2], op[4], op[3])
        elif kind == "tip":
            chat.say(op[1], f"打赏 @{NAMES[op[2]]} {op[3]}", mentions=[op[2]])
        elif kind == "checkin":
            for uid in op[1]:
                chat.say(uid, f"打卡 #{op[2]}")
        elif kind == "award":
            week = iso_week(chat.now.astimezone(chat.settings.communities["test"].tz).date())
            for uid, score in sorted(op[1].items()):
                chat.say("admin", f"SCORE {week} {uid} {score}")
            chat.command("fund", "award", week=week)
        elif kind == "challenge":
            _challenge(chat, *op[1:], check)
        elif kind == "payout":
            with contextlib.suppress(CommandError):  # more than the balance: refused, nothing happened
                chat.command("fund", "payout", member=op[1], amount=op[2])
        elif kind == "erase":
            assert chat.engine.erase_member("test", "sim", op[1]) == []
        elif kind == "duty":
            chat.say(op[1], op[2])
        elif kind == "rotate":
            with contextlib.suppress(CommandError):  # already rotated this week: refused
                chat.command("duty", "rotate")
        elif kind == "days":
            chat.advance(days=op[1])
        else:
            chat.advance(hours=op[1])
        check(chat)


def _challenge(chat: Chat, name: str, days: int, deposit: int, joiners: list[str],
               checkins: list[list[tuple[str, bool]]], erase: tuple[str, int] | None,
               check: Callable[[Chat], None]) -> None:
    """A challenge from tomorrow (deadline 20:00): ``joiners`` pay, then each day the listed members
    check in at 08:00 (on time) or 21:00 (late); ``erase`` = (member, day) erases one at noon that day."""
    tz = chat.settings.communities["test"].tz
    start = (chat.now + timedelta(days=1)).astimezone(tz).date()
    # if the same name is still running, the payments go to that one (or to suspense)
    with contextlib.suppress(CommandError):
        chat.command("challenge", "create", challenge=name, start=start.isoformat(), days=days,
                     deposit=deposit, deadline="20:00")
    for i, uid in enumerate(joiners):
        chat.pay(uid, deposit + (1 if i == 3 else 0), "CNY", name)  # the fourth pays one fen too much
    for day in range(days):
        base = datetime.combine(start + timedelta(days=day), time(0), tzinfo=tz)
        chat.advance_to(base + timedelta(hours=8))
        for uid, late in checkins[day]:
            if not late:
                chat.say(uid, f"打卡 #{name} 第{day + 1}天")
        if erase is not None and erase[1] == day:
            chat.advance_to(base + timedelta(hours=12))
            assert chat.engine.erase_member("test", "sim", erase[0]) == []
        chat.advance_to(base + timedelta(hours=21))
        for uid, late in checkins[day]:
            if late:
                chat.say(uid, f"打卡 #{name}")
        check(chat)


def invariants(chat: Chat) -> None:
    chat.assert_ledger_balanced()
    # balances equal their postings, written out (not only through the harness)
    drift = chat.scalar(
        "SELECT COUNT(*) FROM ledger_accounts a WHERE a.balance <> "
        "(SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p WHERE p.account_id = a.id)"
    )
    assert int(drift) == 0
    unbalanced = chat.scalar(
        "SELECT COUNT(*) FROM (SELECT transaction_id FROM ledger_postings GROUP BY transaction_id "
        "HAVING SUM(amount) <> 0) x"
    )
    assert int(unbalanced) == 0
    lowest = chat.scalar(f"SELECT MIN(balance) FROM ledger_accounts WHERE {NON_NEGATIVE}")
    assert lowest is None or int(lowest) >= 0, lowest
    assert chat.failures() == [], chat.failures()[0]["traceback"]


def postings(chat: Chat) -> list[tuple[Any, ...]]:
    rows = chat.db.connect()
    try:
        return [tuple(r) for r in rows.execute(text(
            "SELECT t.id, t.reason, t.playbook, a.code, p.amount FROM ledger_postings p "
            "JOIN ledger_transactions t ON t.id = p.transaction_id JOIN ledger_accounts a ON a.id = p.account_id "
            "ORDER BY t.ts, t.id, a.code, p.amount"
        ))]
    finally:
        rows.close()


def finish(chat: Chat) -> None:
    """Let every challenge end; then every pot is empty."""
    chat.advance(days=5)
    pots = chat.scalar("SELECT COALESCE(SUM(ABS(balance)), 0) FROM ledger_accounts WHERE code LIKE 'challenge:%'")
    assert int(pots) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=14))
def test_random_histories_conserve_money_and_replay_identically(history: list[tuple[Any, ...]]) -> None:
    history = PREFIX + history
    with Chat(CONFIG, registry=REG) as first, Chat(CONFIG, registry=REG) as second:
        run(first, history, invariants)
        finish(first)
        invariants(first)
        run(second, history, lambda _: None)
        finish(second)
        assert postings(first) == postings(second)


FIXED: list[tuple[Any, ...]] = [
    *PREFIX,
    ("pay", "u2", 1000, "会费", "CNY"),
    ("pay", "u3", 700, "", "USD"),
    ("tip", "u1", "u2", "99"),
    ("tip", "u1", "u2", "2.5"),
    ("tip", "u1", "u1", "1"),
    ("challenge", "早起", 3, 1000, ["u0", "u1", "u2", "u3"],
     [[("u0", False), ("u1", False), ("u2", True)], [("u1", False), ("u1", False)], [("u2", False)]],
     ("u0", 1)),  # u0 is erased mid-challenge, owed money
    ("award", {"u0": 5, "u3": 2, "u2": 5}),
    ("payout", "u1", 50000),
    ("payout", "u2", 100),
    ("challenge", "跑步", 2, 7, ["u1", "u2", "u3"], [[("u1", False)], [("u1", False), ("u3", False)], []], None),
    ("checkin", ["u1"], "跑步"),
    ("erase", "u3"),
    ("hours", 30),
    ("duty", "u1", "报名值班"),
    ("duty", "u2", "报名值班"),
    ("duty", "u0", "报名值班"),
    ("pay", "u1", 1001, "群管费", "CNY"),
    ("days", 7),  # a rotation: u1 and u2 on duty
    ("days", 3),
    ("duty", "u2", "退出值班"),  # mid-week: u0 steps in
    ("days", 5),  # the next rotation pays the week from the dues, capped
    ("erase", "u0"),
    ("rotate",),
    ("days", 7),
]


def test_a_fixed_history_on_both_databases(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat(CONFIG, registry=REG)
    run(chat, FIXED, invariants)
    finish(chat)
    invariants(chat)
    assert chat.balance("community:fund:CNY") > 0
    assert chat.balance("community:suspense:USD") == 700
    assert chat.balance("community:suspense:CNY") == 1001  # the fourth deposit of 早起 was one fen too much
    assert chat.balance("external:payouts:CNY") == 100
    # duty pay: what came into the admin dues = what is left there + what duty paid out of them
    paid = sum(int(r["data"]["amount"]) for r in chat.records("duty", "duty_pay"))
    assert paid > 0, "the fixed history pays duty"
    into_dues = chat.scalar(
        "SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id "
        "WHERE a.code = 'community:dues:CNY' AND p.amount > 0"
    )
    assert int(into_dues) == chat.balance("community:dues:CNY") + paid
