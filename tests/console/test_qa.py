"""The Q&A board: the week's board, the questions, picking best answers and paying the week's awards."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import create_engine, text

from tests.console.conftest import Site, csrf_of, sql


def _state(site: Site, playbook: str, key: str) -> Any:
    engine = create_engine(site.db_url)
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = :p AND key = :k"),
            {"p": playbook, "k": key},
        ).scalar()
    engine.dispose()
    return None if value is None else json.loads(value)


def _questions(site: Site) -> dict[str, dict[str, Any]]:
    engine = create_engine(site.db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, value FROM playbook_state WHERE community_id = 'demo' "
                                 "AND playbook = 'qa' AND key LIKE 'q:Q%'")).all()
    engine.dispose()
    return {k[2:]: json.loads(v) for k, v in rows}


def _name(site: Site, uid: str) -> str:
    return str(sql(site, "SELECT name FROM members WHERE community_id = 'demo' AND user_id = :u", u=uid)[0][0])


def _row_ids(html: str) -> list[str]:
    return re.findall(r'data-testid="qa-question-row" data-qid="(Q\d+)"', html)


def test_board_shows_the_weeks_numbers(demo_site: Site) -> None:
    week = _state(demo_site, "qa", "week:2026-W47")
    page = demo_site.client("vera").get("/c/demo/qa?week=2026-W47&lang=en")
    assert page.status_code == 200 and "Q&amp;A board" in page.text
    stats = re.findall(r'<div class="label">([^<]+)</div><div class="value">([^<]+)</div>', page.text)
    assert ("Questions asked", f"{week['asked']:,}") in stats
    assert ("Votes", f"{week['votes']:,}") in stats
    top = sorted(week["answerers"].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    shown = re.findall(r'<tr data-testid="qa-top-row"><td class="num">\d+</td><td>([^<]+)</td><td class="num">([\d,]+)</td>',
                       page.text)
    assert [(n, int(s.replace(",", ""))) for n, s in shown] == [(_name(demo_site, u), s) for u, s in top]
    # the week already paid: the award lines are shown, no button
    award = _state(demo_site, "fund", "award:2026-W47")
    assert award["status"] == "paid" and 'data-testid="qa-award-pay"' not in page.text
    assert page.text.count('data-testid="qa-award-line"') == len(award["lines"])


def test_board_in_chinese_by_default(demo_site: Site) -> None:
    page = demo_site.client("vera").get("/c/demo/qa?week=2026-W47")
    assert "问答榜" in page.text and "答主榜" in page.text


def test_questions_filter_sort_and_page(demo_site: Site) -> None:
    qs = _questions(demo_site)
    client = demo_site.client("vera")
    page = client.get("/c/demo/qa?status=all&lang=en")
    ids = _row_ids(page.text)
    newest = sorted(qs, key=lambda q: int(q[1:]), reverse=True)
    assert ids == newest[:25]
    assert f"of {-(-len(qs) // 25)} · {len(qs):,} rows" in page.text
    second = _row_ids(client.get("/c/demo/qa?status=all&page=2").text)
    assert second == newest[25:50]
    resolved = [q for q, v in qs.items() if v["status"] == "resolved"]
    page = client.get("/c/demo/qa?status=resolved&lang=en")
    assert f"{len(resolved):,} rows" in page.text
    assert set(_row_ids(page.text)) <= set(resolved)
    most = max(len(v["answers"]) for v in qs.values())
    by_answers = _row_ids(client.get("/c/demo/qa?status=all&sort=answers&dir=desc").text)
    assert len(qs[by_answers[0]]["answers"]) == most
    oldest = _row_ids(client.get("/c/demo/qa?status=all&sort=id&dir=asc").text)
    assert oldest[0] == "Q1"


def test_best_answer_text_comes_from_the_message(demo_site: Site) -> None:
    qs = _questions(demo_site)
    qid, q = max(((k, v) for k, v in qs.items() if v.get("best")), key=lambda kv: int(kv[0][1:]))
    body = sql(demo_site, "SELECT m.text FROM messages m JOIN groups g ON g.id = m.group_id "
                           "WHERE g.community_id = 'demo' AND m.msg_id = :m", m=q["best"])[0][0]
    page = demo_site.client("vera").get("/c/demo/qa?status=resolved")
    row = page.text.split(f'data-qid="{qid}"', 1)[1].split("</tr>", 1)[0]
    assert _name(demo_site, q["answers"][q["best"]]["by"]) in row
    assert body[:20] in row


def test_viewer_cannot_act(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    page = vera.get("/c/demo/qa?status=answered")
    assert 'data-testid="qa-pick-form"' not in page.text and 'data-testid="qa-award-pay"' not in page.text
    token = csrf_of(vera)
    assert vera.post("/c/demo/qa/pick", data={"question": "Q1", "answer": "m-1", "csrf_token": token}).status_code == 403
    assert vera.post("/c/demo/qa/award", data={"week": "2026-W48", "csrf_token": token}).status_code == 403
    adam = demo_site.client("adam")
    assert 'data-testid="qa-pick-form"' in adam.get("/c/demo/qa?status=answered").text
    # without the CSRF token nothing happens
    assert adam.post("/c/demo/qa/pick", data={"question": "Q1", "answer": "m-1"}).status_code == 403


def test_other_community_is_404(demo_site: Site) -> None:
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/qa").status_code == 404
    assert otto.get("/api/v1/communities/demo/qa/questions").status_code == 404


def test_api_questions_and_board(demo_site: Site) -> None:
    client = demo_site.client("vera")
    qs = _questions(demo_site)
    answer = client.get("/api/v1/communities/demo/qa/questions?status=open&limit=5").json()
    assert answer["ok"] is True
    assert answer["data"]["total"] == sum(1 for v in qs.values() if v["status"] == "open")
    assert all(q["status"] == "open" for q in answer["data"]["questions"])
    board = client.get("/api/v1/communities/demo/qa/board?week=2026-W46").json()["data"]
    week = _state(demo_site, "qa", "week:2026-W46")
    assert board["asked"] == week["asked"] and board["votes"] == week["votes"]
    assert [r["member"] for r in board["answerers"]] == [
        u for u, _ in sorted(week["answerers"].items(), key=lambda kv: (-kv[1], kv[0]))]
    bad = client.get("/api/v1/communities/demo/qa/board?week=W46")
    assert bad.status_code == 422 and bad.json()["ok"] is False
    refused = client.post("/api/v1/communities/demo/qa/pick", json={"question": "Q1", "member": "u-1"},
                          headers={"X-CSRF-Token": csrf_of(client)})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_pick_then_award_the_week(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    week = "2026-W47"
    assert _state(fresh_site, "fund", f"award:{week}") is None
    # 1. pick the best answer of a question still waiting for one
    qs = _questions(fresh_site)
    qid, q = max(((k, v) for k, v in qs.items() if v["status"] == "answered"), key=lambda kv: int(kv[0][1:]))
    msg = next(m for m, a in q["answers"].items() if a.get("by"))
    page = adam.get(f"/c/demo/qa?status=answered&week={week}")
    assert f'<input type="hidden" name="question" value="{qid}">' in page.text
    done = adam.post("/c/demo/qa/pick", data={"question": qid, "answer": msg, "csrf_token": csrf_of(adam),
                                               "back": "/c/demo/qa?status=answered"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/c/demo/qa?status=answered&msg=msg.done"
    after = _questions(fresh_site)[qid]
    assert after["status"] == "resolved" and after["best"] == msg
    audit = sql(fresh_site, "SELECT actor, action, after FROM audit_log WHERE action = 'qa.pick'")
    assert len(audit) == 1 and audit[0][0] == "adam" and json.loads(audit[0][2])["args"]["question"] == qid
    # picking it again is refused with the reason, and nothing is audited
    again = adam.post("/c/demo/qa/pick", data={"question": qid, "answer": msg, "csrf_token": csrf_of(adam)},
                      follow_redirects=False)
    assert "error=" in again.headers["location"]
    assert len(sql(fresh_site, "SELECT id FROM audit_log WHERE action = 'qa.pick'")) == 1

    # 2. the awards: shown before paying, then paid exactly
    page = adam.get(f"/c/demo/qa?week={week}&lang=en")
    expect = int(re.search(r'name="expect" value="(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    lines = page.text.count('data-testid="qa-award-line"')
    assert expect > 0 and lines > 0
    fund_before = sql(fresh_site, "SELECT balance FROM ledger_accounts WHERE community_id = 'demo' "
                                   "AND code = 'community:fund:CNY'")[0][0]
    # a stale total is refused: nothing moves
    stale = adam.post("/c/demo/qa/award", data={"week": week, "expect": str(expect + 1), "csrf_token": csrf_of(adam)},
                      follow_redirects=False)
    assert "error=" in stale.headers["location"] and _state(fresh_site, "fund", f"award:{week}") is None
    paid = adam.post("/c/demo/qa/award", data={"week": week, "expect": str(expect), "csrf_token": csrf_of(adam)},
                     follow_redirects=False)
    assert paid.status_code == 303 and "msg=qa.awarded" in paid.headers["location"]
    award = _state(fresh_site, "fund", f"award:{week}")
    assert award["status"] == "paid" and sum(award["paid"].values()) == expect and len(award["lines"]) == lines
    fund_after = sql(fresh_site, "SELECT balance FROM ledger_accounts WHERE community_id = 'demo' "
                                  "AND code = 'community:fund:CNY'")[0][0]
    assert fund_before - fund_after == expect
    postings = sql(fresh_site, "SELECT a.code, p.amount FROM ledger_postings p "
                                "JOIN ledger_transactions t ON t.id = p.transaction_id "
                                "JOIN ledger_accounts a ON a.id = p.account_id WHERE t.reason = :r",
                    r=f"weekly award {week}")
    assert sum(a for _, a in postings) == 0
    assert dict(postings)["community:fund:CNY"] == -expect
    for uid, amount in award["paid"].items():
        assert dict(postings)[f"member:sim:{uid}:CNY"] == amount
    total = sql(fresh_site, "SELECT sum(p.amount) FROM ledger_postings p JOIN ledger_transactions t "
                             "ON t.id = p.transaction_id WHERE t.community_id = 'demo'")[0][0]
    assert total == 0  # the whole ledger still balances
    actions = [r[0] for r in sql(fresh_site, "SELECT action FROM audit_log WHERE action LIKE 'fund.%'")]
    assert actions in (["fund.award"], ["fund.award", "fund.approve_awards"])
    # paid once: the button is gone and a second award is refused
    assert 'data-testid="qa-award-pay"' not in adam.get(f"/c/demo/qa?week={week}").text
    twice = adam.post("/c/demo/qa/award", data={"week": week, "csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert "error=" in twice.headers["location"]
    assert sql(fresh_site, "SELECT balance FROM ledger_accounts WHERE community_id = 'demo' "
                            "AND code = 'community:fund:CNY'")[0][0] == fund_after


def test_hostile_question_and_names_are_escaped(fresh_site: Site) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    engine = create_engine(fresh_site.db_url)
    with engine.begin() as conn:
        key, value = conn.execute(text("SELECT key, value FROM playbook_state WHERE community_id = 'demo' "
                                       "AND playbook = 'qa' AND key LIKE 'q:Q%' ORDER BY length(key) DESC, key DESC "
                                       "LIMIT 1")).one()
        q = json.loads(value)
        conn.execute(text("UPDATE playbook_state SET value = :v WHERE community_id = 'demo' AND playbook = 'qa' "
                          "AND key = :k"), {"v": json.dumps({**q, "text": hostile}), "k": key})
        conn.execute(text("UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :u"),
                     {"n": hostile, "u": q["asker"]})
        for msg in q["answers"]:
            conn.execute(text("UPDATE messages SET text = :t WHERE msg_id = :m"), {"t": hostile, "m": msg})
    engine.dispose()
    page = fresh_site.client("adam").get("/c/demo/qa?status=all")
    assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    api = fresh_site.client("adam").get("/api/v1/communities/demo/qa/questions?limit=1").json()
    assert api["data"]["questions"][0]["text"] == hostile  # JSON carries the text as it is
