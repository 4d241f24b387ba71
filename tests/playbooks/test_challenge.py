"""challenge: deposits in, daily refunds and redistribution, the pot settles to zero."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from qunyun.core.errors import CommandError
from qunyun.engine import Registry
from qunyun.playbooks.challenge import Challenge, lottery, split, stake
from qunyun.playbooks.fund import Fund
from qunyun.testing import Chat

Make = Callable[..., Chat]
SH = ZoneInfo("Asia/Shanghai")
POT = "challenge:c1:pot:CNY"
FUND = "community:fund:CNY"
SUSPENSE = "community:suspense:CNY"
EXTERNAL = "external:payments:CNY"
REG = Registry({"challenge": Challenge, "fund": Fund})


def acct(uid: str) -> str:
    return f"member:sim:{uid}:CNY"


def at(chat: Chat, day: int, hh: int, mm: int = 0) -> None:
    """Move the clock to 2026-11-<day> hh:mm in Shanghai (jobs due on the way fire)."""
    chat.advance_to(datetime(2026, 11, day, hh, mm, tzinfo=SH))


def conserved(chat: Chat) -> None:
    chat.assert_ledger_balanced()
    total = chat.scalar("SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE currency = 'CNY'")
    assert int(total) == 0


def day_sums(chat: Chat) -> list[int]:
    """The sum of each challenge transaction's postings (each must be 0)."""
    rows = chat.scalar(
        "SELECT COUNT(*) FROM (SELECT t.id FROM ledger_transactions t JOIN ledger_postings p "
        "ON p.transaction_id = t.id WHERE t.playbook = 'challenge' GROUP BY t.id HAVING SUM(p.amount) <> 0) x"
    )
    return [int(rows)]


def make(make_chat: Make, settings: dict[str, Any] | None = None, *, people: int = 3, **options: Any) -> Chat:
    chat = make_chat({"challenge": settings or {}, "fund": {}}, registry=REG, **options)
    names = ["小王", "小李", "小张", "小赵", "小钱"]
    for i in range(people):
        chat.join(f"u{i + 1}", names[i])
    return chat


def create(chat: Chat, **args: Any) -> dict[str, Any]:
    base = {"challenge": "早起", "start": "2026-11-03", "days": 3, "deposit": 1000, "deadline": "07:00"}
    return chat.command("challenge", "create", **{**base, **args})


def test_stakes_add_up_to_the_deposit_and_remainders_follow_the_lottery() -> None:
    for deposit, days in ((1000, 3), (10000, 21), (7, 7), (100, 1), (99999, 100)):
        stakes = [stake(deposit, days, i) for i in range(days)]
        assert sum(stakes) == deposit and max(stakes) - min(stakes) <= 1
        assert stakes == sorted(stakes, reverse=True)  # the extra fen come first
    shares = split(100, ["a", "b", "c"], "c1", "2026-11-03")
    first = lottery("c1", "2026-11-03", ["a", "b", "c"])[0]
    assert sum(shares.values()) == 100 and shares[first] == 34
    assert sorted(shares.values()) == [33, 33, 34]
    assert lottery("c1", "2026-11-04", ["a", "b", "c"]) == lottery("c1", "2026-11-04", ["c", "b", "a"])


