"""Operators' accounts: users, roles per community, sessions, API tokens.

Passwords are hashed with argon2id (argon2-cffi). Session cookies and API
tokens are random (``secrets``) and only their SHA-256 is stored, so a copy
of the database signs nobody in. Consecutive failed logins lock an account
for a while (:data:`LOCK_AFTER`, :data:`LOCK_FOR`); the per-address rate
limit lives in the app (:class:`qunyun.console.security.LoginLimiter`).

Everything takes the clock: expiry and lockout are tested on a fake one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from qunyun.core.clock import Clock
from qunyun.core.errors import CommandError, Msg
from qunyun.store.models import ApiToken, ConsoleRole, ConsoleSession, ConsoleUser, table

Role = Literal["viewer", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "admin", "owner")
RANK = {"viewer": 1, "admin": 2, "owner": 3}
SCOPES = ("read", "write")

#: consecutive failures that lock an account, and for how long
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_FOR = timedelta(hours=12)
TOKEN_PREFIX = "qy_"
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# a hash to verify against when the user does not exist, so that an unknown
# name takes as long as a wrong password (no user enumeration by timing)
_DUMMY = _hasher.hash("qunyun-no-such-user")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    """A signed-in operator, with their roles (community id → role)."""

    id: int
    username: str
    display_name: str | None
    locale: str | None
    roles: dict[str, str] = field(default_factory=dict)
    #: set when signed in with an API token: its scopes
    scopes: tuple[str, ...] | None = None
    token_name: str | None = None

    def role_in(self, community: str) -> str | None:
        return self.roles.get(community)

    def may(self, community: str, role: str) -> bool:
        have = self.roles.get(community)
        return have is not None and RANK[have] >= RANK[role]

    @property
    def actor(self) -> str:
        """How the audit log and command records name this user."""
        return f"{self.username} (token {self.token_name})" if self.token_name else self.username


class Accounts:
    """Operations on the console's accounts, on one database and one clock."""

    def __init__(self, db: Engine, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # ---------------------------------------------------------------- users

    def create_user(
        self, username: str, password: str, *, display_name: str | None = None, locale: str | None = None
    ) -> int:
        if not _USERNAME.match(username):
            raise CommandError(
                Msg("invalid username {username!r}", username=username),
                hint=Msg("use 1-64 letters, digits, and . _ @ -"),
            )
        _check_password(password)
        with self.db.begin() as conn:
            exists = conn.execute(
                select(table(ConsoleUser).c.id).where(table(ConsoleUser).c.username == username)
            ).first()
            if exists:
                raise CommandError(Msg("user {username!r} already exists", username=username),
                                   hint=Msg("use `qunyun console user passwd`"))
            result = conn.execute(
                insert(table(ConsoleUser)).values(
                    username=username,
                    display_name=display_name,
                    password_hash=_hasher.hash(password),
                    locale=locale,
                    created_at=self.clock.now(),
                    failed_logins=0,
                    disabled=False,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def user_id(self, username: str) -> int:
        with self.db.connect() as conn:
            found = conn.execute(
                select(table(ConsoleUser).c.id).where(table(ConsoleUser).c.username == username)
            ).scalar()
        if found is None:
            raise CommandError(Msg("no console user {username!r}", username=username),
                               hint=Msg("list them with `qunyun console user list`"))
        return int(found)

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        uid = self.user_id(username)
        with self.db.begin() as conn:
            conn.execute(
                update(table(ConsoleUser))
                .where(table(ConsoleUser).c.id == uid)
                .values(password_hash=_hasher.hash(password), failed_logins=0, locked_until=None)
            )
            # a new password signs every browser out
            conn.execute(delete(table(ConsoleSession)).where(table(ConsoleSession).c.user_id == uid))

    def grant(self, username: str, community: str, role: str) -> None:
        if role not in RANK:
            raise CommandError(Msg("unknown role {role!r}", role=role),
                               hint=Msg("one of: {roles}", roles=", ".join(ROLES)))
        uid = self.user_id(username)
        t = table(ConsoleRole)
        with self.db.begin() as conn:
            conn.execute(delete(t).where(t.c.user_id == uid, t.c.community_id == community))
            conn.execute(insert(t).values(user_id=uid, community_id=community, role=role))

    def revoke(self, username: str, community: str) -> None:
        uid = self.user_id(username)
        t = table(ConsoleRole)
        with self.db.begin() as conn:
            conn.execute(delete(t).where(t.c.user_id == uid, t.c.community_id == community))

    def users(self) -> list[tuple[str, str | None, dict[str, str], bool]]:
        """(username, display name, roles, locked or disabled) for every user."""
        u, r = table(ConsoleUser), table(ConsoleRole)
        now = self.clock.now()
        with self.db.connect() as conn:
            rows = conn.execute(
                select(u.c.id, u.c.username, u.c.display_name, u.c.locked_until, u.c.disabled).order_by(u.c.username)
            ).all()
            roles: dict[int, dict[str, str]] = {}
            for uid, community, role in conn.execute(select(r.c.user_id, r.c.community_id, r.c.role)):
                roles.setdefault(uid, {})[community] = role
        return [
            (row.username, row.display_name, roles.get(row.id, {}), bool(row.disabled) or _locked(row.locked_until, now))
            for row in rows
        ]

    def load(self, user_id: int) -> User | None:
        u, r = table(ConsoleUser), table(ConsoleRole)
        with self.db.connect() as conn:
            row = conn.execute(select(u).where(u.c.id == user_id)).first()
            if row is None or row.disabled:
                return None
            roles = {str(c): str(role) for c, role in conn.execute(select(r.c.community_id, r.c.role).where(r.c.user_id == user_id))}
        return User(row.id, row.username, row.display_name, row.locale, roles)

    # ---------------------------------------------------------------- login

    def authenticate(self, username: str, password: str) -> tuple[int | None, str]:
        """(user id, "ok") or (None, why): "invalid", "locked" or "disabled" (only with the right password).

        A wrong password counts towards the lockout; a correct one while
        locked is refused all the same (and does not reset the count).
        """
        u = table(ConsoleUser)
        now = self.clock.now()
        with self.db.begin() as conn:
            row = conn.execute(select(u).where(u.c.username == username)).first()
            if row is None:
                _verify(_DUMMY, password)
                return None, "invalid"
            if row.disabled:
                # said only to who knows the password: to anyone else a disabled account
                # answers (and takes as long) as an unknown name does
                return None, "disabled" if _verify(row.password_hash, password) else "invalid"
            if _locked(row.locked_until, now):
                _verify(_DUMMY, password)  # as long as any other answer
                return None, "locked"
            if not _verify(row.password_hash, password):
                failed = (row.failed_logins or 0) + 1
                values: dict[str, object] = {"failed_logins": failed}
                if failed >= LOCK_AFTER:
                    values = {"failed_logins": 0, "locked_until": now + LOCK_FOR}
                conn.execute(update(u).where(u.c.id == row.id).values(**values))
                return None, "locked" if failed >= LOCK_AFTER else "invalid"
            values = {"failed_logins": 0, "locked_until": None}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(update(u).where(u.c.id == row.id).values(**values))
            return int(row.id), "ok"

    def start_session(self, user_id: int) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now()
        s = table(ConsoleSession)
        with self.db.begin() as conn:
            conn.execute(delete(s).where(s.c.expires_at < now))
            conn.execute(
                insert(s).values(
                    token_hash=digest(token), user_id=user_id, csrf_token=csrf, created_at=now, expires_at=now + SESSION_FOR
                )
            )
        return token, csrf

    def session(self, token: str) -> tuple[User, str] | None:
        """The user and CSRF token of a live session, or None."""
        s = table(ConsoleSession)
        with self.db.connect() as conn:
            row = conn.execute(select(s).where(s.c.token_hash == digest(token))).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        user = self.load(row.user_id)
        return (user, row.csrf_token) if user else None

    def end_session(self, token: str) -> None:
        s = table(ConsoleSession)
        with self.db.begin() as conn:
            conn.execute(delete(s).where(s.c.token_hash == digest(token)))

    # ---------------------------------------------------------------- tokens

    def create_token(self, username: str, name: str, scopes: list[str]) -> str:
        """A new API token (shown once; only its hash is kept)."""
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise CommandError(Msg("unknown scopes {scopes}", scopes=bad),
                               hint=Msg("scopes: {scopes}", scopes=", ".join(SCOPES)))
        if not scopes:
            raise CommandError(Msg("no scope given"), hint=Msg("scopes: {scopes}", scopes=", ".join(SCOPES)))
        if not name or len(name) > 128:
            raise CommandError(Msg("a token needs a name of 1-128 characters"))
        uid = self.user_id(username)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.begin() as conn:
            conn.execute(
                insert(table(ApiToken)).values(
                    user_id=uid, name=name, token_hash=digest(token), scopes=sorted(set(scopes)), created_at=self.clock.now()
                )
            )
        return token

    def tokens(self, username: str) -> list[dict[str, object]]:
        uid = self.user_id(username)
        t = table(ApiToken)
        with self.db.connect() as conn:
            rows = conn.execute(select(t).where(t.c.user_id == uid).order_by(t.c.id)).all()
        return [
            {"id": r.id, "name": r.name, "scopes": r.scopes, "created_at": r.created_at,
             "last_used_at": r.last_used_at, "revoked": r.revoked_at is not None}
            for r in rows
        ]

    def revoke_token(self, username: str, token_id: int) -> bool:
        uid = self.user_id(username)
        t = table(ApiToken)
        with self.db.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == token_id, t.c.user_id == uid, t.c.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
        return bool(done.rowcount)

    def token_user(self, token: str) -> User | None:
        """The user behind a live API token, with the token's scopes."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        t = table(ApiToken)
        with self.db.begin() as conn:
            row = conn.execute(select(t).where(t.c.token_hash == digest(token))).first()
            if row is None or row.revoked_at is not None:
                return None
            conn.execute(update(t).where(t.c.id == row.id).values(last_used_at=self.clock.now()))
        user = self.load(row.user_id)
        if user is None:
            return None
        return User(user.id, user.username, user.display_name, user.locale, user.roles, tuple(row.scopes), row.name)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise CommandError(Msg("the password is too short (at least {min} characters)", min=MIN_PASSWORD))
    if len(password) > 1024:
        raise CommandError(Msg("the password is too long (at most 1024 characters)"))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _locked(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now
