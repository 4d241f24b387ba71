"""What every console page and API route shares: the app's state, the
signed-in user, the community being looked at, rendering, paging, commands
and the audit log.

A community page declares what it needs and gets a :class:`Page`::

    @router.get("/c/{community}/qa")
    def board(page: Viewer) -> Response:
        with page.read() as conn:
            rows = ...
        return page.render("qa/board.html", rows=rows)

    @router.post("/c/{community}/qa/award")
    def award(page: Admin) -> Response:
        page.command("qa", "award", {...})     # Engine.command + audit entry
        return page.redirect("qa", msg="msg.done")

A user with no role in the community gets 404 (not 403: they learn nothing
about other communities); a role too low for the route gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, insert

from qunyun.config.model import CommunitySettings, Settings, load_settings
from qunyun.console.accounts import RANK, Accounts, User
from qunyun.console.i18n import DEFAULT_LANG, LANGS, Labels, from_accept_language, normalize
from qunyun.console.security import LANG_COOKIE, LoginLimiter
from qunyun.core.clock import Clock
from qunyun.core.errors import CommandError
from qunyun.engine.engine import Engine
from qunyun.playbooks.money import fmt_money
from qunyun.store.db import open_engine
from qunyun.store.models import AuditEntry, table

TEMPLATES = Path(__file__).with_name("templates")

#: the navigation, in order: (area, minimum role). Each area is a module of
#: ``qunyun.console.pages`` serving ``/c/{community}/{area}``.
NAV: tuple[tuple[str, str], ...] = (
    ("overview", "viewer"),
    ("groups", "viewer"),
    ("members", "viewer"),
    ("qa", "viewer"),
    ("sessions", "viewer"),
    ("digests", "viewer"),
    ("fund", "viewer"),
    ("challenges", "viewer"),
    ("duty", "viewer"),
    ("referrals", "viewer"),
    ("moderation", "viewer"),
    ("elimination", "viewer"),
    ("config", "viewer"),
    ("audit", "admin"),
)


class NotSignedIn(Exception):
    """Raised by the dependencies when nobody is signed in (HTML → /login, API → 401)."""


@dataclass
class ConsoleState:
    """Everything the app holds for its lifetime (``app.state.console``)."""

    config_path: Path
    engine: Engine
    clock: Clock
    accounts: Accounts
    limiter: LoginLimiter
    secure_cookies: bool = False
    #: how long a dashboard answer from before the latest write may still be
    #: served while a fresh one is computed (0: always wait for fresh numbers)
    stale_for: timedelta = timedelta(0)
    #: serialises operators' commands through the one engine (routes run in threads)
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: per-process memo for expensive renders (charts), keyed by whatever the page chooses
    #: (always including the community's epoch so that new data shows)
    memo: dict[Any, Any] = field(default_factory=dict)
    #: signs the error texts a redirect carries in its URL (:meth:`Page.redirect`), so that a
    #: page shows only the errors this console wrote, never a text put in a link by someone else
    flash_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    env: Environment = field(init=False)
    reads: Any = field(init=False)

    def __post_init__(self) -> None:
        self.reads = open_engine(self.engine.db.url.render_as_string(hide_password=False), deferred=True)
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            money=fmt_money, num=_num, pct=_pct, when=_when, day=_day
        )

    def sign(self, text: str) -> str:
        return hmac.new(self.flash_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def db(self) -> Any:
        """The pages' database: on SQLite its transactions are deferred, so
        reading never holds the write lock a running engine needs (operators'
        commands go through :attr:`engine`, which takes it)."""
        return self.reads



    def reload_settings(self) -> Settings:
        """Read the configuration file again (after the config editor saved it)."""
        with self.lock:
            self.engine.settings = load_settings(str(self.config_path))
            return self.engine.settings

    def epoch(self, community: str) -> int:
        with self.db.connect() as conn:
            from sqlalchemy import text

            return int(conn.execute(text("SELECT epoch FROM communities WHERE id = :c"), {"c": community}).scalar() or 0)


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def current_user(request: Request) -> User:
    user: User | None = request.state.user
    if user is None:
        raise NotSignedIn()
    return user


def language(request: Request, community: CommunitySettings | None = None) -> str:
    """The page's language: ``?lang=``, the cookie, the user's, the community's, the browser's."""
    for candidate in (
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        getattr(request.state.user, "locale", None) if request.state.user else None,
        community.locale if community else None,
        from_accept_language(request.headers.get("accept-language")),
    ):
        found = normalize(candidate)
        if found in LANGS:
            return found
    return DEFAULT_LANG


@dataclass
class Paging:
    page: int
    per_page: int
    total: int
    sort: str | None
    desc: bool

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass
class Page:
    """A request to one community's page: who, which community, in which language."""

    request: Request
    state: ConsoleState
    user: User
    community: CommunitySettings
    role: str
    lang: str
    t: Labels

    @property
    def base(self) -> str:
        return f"/c/{self.community.id}"

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def require(self, role: str) -> None:
        if not self.may(role):
            raise HTTPException(403, "forbidden")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (one snapshot for the whole page)."""
        with self.state.db.connect() as conn:
            yield conn

    def paging(self, total: int, *, per_page: int = 50, sorts: tuple[str, ...] = (), default: str | None = None) -> Paging:
        q = self.request.query_params
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        sort = q.get("sort")
        if sort not in sorts:
            sort = default
        p = Paging(page, per_page, total, sort, q.get("dir", "desc" if sort == default else "asc") == "desc")
        p.page = min(p.page, p.pages)
        return p

    def url(self, path: str = "", **query: Any) -> str:
        """``/c/{community}/{path}`` with ``query`` (None values dropped)."""
        clean = {k: v for k, v in query.items() if v is not None}
        return f"{self.base}/{path}" + (("?" + urlencode(clean)) if clean else "")

    def with_query(self, **changes: Any) -> str:
        """This page's URL with some query parameters changed (for sorting and paging links).

        A redirect's one-time message (``msg``, ``error`` and its ``sig``) is not carried along."""
        params = {k: v for k, v in self.request.query_params.items() if k not in ("msg", "error", "sig")}
        params.update({k: str(v) for k, v in changes.items() if v is not None})
        for k in [k for k, v in changes.items() if v is None]:
            params.pop(k, None)
        return self.request.url.path + "?" + urlencode(params)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render ``template`` in the frame; the navigation highlights this page's area."""
        parts = self.request.url.path.split("/")
        context.setdefault("current", parts[3] if len(parts) > 3 else "overview")
        return render(self.request, template, status=status, page=self, community=self.community, **context)

    def redirect(self, path: str = "", msg: str | None = None, **query: Any) -> RedirectResponse:
        """303 to ``path`` of this community with ``msg`` (a label key); an ``error`` text is signed
        (``sig``) so that the page shows it (:meth:`flash_error`) — and shows no unsigned one."""
        if query.get("error") is not None:
            query["sig"] = self.state.sign(str(query["error"]))
        return RedirectResponse(self.url(path, msg=msg, **query), status_code=303)

    def flash_error(self) -> str | None:
        """The ``error`` text of this page's URL if this console signed it (see :meth:`redirect`), else None."""
        q = self.request.query_params
        error, sig = q.get("error"), q.get("sig")
        if not error or not sig or not hmac.compare_digest(self.state.sign(error), sig):
            return None
        return error

    def command(self, playbook: str, name: str, args: dict[str, Any], *, group: str | None = None,
                id: str | None = None) -> dict[str, Any]:
        """Give ``playbook`` an operator's command as this user (``Engine.command``) and audit it.

        Raises :class:`CommandError` when refused; nothing is written then.
        """
        self.require("admin")
        with self.state.lock:
            result = self.state.engine.command(
                self.community.id, playbook, name, args, actor=f"console:{self.user.actor}", group=group, id=id
            )
        self.audit(f"{playbook}.{name}", target=str(args.get("member") or args.get("id") or "") or None,
                   after={"args": _jsonable(args), "result": _jsonable(result)})
        return result

    def audit(self, action: str, *, target: str | None = None, before: Any = None, after: Any = None) -> None:
        """Write an audit entry: who (this user), what, when, before and after."""
        audit(self.state, self.user, self.community.id, action, target=target, before=before, after=after,
              ip=self.request.client.host if self.request.client else None)