def test_a_challenge_day_by_day(make_chat: Make) -> None:
    chat = make(make_chat)
    out = create(chat)
    assert out["id"] == "c1" and out["status"] == "open"
    [post] = chat.assert_sent(type="send", count=1)
    assert "早起" in post["text"] and "¥10.00" in post["text"] and "#早起" in post["text"]
    for uid in ("u1", "u2", "u3"):
        chat.pay(uid, 1000, "CNY", "早起押金")
    assert chat.balance(POT) == 3000 and chat.balance(EXTERNAL) == -3000
    assert len(chat.assert_sent("已报名", type="direct")) == 3
    # day 1 (stake 3.34): u1 and u2 on time, u3 late
    at(chat, 3, 6, 10)
    chat.say("u1", "打卡 #早起 6点起床")
    chat.say("u2", "#早起")
    chat.assert_sent("第 1/3 天打卡成功", count=2)
    at(chat, 3, 7, 30)
    [result] = chat.assert_sent("第 1/3 天", type="send", count=1)
    assert "2 人完成，1 人未完成" in result["text"] and "¥3.34" in result["text"] and "¥1.67" in result["text"]
    chat.say("u3", "打卡 #早起")
    chat.assert_sent("已过", count=1)
    assert chat.balance(acct("u1")) == 334 + 167 and chat.balance(acct("u2")) == 501
    assert chat.balance(acct("u3")) == 0 and chat.balance(POT) == 3000 - 1002
    # day 2 (3.33): only u1 — u2's and u3's stakes are theirs
    at(chat, 4, 5)
    chat.say("u1", "打卡 #早起")
    at(chat, 5, 6)  # day 3 (3.33): only u2
    chat.say("u2", "打卡 #早起")
    at(chat, 5, 8)
    assert chat.balance(acct("u1")) == 501 + 333 + 666
    assert chat.balance(acct("u2")) == 501 + 333 + 666
    assert chat.balance(acct("u3")) == 0
    assert chat.balance(POT) == 0  # the pot ends empty
    state = chat.state("challenge", "c:c1")
    assert state["status"] == "done" and [h["ok"] for h in state["history"]] == [2, 1, 1]
    actions = chat.take()
    assert any("挑战「早起」结束" in a.get("text", "") and "小王：完成 2/3 天" in a["text"] for a in actions)
    assert day_sums(chat) == [0]
    assert len(chat.records("challenge", "settled")) == 3
    conserved(chat)
    # after the end, the keyword is an ordinary message again
    chat.say("u1", "打卡 #早起")
    chat.assert_nothing_sent()


def test_check_ins_after_the_deadline_twice_or_out_of_range_count_once(make_chat: Make) -> None:
    chat = make(make_chat, people=2)
    create(chat, days=2, deposit=200)
    chat.pay("u1", 200, "CNY", "早起")
    chat.pay("u2", 200, "CNY", "早起")
    chat.take()
    at(chat, 2, 23)  # the evening before the first day: not a day of the challenge
    chat.say("u1", "打卡 #早起")
    chat.assert_nothing_sent()
    at(chat, 3, 6)
    chat.say("u1", "打卡 #早起")
    chat.say("u1", "打卡 #早起 again")
    chat.say("u1", "打卡 #早起 and again")
    chat.assert_sent("已经打过卡", count=1)  # told once, then quiet
    at(chat, 3, 7)  # the deadline itself: settled first, the check-in is late
    chat.take()
    chat.say("u2", "打卡 #早起")
    chat.say("u2", "打卡 #早起")
    chat.assert_sent("已过", count=1)
    assert chat.state("challenge", "c:c1")["participants"]["u1"]["ok"] == 1
    assert chat.balance(acct("u1")) == 200  # 100 back and u2's 100
    assert chat.balance(acct("u2")) == 0
    at(chat, 5, 0)
    assert chat.balance(POT) == 0
    conserved(chat)


def test_wrong_payments_wait_in_suspense_and_nothing_is_lost(make_chat: Make) -> None:
    chat = make(make_chat)
    create(chat)
    chat.take()
    chat.pay("u1", 999, "CNY", "早起")  # wrong amount
    actions = chat.take()
    assert any(a["type"] == "direct" and "押金应为 ¥10.00" in a["text"] for a in actions)
    assert any(a["type"] == "notify_admins" and "¥9.99" in a["text"] for a in actions)
    chat.pay("u1", 1000, "USD", "早起")  # wrong currency
    chat.pay("u1", 1000, "CNY", "早起")  # right: joined
    chat.pay("u1", 1000, "CNY", "早起")  # twice
    assert chat.balance(POT) == 1000
    assert chat.balance(SUSPENSE) == 999 + 1000
    assert chat.balance("community:suspense:USD") == 1000
    at(chat, 3, 8)
    chat.pay("u2", 1000, "CNY", "早起")  # joining has closed
    chat.assert_sent("报名已截止", type="direct", count=1)
    assert chat.balance(SUSPENSE) == 2999
    assert chat.balance(FUND) == 0  # the fund did not take challenge money
    assert sorted(u["amount"] for u in chat.command("fund", "reconcile")["unmatched"]) == [999, 1000, 1000, 1000]
    out = chat.command("challenge", "refund", member="u1")
    assert out == {"member": "u1", "refunded": 1999, "currency": "CNY", "held": 0}
    chat.command("challenge", "refund", member="u1", currency="USD")
    chat.command("challenge", "refund", member="u2", amount=400)
    assert chat.balance(SUSPENSE) == 600
    with pytest.raises(CommandError, match="between 1 and 600"):
        chat.command("challenge", "refund", member="u2", amount=601)
    conserved(chat)


