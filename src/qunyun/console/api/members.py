"""API: the member directory, one member, export and erasure; the referral board and cascade.

The same reading functions as the console's pages (``qunyun.console.pages.members``
and ``.referrals``), so the API honours the directory's sharing level the
same way: a viewer's token sees what a member may see, an admin's everything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from qunyun.console.accounts import RANK
from qunyun.console.api.common import ERRORS, Caller, Ok, Reader, Writer, ok
from qunyun.console.pages import members as pages
from qunyun.console.pages.referrals import PERIODS, referrals_of
from qunyun.console.web import audit

router = APIRouter(tags=["members"], responses=ERRORS)


class GroupOfMember(BaseModel):
    key: str
    name: str
    status: str
    role: str
    joined: datetime | None
    left: datetime | None


class DirectoryRow(BaseModel):
    """One directory row; identity and activity are null where the sharing level hides them."""

    id: int | None
    platform: str | None
    user_id: str | None
    name: str | None
    title: str | None
    joined: datetime | None
    last_seen: datetime | None
    points: int | None
    messages: int | None
    level: int | None
    level_name: str | None
    status: str | None
    groups: list[GroupOfMember]
    fields: dict[str, str]
    tags: list[str]
    verified: bool
    opted_out: bool
    sharing: str | None


class DirectoryAnswer(BaseModel):
    total: int
    page: int
    per_page: int
    admins_only: bool
    rows: list[DirectoryRow]


class MemberAnswer(BaseModel):
    id: int
    platform: str
    user_id: str
    name: str | None
    title: str | None
    erased: bool
    joined: datetime | None
    last_seen: datetime | None
    points: int
    level: int
    level_name: str
    messages: int
    score: float | None
    engagement: str | None
    archetype: str | None
    groups: list[GroupOfMember]
    fields: dict[str, str]
    tags: list[str]
    verified: bool
    opted_out: bool
    medals: list[dict[str, Any]]


class Erased(BaseModel):
    id: int
    name: str | None
    failed: list[str]


class ReferralsAnswer(BaseModel):
    board: dict[str, Any]
    cascade: dict[str, Any]


Sort = Literal["name", "joined", "last_seen", "points", "level", "messages"]
Status = Literal["active", "left", "removed"]


@router.get("/communities/{community}/members", response_model=Ok[DirectoryAnswer],
            summary="Search the member directory (the sharing level applies)")
def search(
    call: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Words that must all appear in the name or a visible field")] = None,
    tag: Annotated[str | None, Query(max_length=120, description="An exact tag, e.g. city:上海")] = None,
    expertise: Annotated[str | None, Query(max_length=120, description="Part of an expertise value")] = None,
    city: Annotated[str | None, Query(max_length=120, description="Part of the city")] = None,
    group: Annotated[str | None, Query(max_length=256, description="A group key: members of that group")] = None,
    level: Annotated[int | None, Query(ge=0, le=999, description="Level index on the levels ladder (0 = lowest)")] = None,
    archetype: Annotated[str | None, Query(max_length=32, description="admin, big_name, answerer, sharer, asker, lurker, member")] = None,
    status: Annotated[Status | None, Query(description="Membership status (in the group, if given)")] = None,
    sort: Annotated[Sort, Query()] = "last_seen",
    dir: Annotated[Literal["asc", "desc"], Query()] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    crit = pages.criteria_from({"q": q, "tag": tag, "expertise": expertise, "city": city, "group": group,
                                "level": level, "archetype": archetype, "status": status})
    admin = RANK[call.role] >= RANK["admin"]
    with call.read() as conn:
        found = pages.directory(call.state, conn, call.community, crit, admin=admin, sort=sort, desc=dir == "desc",
                                offset=(page - 1) * per_page, limit=per_page, lang=call.community.locale)
    return ok({"total": found.total, "page": page, "per_page": per_page, "admins_only": found.admins_only,
               "rows": found.rows})


def _member(call: Caller, member_id: int) -> pages.Profile:
    admin = RANK[call.role] >= RANK["admin"]
    with call.read() as conn:
        found = pages.profile_of(call.state, conn, call.community, member_id, admin=admin, lang=call.community.locale)
    if found is None:
        raise HTTPException(404, f"no member {member_id} in community {call.community.id!r}")
    return found


@router.get("/communities/{community}/members/{member_id}", response_model=Ok[MemberAnswer], summary="One member")
def member(call: Reader, member_id: int) -> dict[str, Any]:
    p = _member(call, member_id)
    score, engagement, archetype = p.value if p.value is not None else (None, None, None)
    return ok({
        "id": p.id, "platform": p.platform, "user_id": p.user_id, "name": p.name, "title": p.title,
        "erased": p.erased, "joined": p.joined, "last_seen": p.last_seen, "points": p.points, "level": p.level,
        "level_name": p.level_name, "messages": p.messages, "score": score, "engagement": engagement,
        "archetype": archetype, "groups": p.groups, "fields": p.shown["fields"], "tags": p.shown["tags"],
        "verified": p.shown["verified"], "opted_out": p.shown["opted_out"],
        "medals": [{"id": md["id"], "name": md["name"], "at": md["at"].isoformat() if md["at"] else None}
                   for md in p.medals],
    })


@router.get("/communities/{community}/members/{member_id}/export", response_model=Ok[dict[str, Any]],
            summary="Everything held about one member (what `qunyun members export` gives; admin role)")
def export(call: Reader, member_id: int) -> dict[str, Any]:
    if RANK[call.role] < RANK["admin"]:
        raise HTTPException(403, "exporting a member's data needs the admin role in the community")
    with call.read() as conn:
        row = pages.member_row(conn, call.community.id, member_id)
    if row is None:
        raise HTTPException(404, f"no member {member_id} in community {call.community.id!r}")
    data = pages.export_of(call.state, call.community, row[1], row[2])
    audit(call.state, call.user, call.community.id, "member.export", target=str(member_id),
          ip=call.request.client.host if call.request.client else None)
    return ok(data)


@router.post("/communities/{community}/members/{member_id}/erase", response_model=Ok[Erased],
             summary="Erase one member's personal data (write scope, admin role; cannot be undone)")
def erase(call: Writer, member_id: int) -> dict[str, Any]:
    with call.read() as conn:
        row = pages.member_row(conn, call.community.id, member_id)
    if row is None:
        raise HTTPException(404, f"no member {member_id} in community {call.community.id!r}")
    failed: list[str] = []
    if not row[5]:
        failed = pages.erase(call.state, call.community, row[1], row[2])
        audit(call.state, call.user, call.community.id, "member.erase", target=str(member_id),
              before={"member_id": member_id, "erased": False},
              after={"member_id": member_id, "erased": True, "failed": failed},
              ip=call.request.client.host if call.request.client else None)
    with call.read() as conn:
        after = pages.member_row(conn, call.community.id, member_id)
    return ok({"id": member_id, "name": after[3] if after else None, "failed": failed})


@router.get("/communities/{community}/referrals", response_model=Ok[ReferralsAnswer],
            summary="The referral board of the current day, week or month, and the invitation cascade")
def referrals(
    call: Reader,
    period: Annotated[Literal["day", "week", "month"], Query()] = "week",
    top: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    assert period in PERIODS
    found = referrals_of(call.state, call.community, period, top)
    if found is None:
        raise HTTPException(404, f"the referrals playbook is not enabled in community {call.community.id!r}")
    return ok(found)
