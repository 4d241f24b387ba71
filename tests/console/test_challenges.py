"""The deposit challenge pages: the list, one challenge's participants and days,
and the admin's actions (create, record a deposit, withdraw, cancel).

Numbers are checked against the playbook's state and the ledger read with
SQL here; every action must keep the ledger balanced and the pot exact.
"""

from __future__ import annotations

import re

from sqlalchemy import text

from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of
from tests.console.test_fund import as_json, audit_rows, balance, ledger_total, money_text, sql

HOSTILE_NAME = "<script>alert(1)</script>"


def challenge_state(site: Site, cid: str) -> dict:
    rows = sql(site, "SELECT value FROM playbook_state WHERE community_id='demo' AND playbook='challenge' "
                     "AND key = :k", k=f"c:{cid}")
    return as_json(rows[0][0])


def test_list_and_detail_show_the_state(demo_site: Site) -> None:
    client = demo_site.client("vera")
    ch = challenge_state(demo_site, "c1")
    assert ch["participants"]
    page = client.get("/c/demo/challenges?lang=en")
    assert page.status_code == 200
    row = re.search(r'data-testid="challenge-row" data-id="c1">(.*?)</tr>', page.text, re.S)
    assert row is not None and ch["name"] in row.group(1)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells == [f"{ch['settled']}/{ch['days']}", f"{ch['deposit'] // 100}.{ch['deposit'] % 100:02d} CNY",
                     str(len(ch["participants"])), "0.00 CNY"]
    assert balance(demo_site, "challenge:c1:pot:CNY") == 0
    assert "finished" in page.text and "已结束" in client.get("/c/demo/challenges?lang=zh-CN").text

    # the detail, by id or by name: per participant days done / failed, refunded, won
    detail = client.get("/c/demo/challenges/c1?lang=en")
    assert detail.status_code == 200
    assert client.get(f"/c/demo/challenges/{ch['name']}").status_code == 200
    shown = re.findall(r'data-testid="challenge-participant-row" data-member="([^"]+)">(.*?)</tr>', detail.text, re.S)
    assert {uid for uid, _ in shown} == set(ch["participants"])
    for uid, cells_html in shown:
        p = ch["participants"][uid]
        nums = re.findall(r'<td class="num">([^<]*)</td>', cells_html)
        assert [int(nums[0]), int(nums[1])] == [p["ok"], p["fail"]]
        # held, refunded, won, forfeited (every day settled: what was not refunded was forfeited)
        assert [money_text(x) for x in nums[2:6]] == [0, p["back"], p["won"], ch["deposit"] - p["back"]]
    # sorted by days done (default, most first), then by days failed
    oks = [ch["participants"][u]["ok"] for u, _ in shown]
    assert oks == sorted(oks, reverse=True)
    by_fail = client.get("/c/demo/challenges/c1?sort=fail&dir=desc")
    fails = [ch["participants"][u]["fail"] for u in re.findall(r'data-member="([^"]+)"', by_fail.text)
             if u in ch["participants"]]
    assert fails == sorted(fails, reverse=True)
    assert len(re.findall(r'data-testid="challenge-day-row"', detail.text)) == len(ch["history"]) == ch["settled"]
    # what the participants got back is what the ledger moved out of the pot to them
    paid_out = sql(demo_site, "SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p JOIN ledger_accounts a "
                              "ON a.id = p.account_id WHERE a.code = 'challenge:c1:pot:CNY' AND p.amount < 0")[0][0]
    got = sum(p["back"] + p["won"] for p in ch["participants"].values())
    assert -int(paid_out) == got == ch["deposit"] * len(ch["participants"])
    # viewers get no forms; the API says the same
    assert 'data-testid="challenge-create-form"' not in page.text
    body = client.get("/api/v1/communities/demo/challenges").json()["data"]
    assert [(c["id"], c["participants_count"], c["pot"]) for c in body] == [("c1", len(ch["participants"]), 0)]
    one = client.get("/api/v1/communities/demo/challenges/c1").json()["data"]
    assert {p["member"]: (p["ok"], p["fail"], p["back"], p["won"]) for p in one["participants"]} == {
        u: (p["ok"], p["fail"], p["back"], p["won"]) for u, p in ch["participants"].items()}
    assert client.get("/api/v1/communities/demo/challenges/nope").json()["code"] == "not_found"
    assert client.get("/c/demo/challenges/nope").status_code == 404


