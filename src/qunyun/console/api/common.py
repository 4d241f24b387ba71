"""What the API routes share: the caller, scopes, the envelope, the error model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import Connection

from qunyun.config.model import CommunitySettings
from qunyun.console.accounts import RANK, User
from qunyun.console.web import ConsoleState, NotSignedIn, audit, state_of

T = TypeVar("T")


class Ok(BaseModel, Generic[T]):
    """A successful answer."""

    ok: Literal[True] = True
    data: T


class ApiError(BaseModel):
    """Every error the API returns."""

    ok: Literal[False] = False
    error: str
    code: str


#: the error answers every route may give, for the OpenAPI document
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ApiError, "description": text}
    for status, text in (
        (401, "Not signed in, or the token is unknown or revoked"),
        (403, "The token lacks the scope, or the role is too low"),
        (404, "No such community or object (or no role in that community)"),
        (409, "The command was refused (the reason is in `error`)"),
        (422, "Invalid parameters"),
    )
}


def ok(data: Any) -> dict[str, Any]:
    return {"ok": True, "data": data}


@dataclass
class Caller:
    """An API request in one community."""

    request: Request
    state: ConsoleState
    user: User
    community: CommunitySettings
    role: str

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.state.db.connect() as conn:
            yield conn

    def command(self, playbook: str, name: str, args: dict[str, Any], *, group: str | None = None,
                id: str | None = None) -> dict[str, Any]:
        """``Engine.command`` as this user (needs the write scope and the admin role), audited."""
        if RANK[self.role] < RANK["admin"]:
            raise HTTPException(403, "this needs the admin role in the community")
        with self.state.lock:
            result = self.state.engine.command(
                self.community.id, playbook, name, args, actor=f"api:{self.user.actor}", group=group, id=id
            )
        audit(self.state, self.user, self.community.id, f"{playbook}.{name}",
              target=str(args.get("member") or args.get("id") or "") or None,
              after={"args": args, "result": result},
              ip=self.request.client.host if self.request.client else None)
        return result


def signed_in(request: Request, scope: str) -> User:
    user: User | None = request.state.user
    if user is None:
        raise NotSignedIn()
    if user.scopes is not None and scope not in user.scopes:
        raise HTTPException(403, f"the token lacks the {scope!r} scope")
    return user


def caller(scope: Literal["read", "write"] = "read", min_role: str = "viewer") -> Callable[..., Caller]:
    """A dependency for ``/communities/{community}/…`` routes."""

    def dependency(community: str, request: Request) -> Caller:
        user = signed_in(request, scope)
        state = state_of(request)
        role = user.role_in(community)
        settings = state.settings.communities.get(community)
        if role is None or settings is None:
            raise HTTPException(404, f"no community {community!r}")
        if RANK[role] < RANK[min_role]:
            raise HTTPException(403, f"this needs the {min_role} role in the community")
        return Caller(request, state, user, settings, role)

    return dependency


reader = caller("read")
writer = caller("write", "admin")
#: route parameter types: ``def board(call: Reader) -> dict``
Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
