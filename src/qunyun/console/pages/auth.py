"""Signing in and out, the list of one's communities, the language switch, one's API tokens."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from qunyun.console.i18n import normalize
from qunyun.console.security import LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE
from qunyun.console.web import audit, current_user, language, redirect_back, render, state_of
from qunyun.core.errors import CommandError

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``/c/x/…`` yes, ``//evil.example`` or ``https://…`` no."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", login_csrf=token, next=_safe_next(next),
                      error=error if error in {"invalid", "locked", "limited", "disabled", "expired"} else None)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=state_of(request).secure_cookies, max_age=3600)
    return response


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    state = state_of(request)
    address = request.client.host if request.client else "unknown"
    if not state.limiter.allow(address):
        return RedirectResponse("/login?error=limited", status_code=303)
    user_id, why = state.accounts.authenticate(username, password)
    if user_id is None:
        return RedirectResponse(f"/login?error={why}", status_code=303)
    token, _csrf = state.accounts.start_session(user_id)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=state.secure_cookies,
                        max_age=12 * 3600)
    response.delete_cookie(LOGIN_COOKIE)
    user = state.accounts.load(user_id)
    if user is not None:
        audit(state, user, None, "login", ip=address)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        state_of(request).accounts.end_session(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    user = current_user(request)
    state = state_of(request)
    mine = [cid for cid in sorted(state.settings.communities) if user.role_in(cid)]
    if len(mine) == 1:
        return RedirectResponse(f"/c/{mine[0]}/overview", status_code=303)
    return render(request, "home.html")


@router.get("/lang/{lang}")
def switch_language(lang: str, request: Request) -> Response:
    """Remember the chosen language in a cookie and go back to the page."""
    chosen = normalize(lang) or "zh-CN"
    response = redirect_back(request, "/")
    response.set_cookie(LANG_COOKIE, chosen, httponly=True, samesite="lax", max_age=365 * 24 * 3600,
                        secure=state_of(request).secure_cookies)
    return response


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, created: str | None = None) -> Response:
    user = current_user(request)
    state = state_of(request)
    return render(request, "account.html", tokens=state.accounts.tokens(user.username), created=None)


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=128)],
    write: Annotated[bool, Form()] = False,
) -> Response:
    user = current_user(request)
    if user.scopes is not None:
        return RedirectResponse("/account", status_code=303)
    state = state_of(request)
    scopes = ["read", "write"] if write else ["read"]
    try:
        token = state.accounts.create_token(user.username, name, scopes)
    except CommandError as exc:
        return render(request, "account.html", status=400, tokens=state.accounts.tokens(user.username),
                      created=None, error=exc.localized(language(request), with_hint=False))
    audit(state, user, None, "token.create", target=name, after={"scopes": scopes})
    # shown once, in this response only (never in a URL)
    return render(request, "account.html", tokens=state.accounts.tokens(user.username), created=token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: int, request: Request) -> Response:
    user = current_user(request)
    state = state_of(request)
    if state.accounts.revoke_token(user.username, token_id):
        audit(state, user, None, "token.revoke", target=str(token_id))
    return RedirectResponse("/account", status_code=303)