def audit(state: ConsoleState, user: User, community: str | None, action: str, *, target: str | None = None,
          before: Any = None, after: Any = None, ip: str | None = None) -> None:
    with state.db.begin() as conn:
        conn.execute(
            insert(table(AuditEntry)).values(
                community_id=community, actor=user.actor, action=action, target=target,
                before=_jsonable(before), after=_jsonable(after), at=state.clock.now(), ip=ip,
            )
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def community_page(min_role: str) -> Callable[..., Page]:
    """A dependency: the :class:`Page` for ``/c/{community}/…`` if the user's role is at least ``min_role``."""

    def dependency(community: str, request: Request) -> Page:
        user = current_user(request)
        state = state_of(request)
        role = user.role_in(community)
        settings = state.settings.communities.get(community)
        if role is None or settings is None:
            raise HTTPException(404, "not_found")
        if RANK[role] < RANK[min_role]:
            raise HTTPException(403, "forbidden")
        lang = language(request, settings)
        return Page(request, state, user, settings, role, lang, Labels(lang))

    return dependency


viewer = community_page("viewer")
admin = community_page("admin")
owner = community_page("owner")
#: route parameter types: ``def board(page: Viewer) -> Response``
Viewer = Annotated[Page, Depends(viewer)]
Admin = Annotated[Page, Depends(admin)]
Owner = Annotated[Page, Depends(owner)]


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the frame's context (user, language, labels, CSRF token, navigation)."""
    state = state_of(request)
    community: CommunitySettings | None = context.get("community")
    lang = context.pop("lang", None) or language(request, community)
    user: User | None = request.state.user
    communities = []
    if user is not None:
        communities = [
            (cid, c.name, user.role_in(cid)) for cid, c in sorted(state.settings.communities.items()) if user.role_in(cid)
        ]
    html = state.env.get_template(template).render(
        request=request,
        t=Labels(lang),
        lang=lang,
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        user=user,
        csrf=request.state.csrf or "",
        nav=[(area, role) for area, role in NAV if user and community and user.may(community.id, role)],
        communities=communities,
        msg=request.query_params.get("msg"),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def refused(exc: CommandError, lang: str) -> str:
    """A refused command's reason for a flash message, in the page's language (no hint)."""
    return exc.localized(lang, with_hint=False)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _moment(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 text (as playbooks keep them in their state)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None


def _when(value: Any, tz: Any = None) -> str:
    """A moment as ``YYYY-MM-DD HH:MM`` in ``tz`` (the community's zone); also takes ISO 8601 text."""
    if value is None or value == "":
        return "—"
    moment = _moment(value)
    if moment is None:
        return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)[:16]
    if tz is not None:
        moment = moment.astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M")


def _day(value: Any, tz: Any = None) -> str:
    """A day; a moment (datetime or ISO 8601 text) is first put in ``tz``, so it is the community's day."""
    if value is None or value == "":
        return "—"
    moment = _moment(value) if tz is not None else None
    if moment is not None:
        return moment.astimezone(tz).date().isoformat()
    return str(value)[:10]


__all__ = [
    "NAV", "Admin", "ConsoleState", "NotSignedIn", "Owner", "Page", "Paging", "Viewer",
    "admin", "audit", "community_page", "current_user", "language", "owner", "refused", "render", "state_of", "viewer",
]


def redirect_back(request: Request, fallback: str) -> Response:
    """303 to the page the form came from (same origin only), else ``fallback``."""
    ref = request.headers.get("referer", "")
    host = request.headers.get("host", "")
    if ref and host and (ref.startswith((f"http://{host}/", f"https://{host}/"))):
        return RedirectResponse(ref, status_code=303)
    return RedirectResponse(fallback, status_code=303)