def test_viewers_and_strangers_cannot_act(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    token = csrf_of(vera)
    form = {"name": "读书", "start": "2026-03-10", "days": "7", "deposit": "10", "deadline": "07:00",
            "csrf_token": token}
    assert vera.post("/c/demo/challenges", data=form).status_code == 403
    for action in ("deposit", "withdraw", "cancel"):
        assert vera.post(f"/c/demo/challenges/c1/{action}", data={"member": "u-0001",
                                                                  "csrf_token": token}).status_code == 403
    adam = demo_site.client("adam")
    assert adam.post("/c/demo/challenges", data={k: v for k, v in form.items() if k != "csrf_token"}).status_code == 403
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/challenges").status_code == 404
    assert otto.get("/c/demo/challenges/c1").status_code == 404
    assert otto.get("/api/v1/communities/demo/challenges").status_code == 404
    assert sql(demo_site, "SELECT COUNT(*) FROM playbook_state WHERE community_id='demo' AND playbook='challenge' "
                          "AND key LIKE 'c:%'")[0][0] == 1


def test_create_deposit_withdraw_cancel(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    token = csrf_of(adam)
    a, b = (r[0] for r in sql(fresh_site, "SELECT user_id FROM members WHERE community_id='demo' "
                                          "ORDER BY user_id LIMIT 2 OFFSET 10"))
    sql_update = "UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :u"
    engine = open_engine(fresh_site.db_url)
    with engine.begin() as conn:
        conn.execute(text(sql_update), {"n": HOSTILE_NAME, "u": a})
    engine.dispose()

    form = {"name": "<img/src=x>", "start": "2026-03-10", "days": "3", "deposit": "10.00", "deadline": "07:00",
            "csrf_token": token}
    # refused input says why, nothing is created
    for field, value, words in (("deposit", "10.001", "more than two decimals"), ("deadline", "7am", "HH:MM"),
                                ("start", "next week", "not a date"), ("name", "two words", "without spaces")):
        answer = adam.post("/c/demo/challenges?lang=en", data={**form, field: value})
        assert answer.status_code == 400 and words in answer.text, field
    past = adam.post("/c/demo/challenges?lang=en", data={**form, "start": "2026-02-01"})
    assert past.status_code == 409 and "Refused" in past.text
    made = adam.post("/c/demo/challenges", data=form, follow_redirects=False)
    assert made.status_code == 303
    cid = made.headers["location"].split("/")[-1].split("?")[0]
    ch = challenge_state(fresh_site, cid)
    assert (ch["name"], ch["deposit"], ch["days"], ch["status"]) == ("<img/src=x>", 1000, 3, "open")
    assert audit_rows(fresh_site, "challenge.create")[-1][0] == "adam"

    ext0 = balance(fresh_site, "external:payments:CNY")
    for uid in (a, b):
        done = adam.post(f"/c/demo/challenges/{cid}/deposit", data={"member": uid, "csrf_token": token},
                         follow_redirects=False)
        assert done.status_code == 303
    assert balance(fresh_site, f"challenge:{cid}:pot:CNY") == 2000
    assert balance(fresh_site, "external:payments:CNY") == ext0 - 2000
    assert ledger_total(fresh_site) == 0
    twice = adam.post(f"/c/demo/challenges/{cid}/deposit?lang=en", data={"member": a, "csrf_token": token})
    assert twice.status_code == 409 and balance(fresh_site, f"challenge:{cid}:pot:CNY") == 2000
    wrong = adam.post(f"/c/demo/challenges/{cid}/deposit?lang=en",
                      data={"member": "u-0999x", "amount": "10", "csrf_token": token})
    assert wrong.status_code == 400 and "No member" in wrong.text
    assert [r[2] for r in audit_rows(fresh_site, "challenge.record")] == [a, b]

    page = adam.get(f"/c/demo/challenges/{cid}?lang=en")
    assert HOSTILE_NAME not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img/src=x>" not in page.text and "&lt;img/src=x&gt;" in page.text
    assert 'data-testid="challenge-cancel"' in page.text and "data-confirm=" in page.text
    listing = adam.get("/c/demo/challenges")
    assert "<img/src=x>" not in listing.text and "&lt;img/src=x&gt;" in listing.text

    withdrawn = adam.post(f"/c/demo/challenges/{cid}/withdraw", data={"member": b, "csrf_token": token},
                          follow_redirects=False)
    assert withdrawn.status_code == 303 and challenge_state(fresh_site, cid)["participants"][b]["left"] is True
    assert audit_rows(fresh_site, "challenge.withdraw")[-1][2] == b

    before = {u: balance(fresh_site, f"member:sim:{u}:CNY") for u in (a, b)}
    cancelled = adam.post(f"/c/demo/challenges/{cid}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert cancelled.status_code == 303
    assert challenge_state(fresh_site, cid)["status"] == "cancelled"
    # nothing was settled: each gets the whole deposit back, the pot ends at zero
    assert {u: balance(fresh_site, f"member:sim:{u}:CNY") - before[u] for u in (a, b)} == {a: 1000, b: 1000}
    assert balance(fresh_site, f"challenge:{cid}:pot:CNY") == 0
    assert ledger_total(fresh_site) == 0
    assert audit_rows(fresh_site, "challenge.cancel")[-1][0] == "adam"
    again = adam.post(f"/c/demo/challenges/{cid}/cancel?lang=en", data={"csrf_token": token})
    assert again.status_code == 409
