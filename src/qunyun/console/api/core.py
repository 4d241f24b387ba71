"""Who am I, and which communities may I see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from qunyun.console.api.common import ERRORS, Ok, Reader, ok, signed_in
from qunyun.console.web import state_of

router = APIRouter(tags=["account"], responses=ERRORS)


class Me(BaseModel):
    username: str
    display_name: str | None
    roles: dict[str, str]
    scopes: list[str] | None


class CommunityInfo(BaseModel):
    id: str
    name: str
    timezone: str
    locale: str
    role: str
    groups: list[dict[str, Any]]


@router.get("/me", response_model=Ok[Me], summary="The signed-in user")
def me(request: Request) -> dict[str, Any]:
    user = signed_in(request, "read")
    return ok(Me(username=user.username, display_name=user.display_name, roles=user.roles,
                 scopes=list(user.scopes) if user.scopes is not None else None))


def _info(community: Any, role: str) -> CommunityInfo:
    return CommunityInfo(
        id=community.id, name=community.name, timezone=community.timezone, locale=community.locale, role=role,
        groups=[{"platform": g.platform, "key": g.key, "name": g.name, "admin": g.admin,
                 "playbooks": sorted(g.playbooks)} for g in community.groups.values()],
    )


@router.get("/communities", response_model=Ok[list[CommunityInfo]], summary="Communities you have a role in")
def communities(request: Request) -> dict[str, Any]:
    user = signed_in(request, "read")
    state = state_of(request)
    return ok([_info(c, user.roles[cid]) for cid, c in sorted(state.settings.communities.items()) if cid in user.roles])


@router.get("/communities/{community}", response_model=Ok[CommunityInfo], summary="One community")
def community(call: Reader) -> dict[str, Any]:
    return ok(_info(call.community, call.role))