def test_leaving_fails_the_remaining_days(make_chat: Make) -> None:
    chat = make(make_chat)
    create(chat, days=2, deposit=1000)
    for uid in ("u1", "u2", "u3"):
        chat.pay(uid, 1000, "CNY", "#早起")
    at(chat, 3, 6)
    for uid in ("u1", "u2", "u3"):
        chat.say(uid, "打卡 #早起")
    chat.leave("u3")  # after checking in, before the deadline: today fails too
    at(chat, 4, 6)
    chat.say("u1", "打卡 #早起")
    chat.say("u2", "打卡 #早起")
    chat.command("challenge", "withdraw", challenge="早起", member="u2")
    at(chat, 4, 8)
    assert chat.balance(acct("u3")) == 0
    assert chat.balance(acct("u2")) == 500 + 250  # day 1 with u3's 500 split; day 2 failed
    assert chat.balance(acct("u1")) == 750 + 500 + 1000
    assert chat.balance(POT) == 0
    with pytest.raises(CommandError, match="not in the running"):
        chat.command("challenge", "withdraw", challenge="c1", member="u1")
    conserved(chat)


def test_erasing_a_participant_mid_challenge_keeps_the_pot_whole(make_chat: Make) -> None:
    chat = make(make_chat)
    create(chat, days=2, deposit=1000)
    for uid in ("u1", "u2", "u3"):
        chat.pay(uid, 1000, "CNY", "早起")
    chat.pay("u2", 5, "CNY", "早起")  # held in suspense
    at(chat, 3, 6)
    for uid in ("u1", "u2"):
        chat.say(uid, "打卡 #早起")
    at(chat, 3, 8)
    owed = chat.balance(acct("u2"))
    assert owed == 750
    assert chat.engine.erase_member("test", "sim", "u2") == []
    assert not chat.engine.export_member("test", "sim", "u2")["playbooks"]["challenge"]
    people = chat.state("challenge", "c:c1")["participants"]
    assert "u2" not in people and people["(erased 1)"]["left"] is True
    at(chat, 4, 6)
    chat.say("u1", "打卡 #早起")
    at(chat, 4, 8)
    assert chat.balance(POT) == 0
    assert chat.balance(acct("u2")) == owed  # the account keeps its balance, anonymised
    assert chat.balance(SUSPENSE) == 5
    assert chat.balance(acct("u1")) == 750 + 1500
    conserved(chat)


@pytest.mark.parametrize(("unclaimed", "fund_gets"), [("carry", 0), ("fund", 500)])
def test_a_day_nobody_makes_it(make_chat: Make, unclaimed: str, fund_gets: int) -> None:
    chat = make(make_chat, {"unclaimed": unclaimed}, people=2)
    create(chat, days=2, deposit=500)
    chat.pay("u1", 500, "CNY", "早起")
    chat.pay("u2", 500, "CNY", "早起")
    chat.take()
    at(chat, 3, 8)
    [post] = chat.assert_sent(type="send", count=1)
    assert ("顺延" if unclaimed == "carry" else "转入群基金") in post["text"]
    assert chat.balance(FUND) == fund_gets
    at(chat, 4, 6)
    chat.say("u1", "打卡 #早起")
    at(chat, 4, 8)
    assert chat.balance(acct("u1")) == 250 + 250 + (500 if unclaimed == "carry" else 0)
    assert chat.balance(POT) == 0
    conserved(chat)


def test_forfeits_carried_past_the_last_day_go_to_the_fund(make_chat: Make) -> None:
    chat = make(make_chat, people=1)
    create(chat, days=2, deposit=301)
    chat.pay("u1", 301, "CNY", "早起")
    at(chat, 5, 0)
    assert chat.balance(POT) == 0 and chat.balance(FUND) == 301
    assert chat.state("challenge", "c:c1")["status"] == "done"
    conserved(chat)


def test_remainders_go_by_the_daily_lottery(make_chat: Make) -> None:
    chat = make(make_chat, people=4)
    create(chat, days=1, deposit=100)
    for i in range(1, 5):
        chat.pay(f"u{i}", 100, "CNY", "早起")
    at(chat, 3, 6)
    for uid in ("u1", "u2", "u3"):
        chat.say(uid, "打卡 #早起")
    at(chat, 3, 8)
    lucky = lottery("c1", "2026-11-03", ["u1", "u2", "u3"])[0]
    for uid in ("u1", "u2", "u3"):
        assert chat.balance(acct(uid)) == 100 + (34 if uid == lucky else 33)
    conserved(chat)


