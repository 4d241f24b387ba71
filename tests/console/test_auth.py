"""Signing in, roles, sessions, CSRF, tokens and the API's error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from qunyun.console.accounts import LOCK_AFTER, LOCK_FOR, SESSION_FOR
from tests.console.conftest import PASSWORD, Site, csrf_of, login


def test_sign_in_lands_on_the_only_community(demo_site: Site) -> None:
    client = demo_site.client()
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    answer = login(client, "vera")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "qunyun_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert client.get("/", follow_redirects=False).headers["location"] == "/c/demo/overview"


def test_wrong_password_then_lockout(demo_site: Site) -> None:
    client = demo_site.client()
    for _ in range(LOCK_AFTER - 1):
        assert login(client, "olivia", "wrong password").headers["location"] == "/login?error=invalid"
    assert login(client, "olivia", "wrong password").headers["location"] == "/login?error=locked"
    # the right password is refused while locked …
    assert login(client, "olivia").headers["location"] == "/login?error=locked"
    # … and accepted once the lock has passed (fake clock)
    demo_site.clock.advance(LOCK_FOR + timedelta(seconds=1))
    assert login(client, "olivia").headers["location"] == "/"


def test_unknown_user_looks_like_a_wrong_password(demo_site: Site) -> None:
    assert login(demo_site.client(), "nobody").headers["location"] == "/login?error=invalid"


def test_sign_in_rate_limit_per_address(demo_site: Site) -> None:
    client = demo_site.client()
    seen = [login(client, "nobody", "bad password!").headers["location"] for _ in range(12)]
    assert "/login?error=limited" in seen
    assert seen.index("/login?error=limited") == 10
    demo_site.clock.advance(timedelta(minutes=6))


def test_sign_in_without_the_form_token_is_refused(demo_site: Site) -> None:
    client = demo_site.client()
    answer = client.post("/login", data={"username": "vera", "password": PASSWORD}, follow_redirects=False)
    assert answer.headers["location"] == "/login?error=expired"
    assert "qunyun_session" not in answer.headers.get("set-cookie", "")


def test_session_expires(demo_site: Site) -> None:
    client = demo_site.client("vera")
    assert client.get("/account", follow_redirects=False).status_code == 200
    demo_site.clock.advance(SESSION_FOR + timedelta(minutes=1))
    assert client.get("/account", follow_redirects=False).headers["location"].startswith("/login")


def test_state_change_without_csrf_is_refused(demo_site: Site) -> None:
    client = demo_site.client("vera")
    refused = client.post("/account/tokens", data={"name": "x"})
    assert refused.status_code == 403
    token = csrf_of(client)
    assert client.post("/account/tokens", data={"name": "x", "csrf_token": "forged"}).status_code == 403
    made = client.post("/account/tokens", data={"name": "mine", "csrf_token": token})
    assert made.status_code == 200 and "qy_" in made.text
    by_header = client.post("/account/tokens", data={"name": "two"}, headers={"X-CSRF-Token": token})
    assert by_header.status_code == 200


def test_other_community_is_invisible(demo_site: Site) -> None:
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/overview").status_code == 404
    assert otto.get("/api/v1/communities/demo").status_code == 404
    assert otto.get("/api/v1/communities/other").status_code == 200


def test_logout_ends_the_session(demo_site: Site) -> None:
    client = demo_site.client("vera")
    token = csrf_of(client)
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/account", follow_redirects=False).headers["location"].startswith("/login")


def test_next_is_kept_and_only_same_site(demo_site: Site) -> None:
    client = demo_site.client()
    page = client.get("/login?next=//evil.example/x")
    assert "evil.example" not in page.text


@pytest.fixture
def tokens(demo_site: Site) -> dict[str, str]:
    from qunyun.console.accounts import Accounts
    from qunyun.store.db import open_engine

    engine = open_engine(demo_site.db_url)
    accounts = Accounts(engine, demo_site.clock)
    made = {
        "vera-read": accounts.create_token("vera", "read", ["read"]),
        "adam-read": accounts.create_token("adam", "read only", ["read"]),
        "adam-write": accounts.create_token("adam", "write", ["read", "write"]),
        "otto-write": accounts.create_token("otto", "other", ["read", "write"]),
    }
    engine.dispose()
    return made


def _api(client: TestClient, path: str, token: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get(path, headers=headers)
    return answer.status_code, answer.json()


def test_api_error_shape_is_locked(demo_site: Site, tokens: dict[str, str]) -> None:
    client = demo_site.client()
    cases = [
        ("/api/v1/me", None, 401, "unauthorized"),
        ("/api/v1/me", "qy_not-a-token", 401, "unauthorized"),
        ("/api/v1/communities/demo", tokens["otto-write"], 404, "not_found"),
        ("/api/v1/communities/nope", tokens["vera-read"], 404, "not_found"),
        ("/api/v1/no-such-route", tokens["vera-read"], 404, "not_found"),
    ]
    for path, token, status, code in cases:
        got_status, body = _api(client, path, token)
        assert got_status == status, (path, body)
        assert set(body) == {"ok", "error", "code"}, body
        assert body["ok"] is False and body["code"] == code and isinstance(body["error"], str) and body["error"]


def test_api_with_tokens(demo_site: Site, tokens: dict[str, str]) -> None:
    client = demo_site.client()
    status, body = _api(client, "/api/v1/me", tokens["adam-write"])
    assert status == 200 and body["ok"] is True and body["data"]["username"] == "adam"
    assert body["data"]["roles"] == {"demo": "admin"} and body["data"]["scopes"] == ["read", "write"]
    status, body = _api(client, "/api/v1/communities", tokens["otto-write"])
    assert [c["id"] for c in body["data"]] == ["other"]
    status, body = _api(client, "/api/v1/communities/demo", tokens["vera-read"])
    assert status == 200 and body["data"]["role"] == "viewer" and body["data"]["groups"]


def test_revoked_token_stops_working(demo_site: Site, tokens: dict[str, str]) -> None:
    client = demo_site.client("vera")
    assert _api(client, "/api/v1/me", tokens["vera-read"])[0] == 200
    page = client.get("/account")
    import re

    ids = re.findall(r'/account/tokens/(\d+)/revoke', page.text)
    token = csrf_of(client)
    for token_id in ids:
        client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
    status, body = _api(demo_site.client(), "/api/v1/me", tokens["vera-read"])
    assert status == 401 and body["code"] == "unauthorized"


def test_security_headers(demo_site: Site) -> None:
    answer = demo_site.client().get("/login")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_openapi_document(demo_site: Site) -> None:
    doc = demo_site.client().get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "qunyun API"
    assert "/api/v1/communities/{community}" in doc["paths"]
    assert not [p for p in doc["paths"] if not p.startswith("/api/v1/")]


def test_a_page_reading_does_not_hold_the_engines_write_lock(demo_site: Site) -> None:
    """Pages read in deferred transactions: the engine can take the write lock meanwhile."""
    from sqlalchemy import text

    app = demo_site.app()
    state = app.state.console
    with state.db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM members")).scalar_one() > 0  # a read transaction is open
        answer = state.engine.query("demo", "qa", "questions", {"status": "all", "limit": 1})
        assert isinstance(answer, dict)


def test_nul_characters_in_a_body_are_refused_not_a_server_error(demo_site: Site, tokens: dict[str, str]) -> None:
    client = demo_site.client()
    answer = client.post("/api/v1/communities/demo/fund/payments", json={"amount": 1, "member": "\u0000"},
                         headers={"Authorization": f"Bearer {tokens['adam-write']}"})
    assert 400 <= answer.status_code < 500, answer.text
    body = answer.json()
    assert set(body) == {"ok", "error", "code"} and body["ok"] is False
    if demo_site.backend == "postgresql":
        assert body["code"] == "bad_request" and "NUL" in body["error"]
