"""The double-entry ledger: integer minor units, balanced transactions.

Playbooks post through ``ctx.ledger``; misuse raises :class:`PlaybookError`
inside the playbook (so it is isolated and recorded), balances always equal
the sum of their postings, and :func:`qunyun.testing.check_ledger` proves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from qunyun.core.errors import PlaybookError
from qunyun.engine import Context, Playbook, Posting, Registry
from qunyun.engine.context import Ledger
from qunyun.playbooks.checkin import Checkin
from qunyun.store import models as m
from qunyun.testing import Chat, check_ledger

FUND = "community:fund:CNY"
PAYMENTS = "system:payments:CNY"


class Bank(Playbook):
    """A tiny bank driven by chat commands."""

    id = "bank"
    handles = frozenset({"message", "payment"})
    emits = frozenset({"send"})

    def on_event(self, ctx: Context, event: Any) -> None:
        uid = event.actor.id
        led = ctx.ledger
        if event.type == "payment":
            led.post([(PAYMENTS, -event.amount), (FUND, event.amount)], event.currency, event.memo)
            return
        words = event.text.split()
        cmd, args = words[0], words[1:]
        if cmd == "mint":
            led.award_points(uid, int(args[0]), "mint")
        elif cmd == "pay":
            led.transfer(
                led.member_account(uid, "POINTS"),
                led.member_account(args[0], "POINTS"),
                int(args[1]),
                "POINTS",
                "pay",
            )
        elif cmd == "mint-and-read":
            before = led.points(uid)
            led.award_points(uid, int(args[0]), "mint")
            ctx.send(f"{before}->{led.points(uid)}")
        elif cmd == "float":
            led.post([(led.member_account(uid, "POINTS"), 1.5),
                      (led.issuance_account("POINTS"), -1.5)], "POINTS", "float")  # type: ignore[list-item]
        elif cmd == "unbalanced":
            led.post([(led.member_account(uid, "POINTS"), 5),
                      (led.issuance_account("POINTS"), -4)], "POINTS", "oops")
        elif cmd == "empty":
            led.post([], "POINTS", "nothing")
        elif cmd == "bool":
            led.transfer(led.issuance_account("POINTS"), led.member_account(uid, "POINTS"),
                         True, "POINTS", "bool")  # type: ignore[arg-type]
        elif cmd == "zero":
            led.award_points(uid, 0, "zero")
        elif cmd == "cny":
            # the member's POINTS account, but in yuan: a currency mix-up
            led.transfer(FUND, led.member_account(uid, "POINTS"), 100, "CNY", "mix-up")
        elif cmd == "mint-then-fail":
            led.award_points(uid, 50, "mint")
            raise RuntimeError("after minting")
        elif cmd == "say":
            ctx.send(f"{led.points(uid)}")


class Auditor(Playbook):
    """Watches postings and writes down what it saw."""

    id = "auditor"
    watches_ledger = True

    def on_postings(self, ctx: Context, postings: list[Posting]) -> None:
        for p in postings:
            ctx.record("posting", member=p.member, account=p.account, amount=p.amount,
                       playbook=p.playbook, reason=p.reason, currency=p.currency)


REG = Registry({c.id: c for c in (Bank, Auditor, Checkin)})

MakeChat = Callable[..., Chat]


def bank(make_chat: MakeChat, *extra: str) -> Chat:
    chat: Chat = make_chat({"bank": {}, **{e: {} for e in extra}}, registry=REG)
    return chat


def balances_from_postings(chat: Chat) -> dict[str, int]:
    a, p = m.Account.__table__, m.Posting.__table__
    with chat.db.connect() as conn:
        got = conn.execute(
            select(a.c.code, p.c.amount).select_from(a.join(p, p.c.account_id == a.c.id))
        ).all()
    out: dict[str, int] = {}
    for code, amount in got:
        out[code] = out.get(code, 0) + int(amount)
    return out


def query(chat: Chat, sql: str) -> list[Any]:
    """All rows of ``sql``; the connection is returned at once."""
    with chat.db.connect() as conn:
        return list(conn.execute(text(sql)).all())


def balances(chat: Chat) -> dict[str, int]:
    a = m.Account.__table__
    with chat.db.connect() as conn:
        return {code: int(b) for code, b in conn.execute(select(a.c.code, a.c.balance))}


# --------------------------------------------------------------------------- good postings


def test_transfers_balance_and_balances_equal_postings(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 100")
    chat.say("u2", "mint 30")
    chat.say("u1", "pay u2 25")
    chat.say("u2", "pay u3 5")
    assert (chat.points("u1"), chat.points("u2"), chat.points("u3")) == (75, 50, 5)
    assert chat.balance("community:issuance:POINTS") == -130
    assert balances(chat) == balances_from_postings(chat)
    assert sum(balances(chat).values()) == 0
    chat.assert_ledger_balanced()
    # each transaction's postings sum to zero
    per_txn = query(
        chat, "SELECT transaction_id, sum(amount) FROM ledger_postings GROUP BY transaction_id"
    )
    assert len(per_txn) == 4
    assert all(int(total) == 0 for _, total in per_txn)
    assert chat.failures() == []


def test_member_accounts_are_linked_to_members(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 10")
    got = query(
        chat,
        "SELECT a.code, a.kind, a.currency, mm.user_id FROM ledger_accounts a "
        "LEFT JOIN members mm ON mm.id = a.member_id ORDER BY a.code",
    )
    assert [tuple(r) for r in got] == [
        ("community:issuance:POINTS", "community", "POINTS", None),
        ("member:sim:u1:POINTS", "member", "POINTS", "u1"),
    ]


def test_payments_in_minor_units(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.pay("u1", 990, "CNY", "年费")
    chat.pay("u2", 1, "CNY", "")
    assert chat.balance(FUND) == 991
    assert chat.balance(PAYMENTS) == -991
    chat.assert_ledger_balanced()
    reasons = [r[0] for r in query(chat, "SELECT reason FROM ledger_transactions ORDER BY ts, id")]
    assert "年费" in reasons


def test_balance_includes_what_the_playbook_posted_so_far(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 10")
    chat.take()
    chat.say("u1", "mint-and-read 5")
    chat.assert_sent("10->15", count=1)


def test_transaction_ids_are_deterministic_and_recorded(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.event("message", "u1", id="evt-a", msg_id="m-a", text="mint 3")
    (row,) = query(chat, "SELECT id, playbook, cause, currency, reason FROM ledger_transactions")
    assert row.id.startswith("txn-")
    assert (row.playbook, row.cause, row.currency, row.reason) == ("bank", "evt-a", "POINTS", "mint")
    from qunyun.core.ids import action_id

    # derived from the platform-qualified event, like action ids
    assert row.id == "txn-" + action_id("sim:evt-a", "bank", 0)[4:]


def test_ledger_watchers_see_postings_of_the_event(make_chat: MakeChat) -> None:
    chat = bank(make_chat, "auditor")
    chat.say("u1", "mint 12")
    seen = chat.records("auditor", "posting")
    assert sorted((r["data"]["account"], r["data"]["amount"]) for r in seen) == [
        ("community:issuance:POINTS", -12),
        ("member:sim:u1:POINTS", 12),
    ]
    assert {r["data"]["playbook"] for r in seen} == {"bank"}
    member_rows = [r for r in seen if r["data"]["amount"] > 0]
    assert member_rows[0]["member"] == "u1"


def test_watchers_see_checkin_points(make_chat: MakeChat) -> None:
    chat: Chat = make_chat({"checkin": {"points": 3}, "auditor": {}}, registry=REG)
    chat.say("u1", "打卡")
    amounts = sorted(r["data"]["amount"] for r in chat.records("auditor", "posting"))
    assert amounts == [-3, 3]
    assert chat.points("u1") == 3
    chat.assert_ledger_balanced()


# --------------------------------------------------------------------------- bad postings


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("float", "integer minor units"),
        ("bool", "integer minor units"),
        ("unbalanced", "sum to zero"),
        ("empty", "at least two postings"),
    ],
)
def test_bad_postings_raise_playbook_error_and_are_isolated(
    make_chat: MakeChat, command: str, message: str
) -> None:
    chat = bank(make_chat, "auditor")
    chat.say("u1", "mint 10")
    outcome_before = chat.scalar("SELECT count(*) FROM ledger_transactions")
    chat.say("u1", command)
    failures = chat.failures()
    assert len(failures) == 1
    assert failures[0]["playbook"] == "bank"
    assert "PlaybookError" in failures[0]["error"]
    assert message in failures[0]["error"]
    assert chat.scalar("SELECT count(*) FROM ledger_transactions") == outcome_before
    assert chat.points("u1") == 10
    assert chat.outcomes[-1].status == "handled"
    chat.assert_ledger_balanced()


def test_the_checks_themselves_raise_playbook_error() -> None:
    # the validation happens before anything is touched, so no context is needed
    ledger = Ledger(None)  # type: ignore[arg-type]
    with pytest.raises(PlaybookError, match="integer"):
        ledger.post([("a", 1.5), ("b", -1.5)], "POINTS", "x")  # type: ignore[list-item]
    with pytest.raises(PlaybookError, match="sum to zero"):
        ledger.post([("a", 2), ("b", -1)], "POINTS", "x")
    with pytest.raises(PlaybookError, match="integer"):
        ledger.transfer("a", "b", 2.0, "POINTS", "x")  # type: ignore[arg-type]


def test_a_failing_playbook_posts_nothing(make_chat: MakeChat) -> None:
    chat = bank(make_chat, "auditor")
    chat.say("u1", "mint-then-fail")
    assert chat.points("u1") == 0
    assert chat.scalar("SELECT count(*) FROM ledger_postings") == 0
    assert chat.records("auditor") == []  # watchers do not see rolled-back postings
    chat.assert_ledger_balanced()


def test_a_zero_amount_transfer_does_not_break_the_event(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "zero")
    assert chat.outcomes[-1].status == "handled"
    assert chat.failures() == []
    assert chat.scalar("SELECT count(*) FROM ledger_postings") == 0
    chat.assert_ledger_balanced()


def test_a_currency_mix_up_fails_only_the_playbook(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.pay("u1", 500)
    chat.say("u1", "mint 10")
    chat.say("u1", "cny")  # same engine: the POINTS account is in its cache
    assert chat.outcomes[-1].status == "handled"
    assert [f["playbook"] for f in chat.failures()] == ["bank"]
    assert "PlaybookError" in chat.failures()[0]["error"]
    assert chat.points("u1") == 10
    chat.assert_ledger_balanced()


def test_a_currency_mix_up_after_a_restart_fails_only_the_playbook(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 10")
    chat.close()
    again: Chat = make_chat({"bank": {}}, registry=REG, start=chat.now + timedelta(minutes=1))
    try:
        again.event("message", "u1", id="evt-cny", msg_id="m-cny", text="cny")
    except ValueError as exc:
        raise AssertionError(f"escaped the engine: {exc!r}") from exc
    assert again.outcomes[-1].status == "handled"
    assert [f["playbook"] for f in again.failures()] == ["bank"]
    assert again.points("u1") == 10


@pytest.mark.parametrize("memo", ["备注" * 200, "x\x00y"], ids=["long", "nul"])
def test_a_payment_memo_used_as_the_reason_does_not_break_the_event(
    make_chat: MakeChat, db_url: str, request: pytest.FixtureRequest, memo: str
) -> None:
    # The reason is free text a playbook may take from members (a payment memo).
    chat = bank(make_chat)
    chat.pay("u1", 100, "CNY", memo)
    assert chat.outcomes[-1].status == "handled"
    chat.assert_ledger_balanced()


# --------------------------------------------------------------------------- check_ledger


def test_check_ledger_passes_on_a_busy_ledger(make_chat: MakeChat) -> None:
    chat: Chat = make_chat({"checkin": {}, "bank": {}}, registry=REG)
    for _ in range(3):
        for user in ("u1", "u2"):
            chat.say(user, "打卡")
        chat.say("u1", "pay u2 4")
        chat.pay("u2", 500)
        chat.advance(days=1)
    check_ledger(chat.db)
    assert balances(chat) == balances_from_postings(chat)


def test_check_ledger_on_an_empty_database(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    check_ledger(chat.db)


def test_check_ledger_catches_a_balance_that_drifted(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 10")
    check_ledger(chat.db)
    a = m.Account.__table__
    with chat.db.begin() as conn:
        conn.execute(update(a).where(a.c.code == "member:sim:u1:POINTS").values(balance=11))
    with pytest.raises(AssertionError, match="differ from their postings"):
        check_ledger(chat.db)


def test_check_ledger_catches_an_unbalanced_transaction(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 10")
    p, a = m.Posting.__table__, m.Account.__table__
    with chat.db.begin() as conn:
        txn = conn.execute(text("SELECT id FROM ledger_transactions")).scalar_one()
        acct = conn.execute(select(a.c.id).where(a.c.code == "member:sim:u1:POINTS")).scalar_one()
        conn.execute(insert(p).values(transaction_id=txn, account_id=acct, amount=1))
        conn.execute(update(a).where(a.c.id == acct).values(balance=a.c.balance + 1))
    with pytest.raises(AssertionError, match="unbalanced"):
        check_ledger(chat.db)


def test_check_ledger_catches_money_moved_across_currencies(make_chat: MakeChat) -> None:
    chat = bank(make_chat)
    chat.pay("u1", 100)  # CNY: fund +100, payments -100
    chat.say("u1", "mint 10")  # POINTS
    # rewrite the payment's fund posting onto the member's POINTS account:
    # each transaction still sums to zero and balances match postings, but
    # 100 points appeared from nowhere.
    p, a = m.Posting.__table__, m.Account.__table__
    with chat.db.begin() as conn:
        fund = conn.execute(select(a.c.id).where(a.c.code == FUND)).scalar_one()
        pts = conn.execute(select(a.c.id).where(a.c.code == "member:sim:u1:POINTS")).scalar_one()
        conn.execute(update(p).where(p.c.account_id == fund).values(account_id=pts))
        conn.execute(update(a).where(a.c.id == fund).values(balance=0))
        conn.execute(update(a).where(a.c.id == pts).values(balance=110))
    with pytest.raises(AssertionError, match="money created or lost"):
        check_ledger(chat.db)


def test_points_survive_days_and_restarts(make_chat: MakeChat, db_url: str) -> None:
    chat = bank(make_chat)
    chat.say("u1", "mint 40")
    chat.advance(days=2)
    chat.say("u1", "pay u2 15")
    chat.close()
    again: Chat = make_chat({"bank": {}}, registry=REG, start=chat.now + timedelta(hours=1))
    # a new harness counts event ids from 1 again: give this one an id of its own
    again.event("message", "u1", id="evt-after-restart", msg_id="m-after", text="say")
    assert again.outcomes[-1].status == "handled"
    again.assert_sent("25", count=1)
    assert again.points("u2") == 15
