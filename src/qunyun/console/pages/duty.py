"""Console page: the duty roster (群管轮值) — who is on duty this week, the
queue, this week's checklist with its ticks, the KPI of every duty week and
the duty pay; admins sign members up or off, tick items and rotate, through
the ``duty`` playbook's commands.

The roster is the playbook's ``roster`` answer (``Engine.query``, read-only).
Closed weeks' KPIs are frozen in the playbook's state (``kpi:<W>`` with
``final``) and read from there, a page of weeks at a time; the live week's
KPI comes from the ``kpi`` command. Pay is the ``duty_pay`` records, paged in
SQL.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from sqlalchemy import Connection, func, select

from qunyun.console.pages.fund import AmountError, member_exists, member_names, today
from qunyun.console.web import Admin, Page, Viewer, refused
from qunyun.core.errors import CommandError
from qunyun.playbooks.welcome import localized
from qunyun.store import models as m

router = APIRouter()

#: the highest page number the KPI and pay tables accept (beyond it: the last of these, empty)
MAX_PAGE = 100_000


def duty_config(page_or_community: Any) -> Any | None:
    community = getattr(page_or_community, "community", page_or_community)
    for group in community.groups.values():
        cfg = group.playbooks.get("duty")
        if cfg is not None:
            return cfg
    return None


def roster(page: Any) -> dict[str, Any] | None:
    """The ``roster`` command's answer (week, current, queue, next, done, kpi), memoised per epoch."""
    if duty_config(page) is None:
        return None
    key = ("duty-roster", page.community.id, page.state.epoch(page.community.id))
    found = page.state.memo.get(key)
    if found is None:
        found = page.state.engine.query(page.community.id, "duty", "roster", {})
        page.state.memo[key] = found
    return dict(found)


def week_ticks(conn: Connection, community: str, week: str | None) -> dict[str, Any]:
    """The ticked items of duty week ``week``: item id → {by, ts}."""
    if not week:
        return {}
    st = m.table(m.PlaybookState)
    value = conn.execute(select(st.c.value).where(st.c.community_id == community, st.c.playbook == "duty",
                                                  st.c.key == f"week:{week}")).scalar()
    done = (value or {}).get("done") if isinstance(value, dict) else None
    return dict(done) if isinstance(done, dict) else {}


