"""The audit log page and API: admins only, filtered, paged, before/after shown escaped."""

from __future__ import annotations

import re

from qunyun.console.web import audit
from tests.console.conftest import Site, sql

XSS = "<script>alert(1)</script>"


def _entries(site: Site, n: int) -> None:
    """``n`` entries of an action of this test's own, by adam, with hostile before/after values."""
    client = site.client("adam")
    state = client.app.state.console  # type: ignore[attr-defined]
    user = state.accounts.load(state.accounts.user_id("adam"))
    assert user is not None
    for i in range(n):
        audit(state, user, "demo", "test.audit_page", target=f"t-{i}", before={"name": XSS, "i": i},
              after={"name": f'"><img src=x onerror=alert({i})>', "i": i + 1})


def test_admin_sees_entries_escaped_filtered_and_paged(demo_site: Site) -> None:
    if not sql(demo_site, "SELECT count(*) FROM audit_log WHERE action = 'test.audit_page'")[0][0]:
        _entries(demo_site, 55)
    adam = demo_site.client("adam")
    page = adam.get("/c/demo/audit?action=test.audit_page&lang=en")
    assert page.status_code == 200
    ids = [int(x) for x in re.findall(r'data-testid="audit-row" data-entry="(\d+)"', page.text)]
    expected = sql(demo_site, "SELECT id FROM audit_log WHERE community_id = 'demo' AND action = 'test.audit_page' "
                               "ORDER BY at DESC, id DESC")
    assert ids == [r.id for r in expected[:50]]
    assert "Page 1 of 2 · 55 rows" in page.text
    second = adam.get("/c/demo/audit?action=test.audit_page&page=2")
    assert [int(x) for x in re.findall(r'data-entry="(\d+)"', second.text)] == [r.id for r in expected[50:]]
    oldest = adam.get("/c/demo/audit?action=test.audit_page&sort=at&dir=asc")
    assert re.findall(r'data-entry="(\d+)"', oldest.text)[0] == str(min(r.id for r in expected))
    # before/after are pretty JSON, escaped
    assert XSS not in page.text and "<img src=x" not in page.text
    assert "&#34;name&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page.text
    # the actor filter, and the area filter ("test" finds test.*)
    assert adam.get("/c/demo/audit?actor=nobody&lang=en").text.count('data-testid="audit-row"') == 0
    assert "55 rows" in adam.get("/c/demo/audit?actor=adam&action=test&lang=en").text
    assert "操作日志" in adam.get("/c/demo/audit?lang=zh-CN").text


def test_viewers_and_strangers_are_kept_out(demo_site: Site) -> None:
    vera = demo_site.client("vera")
    assert vera.get("/c/demo/audit").status_code == 403
    assert vera.get("/api/v1/communities/demo/audit").status_code == 403
    assert 'href="/c/demo/audit"' not in vera.get("/c/demo/overview").text
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/audit").status_code == 404
    assert otto.get("/api/v1/communities/demo/audit").status_code == 404


def test_api(demo_site: Site) -> None:
    if not sql(demo_site, "SELECT count(*) FROM audit_log WHERE action = 'test.audit_page'")[0][0]:
        _entries(demo_site, 55)
    answer = demo_site.client("olivia").get("/api/v1/communities/demo/audit?action=test.audit_page&per_page=10")
    data = answer.json()["data"]
    assert data["total"] == 55 and len(data["entries"]) == 10
    first = data["entries"][0]
    assert first["actor"] == "adam" and first["before"]["name"] == XSS and first["after"]["i"] == first["before"]["i"] + 1
    assert demo_site.client("olivia").get("/api/v1/communities/demo/audit?per_page=501").status_code == 422
