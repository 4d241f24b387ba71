"""The groups list, one group's page, and the API's /groups and /groups/{key}."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import text

from qunyun.analytics import lifecycle as lc
from qunyun.analytics import metrics as mx
from qunyun.console.pages import groups as gp
from qunyun.store.db import open_engine
from tests.console.conftest import Site
from tests.console.test_overview import HOSTILE, HOSTILE2, add_silent_group, rename_top_member


def _as_date(v: object) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def truth(site: Site) -> tuple[date, dict[str, dict[str, object]]]:
    """Per group key: members (metrics), speakers and messages of 7 days (rollups), state (lifecycle)."""
    engine = open_engine(site.db_url)
    try:
        with engine.connect() as conn:
            as_of = _as_date(conn.execute(text("SELECT max(day) FROM rollups WHERE community_id = 'demo'")).scalar())
            start = as_of - timedelta(days=6)
            bind = (lambda d: d.isoformat()) if conn.dialect.name == "sqlite" else (lambda d: d)
            rows = conn.execute(text(
                "SELECT g.key, count(DISTINCT CASE WHEN r.messages > 0 THEN r.member_id END), sum(r.messages) "
                "FROM rollups r JOIN groups g ON g.id = r.group_id WHERE r.community_id = 'demo' "
                "AND r.day >= :s AND r.day <= :e GROUP BY g.key"), {"s": bind(start), "e": bind(as_of)}).all()
            out: dict[str, dict[str, object]] = {k: {"speakers": int(s), "messages": int(n or 0)} for k, s, n in rows}
            sc = mx.scope(conn, "demo")
            pres = mx.presences(conn, sc, as_of, as_of)  # the scanning path, not the page's SQL
            for g in mx.group_activity(sc, pres, as_of, as_of):
                out.setdefault(g.key, {"speakers": 0, "messages": 0})["members"] = g.members
            for s in lc.group_states(conn, "demo", as_of):
                out[s.group_key]["state"] = s.state
                out[s.group_key]["age"] = s.age_days
        return as_of, out
    finally:
        engine.dispose()


def keys_of(html: str) -> list[str]:
    return re.findall(r'data-testid="group-row" data-key="([^"]+)"', html)


def test_groups_table_numbers(demo_site: Site) -> None:
    _, want = truth(demo_site)
    html = demo_site.client("vera").get("/c/demo/groups?lang=en").text
    assert keys_of(html) and sorted(keys_of(html)) == sorted(want)
    for key, w in want.items():
        row = html.split(f'data-key="{key}"')[1].split("</tr>")[0]
        assert f'data-testid="group-members">{w["members"]:,}<' in row
        assert f'data-testid="group-speakers">{w["speakers"]:,}<' in row
        assert f'data-testid="group-messages">{w["messages"]:,}<' in row
        assert f'data-testid="group-state">{w["state"]}<' in row


def test_groups_sorting_and_paging(demo_site: Site) -> None:
    _, want = truth(demo_site)
    client = demo_site.client("vera")
    # default: most members first
    by_members = sorted(want, key=lambda k: (want[k]["members"], k), reverse=True)
    assert keys_of(client.get("/c/demo/groups").text) == by_members
    by_messages = sorted(want, key=lambda k: (want[k]["messages"], k))
    assert keys_of(client.get("/c/demo/groups?sort=messages&dir=asc").text) == by_messages
    assert keys_of(client.get("/c/demo/groups?sort=messages&dir=desc").text) == by_messages[::-1]
    # an unknown sort key falls back to the default
    assert keys_of(client.get("/c/demo/groups?sort=nope").text) == by_members
    first = client.get("/c/demo/groups?per_page=2&lang=en").text
    second = client.get("/c/demo/groups?per_page=2&page=2&lang=en").text
    assert keys_of(first) == by_members[:2] and keys_of(second) == by_members[2:4]
    assert f"Page 1 of {-(-len(want) // 2)} · {len(want)} rows" in first


def test_groups_api(demo_site: Site) -> None:
    _, want = truth(demo_site)
    client = demo_site.client("vera")
    body = client.get("/api/v1/communities/demo/groups?per_page=2&sort=speakers&dir=desc").json()
    assert body["ok"] is True
    data = body["data"]
    order = sorted(want, key=lambda k: (want[k]["speakers"], k), reverse=True)
    assert data["total"] == len(want) and [g["key"] for g in data["items"]] == order[:2]
    item = data["items"][0]
    assert item["speakers_7d"] == want[item["key"]]["speakers"]
    assert item["members"] == want[item["key"]]["members"] and item["state"] == want[item["key"]]["state"]
    bad = client.get("/api/v1/communities/demo/groups?per_page=500")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    assert client.get("/api/v1/communities/demo/groups?sort=x").status_code == 422
    assert client.get("/api/v1/communities/demo/groups?page=9").json()["data"]["items"] == []


def test_group_page_and_api(demo_site: Site) -> None:
    as_of, want = truth(demo_site)
    engine = open_engine(demo_site.db_url)
    try:  # read everything first: an open SQLite transaction would hold up the app's writes
        with engine.connect() as conn:
            risks = {r.group_key: r for r in lc.young_group_risks(conn, "demo", as_of)}
            members = {k: mx.dashboard(conn, mx.scope(conn, "demo", k), as_of, days=gp.GROUP_DAYS).daily[-1].members
                       for k in want}
            tops = {k: [c.user_id for c in mx.top_between(conn, mx.scope(conn, "demo", k), as_of - timedelta(days=27),
                                                          as_of, 10)] for k in want}
    finally:
        engine.dispose()
    client = demo_site.client("vera")
    for key, w in want.items():
        html = client.get(f"/c/demo/groups/{key}?lang=en").text
        assert f'data-testid="group-state">{w["state"]}<' in html
        assert 'data-testid="group-reason"' in html and 'data-testid="group-top"' in html
        api = client.get(f"/api/v1/communities/demo/groups/{key}").json()["data"]
        assert api["speakers_7d"] == w["speakers"] and api["messages_7d"] == w["messages"]
        assert api["members"] == members[key]
        assert api["lifecycle"]["state"] == w["state"] and api["age_days"] == w["age"]
        if key in risks:
            assert abs(api["early_warning"]["score"] - risks[key].score) < 1e-9
            assert api["early_warning"]["reasons"] == risks[key].reasons
        assert [s["user_id"] for s in api["top_speakers"]] == tops[key]
        assert api["playbooks"]  # the demo's groups all run playbooks
    chart = client.get(f"/c/demo/groups/{next(iter(want))}/chart?lang=en")
    assert chart.status_code == 200 and "<svg" in chart.text


def test_group_page_languages(demo_site: Site) -> None:
    client = demo_site.client("vera")
    assert "生命周期" in client.get("/c/demo/groups/g-main?lang=zh-CN").text
    en = client.get("/c/demo/groups/g-main?lang=en").text
    assert "Lifecycle" in en and "生命周期" not in en
    assert "群龄（天）" in client.get("/c/demo/groups?lang=zh-CN").text


def test_unknown_group_and_other_community(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    assert vera.get("/c/demo/groups/nope").status_code == 404
    assert vera.get("/c/demo/groups/nope/chart").status_code == 404
    api = vera.get("/api/v1/communities/demo/groups/nope")
    assert api.status_code == 404 and api.json() == {"ok": False, "error": "community 'demo' has no group 'nope'",
                                                     "code": "not_found"}
    otto = demo_site.client("otto")
    for path in ("/c/demo/groups", "/c/demo/groups/g-main", "/api/v1/communities/demo/groups",
                 "/api/v1/communities/demo/groups/g-main"):
        assert otto.get(path).status_code == 404, path
    # a group of another community is not found through this one
    assert vera.get("/c/demo/groups/o-main").status_code == 404


def test_silent_group_and_hostile_names(fresh_site: Site) -> None:
    key = add_silent_group(fresh_site, HOSTILE)
    uid = rename_top_member(fresh_site, HOSTILE2)
    client = fresh_site.client("vera")
    listing = client.get("/c/demo/groups?sort=state&dir=desc&lang=en").text
    assert keys_of(listing)[0] == key
    assert HOSTILE not in listing and "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    page = client.get(f"/c/demo/groups/{key}?lang=en").text
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-testid="group-state">silent<' in page and "no message for 10 days" in page
    api = client.get(f"/api/v1/communities/demo/groups/{key}").json()["data"]
    assert api["lifecycle"]["state"] == "silent" and api["lifecycle"]["quiet_days"] == 10
    # the member with the most messages tops some group's speakers: their name is escaped there
    pages = [client.get(f"/c/demo/groups/{k}?lang=en").text for k in ("g-main", "g-reading", "g-writing")]
    shown = [p for p in pages if uid in p.split('data-testid="group-top"')[-1]]
    assert shown
    for p in shown:
        assert "<img src=x" not in p and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in p