def kpi_page(page: Any, *, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Duty weeks (``week:<W>``), newest first, each with its KPI: frozen if closed, else live.

    Opens its own connections: the live week's KPI is a command answer, which must not
    run inside another open transaction (SQLite takes the write lock on BEGIN).
    """
    st = m.table(m.PlaybookState)
    cid = page.community.id
    where = [st.c.community_id == cid, st.c.playbook == "duty", st.c.key.like("week:%")]
    with page.state.db.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(st).where(*where)).scalar() or 0)
        weeks = [k[5:] for (k,) in conn.execute(select(st.c.key).where(*where).order_by(st.c.key.desc())
                                                .offset(offset).limit(limit))]
        kept: dict[str, Any] = {}
        if weeks:
            kept = {k[4:]: v for k, v in conn.execute(
                select(st.c.key, st.c.value).where(st.c.community_id == cid, st.c.playbook == "duty",
                                                   st.c.key.in_([f"kpi:{w}" for w in weeks])))}
    rows = []
    epoch = page.state.epoch(cid) if weeks else 0
    for week in weeks:
        kpi = kept.get(week)
        if not (isinstance(kpi, dict) and kpi.get("final")):
            key = ("duty-kpi", cid, week, epoch)
            live = page.state.memo.get(key)
            if live is None:
                try:
                    live = page.state.engine.query(cid, "duty", "kpi", {"week": week})
                except CommandError:
                    live = kpi if isinstance(kpi, dict) else {"week": week}
                page.state.memo[key] = live
            kpi = live
        rows.append(dict(kpi))
    with page.state.db.connect() as conn:
        names = member_names(conn, cid, (u for r in rows for u in (r.get("members") or [])))
    for r in rows:
        r["week"] = r.get("week") or ""
        r["names"] = [names.get(u, u) for u in r.get("members") or []]
    return total, rows


def pay_page(conn: Connection, community: str, *, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """The ``duty_pay`` records, newest first."""
    rec = m.table(m.Record)
    where = [rec.c.community_id == community, rec.c.playbook == "duty", rec.c.kind == "duty_pay"]
    total = int(conn.execute(select(func.count()).select_from(rec).where(*where)).scalar() or 0)
    rows = [{"member": r.member, "ts": r.ts, "week": (r.data or {}).get("week"),
             "amount": int((r.data or {}).get("amount") or 0), "currency": (r.data or {}).get("currency") or "CNY"}
            for r in conn.execute(select(rec.c.member, rec.c.ts, rec.c.data).where(*where)
                                  .order_by(rec.c.ts.desc(), rec.c.id.desc()).offset(offset).limit(limit))]
    names = member_names(conn, community, (r["member"] for r in rows))
    for r in rows:
        r["name"] = names.get(r["member"] or "", r["member"] or "")
    return total, rows


def _page(page: Page, *, error: str | None = None, status: int = 200, form: dict[str, str] | None = None) -> Response:
    cfg = duty_config(page)
    info = roster(page)
    q = page.request.query_params
    try:
        # bounded: an offset beyond the database's integers would fail the query
        kpi_at = min(MAX_PAGE, max(1, int(q.get("kpage", "1"))))
        pay_at = min(MAX_PAGE, max(1, int(q.get("ppage", "1"))))
    except ValueError:
        kpi_at = pay_at = 1
    per = 12
    with page.read() as conn:
        ticks = week_ticks(conn, page.community.id, (info or {}).get("week"))
        people = list((info or {}).get("current") or []) + list((info or {}).get("queue") or [])
        people += [t.get("by", "") for t in ticks.values() if isinstance(t, dict)]
        names = member_names(conn, page.community.id, people)
        pay_total, pays = pay_page(conn, page.community.id, offset=(pay_at - 1) * per, limit=per)
    kpi_total, kpis = kpi_page(page, offset=(kpi_at - 1) * per, limit=per)
    checklist = []
    if cfg is not None:
        for i, item in enumerate(cfg.checklist):
            tick = ticks.get(item.id)
            by = str(tick.get("by") or "") if isinstance(tick, dict) else ""
            who = by.removeprefix("console:").removeprefix("api:")
            checklist.append({"n": i + 1, "id": item.id, "title": localized(item.title, page.lang),
                              "done": tick is not None, "by": names.get(who, who), "ts": (tick or {}).get("ts")})
    # ticking works while someone is on duty in the current ISO week (the playbook's rule)
    year, number, _ = today(page).isocalendar()
    live = bool(info and info.get("current") and info.get("week") == f"{year}-W{number:02d}")
    return page.render(
        "duty/roster.html", status=status, cfg=cfg, info=info, names=names, checklist=checklist, live=live,
        kpis=kpis, kpi_page=kpi_at, kpi_pages=max(1, -(-kpi_total // per)), pays=pays, pay_page=pay_at,
        pay_pages=max(1, -(-pay_total // per)), pay_total=pay_total, error=error, form=form or {},
    )


@router.get("/c/{community}/duty")
def duty(page: Viewer) -> Response:
    return _page(page)


def _run(page: Page, name: str, args: dict[str, Any], form: dict[str, str] | None = None) -> Response:
    try:
        page.command("duty", name, args)
    except CommandError as exc:
        return _page(page, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409, form=form)
    return page.redirect("duty", msg="msg.done")


@router.post("/c/{community}/duty/signup")
def signup(page: Admin, member: Annotated[str, Form(max_length=256)] = "") -> Response:
    uid = unicodedata.normalize("NFKC", member).strip().lstrip("@")
    form = {"member": member}
    try:
        if not uid:
            raise AmountError("fund.err.member_missing")
        with page.read() as conn:
            if not member_exists(conn, page.community.id, uid):
                raise AmountError("fund.err.member_unknown", value=uid)
    except AmountError as exc:
        return _page(page, error=page.t(exc.key, value=exc.values.get("value", "")), status=400, form=form)
    return _run(page, "signup", {"member": uid}, form)


@router.post("/c/{community}/duty/quit")
def quit_roster(page: Admin, member: Annotated[str, Form(max_length=256)] = "") -> Response:
    return _run(page, "quit", {"member": member.strip()})


@router.post("/c/{community}/duty/tick")
def tick(page: Admin, item: Annotated[str, Form(max_length=64)] = "") -> Response:
    return _run(page, "tick", {"item": item.strip()})


@router.post("/c/{community}/duty/rotate")
def rotate(page: Admin) -> Response:
    return _run(page, "rotate", {})
