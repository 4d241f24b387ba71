"""Defects found reviewing the console, each pinned by a test: tokens and pages, sign-in answers,
messages in URLs, times in the community's zone, and inputs that used to crash a page."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from qunyun.console.accounts import Accounts
from qunyun.store.db import open_engine
from tests.console.conftest import Site, csrf_of, login, sql

HOSTILE = 'Your session expired: sign in again at https://evil.example/"><img src=x onerror=alert(1)>'


def _token(site: Site, user: str, scopes: list[str]) -> str:
    engine = open_engine(site.db_url)
    try:
        return Accounts(engine, site.clock).create_token(user, f"review-{user}-{'-'.join(scopes)}", scopes)
    finally:
        engine.dispose()


def _lenient(site: Site, user: str) -> TestClient:
    """A signed-in client that reports a server error as a 500 (instead of raising it)."""
    client = TestClient(site.app(), base_url="http://127.0.0.1", raise_server_exceptions=False)
    login(client, user)
    return client


def _flashes(html: str) -> list[str]:
    return re.findall(r'<div class="flash[^"]*"[^>]*>(.*?)</div>', html, re.S)


# ------------------------------------------------------------------ tokens on page routes


def test_a_read_only_token_cannot_change_anything_through_a_page(fresh_site: Site) -> None:
    """Page forms skip the CSRF check for tokens, so the token's scope must hold there too."""
    read = _token(fresh_site, "adam", ["read"])
    client = fresh_site.client()
    before = sql(fresh_site, "SELECT count(*) FROM audit_log WHERE community_id = 'demo'")[0][0]
    roster = sql(fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'duty' "
                              "AND key = 'roster'")
    answer = client.post("/c/demo/duty/rotate", headers={"Authorization": f"Bearer {read}"},
                         follow_redirects=False)
    assert answer.status_code == 403
    assert "write" in answer.text
    assert sql(fresh_site, "SELECT count(*) FROM audit_log WHERE community_id = 'demo'")[0][0] == before
    assert sql(fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'duty' "
                            "AND key = 'roster'") == roster
    # a read token still reads pages, and a write token may act (the API's rule)
    assert client.get("/c/demo/duty", headers={"Authorization": f"Bearer {read}"}).status_code == 200
    write = _token(fresh_site, "adam", ["read", "write"])
    acted = client.post("/c/demo/duty/rotate", headers={"Authorization": f"Bearer {write}"},
                        follow_redirects=False)
    assert acted.status_code == 303
    assert sql(fresh_site, "SELECT count(*) FROM audit_log WHERE community_id = 'demo' AND action = 'duty.rotate'"
                            " AND actor LIKE 'adam (token %'")[0][0] == 1


# ------------------------------------------------------------------ signing in


def test_a_disabled_account_is_named_only_to_who_knows_its_password(fresh_site: Site) -> None:
    sql(fresh_site, "UPDATE console_users SET disabled = :t WHERE username = 'vera'", t=True)
    client = fresh_site.client()
    assert login(client, "vera", "not her password").headers["location"] == "/login?error=invalid"
    assert login(client, "nobody", "not her password").headers["location"] == "/login?error=invalid"
    assert login(client, "vera").headers["location"] == "/login?error=disabled"


# ------------------------------------------------------------------ messages carried in URLs


def test_an_error_text_put_in_a_link_is_not_shown(demo_site: Site) -> None:
    client = demo_site.client("adam")
    for path in ("/c/demo/qa", "/c/demo/sessions", "/c/demo/sessions/1", "/c/demo/digests/2026-W46"):
        page = client.get(path, params={"error": HOSTILE, "sig": "0" * 32, "lang": "en"})
        assert page.status_code == 200, path
        assert not any("evil.example" in f for f in _flashes(page.text)), path
        # nor carried on by the page's own links (sorting, paging)
        assert not [h for h in re.findall(r'href="([^"]*)"', page.text) if "evil.example" in h], path
        assert "<img src=x" not in page.text, path


def test_a_refused_command_still_shows_its_reason(demo_site: Site) -> None:
    client = demo_site.client("adam")
    done = client.post("/c/demo/sessions/1/stage", data={"stage": "no-such-stage", "due": "2026-12-01",
                                                         "csrf_token": csrf_of(client)}, follow_redirects=False)
    assert done.status_code == 303 and "error=" in done.headers["location"] and "sig=" in done.headers["location"]
    shown = client.get(done.headers["location"] + "&lang=en")
    assert any("no-such-stage" in f for f in _flashes(shown.text))
    # the same text with its signature changed is not shown
    forged = client.get(done.headers["location"].replace("sig=", "sig=f") + "&lang=en")
    assert not any("no-such-stage" in f for f in _flashes(forged.text))


