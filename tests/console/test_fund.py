"""The fund pages: accounts, statements, awards, reconciliation, suspense, and
the money actions (record a payment, approve awards, match and refund).

Numbers on the pages are checked against the ledger read with SQL here,
independently of the page code; every money action must move exactly its
amount and keep the whole ledger balanced (all postings sum to zero).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from qunyun.config.model import load_settings
from qunyun.console.pages.fund import AmountError, parse_yuan
from qunyun.core.clock import FakeClock
from qunyun.core.events import parse_event
from qunyun.engine.engine import Engine
from qunyun.playbooks.money import fmt_money
from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of, sql

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_MEMO = '"><img src=x onerror=alert(1)>'


def as_dt(value: Any) -> datetime:
    """A timestamp column read with plain SQL: SQLite gives text, PostgreSQL a datetime."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def money_text(shown: str) -> int:
    """``-952.61 CNY`` → -95261 (the en format of fmt_money)."""
    body = shown.strip().removesuffix(" CNY")
    sign = -1 if body.startswith("-") else 1
    whole, _, frac = body.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int(frac))


def balance(site: Site, code: str, community: str = "demo") -> int:
    rows = sql(site, "SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p JOIN ledger_accounts a "
                     "ON a.id = p.account_id WHERE a.community_id = :c AND a.code = :code", c=community, code=code)
    return int(rows[0][0])


def ledger_total(site: Site) -> int:
    return int(sql(site, "SELECT COALESCE(SUM(amount), 0) FROM ledger_postings")[0][0])


def audit_rows(site: Site, action: str) -> list[Any]:
    return sql(site, "SELECT actor, action, target, before, after, community_id FROM audit_log "
                     "WHERE action = :a ORDER BY id", a=action)


def pay(site: Site, uid: str, name: str, amount: int, memo: str, when: datetime, n: int) -> None:
    """A payment event from the chat, handled by an engine of its own (its own clock)."""
    engine = Engine(open_engine(site.db_url), load_settings(str(site.config)), clock=FakeClock(when))
    event = parse_event({"v": 1, "id": f"test-pay-{n}", "ts": when.isoformat(), "platform": "sim",
                         "group": "g-main", "type": "payment", "actor": {"id": uid, "name": name},
                         "amount": amount, "currency": "CNY", "memo": memo})
    outcome = engine.handle(event)
    assert outcome.status == "handled", outcome
    engine.db.dispose()


# ------------------------------------------------------------------ amounts


@pytest.mark.parametrize(("typed", "fen"), [
    ("12.34", 1234), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("¥5.20", 520), ("5元", 500),
    ("１２.５", 1250), (" 7.05 ", 705), ("+3", 300), ("100000000.00", 10_000_000_000),
])
def test_amounts_in_yuan_become_exact_fen(typed: str, fen: int) -> None:
    assert parse_yuan(typed) == fen


@pytest.mark.parametrize(("typed", "key"), [
    ("12.345", "fund.err.amount_decimals"), ("12.340", "fund.err.amount_decimals"),
    ("0.001", "fund.err.amount_decimals"), ("-5", "fund.err.amount_negative"), ("−5", "fund.err.amount_negative"),
    ("0", "fund.err.amount_zero"), ("0.00", "fund.err.amount_zero"), ("", "fund.err.amount_missing"),
    ("abc", "fund.err.amount_invalid"), ("1e3", "fund.err.amount_invalid"), ("1,000", "fund.err.amount_invalid"),
    ("12.", "fund.err.amount_invalid"), ("NaN", "fund.err.amount_invalid"), ("Infinity", "fund.err.amount_invalid"),
    ("10000000000.01", "fund.err.amount_large"),
])
def test_bad_amounts_are_refused_with_a_reason(typed: str, key: str) -> None:
    with pytest.raises(AmountError) as caught:
        parse_yuan(typed)
    assert caught.value.key == key


# ------------------------------------------------------------------ reading (shared demo)