def test_record_cancel_list_and_status(make_chat: Make) -> None:
    chat = make(make_chat)
    create(chat, days=4, deposit=1000)
    chat.command("challenge", "record", challenge="早起", member="u1")
    chat.pay("u2", 1000, "CNY", "早起")
    with pytest.raises(CommandError, match="已经报名"):
        chat.command("challenge", "record", challenge="c1", member="u1")
    with pytest.raises(CommandError, match="押金应为"):
        chat.command("challenge", "record", challenge="c1", member="u3", amount=10)
    at(chat, 3, 6)
    chat.say("u1", "打卡 #早起")
    at(chat, 3, 8)  # u1 got 250 + 250
    listed = chat.command("challenge", "list")["challenges"]
    assert [(c["id"], c["participants_count"], c["pot"]) for c in listed] == [("c1", 2, 1500)]
    status = chat.command("challenge", "status", challenge="c1")
    assert status["participants"]["u2"]["fail"] == 1 and status["history"][0]["forfeit"] == 250
    out = chat.command("challenge", "cancel", challenge="早起")
    assert out["status"] == "cancelled" and out["returned"] == 750
    assert chat.balance(acct("u1")) == 500 + 750 and chat.balance(acct("u2")) == 750
    assert chat.balance(POT) == 0
    chat.take()
    at(chat, 4, 8)  # no settlement after the cancel
    chat.assert_nothing_sent()
    with pytest.raises(CommandError, match="cancelled"):
        chat.command("challenge", "cancel", challenge="c1")
    conserved(chat)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"challenge": ""}, "1-20 printable"),
        ({"challenge": "早 起"}, "without spaces"),
        ({"start": "tomorrow"}, "not a date"),
        ({"days": 0}, "days must be"),
        ({"days": 1000}, "days must be"),
        ({"deposit": 2}, "at least one per day"),
        ({"deposit": 10.5}, "deposit must be"),
        ({"deadline": "7am"}, "not a time of day"),
        ({"start": "2026-11-02", "deadline": "08:00"}, "already passed"),
        ({"currency": "rmb"}, "currency code"),
        ({"announce_group": "g-nowhere"}, "does not run"),
    ],
)
def test_create_refuses_bad_arguments(make_chat: Make, args: dict[str, Any], message: str) -> None:
    chat = make(make_chat, people=0)
    with pytest.raises(CommandError, match=message):
        create(chat, **args)
    assert chat.state("challenge", "c:c1") is None
    chat.assert_nothing_sent()


def test_two_challenges_cannot_share_a_keyword(make_chat: Make) -> None:
    chat = make(make_chat, people=0)
    create(chat)
    with pytest.raises(CommandError, match="already uses"):
        create(chat, keyword="#早起")
    create(chat, challenge="跑步", deposit=3000)
    assert chat.state("challenge", "active") == {"c1": ["早起", "#早起"], "c2": ["跑步", "#跑步"]}


def test_quiet_without_a_challenge_or_for_people_not_in_it(make_chat: Make) -> None:
    chat = make(make_chat)
    chat.say("u1", "打卡 #早起")
    chat.pay("u1", 1000, "CNY", "早起")  # no challenge: the fund holds it as unmatched
    chat.take()
    create(chat)
    chat.take()
    at(chat, 3, 6)
    chat.say("u2", "打卡 #早起")  # not a participant
    chat.assert_nothing_sent()
    at(chat, 3, 8)  # nobody joined: no daily result
    chat.assert_nothing_sent()
    assert chat.balance(POT) == 0 and chat.balance(SUSPENSE) == 1000
    conserved(chat)


def test_results_in_english(make_chat: Make) -> None:
    chat = make(make_chat, people=2, locale="en")
    create(chat, days=1, deposit=200)
    chat.pay("u1", 200, "CNY", "早起")
    chat.pay("u2", 200, "CNY", "早起")
    chat.take()
    at(chat, 3, 6)
    chat.say("u1", "#早起")
    at(chat, 3, 8)
    texts = [a["text"] for a in chat.take() if a["type"] == "send"]
    assert any(t.startswith("📣 \"早起\" day 1/1: 1 made it, 1 did not") and "2.00 CNY" in t for t in texts)
    assert any("The \"早起\" challenge is over" in t for t in texts)
