"""Elimination: the preview (who would be warned or removed, and why) and the batches awaiting approval.

The preview is the ``elimination`` playbook's own ``preview`` command, run
read-only through :meth:`Engine.query` (rolled back, no record), so the page
shows exactly what the playbook would do. With ``require_approval`` the
playbook prepares *batches*; an admin approves one (leaving some members out
with checkboxes) or discards it through ``page.command`` — the playbook
measures everyone again before acting, and the command is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection, and_, func, select

from qunyun.console.web import Admin, Page, Viewer
from qunyun.core.errors import CommandError, Msg
from qunyun.playbooks.elimination import kpi_counters
from qunyun.store.models import ActionRow, CommunityDay, Member, PlaybookState, table

router = APIRouter()

PS = table(PlaybookState)
A = table(ActionRow)
MB = table(Member)
CD = table(CommunityDay)
#: how many finished (approved, discarded, superseded) batches the page lists
RECENT = 20


def default_day(conn: Connection, community: str, today: date) -> date:
    """The day the preview measures by default: the last local day with activity, else today.

    For a live community that is today (or yesterday before anyone spoke); a
    replayed or imported community lives in the past, where "today" would
    find everyone silent. (Approval always measures as of the engine's today.)
    """
    last = conn.execute(select(func.max(CD.c.day)).where(CD.c.community_id == community)).scalar()
    if isinstance(last, str):
        last = date.fromisoformat(last[:10])
    return last if isinstance(last, date) else today


def preview(page_or_state: Any, community: str, as_of: date, group: str | None) -> dict[str, Any]:
    """The playbook's ``preview`` answer (read-only), with each row's KPI counters."""
    state = page_or_state.state if isinstance(page_or_state, Page) else page_or_state
    args: dict[str, Any] = {"as_of": as_of.isoformat()}
    if group:
        args["group"] = group
    with state.lock:
        result = state.engine.query(community, "elimination", "preview", args)
    for g in result.get("groups", []):
        try:
            g["counters"] = kpi_counters(g["kpi"])
        except Exception:  # a KPI that loaded is always parseable; be safe for the display
            g["counters"] = []
    return result


def batches(conn: Connection, community: str) -> list[dict[str, Any]]:
    """Pending batches (all) and the most recent finished ones, newest first."""
    rows = conn.execute(
        select(PS.c.value, PS.c.updated_at)
        .where(PS.c.community_id == community, PS.c.playbook == "elimination", PS.c.key.like("batch:%"))
        .order_by(PS.c.updated_at.desc())
        .limit(500)
    ).all()
    pending: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    for row in rows:
        value = dict(row.value or {})
        value["updated_at"] = row.updated_at
        (pending if value.get("status") == "pending" else done).append(value)
    return pending + done[:RECENT]


def read_batch(conn: Connection, community: str, batch_id: str) -> dict[str, Any] | None:
    value = conn.execute(
        select(PS.c.value).where(
            PS.c.community_id == community, PS.c.playbook == "elimination", PS.c.key == f"batch:{batch_id}"
        )
    ).scalar()
    return dict(value) if isinstance(value, dict) else None


def names(conn: Connection, community: str, uids: list[str]) -> dict[str, str]:
    if not uids:
        return {}
    rows = conn.execute(
        select(MB.c.user_id, MB.c.name).where(MB.c.community_id == community, MB.c.user_id.in_(uids))
    ).all()
    return {r.user_id: r.name or r.user_id for r in rows}


def command_id(batch: dict[str, Any]) -> str:
    """The approval's command id: one per prepared batch, so a retried request does nothing twice."""
    return f"approve-{batch['id']}-{str(batch.get('created', ''))[:19].replace(':', '')}"


def queued(conn: Connection, community: str, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions an approval put in the outbox."""
    rows = conn.execute(
        select(A.c.id, A.c.type, A.c.status, A.c.group_key, A.c.payload)
        .where(and_(A.c.community_id == community, A.c.cause == f"cmd:{command_id(batch)}"))
        .order_by(A.c.seq)
        .limit(1000)
    ).all()
    return [{"id": r.id, "type": r.type, "status": r.status, "group": r.group_key,
             "member": (r.payload or {}).get("member"), "text": (r.payload or {}).get("text")} for r in rows]


def approve(page_or_call: Any, batch_id: str, exclude: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Approve ``batch_id`` leaving ``exclude`` out; (the batch as it was, the command's result)."""
    with page_or_call.read() as conn:
        batch = read_batch(conn, page_or_call.community.id, batch_id)
    if batch is None:
        raise HTTPException(404, f"no elimination batch {batch_id!r}")
    if batch.get("status") != "pending":
        # the playbook would say the same; checked here because a repeated approval has the same command id
        raise CommandError(Msg("batch {batch!r} is {status}, not pending", batch=batch_id, status=batch.get("status")))
    listed = {e.get("member") for e in batch.get("members", [])}
    unknown = [u for u in exclude if u not in listed]
    if unknown:
        raise CommandError(Msg("not in batch {batch!r}: {members}", batch=batch_id, members=", ".join(unknown)),
                           hint=Msg("only members listed in the batch can be left out"))
    result = page_or_call.command("elimination", "approve", {"batch": batch_id, "exclude": exclude},
                                  group=batch["group"], id=command_id(batch))
    return batch, result


def discard(page_or_call: Any, batch_id: str) -> dict[str, Any]:
    with page_or_call.read() as conn:
        batch = read_batch(conn, page_or_call.community.id, batch_id)
    if batch is None:
        raise HTTPException(404, f"no elimination batch {batch_id!r}")
    return dict(page_or_call.command("elimination", "discard", {"batch": batch_id}, group=batch["group"]))


def _group_names(page: Page) -> dict[str, str]:
    """Group key → the group's name, for showing names rather than keys."""
    return {g.key: g.name for g in page.community.groups.values()}


def _enabled(page: Page) -> bool:
    return any("elimination" in g.playbooks for g in page.community.groups.values())


@router.get("/c/{community}/elimination")
def overview(page: Viewer) -> Response:
    q = page.request.query_params
    groups = sorted((g.key, g.name) for g in page.community.groups.values() if "elimination" in g.playbooks)
    group = q.get("group") if q.get("group") in {k for k, _ in groups} else None
    today = page.state.clock.now().astimezone(page.community.tz).date()
    with page.read() as conn:
        fallback = default_day(conn, page.community.id, today)
        listed = batches(conn, page.community.id)
        who = names(conn, page.community.id,
                    sorted({e["member"] for b in listed for e in b.get("members", []) if e.get("member")}))
    as_of = _day(q.get("as_of")) or fallback
    result = preview(page, page.community.id, as_of, group) if _enabled(page) else {"as_of": str(as_of), "groups": []}
    return page.render("elimination/overview.html", result=result, batches=listed, names=who, as_of=as_of,
                       groups=groups, group=group, enabled=_enabled(page), fallback=fallback, today=today)


@router.get("/c/{community}/elimination/batch/{batch_id}")
def batch_page(page: Viewer, batch_id: str) -> Response:
    with page.read() as conn:
        batch = read_batch(conn, page.community.id, batch_id)
        if batch is None:
            raise HTTPException(404, "not_found")
        members = [e.get("member") for e in batch.get("members", [])]
        who = names(conn, page.community.id, [m for m in members if m])
        actions = queued(conn, page.community.id, batch) if batch.get("status") == "approved" else []
    return page.render("elimination/batch.html", batch=batch, names=who, actions=actions, result=None,
                       group_names=_group_names(page))


@router.post("/c/{community}/elimination/batch/{batch_id}/approve")
def approve_batch(page: Admin, batch_id: str, exclude: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    batch, result = approve(page, batch_id, [u for u in exclude if u][:1000])
    with page.read() as conn:
        after = read_batch(conn, page.community.id, batch_id) or batch
        members = [e.get("member") for e in after.get("members", [])]
        members += list(result.get("invited", []))
        who = names(conn, page.community.id, [m for m in members if m])
        actions = queued(conn, page.community.id, after)
    return page.render("elimination/batch.html", batch=after, names=who, actions=actions, result=result,
                       group_names=_group_names(page))


@router.post("/c/{community}/elimination/batch/{batch_id}/discard")
def discard_batch(page: Admin, batch_id: str) -> Response:
    discard(page, batch_id)
    return page.redirect("elimination", msg="msg.done")


#: the days a preview may be measured on (the API's bounds; far outside, the measuring windows overflow)
EARLIEST, LATEST = date(1970, 1, 1), date(9000, 1, 1)


def _day(value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value within :data:`EARLIEST`..:data:`LATEST`, else None (the default day)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
    return day if EARLIEST <= day <= LATEST else None
