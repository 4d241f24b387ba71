"""The referrals page and API: the board of the current period and the invitation cascade, both databases."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from qunyun.console.app import create_app
from qunyun.core.clock import FakeClock
from qunyun.store.db import open_engine
from tests.console.conftest import Site, login


def _sql(site: Site, sql: str, **params: Any) -> list[Any]:
    engine = open_engine(site.db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _edges(site: Site) -> dict[str, dict[str, Any]]:
    """invitee → referral state (with ``by``), read from the playbook's state."""
    rows = _sql(site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'referrals'")
    out = {}
    for key, value in rows:
        st = json.loads(value)
        if key.startswith("m:") and isinstance(st, dict) and isinstance(st.get("by"), str):
            out[key[2:]] = st
    return out


def _client_at(site: Site, when: datetime, user: str) -> TestClient:
    """A console whose clock is at ``when`` (the demo's last days), signed in as ``user``."""
    client = TestClient(create_app(site.config, site.db_url, clock=FakeClock(when)), base_url="http://127.0.0.1")
    login(client, user)
    return client


def _last_day(site: Site, edges: dict[str, dict[str, Any]]) -> date:
    return max(date.fromisoformat(st["day"]) for st in edges.values())


def test_board_and_cascade_match_the_state(demo_site: Site) -> None:
    edges = _edges(demo_site)
    assert edges
    last = _last_day(demo_site, edges)
    client = _client_at(demo_site, datetime(last.year, last.month, last.day, 12, tzinfo=UTC), "vera")
    page = client.get("/c/demo/referrals?period=month&lang=en")
    assert page.status_code == 200
    month = [st["by"] for st in edges.values() if st["day"][:7] == last.isoformat()[:7]]
    counts: dict[str, int] = {}
    for by in month:
        counts[by] = counts.get(by, 0) + 1
    assert page.text.count('data-testid="board-row"') == len(counts)
    best = max(counts.values())
    cells = re.findall(r'data-testid="board-row"><td class="num">1</td><td>.*?</td><td class="num">([\d,]+)</td>',
                       page.text, re.S)
    assert cells and int(cells[0].replace(",", "")) == best
    total = re.search(r'data-testid="referrals-total".*?class="value">([\d,]+)<', page.text, re.S)
    assert total and int(total.group(1).replace(",", "")) == len(edges)
    # the deepest chain, walked here from the state
    def depth(uid: str) -> int:
        d, seen = 0, set()
        while uid in edges and uid not in seen:
            seen.add(uid)
            uid = edges[uid]["by"]
            d += 1
        return d
    shown = re.search(r'data-testid="referrals-depth".*?class="value">([\d,]+)<', page.text, re.S)
    assert shown and int(shown.group(1)) == max(depth(u) for u in edges)
    assert page.text.count('data-testid="cascade-row"') == min(50, len(set(edges) | {s["by"] for s in edges.values()}))
    zh = client.get("/c/demo/referrals?lang=zh-CN").text
    assert "邀请裂变" in zh and "Invitation cascade" not in zh
    # a day with nothing, asked for: the board's empty state (unasked, the page falls back to data)
    empty = _client_at(demo_site, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=400), "vera")
    nothing = (last + timedelta(days=400)).isoformat()
    assert 'data-testid="board-empty"' in empty.get(f"/c/demo/referrals?period=day&day={nothing}").text


def test_empty_state_when_the_playbook_is_off(demo_site: Site) -> None:
    page = demo_site.client("otto").get("/c/other/referrals?lang=en")
    assert page.status_code == 200 and 'data-testid="referrals-off"' in page.text
    assert demo_site.client("otto").get("/c/demo/referrals").status_code == 404


def test_inviter_names_are_escaped(fresh_site: Site) -> None:
    edges = _edges(fresh_site)
    inviter = next(iter(edges.values()))["by"]
    engine = open_engine(fresh_site.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE members SET name = :n WHERE community_id = 'demo' AND user_id = :u"),
                     {"n": "<script>alert(1)</script>", "u": inviter})
    engine.dispose()
    body = fresh_site.client("vera").get("/c/demo/referrals").text
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_api_referrals(demo_site: Site) -> None:
    from qunyun.console.accounts import Accounts

    engine = open_engine(demo_site.db_url)
    token = Accounts(engine, demo_site.clock).create_token("vera", "referrals", ["read"])
    otto = Accounts(engine, demo_site.clock).create_token("otto", "referrals", ["read"])
    engine.dispose()
    client = demo_site.client()
    answer = client.get("/api/v1/communities/demo/referrals?period=month", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["board"]["period"] == "month" and data["cascade"]["referrals"] == len(_edges(demo_site))
    bad = client.get("/api/v1/communities/demo/referrals?period=year", headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    off = client.get("/api/v1/communities/other/referrals", headers={"Authorization": f"Bearer {otto}"})
    assert off.status_code == 404 and off.json()["ok"] is False
