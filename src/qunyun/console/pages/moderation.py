"""The moderation log: everything the bot did to members to keep order.

One row per ``records`` line written by the moderating playbooks (moderation,
guard, gate, rules, hours, elimination) — warnings, deletions, mutes,
removals, strikes, alerts — with the actions it led to (``actions`` rows of
the same cause and playbook: delete, remove, mute, notify_admins…). Filtered
by kind, group, member and local date; sorted and paged in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection, and_, func, or_, select

from qunyun.console.web import Viewer
from qunyun.store.models import ActionRow, Group, Member, Record, table

router = APIRouter()

#: (playbook, record kind) pairs that are something done to a member, in display order
KINDS: tuple[tuple[str, str], ...] = (
    ("moderation", "hit"),
    ("moderation", "removed"),
    ("moderation", "rejoin_removed"),
    ("guard", "alert"),
    ("gate", "quiz_failed"),
    ("gate", "code_refused"),
    ("gate", "inviter_refused"),
    ("gate", "blocked"),
    ("gate", "rejected"),
    ("gate", "removed"),
    ("rules", "lapsed"),
    ("hours", "reminder"),
    ("hours", "strike"),
    ("hours", "muted"),
    ("elimination", "warned"),
    ("elimination", "excluded"),
    ("elimination", "spared"),
    ("elimination", "removed"),
)
#: the keys of the kind filter: ``playbook.kind``
KIND_KEYS = tuple(f"{p}.{k}" for p, k in KINDS)
SORTS = ("ts", "kind", "member", "group")
#: the action types that touch a member (shown first in the "actions" column)
MEMBER_ACTIONS = ("delete", "remove", "mute")

EARLIEST, LATEST = date(1970, 1, 1), date(9000, 1, 1)

R = table(Record)
A = table(ActionRow)
G = table(Group)
MB = table(Member)


@dataclass
class LogFilter:
    """What the moderation log is narrowed to (all optional)."""

    kind: str | None = None
    group: str | None = None
    member: str | None = None
    since: date | None = None
    until: date | None = None


def parse_day(value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value, or None when empty or not a date."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _local_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _where(community: str, tz: ZoneInfo, f: LogFilter) -> list[Any]:
    if f.kind in KIND_KEYS:
        pb, kind = f.kind.split(".", 1)
        kinds = [and_(R.c.playbook == pb, R.c.kind == kind)]
    else:
        by_pb: dict[str, list[str]] = {}
        for pb, kind in KINDS:
            by_pb.setdefault(pb, []).append(kind)
        kinds = [and_(R.c.playbook == pb, R.c.kind.in_(ks)) for pb, ks in by_pb.items()]
    where: list[Any] = [R.c.community_id == community, or_(*kinds)]
    if f.group:
        where.append(R.c.group_key == f.group)
    if f.member:
        needle = f.member.strip()
        pattern = "%" + needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(R.c.member == needle, func.lower(MB.c.name).like(pattern, escape="\\")))
    # days far outside any community's life are clamped (no overflow converting to UTC)
    if f.since:
        where.append(R.c.ts >= _local_start(min(max(f.since, EARLIEST), LATEST), tz))
    if f.until:
        where.append(R.c.ts < _local_start(min(max(f.until, EARLIEST), LATEST) + timedelta(days=1), tz))
    return where


def _joined() -> Any:
    return R.outerjoin(G, and_(G.c.community_id == R.c.community_id, G.c.key == R.c.group_key)).outerjoin(
        MB, and_(MB.c.community_id == R.c.community_id, MB.c.platform == G.c.platform, MB.c.user_id == R.c.member)
    )


def count_log(conn: Connection, community: str, tz: ZoneInfo, f: LogFilter) -> int:
    query = select(func.count()).select_from(_joined()).where(*_where(community, tz, f))
    return int(conn.execute(query).scalar() or 0)


def read_log(
    conn: Connection, community: str, tz: ZoneInfo, f: LogFilter, *, sort: str | None = "ts", desc: bool = True,
    offset: int = 0, limit: int = 50,
) -> list[dict[str, Any]]:
    """One page of the log, newest first by default, each row with the actions it led to."""
    column = {"ts": R.c.ts, "kind": R.c.kind, "member": R.c.member, "group": R.c.group_key}.get(sort or "ts", R.c.ts)
    order = [column.desc() if desc else column.asc(), R.c.id.desc() if desc else R.c.id.asc()]
    query = (
        select(R.c.id, R.c.ts, R.c.playbook, R.c.kind, R.c.group_key, R.c.member, R.c.cause, R.c.data,
               MB.c.name.label("name"), G.c.name.label("group_name"))
        .select_from(_joined())
        .where(*_where(community, tz, f))
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    causes = {r["cause"] for r in rows if r["cause"]}
    done: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if causes:
        acts = conn.execute(
            select(A.c.cause, A.c.playbook, A.c.type, A.c.status, A.c.payload, A.c.downgraded_from)
            .where(A.c.community_id == community, A.c.cause.in_(causes))
            .order_by(A.c.seq)
        )
        for a in acts:
            done.setdefault((a.cause, a.playbook), []).append(
                {"type": a.type, "status": a.status, "member": (a.payload or {}).get("member"),
                 "downgraded_from": a.downgraded_from}
            )
    for row in rows:
        mine = done.get((row["cause"], row["playbook"]), [])
        # the actions about this member (or not about anyone, such as a notice to the admins)
        row["actions"] = [a for a in mine if a["member"] in (None, row["member"])]
        row["details"] = summary(row["data"])
    return rows


def summary(data: Any) -> list[tuple[str, str]]:
    """A record's data as short ``(key, value)`` pairs for the table (escaped by the template)."""
    if not isinstance(data, dict):
        return []
    out = []
    for key, value in data.items():
        if key in {"member", "group"} or value in (None, "", [], {}):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        text = str(value)
        out.append((str(key), text if len(text) <= 160 else text[:157] + "…"))
    return out


@router.get("/c/{community}/moderation")
def moderation_log(page: Viewer) -> Response:
    q = page.request.query_params
    f = LogFilter(
        kind=q.get("kind") if q.get("kind") in KIND_KEYS else None,
        group=q.get("group") or None,
        member=(q.get("member") or "").strip()[:200] or None,
        since=parse_day(q.get("since")),
        until=parse_day(q.get("until")),
    )
    tz = page.community.tz
    with page.read() as conn:
        total = count_log(conn, page.community.id, tz, f)
        paging = page.paging(total, sorts=SORTS, default="ts")
        rows = read_log(conn, page.community.id, tz, f, sort=paging.sort, desc=paging.desc,
                        offset=paging.offset, limit=paging.per_page)
    groups = sorted((g.key, g.name) for g in page.community.groups.values())
    return page.render("moderation/log.html", rows=rows, paging=paging, filters=f, kinds=KIND_KEYS, groups=groups,
                       member_actions=MEMBER_ACTIONS)
