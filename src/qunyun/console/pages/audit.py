"""The audit log: every change an operator made in the console or through the API.

Who, what, when, on what, and the before/after values (JSON, shown escaped
and pretty-printed). Admins and owners only; filtered by actor and action,
sorted and paged in SQL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection, func, select

from qunyun.console.web import Admin
from qunyun.store.models import AuditEntry, table

router = APIRouter()

AU = table(AuditEntry)
SORTS = ("at", "actor", "action")


def _where(community: str, actor: str | None, action: str | None) -> list[Any]:
    where: list[Any] = [AU.c.community_id == community]
    if actor:
        where.append(AU.c.actor == actor)
    if action:
        # "fund" finds fund.award, fund.pay…; "fund.award" finds exactly that
        where.append((AU.c.action == action) | AU.c.action.like(action.replace("%", "").replace("_", "\\_") + ".%",
                                                                  escape="\\"))
    return where


def count_entries(conn: Connection, community: str, actor: str | None = None, action: str | None = None) -> int:
    return int(conn.execute(select(func.count()).select_from(AU).where(*_where(community, actor, action))).scalar() or 0)


def read_entries(conn: Connection, community: str, actor: str | None = None, action: str | None = None, *,
                 sort: str | None = "at", desc: bool = True, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    column = {"at": AU.c.at, "actor": AU.c.actor, "action": AU.c.action}.get(sort or "at", AU.c.at)
    rows = conn.execute(
        select(AU.c.id, AU.c.at, AU.c.actor, AU.c.action, AU.c.target, AU.c.before, AU.c.after, AU.c.ip)
        .where(*_where(community, actor, action))
        .order_by(column.desc() if desc else column.asc(), AU.c.id.desc() if desc else AU.c.id.asc())
        .offset(offset).limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


def pretty(value: Any) -> str:
    """JSON for people: indented, CJK as is (the template escapes it)."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def choices(conn: Connection, community: str) -> tuple[list[str], list[str]]:
    """The actors and actions seen in this community's log (for the filters)."""
    actors = conn.execute(select(AU.c.actor).distinct().where(AU.c.community_id == community)
                          .order_by(AU.c.actor).limit(200)).scalars().all()
    actions = conn.execute(select(AU.c.action).distinct().where(AU.c.community_id == community)
                           .order_by(AU.c.action).limit(200)).scalars().all()
    return list(actors), list(actions)


@router.get("/c/{community}/audit")
def audit_log(page: Admin) -> Response:
    q = page.request.query_params
    actor = (q.get("actor") or "").strip()[:200] or None
    action = (q.get("action") or "").strip()[:64] or None
    with page.read() as conn:
        total = count_entries(conn, page.community.id, actor, action)
        paging = page.paging(total, sorts=SORTS, default="at")
        rows = read_entries(conn, page.community.id, actor, action, sort=paging.sort, desc=paging.desc,
                            offset=paging.offset, limit=paging.per_page)
        actors, actions = choices(conn, page.community.id)
    for row in rows:
        row["before_text"], row["after_text"] = pretty(row["before"]), pretty(row["after"])
    return page.render("audit/log.html", rows=rows, paging=paging, actor=actor, action=action,
                       actors=actors, actions=actions)
