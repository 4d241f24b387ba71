"""The console's FastAPI application.

``create_app`` wires the parts: the guard (sessions, tokens, CSRF, security
headers), the pages (server-rendered Jinja2, htmx for partial updates), the
REST API under ``/api/v1`` and the static assets — all served by the app
itself, so the console works offline. Every API error has one shape,
``{"ok": false, "error": "...", "code": "..."}`` (locked by a test).
"""

from __future__ import annotations

import importlib
import logging
import threading
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qunyun.config.model import load_settings
from qunyun.console.accounts import Accounts
from qunyun.console.security import GuardMiddleware, LoginLimiter
from qunyun.console.web import ConsoleState, NotSignedIn, language, render
from qunyun.core.clock import Clock, SystemClock
from qunyun.core.errors import CommandError, QunyunError
from qunyun.engine.engine import Engine
from qunyun.store.db import open_engine, require_current

log = logging.getLogger("qunyun.console")

#: page modules (``qunyun.console.pages.<name>``), each with a ``router``
PAGES = (
    "auth", "overview", "groups", "members", "qa", "sessions", "digests", "fund", "challenges", "duty",
    "referrals", "moderation", "elimination", "config", "audit",
)
#: API modules (``qunyun.console.api.<name>``), each with a ``router`` mounted under /api/v1
APIS = ("core", "analytics", "members", "contribution", "money", "operations")

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                409: "conflict", 413: "too_large", 422: "invalid_request", 429: "rate_limited"}


def create_app(
    config: Path | str,
    db: str | None = None,
    *,
    clock: Clock | None = None,
    secure_cookies: bool = False,
    stale_for: timedelta = timedelta(0),
    warm: bool = False,
) -> FastAPI:
    """The console for the deployment configured in ``config`` on database ``db``.

    ``secure_cookies`` marks cookies ``Secure`` (serve over HTTPS, e.g. behind
    a reverse proxy); it is off for the loopback default. ``stale_for`` lets
    dashboards serve numbers that old while fresher ones are computed;
    ``warm`` computes every community's dashboards in the background at
    start, so that the first visitor does not wait for them.
    """
    from qunyun.cli.admin import database_url

    config_path = Path(config)
    settings = load_settings(str(config_path))
    clock = clock or SystemClock()
    sa_engine = open_engine(database_url(db, config_path))
    require_current(sa_engine)
    engine = Engine(sa_engine, settings, clock=clock)
    accounts = Accounts(sa_engine, clock)
    state = ConsoleState(config_path, engine, clock, accounts, LoginLimiter(clock), secure_cookies, stale_for)

    app = FastAPI(
        title="qunyun API",
        version="1",
        description="The qunyun console's REST API. Authenticate with `Authorization: Bearer <token>` "
        "(create tokens on the console's account page or with `qunyun console token create`). "
        'Every error is `{"ok": false, "error": "...", "code": "..."}`.',
        docs_url="/api/v1/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.console = state
    app.add_middleware(GuardMiddleware, accounts=accounts)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")

    for name in PAGES:
        module = importlib.import_module(f"qunyun.console.pages.{name}")
        app.include_router(module.router, include_in_schema=False)
    for name in APIS:
        module = importlib.import_module(f"qunyun.console.api.{name}")
        app.include_router(module.router, prefix="/api/v1")

    _errors(app)
    if warm:
        from qunyun.console.pages.overview import warm_up

        threading.Thread(target=warm_up, args=(state,), name="console-warm-up", daemon=True).start()
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def api_error(status: int, error: str, code: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error, "code": code}, status_code=status)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _is_api(request):
            return api_error(401, "sign in or send an API token (Authorization: Bearer …)", "unauthorized")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "error")
        if _is_api(request):
            detail = exc.detail if isinstance(exc.detail, str) else code
            return api_error(exc.status_code, detail if detail != code else code.replace("_", " "), code)
        key = {404: "error.not_found", 403: "error.forbidden"}.get(exc.status_code, "error.title")
        return render(request, "error.html", status=exc.status_code, message_key=key)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]
        )
        if _is_api(request):
            return api_error(422, problems or "invalid request", "invalid_request")
        return render(request, "error.html", status=422, message_key="error.title", detail=problems)

    @app.exception_handler(CommandError)
    async def refused(request: Request, exc: CommandError) -> Response:
        if _is_api(request):  # the API speaks English: scripts match on it; `code` is the stable part
            return api_error(409, str(exc), "refused")
        return render(request, "error.html", status=409, message_key="error.title",
                      detail=exc.localized(language(request)))

    @app.exception_handler(QunyunError)
    async def qunyun_error(request: Request, exc: QunyunError) -> Response:
        if _is_api(request):
            return api_error(400, str(exc), "invalid")
        return render(request, "error.html", status=400, message_key="error.title",
                      detail=exc.localized(language(request)))

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # PostgreSQL refuses NUL characters in text; the query string is checked at the
        # edge, bodies (JSON, forms) land here: the input is wrong, not the server
        if "NUL" in str(exc.orig):
            message = "text may not contain NUL (\\x00) characters; remove them and send again"
            if _is_api(request):
                return api_error(400, message, "bad_request")
            return render(request, "error.html", status=400, message_key="error.title", detail=message)
        return await crash(request, exc)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path)
        if _is_api(request):
            return api_error(500, "internal error; it has been logged", "internal")
        return render(request, "error.html", status=500, message_key="error.internal")

    _ = HTTPException  # FastAPI's HTTPException subclasses Starlette's: one handler serves both
