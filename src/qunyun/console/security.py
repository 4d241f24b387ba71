"""Who is asking, and may they change anything: sessions, tokens, CSRF, headers.

:class:`GuardMiddleware` runs before every route (a plain ASGI middleware, so
it can read a form body and hand it on untouched):

- it signs the request in from the session cookie or an ``Authorization:
  Bearer`` API token and puts the :class:`~qunyun.console.accounts.User` in
  ``request.state.user`` (``None`` when anonymous);
- every state change (POST, PUT, PATCH, DELETE) made with a session cookie
  must carry the session's CSRF token, in the ``X-CSRF-Token`` header (htmx
  sends it) or the ``csrf_token`` form field. The sign-in form, made before
  there is a session, uses a double-submit cookie instead. Requests signed
  in with an API token carry no cookie, so need no CSRF token;
- every response gets a strict Content-Security-Policy (scripts only from
  the app itself: no inline script, no CDN), ``nosniff``, no framing.
"""

from __future__ import annotations

import hmac
from collections import deque
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qunyun.console.accounts import Accounts
from qunyun.core.clock import Clock

SESSION_COOKIE = "qunyun_session"
LOGIN_COOKIE = "qunyun_login"
LANG_COOKIE = "qunyun_lang"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: a form bigger than this is refused before it is read (the config editor's YAML fits easily)
MAX_FORM = 2 * 1024 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class LoginLimiter:
    """At most ``limit`` sign-in attempts per address per ``window`` (sliding, on the clock)."""

    def __init__(self, clock: Clock, limit: int = 10, window: timedelta = timedelta(minutes=5)) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self._seen: dict[str, deque[datetime]] = {}

    def allow(self, address: str) -> bool:
        now = self.clock.now()
        seen = self._seen.setdefault(address, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        if len(self._seen) > 10_000:  # forget idle addresses
            for key in [k for k, v in self._seen.items() if not v]:
                del self._seen[key]
        return True


def cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header signs nobody in
                return {}
            return {k: m.value for k, m in jar.items()}
    return {}


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class GuardMiddleware:
    def __init__(self, app: ASGIApp, accounts: Accounts) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["user"], state["csrf"], state["via"] = None, None, None
        path: str = scope["path"]
        is_api = path.startswith("/api/")
        query = scope.get("query_string", b"") or b""
        if b"%00" in query or b"\x00" in query or "\x00" in path:
            # no parameter has a use for NUL, and PostgreSQL refuses it in text: stop it at the edge
            await _deny(scope, send, 400, "bad_request",
                        "the address contains a NUL character (%00); remove it and try again", is_api=is_api)
            return
        jar = cookies(scope)
        auth = header(scope, b"authorization")
        if auth and auth.lower().startswith("bearer "):
            user = self.accounts.token_user(auth[7:].strip())
            if user is None:
                await _deny(scope, send, 401, "unauthorized", "the API token is unknown or revoked")
                return
            state["user"], state["via"] = user, "token"
            # a token needs no CSRF token, so its scope is the only guard on a change: the API
            # routes check it, and a page's form route must not be a way around it
            if scope["method"] in UNSAFE and user.scopes is not None and "write" not in user.scopes:
                await _deny(scope, send, 403, "forbidden", "the API token lacks the 'write' scope", is_api=is_api)
                return
        elif SESSION_COOKIE in jar:
            found = self.accounts.session(jar[SESSION_COOKIE])
            if found is not None:
                state["user"], state["csrf"] = found
                state["via"] = "session"

        if scope["method"] in UNSAFE and state["via"] != "token":
            expected = jar.get(LOGIN_COOKIE) if path == "/login" else state["csrf"]
            given = header(scope, b"x-csrf-token")
            if given is None:
                given, receive = await _form_token(scope, receive)
            if given is False:
                await _deny(scope, send, 413, "too_large", "the request body is too large", is_api=is_api)
                return
            if not expected or not given or not hmac.compare_digest(str(expected), str(given)):
                if path == "/login":
                    await _redirect(send, "/login?error=expired")
                    return
                if state["user"] is None:
                    await _deny(scope, send, 401, "unauthorized", "sign in first", is_api=is_api)
                    return
                await _deny(scope, send, 403, "csrf", "missing or wrong CSRF token; reload the page", is_api=is_api)
                return

        started = perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # how long the app took to answer, for the browser's devtools and the benchmark
                elapsed = (perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={elapsed:.1f}".encode()))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not is_api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _form_token(scope: Scope, receive: Receive) -> tuple[Any, Receive]:
    """The ``csrf_token`` field of an urlencoded form body, and a ``receive`` that replays the body."""
    ctype = header(scope, b"content-type") or ""
    if not ctype.startswith("application/x-www-form-urlencoded"):
        return None, receive
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return False, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    values = parse_qs(body.decode("utf-8", "replace")).get("csrf_token")
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return (values[0] if values else None), replay


async def _deny(scope: Scope, send: Send, status: int, code: str, error: str, *, is_api: bool = True) -> None:
    if is_api or scope["path"].startswith("/api/"):
        body = orjson.dumps({"ok": False, "error": error, "code": code})
        ctype = b"application/json"
    else:
        body = f"<!doctype html><title>{status}</title><p>{error}</p><p><a href='/'>qunyun</a></p>".encode()
        ctype = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                        (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303, "headers": [(b"location", location.encode())]})
    await send({"type": "http.response.body", "body": b""})