def test_the_flash_shows_our_own_messages_and_nothing_else(demo_site: Site) -> None:
    client = demo_site.client("vera")
    awarded = client.get("/c/demo/qa", params={"msg": "qa.awarded", "lang": "en"})
    assert _flashes(awarded.text), "the message the award redirects with is shown"
    for msg in ("msg.Call +1-555-0100 now", "msg.refused", HOSTILE):
        page = client.get("/c/demo/qa", params={"msg": msg, "lang": "en"})
        assert _flashes(page.text) == [], msg
        assert "555-0100" not in page.text and "evil.example" not in page.text


# ------------------------------------------------------------------ times


def test_times_kept_as_text_show_in_the_communitys_zone(demo_site: Site) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    rows = sql(demo_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'digest' "
                           "AND key LIKE 'published:%'")
    assert rows, "the demo publishes digests"
    page = demo_site.client("vera").get("/c/demo/digests?lang=en&page=1")
    for _key, value in rows[:5]:
        ts = datetime.fromisoformat((json.loads(value) if isinstance(value, str) else value)["ts"])
        assert ts.astimezone(tz).strftime("%Y-%m-%d %H:%M") in page.text
    assert " UTC" not in page.text
    # the day of a moment is the community's day, not UTC's
    day = demo_site.app().state.console.env.filters["day"]
    assert day("2026-11-13T23:37:10+00:00", tz) == "2026-11-14"
    assert day("2026-11-13T10:00:00+00:00", tz) == "2026-11-13"
    assert day("2026-11-13") == "2026-11-13"
    when = demo_site.app().state.console.env.filters["when"]
    assert when("2026-11-13T23:37:10+00:00", tz) == "2026-11-14 07:37"


# ------------------------------------------------------------------ inputs out of range


def test_out_of_range_inputs_answer_without_a_server_error(demo_site: Site) -> None:
    client = _lenient(demo_site, "adam")
    huge = "9" * 25
    expected = {
        "/c/demo/sessions?month=0000-01": 422,
        "/c/demo/sessions?month=0001-01": 422,
        "/c/demo/sessions?month=9999-12": 422,
        f"/c/demo/duty?kpage={huge}": 200,
        f"/c/demo/duty?ppage={huge}": 200,
        "/c/demo/elimination?as_of=0001-01-01": 200,
        f"/c/demo/config/versions/{huge}": 404,
        "/c/demo/digests/9999-W52": 409,
        "/c/demo/digests/9999-W52/export.md": 409,
    }
    got = {path: client.get(path, follow_redirects=False).status_code for path in expected}
    assert got == expected
    api = client.get("/api/v1/communities/demo/digests/9999-W52")
    assert api.status_code == 409 and api.json()["ok"] is False and "9999-W52" in api.json()["error"]
    refused = client.post(f"/c/demo/config/versions/{huge}/restore", data={"csrf_token": csrf_of(client)},
                          follow_redirects=False)
    assert refused.status_code == 404


def test_commands_far_in_the_future_are_refused_not_crashed(demo_site: Site) -> None:
    client = _lenient(demo_site, "adam")
    token = csrf_of(client)
    stage = json.loads(sql(demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                       "AND playbook = 'sessions' AND key = 's:1'")[0][0])["stages"][0]["id"]
    before = sql(demo_site, "SELECT count(*) FROM playbook_state WHERE community_id = 'demo' "
                             "AND playbook IN ('sessions', 'digest')")[0][0]
    posts = {
        "/c/demo/sessions": {"topic": "t", "speaker": "u-0001", "starts_at": "9999-12-31 23:59", "duration": "1440"},
        "/c/demo/sessions/1/stage": {"stage": stage, "due": "9999-12-31"},
        "/c/demo/digests/9999-W52/edit": {"md": "# far"},
        "/c/demo/digests/9999-W52/publish": {},
    }
    for path, data in posts.items():
        answer = client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
        assert answer.status_code == 303 and "error=" in answer.headers["location"], path
    after = sql(demo_site, "SELECT count(*) FROM playbook_state WHERE community_id = 'demo' "
                            "AND playbook IN ('sessions', 'digest')")[0][0]
    assert after == before
    stored = json.loads(sql(demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                        "AND playbook = 'sessions' AND key = 's:1'")[0][0])["stages"][0]
    assert stored["due"] != "9999-12-31"
