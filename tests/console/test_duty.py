"""The duty roster page: who is on duty, the queue, the checklist, the KPI per
week and the pay; the admin's actions (sign up, take off, tick, rotate).

Checked against the duty playbook's state and the ledger read with SQL here.
"""

from __future__ import annotations

import re

from sqlalchemy import text

from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of
from tests.console.test_fund import as_json, audit_rows, balance, ledger_total, money_text, sql

HOSTILE_NAME = '"><img src=x onerror=alert(1)>'


def duty_state(site: Site, key: str) -> object:
    rows = sql(site, "SELECT value FROM playbook_state WHERE community_id='demo' AND playbook='duty' AND key = :k",
               k=key)
    return as_json(rows[0][0]) if rows else None


def test_roster_kpi_and_pay_show_the_state(demo_site: Site) -> None:
    client = demo_site.client("vera")
    page = client.get("/c/demo/duty?lang=en")
    assert page.status_code == 200
    current, queue, week = duty_state(demo_site, "current"), duty_state(demo_site, "queue"), duty_state(
        demo_site, "current_week")
    assert current and queue and isinstance(week, str)
    assert re.findall(r'data-testid="duty-current-member" data-member="([^"]+)"', page.text) == current
    assert re.findall(r'data-testid="duty-queue-row" data-member="([^"]+)"', page.text) == queue
    # the checklist shows this duty week's ticks
    done = set(duty_state(demo_site, f"week:{week}")["done"])  # type: ignore[index]
    shown = dict(re.findall(r'data-testid="duty-item" data-item="([^"]+)" data-done="(yes|no)"', page.text))
    assert {k for k, v in shown.items() if v == "yes"} == done and len(shown) == 4
    # one KPI row per duty week, newest first; closed weeks show the frozen KPI and the pay
    weeks = sorted((k[5:] for (k,) in sql(demo_site, "SELECT key FROM playbook_state WHERE community_id='demo' "
                                                     "AND playbook='duty' AND key LIKE 'week:%'")), reverse=True)
    rows = re.findall(r'data-testid="duty-kpi-row" data-week="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [w for w, _ in rows] == weeks
    for w, cells in rows:
        kpi: dict = duty_state(demo_site, f"kpi:{w}")  # type: ignore[assignment]
        nums = re.findall(r'<td class="num">([^<]*)', cells)
        if kpi["final"]:  # frozen when the week closed
            assert [int(n) for n in nums[:4]] == [kpi["answerers"], kpi["votes"], kpi["resolved"], kpi["asked"]]
            assert money_text(nums[5]) == kpi["paid_total"]
        else:  # the live week: up to date with the Q&A of that week
            qa = as_json(sql(demo_site, "SELECT value FROM playbook_state WHERE community_id='demo' "
                                        "AND playbook='qa' AND key = :k", k=f"week:{w}")[0][0])
            assert [int(n) for n in nums[:4]] == [len(qa["answerers"]), qa["votes"], qa["resolved"], qa["asked"]]
    pays = sql(demo_site, "SELECT member, data FROM records WHERE community_id='demo' AND playbook='duty' "
                          "AND kind='duty_pay'")
    assert pays
    shown_pay = re.findall(r'data-testid="duty-pay-row">.*?<td class="num">([^<]+)</td>', page.text, re.S)
    assert sorted(money_text(x) for x in shown_pay) == sorted(as_json(d)["amount"] for _, d in pays)
    # the duty pay in the records is what left the admin dues for duty
    out = sql(demo_site, "SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p JOIN ledger_transactions t "
                         "ON t.id = p.transaction_id JOIN ledger_accounts a ON a.id = p.account_id "
                         "WHERE a.code = 'community:dues:CNY' AND t.reason LIKE 'duty pay%'")[0][0]
    assert -int(out) == sum(as_json(d)["amount"] for _, d in pays)
    # both languages; viewers get no forms; the API says the same
    assert "Duty roster" in page.text and "值班表" in client.get("/c/demo/duty?lang=zh-CN").text
    assert 'data-testid="duty-rotate"' not in page.text and 'data-testid="duty-signup-form"' not in page.text
    body = client.get("/api/v1/communities/demo/duty").json()["data"]
    assert (body["week"], body["current"], body["queue"]) == (week, current, queue)
    assert [k["week"] for k in body["kpi"]] == weeks
    assert {c["id"] for c in body["checklist"] if c["done"]} == done


def test_viewers_and_strangers_cannot_act(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    token = csrf_of(vera)
    for path in ("/c/demo/duty/signup", "/c/demo/duty/quit", "/c/demo/duty/tick", "/c/demo/duty/rotate"):
        assert vera.post(path, data={"member": "u-0001", "item": "1", "csrf_token": token}).status_code == 403, path
    adam = demo_site.client("adam")
    assert adam.post("/c/demo/duty/rotate").status_code == 403  # no CSRF token
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/duty").status_code == 404
    assert otto.get("/api/v1/communities/demo/duty").status_code == 404
    assert duty_state(demo_site, "current_week") == "2026-W48"


def test_signup_rotate_tick_quit(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    token = csrf_of(adam)
    newcomer = sql(fresh_site, "SELECT user_id FROM members WHERE community_id='demo' ORDER BY user_id "
                               "LIMIT 1 OFFSET 20")[0][0]
    engine = open_engine(fresh_site.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE members SET name = :n WHERE community_id='demo' AND user_id = :u"),
                     {"n": HOSTILE_NAME, "u": newcomer})
    engine.dispose()
    queue0 = list(duty_state(fresh_site, "queue") or [])  # type: ignore[call-overload]
    assert newcomer not in queue0

    unknown = adam.post("/c/demo/duty/signup?lang=en", data={"member": "u-nobody", "csrf_token": token})
    assert unknown.status_code == 400 and "No member" in unknown.text
    done = adam.post("/c/demo/duty/signup", data={"member": newcomer, "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert duty_state(fresh_site, "queue") == [*queue0, newcomer]
    assert audit_rows(fresh_site, "duty.signup")[-1][:3] == ("adam", "duty.signup", newcomer)
    page = adam.get("/c/demo/duty?lang=en")
    assert HOSTILE_NAME not in page.text and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert 'data-testid="duty-rotate"' in page.text and "data-confirm=" in page.text

    # rotating closes the outgoing week: its KPI is frozen and its members paid from the admin dues, exactly
    old_week = duty_state(fresh_site, "current_week")
    dues0 = balance(fresh_site, "community:dues:CNY")
    pays0 = len(sql(fresh_site, "SELECT id FROM records WHERE playbook='duty' AND kind='duty_pay'"))
    rotated = adam.post("/c/demo/duty/rotate", data={"csrf_token": token}, follow_redirects=False)
    assert rotated.status_code == 303
    week = duty_state(fresh_site, "current_week")
    assert week == "2026-W09" and week != old_week  # the console's clock: 2026-03-01
    closed = duty_state(fresh_site, f"kpi:{old_week}")
    assert closed["final"] is True  # type: ignore[index]
    new_pays = sql(fresh_site, "SELECT data FROM records WHERE playbook='duty' AND kind='duty_pay' ORDER BY id")[pays0:]
    paid = sum(as_json(d)["amount"] for (d,) in new_pays)
    assert paid == closed["paid_total"]  # type: ignore[index]
    assert balance(fresh_site, "community:dues:CNY") == dues0 - paid
    assert ledger_total(fresh_site) == 0
    assert audit_rows(fresh_site, "duty.rotate")[-1][0] == "adam"
    again = adam.post("/c/demo/duty/rotate?lang=en", data={"csrf_token": token})
    assert again.status_code == 409 and "Refused" in again.text

    # tick an item of the live week
    page = adam.get("/c/demo/duty")
    assert 'data-testid="duty-tick"' in page.text
    ticked = adam.post("/c/demo/duty/tick", data={"item": "warmup", "csrf_token": token}, follow_redirects=False)
    assert ticked.status_code == 303
    assert "warmup" in duty_state(fresh_site, f"week:{week}")["done"]  # type: ignore[index]
    assert re.search(r'data-item="warmup" data-done="yes"', adam.get("/c/demo/duty").text)
    bad = adam.post("/c/demo/duty/tick?lang=en", data={"item": "nope", "csrf_token": token})
    assert bad.status_code == 409

    # take the newcomer off the roster
    off = adam.post("/c/demo/duty/quit", data={"member": newcomer, "csrf_token": token}, follow_redirects=False)
    assert off.status_code == 303 and newcomer not in (duty_state(fresh_site, "queue") or [])  # type: ignore[operator]
    assert audit_rows(fresh_site, "duty.quit")[-1][2] == newcomer
    assert ledger_total(fresh_site) == 0