def test_overview_shows_the_ledger(demo_site: Site) -> None:
    client = demo_site.client("vera")
    page = client.get("/c/demo/fund?to=2026-11-29&period=month&lang=en")
    assert page.status_code == 200
    fund = balance(demo_site, "community:fund:CNY")
    dues = balance(demo_site, "community:dues:CNY")
    assert fund > 0 and dues > 0
    assert fmt_money(fund, "CNY", "en") in page.text and fmt_money(dues, "CNY", "en") in page.text
    # the month's in and out, summed here from the postings over local days in Asia/Shanghai
    begin = datetime(2026, 11, 1, tzinfo=SHANGHAI)
    end = datetime(2026, 11, 30, tzinfo=SHANGHAI)
    rows = sql(demo_site, "SELECT p.amount, t.ts FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id "
                          "JOIN ledger_transactions t ON t.id = p.transaction_id "
                          "WHERE a.community_id = 'demo' AND a.code = 'community:fund:CNY'")
    inside = [int(a) for a, ts in rows if begin <= as_dt(ts) < end]
    income, spent = sum(a for a in inside if a > 0), -sum(a for a in inside if a < 0)
    assert income > 0 and spent > 0
    row = re.search(r'data-account="community:fund:CNY">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[1:] == [fmt_money(income, "CNY", "en"), fmt_money(spent, "CNY", "en"), fmt_money(fund, "CNY", "en")]
    assert 'data-testid="fund-balance-chart"' in page.text and "<polyline" in page.text
    # the statement's numbers are the same through the API
    body = client.get("/api/v1/communities/demo/fund/statement?period=month&to=2026-11-29").json()
    line = next(a for a in body["data"]["accounts"] if a["account"] == "community:fund:CNY")
    assert (line["in"], line["out"], line["closing"]) == (income, spent, fund)
    assert body["data"]["first"] == "2026-11-01" and body["data"]["last"] == "2026-11-29"
    # both languages; viewers get no forms
    zh = client.get("/c/demo/fund?to=2026-11-29&lang=zh-CN")
    assert "基金余额" in zh.text and fmt_money(fund, "CNY", "zh-CN") in zh.text
    assert "Fund balance" in page.text and 'data-testid="fund-record-form"' not in page.text


def test_week_and_season_statements(demo_site: Site) -> None:
    client = demo_site.client("vera")
    week = client.get("/api/v1/communities/demo/fund/statement?period=week&to=2026-11-29").json()["data"]
    assert (week["first"], week["last"]) == ("2026-11-23", "2026-11-29")
    season = client.get("/api/v1/communities/demo/fund/statement?period=season&to=2026-11-29").json()["data"]
    start = sql(demo_site, "SELECT value FROM playbook_state WHERE community_id='demo' AND playbook='fund' "
                           "AND key='season'")[0][0]
    assert season["first"] == as_json(start)["start"]
    fund = next(a for a in season["accounts"] if a["account"] == "community:fund:CNY")
    assert fund["opening"] + fund["in"] - fund["out"] == fund["closing"] == balance(demo_site, "community:fund:CNY")
    # the statement page lists the period's movements, paged, in both sort orders
    moved = sql(demo_site, "SELECT p.amount FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id "
                           "WHERE a.community_id = 'demo' AND a.code = 'community:fund:CNY'")
    assert len(moved) > 50  # the whole history is in the season: more than one page
    page = client.get("/c/demo/fund/statement?period=season&to=2026-11-29&sort=amount&dir=desc&lang=en")
    shown = [money_text(x) for x in re.findall(
        r'data-testid="fund-movement-row">.*?<td class="num">([^<]+)</td></tr>', page.text, re.S)]
    assert shown == sorted((int(a) for (a,) in moved), reverse=True)[:50]
    pages = -(-len(moved) // 50)
    assert f"Page 1 of {pages}" in page.text
    last = client.get(f"/c/demo/fund/statement?period=season&to=2026-11-29&sort=amount&dir=desc&page={pages}")
    assert len(re.findall(r'data-testid="fund-movement-row"', last.text)) == len(moved) - 50 * (pages - 1)


def test_accounts_equal_the_sums_of_their_postings(demo_site: Site) -> None:
    client = demo_site.client("vera")
    body = client.get("/api/v1/communities/demo/fund/accounts?limit=1000").json()["data"]
    sums = {code: int(total) for code, total in sql(
        demo_site, "SELECT a.code, COALESCE(SUM(p.amount), 0) FROM ledger_accounts a LEFT JOIN ledger_postings p "
                   "ON p.account_id = a.id WHERE a.community_id = 'demo' AND a.currency <> 'POINTS' GROUP BY a.code")}
    assert body["total"] == len(sums) == len(body["accounts"]) > 5
    assert {a["code"]: a["balance"] for a in body["accounts"]} == sums
    assert [a["balance"] for a in body["accounts"]] == sorted(sums.values(), reverse=True)
    # the page: sorted by balance (default, largest first), by name, paged, searchable
    page = client.get("/c/demo/fund/accounts?lang=en")
    codes = re.findall(r'data-testid="fund-account-row" data-code="([^"]+)"', page.text)
    assert codes[0] == max(sums, key=lambda c: (sums[c], c)) and len(codes) == len(sums)
    up = client.get("/c/demo/fund/accounts?sort=balance&dir=asc")
    assert re.findall(r'data-code="([^"]+)"', up.text)[0] == "external:payments:CNY"
    two = client.get("/api/v1/communities/demo/fund/accounts?limit=2&offset=1&sort=code&desc=false").json()["data"]
    assert [a["code"] for a in two["accounts"]] == sorted(sums)[1:3]
    name, uid = sql(demo_site, "SELECT m.name, m.user_id FROM members m JOIN ledger_accounts a ON a.member_id = m.id "
                               "WHERE a.community_id = 'demo' AND a.currency = 'CNY' ORDER BY m.user_id LIMIT 1")[0]
    found = client.get("/c/demo/fund/accounts", params={"q": uid})
    assert re.findall(r'data-code="([^"]+)"', found.text) == [f"member:sim:{uid}:CNY"]
    assert name in found.text


def test_awards_and_reconciliation(demo_site: Site) -> None:
    client = demo_site.client("vera")
    records = {k[6:]: as_json(v) for k, v in sql(
        demo_site, "SELECT key, value FROM playbook_state WHERE community_id='demo' AND playbook='fund' "
                   "AND key LIKE 'award:%'")}
    paid = {w: r for w, r in records.items() if r["status"] == "paid"}
    assert paid
    page = client.get("/c/demo/fund/awards?lang=en")
    assert re.findall(r'data-testid="fund-award-row" data-week="([^"]+)"', page.text) == sorted(records, reverse=True)
    body = client.get("/api/v1/communities/demo/fund/awards").json()["data"]
    for week in body["awards"]:
        record = records[week["week"]]
        assert week["paid_total"] == sum(record["paid"].values())
        assert [ln["amount"] for ln in week["lines"]] == [ln["amount"] for ln in record["lines"]]
    # the award transactions in the ledger are what the records say was paid
    posted = sql(demo_site, "SELECT t.reason, SUM(p.amount) FROM ledger_transactions t JOIN ledger_postings p "
                            "ON p.transaction_id = t.id JOIN ledger_accounts a ON a.id = p.account_id "
                            "WHERE a.code = 'community:fund:CNY' AND t.reason LIKE 'weekly award%' GROUP BY t.reason")
    assert {r[len("weekly award "):]: -int(s) for r, s in posted} == {
        w: sum(r["paid"].values()) for w, r in paid.items()}
    rec = client.get("/c/demo/fund/reconcile?month=2026-11&lang=en")
    assert rec.status_code == 200 and 'data-testid="fund-reconcile-totals"' in rec.text
    dues_paid = sql(demo_site, "SELECT COUNT(*) FROM playbook_state WHERE community_id='demo' AND playbook='fund' "
                               "AND key LIKE 'm:%'")[0][0]
    assert dues_paid > 0
    assert len(re.findall(r'data-testid="fund-reconcile-row"', rec.text)) == min(50, dues_paid)


def test_viewers_and_strangers_cannot_act(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    token = csrf_of(vera)
    before = ledger_total(demo_site), balance(demo_site, "community:fund:CNY")
    for path in ("/c/demo/fund/payments", "/c/demo/fund/awards/approve", "/c/demo/fund/suspense/match",
                 "/c/demo/fund/suspense/refund"):
        answer = vera.post(path, data={"member": "u-0001", "amount": "1", "csrf_token": token})
        assert answer.status_code == 403, path
    adam = demo_site.client("adam")
    no_token = adam.post("/c/demo/fund/payments", data={"member": "u-0001", "amount": "1"})
    assert no_token.status_code == 403
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/fund").status_code == 404
    assert otto.get("/api/v1/communities/demo/fund/accounts").status_code == 404
    assert otto.get("/c/other/fund").status_code == 200  # no fund there: a notice, no crash
    assert (ledger_total(demo_site), balance(demo_site, "community:fund:CNY")) == before


# ------------------------------------------------------------------ acting (a fresh community)


def test_money_actions_move_exactly_their_amount(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    token = csrf_of(adam)
    uid = sql(fresh_site, "SELECT user_id FROM members WHERE community_id='demo' AND erased = :f "
                          "ORDER BY user_id LIMIT 1 OFFSET 5", f=False)[0][0]
    assert ledger_total(fresh_site) == 0
    fund0, ext0 = balance(fresh_site, "community:fund:CNY"), balance(fresh_site, "external:payments:CNY")

    # refused input: nothing moves, the reason is on the page
    for typed, words in (("12.345", "more than two decimals"), ("-5", "negative"), ("0", "zero"),
                         ("abc", "not a number")):
        answer = adam.post("/c/demo/fund/payments?lang=en",
                           data={"member": uid, "amount": typed, "kind": "donation", "csrf_token": token})
        assert answer.status_code == 400 and words in answer.text, typed
    unknown = adam.post("/c/demo/fund/payments?lang=en",
                        data={"member": "u-nobody", "amount": "1", "kind": "dues", "csrf_token": token})
    assert unknown.status_code == 400 and "No member" in unknown.text
    assert balance(fresh_site, "community:fund:CNY") == fund0

    # a donation of 12.34 yuan is 1234 fen from outside into the fund
    done = adam.post("/c/demo/fund/payments",
                     data={"member": uid, "amount": "12.34", "kind": "donation", "csrf_token": token},
                     follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/c/demo/fund?msg=msg.done"
    assert balance(fresh_site, "community:fund:CNY") == fund0 + 1234
    assert balance(fresh_site, "external:payments:CNY") == ext0 - 1234
    assert ledger_total(fresh_site) == 0
    actor, action, target, _before, after, community = audit_rows(fresh_site, "fund.record")[-1]
    assert (actor, action, target, community) == ("adam", "fund.record", uid, "demo")
    assert as_json(after)["args"] == {"member": uid, "amount": 1234, "kind": "donation"}

    # the API records in minor units
    from qunyun.console.accounts import Accounts

    accounts = Accounts(open_engine(fresh_site.db_url), fresh_site.clock)
    write = accounts.create_token("adam", "w", ["read", "write"])
    read = accounts.create_token("vera", "r", ["read"])
    api = fresh_site.client()
    made = api.post("/api/v1/communities/demo/fund/payments", json={"member": uid, "amount": 500, "kind": "dues"},
                    headers={"Authorization": f"Bearer {write}"})
    assert made.status_code == 200 and made.json()["data"]["amount"] == 500
    share = 500 * 20 // 100  # the demo's admin_dues_share: 20 % of dues go to the admin dues
    assert balance(fresh_site, "community:fund:CNY") == fund0 + 1234 + 500 - share
    for bad in ({"member": uid, "amount": 0}, {"member": uid, "amount": -1}, {"member": uid, "amount": 1.5},
                {"member": uid, "amount": "12.34"}, {"member": "", "amount": 5}):
        answer = api.post("/api/v1/communities/demo/fund/payments", json=bad,
                          headers={"Authorization": f"Bearer {write}"})
        assert answer.status_code == 422 and answer.json()["ok"] is False, bad
    assert api.post("/api/v1/communities/demo/fund/payments", json={"member": uid, "amount": 5},
                    headers={"Authorization": f"Bearer {read}"}).status_code == 403
    assert api.post("/api/v1/communities/demo/fund/payments", json={"member": "u-nobody", "amount": 5},
                    headers={"Authorization": f"Bearer {write}"}).json()["code"] == "not_found"
    assert ledger_total(fresh_site) == 0


def test_suspense_match_refund_and_hostile_text(fresh_site: Site) -> None:
    when = datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI)
    pay(fresh_site, "u-9001", HOSTILE_NAME, 777, HOSTILE_MEMO, when, 1)
    pay(fresh_site, "u-9002", "Bob", 300, "no keyword here", when + timedelta(minutes=1), 2)
    assert balance(fresh_site, "community:suspense:CNY") == 1077
    adam = fresh_site.client("adam")
    page = adam.get("/c/demo/fund?lang=en")
    assert HOSTILE_NAME not in page.text and HOSTILE_MEMO not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert re.findall(r'data-testid="fund-suspense-row" data-member="([^"]+)"', page.text) == ["u-9001", "u-9002"]
    accounts = adam.get("/c/demo/fund/accounts")
    assert HOSTILE_NAME not in accounts.text
    token = csrf_of(adam)
    fund0 = balance(fresh_site, "community:fund:CNY")
    ext0 = balance(fresh_site, "external:payments:CNY")
    matched = adam.post("/c/demo/fund/suspense/match", data={"member": "u-9001", "kind": "donation",
                                                             "csrf_token": token}, follow_redirects=False)
    assert matched.status_code == 303
    assert balance(fresh_site, "community:fund:CNY") == fund0 + 777
    assert balance(fresh_site, "community:suspense:CNY") == 300
    refunded = adam.post("/c/demo/fund/suspense/refund", data={"member": "u-9002", "via": "fund",
                                                               "csrf_token": token}, follow_redirects=False)
    assert refunded.status_code == 303
    assert balance(fresh_site, "community:suspense:CNY") == 0
    assert balance(fresh_site, "external:payments:CNY") == ext0 + 300
    assert ledger_total(fresh_site) == 0
    again = adam.post("/c/demo/fund/suspense/refund?lang=en", data={"member": "u-9002", "csrf_token": token})
    assert again.status_code == 409 and "Refused" in again.text
    assert [r[2] for r in audit_rows(fresh_site, "fund.match")] == ["u-9001"]
    assert [r[2] for r in audit_rows(fresh_site, "fund.refund")] == ["u-9002"]
    assert 'data-testid="fund-suspense-empty"' in adam.get("/c/demo/fund").text


def test_prepared_awards_are_approved_and_paid(fresh_site: Site) -> None:
    config = yaml.safe_load(fresh_site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo["playbooks"]["fund"]["require_approval"] = True
    fresh_site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    adam = fresh_site.client("adam")
    engine = adam.app.state.console.engine  # type: ignore[attr-defined]
    prepared = engine.command("demo", "fund", "award", {"week": "2026-W47"})
    assert prepared["status"] == "pending" and prepared["lines"]
    total = sum(ln["amount"] for ln in prepared["lines"])
    page = adam.get("/c/demo/fund?lang=en")
    assert 'data-testid="fund-approve"' in page.text and "waiting for approval" in page.text
    fund0 = balance(fresh_site, "community:fund:CNY")
    winners = {ln["uid"]: 0 for ln in prepared["lines"]}
    for ln in prepared["lines"]:
        winners[ln["uid"]] += ln["amount"]
    before = {u: balance(fresh_site, f"member:sim:{u}:CNY") for u in winners}
    vera = fresh_site.client("vera")
    assert vera.post("/c/demo/fund/awards/approve", data={"week": "2026-W47",
                                                          "csrf_token": csrf_of(vera)}).status_code == 403
    done = adam.post("/c/demo/fund/awards/approve", data={"week": "2026-W47", "csrf_token": csrf_of(adam)},
                     follow_redirects=False)
    assert done.status_code == 303
    assert balance(fresh_site, "community:fund:CNY") == fund0 - total
    assert {u: balance(fresh_site, f"member:sim:{u}:CNY") - before[u] for u in winners} == winners
    assert ledger_total(fresh_site) == 0
    assert audit_rows(fresh_site, "fund.approve_awards")[-1][0] == "adam"
    twice = adam.post("/c/demo/fund/awards/approve?lang=en", data={"week": "2026-W47", "csrf_token": csrf_of(adam)})
    assert twice.status_code == 409 and balance(fresh_site, "community:fund:CNY") == fund0 - total
