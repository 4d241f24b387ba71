"""Console page: sharing sessions (``/c/{community}/sessions``).

A month calendar (sessions on their local start day), the pipeline (every
session's stages with owner, due day and done/late badges), one session's
page (its questions and the summary draft), and the admins' actions — plan a
session, update a stage, cancel — each a ``sessions`` playbook command, so the
playbook's rules apply and the audit log has it.

Sessions are read from ``sessions`` state with SQL (the ``s:<id>`` keys only,
not their questions); a community plans a few sessions a month, so a month's
or a page's worth is small. Questions are read per session.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection, text

from qunyun.config.model import CommunitySettings
from qunyun.console.pages.qa import json_field, names_of
from qunyun.console.web import Admin, Viewer, refused
from qunyun.core.errors import CommandError

router = APIRouter()

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
STATUSES = ("scheduled", "live", "done", "no_show", "cancelled")
#: the calendar's years (its neighbouring days must stay within the dates Python can hold)
FIRST_YEAR, LAST_YEAR = 1970, 9998


@dataclass
class Stage:
    id: str
    owner: str
    owner_name: str
    due: str
    done: str | None
    late: bool


@dataclass
class Session:
    id: str
    group: str
    topic: str
    speaker: str | None
    speaker_name: str
    host: str | None
    host_name: str
    starts: datetime
    ends: datetime
    status: str
    questions: int
    answered: int
    stages: list[Stage]
    summary: str | None

    @property
    def day(self) -> date:
        return self.starts.date()


def _load(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return loaded


def _sessions_where() -> str:
    # s:<id> only — not s:<id>:q:<msg> (questions) nor s:<id>:n:<uid> (notices)
    return "community_id = :c AND playbook = 'sessions' AND key LIKE 's:%' AND key NOT LIKE 's:%:%'"


def _build(conn: Connection, community: CommunitySettings, raw: list[dict[str, Any]], today: date) -> list[Session]:
    uids: set[str] = set()
    for s in raw:
        uids.update(u for u in (s.get("speaker"), s.get("host")) if u)
        uids.update(st["owner"] for st in s.get("stages") or [] if st.get("owner") not in ("admins", "speaker", "host"))
    names = names_of(conn, community.id, uids)
    out = []
    for s in raw:
        def who(uid: str | None) -> str:
            return names.get(uid, uid) if uid else "—"

        stages = []
        for st in s.get("stages") or []:
            owner = st.get("owner") or "admins"
            uid = s.get(owner) if owner in ("speaker", "host") else (None if owner == "admins" else owner)
            stages.append(Stage(st["id"], owner, who(uid) if uid else "", st["due"], st.get("done"),
                                not st.get("done") and st["due"] < today.isoformat()))
        out.append(Session(
            str(s["id"]), s.get("group") or "", s.get("topic") or "", s.get("speaker"), who(s.get("speaker")),
            s.get("host"), who(s.get("host")),
            datetime.fromisoformat(s["starts_at"]).astimezone(community.tz),
            datetime.fromisoformat(s["ends_at"]).astimezone(community.tz),
            s.get("status") or "", int(s.get("questions") or 0), int(s.get("answered") or 0), stages, s.get("summary"),
        ))
    return out


def count_sessions(conn: Connection, community: str, status: str | None = None) -> int:
    where, params = _sessions_where(), {"c": community}
    if status:
        where += f" AND {json_field(conn, 'value', 'status')} = :st"
        params["st"] = status
    return int(conn.execute(text(f"SELECT count(*) FROM playbook_state WHERE {where}"), params).scalar() or 0)


def list_sessions(conn: Connection, community: CommunitySettings, today: date, *, status: str | None = None,
                  desc: bool = True, offset: int = 0, limit: int = 50) -> list[Session]:
    """A page of sessions, latest start first (ordered by start time in SQL)."""
    where, params = _sessions_where(), {"c": community.id}
    if status:
        where += f" AND {json_field(conn, 'value', 'status')} = :st"
        params["st"] = status
    start = json_field(conn, "value", "starts_at")
    rows = conn.execute(
        text(f"SELECT value FROM playbook_state WHERE {where} ORDER BY {start} {'DESC' if desc else 'ASC'}, key "
             "LIMIT :n OFFSET :o"),
        {**params, "n": limit, "o": offset},
    )
    return _build(conn, community, [_load(r[0]) for r in rows], today)


def month_sessions(conn: Connection, community: CommunitySettings, first: date, last: date,
                   today: date) -> list[Session]:
    """Sessions starting in [first, last] (local days); filtered by their start time in SQL, checked again here."""
    start = json_field(conn, "value", "starts_at")
    # starts_at is ISO 8601 in the community's offset: the text of the day bounds the local days (± a day of slack
    # for a changed offset, then checked on the parsed local time)
    rows = conn.execute(
        text(f"SELECT value FROM playbook_state WHERE {_sessions_where()} AND {start} >= :a AND {start} < :b "
             f"ORDER BY {start}"),
        {"c": community.id, "a": (first - timedelta(days=1)).isoformat(), "b": (last + timedelta(days=2)).isoformat()},
    )
    found = _build(conn, community, [_load(r[0]) for r in rows], today)
    return [s for s in found if first <= s.day <= last]


def one_session(conn: Connection, community: CommunitySettings, sid: str, today: date) -> Session:
    row = conn.execute(
        text("SELECT value FROM playbook_state WHERE community_id = :c AND playbook = 'sessions' AND key = :k"),
        {"c": community.id, "k": f"s:{sid}"},
    ).first()
    if row is None:
        raise HTTPException(404, f"no session {sid[:20]!r}")
    return _build(conn, community, [_load(row[0])], today)[0]


def session_questions(conn: Connection, community: CommunitySettings, sid: str, limit: int = 500) -> list[dict[str, Any]]:
    """A session's questions with the asker's name and the speaker's reply, in order."""
    rows = conn.execute(
        text("SELECT key, value FROM playbook_state WHERE community_id = :c AND playbook = 'sessions' "
             "AND key LIKE :k LIMIT :n"),
        {"c": community.id, "k": f"s:{sid}:q:%", "n": limit},
    ).all()
    qs = [(key.split(":q:", 1)[1], _load(value)) for key, value in rows]
    qs.sort(key=lambda kv: (int(kv[1].get("n") or 0), kv[0]))
    names = names_of(conn, community.id, {q.get("by") or "" for _, q in qs})
    return [
        {"n": q.get("n"), "msg": msg, "by": q.get("by"), "name": names.get(q.get("by") or "", q.get("by") or "—"),
         "text": q.get("text") or "", "during": bool(q.get("during")),
         "ts": datetime.fromisoformat(q["ts"]).astimezone(community.tz) if q.get("ts") else None,
         "answer": (q.get("answer") or {}).get("text")}
        for msg, q in qs
    ]


def local_today(page: Any) -> date:
    today: date = page.state.clock.now().astimezone(page.community.tz).date()
    return today


def session_groups(community: CommunitySettings) -> list[Any]:
    return [g for g in community.groups.values() if "sessions" in g.playbooks]


# -------------------------------------------------------------------- pages


@router.get("/c/{community}/sessions")
def sessions_page(page: Viewer, month: str | None = None, status: str | None = None) -> Response:
    today = local_today(page)
    if month is not None and not (MONTH.match(month) and FIRST_YEAR <= int(month[:4]) <= LAST_YEAR):
        raise HTTPException(422, f"month {month[:20]!r} is not a month like 2026-11 "
                                 f"(years {FIRST_YEAR}-{LAST_YEAR})")
    if status not in STATUSES:
        status = None
    with page.read() as conn:
        if month is None:
            # this month if it has a session, else the month of the latest session, else this month
            month = today.strftime("%Y-%m")
            this = today.replace(day=1)
            end = date(this.year, this.month, calendar.monthrange(this.year, this.month)[1])
            if not month_sessions(conn, page.community, this, end, today):
                latest = list_sessions(conn, page.community, today, limit=1)
                if latest:
                    month = latest[0].day.strftime("%Y-%m")
        year, mon = int(month[:4]), int(month[5:])
        first = date(year, mon, 1)
        last = date(year, mon, calendar.monthrange(year, mon)[1])
        in_month = month_sessions(conn, page.community, first, last, today)
        total = count_sessions(conn, page.community.id, status)
        paging = page.paging(total, per_page=20, sorts=("start",), default="start")
        rows = list_sessions(conn, page.community, today, status=status, desc=paging.desc, offset=paging.offset,
                             limit=paging.per_page)
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(year, mon)
    by_day: dict[date, list[Session]] = {}
    for s in in_month:
        by_day.setdefault(s.day, []).append(s)
    prev_month = (first - timedelta(days=1)).strftime("%Y-%m")
    next_month = (last + timedelta(days=1)).strftime("%Y-%m")
    return page.render(
        "sessions/index.html", month=month, first=first, weeks=weeks, by_day=by_day, today=today,
        prev_month=prev_month, next_month=next_month, rows=rows, paging=paging, sstatus=status, statuses=STATUSES,
        groups=session_groups(page.community), error=page.flash_error(),
    )


@router.get("/c/{community}/sessions/{sid}")
def session_page(page: Viewer, sid: str) -> Response:
    if not sid.isdigit() or len(sid) > 9:
        raise HTTPException(404, "no such session")
    today = local_today(page)
    with page.read() as conn:
        s = one_session(conn, page.community, sid, today)
        asked = session_questions(conn, page.community, sid)
    return page.render("sessions/detail.html", s=s, asked=asked, today=today,
                       error=page.flash_error())


@router.post("/c/{community}/sessions")
def create_session(page: Admin, topic: str = Form(max_length=200), speaker: str = Form(max_length=200),
                   host: str = Form("", max_length=200), starts_at: str = Form(max_length=40),
                   duration: int = Form(60, ge=5, le=1440), group: str = Form("", max_length=256)) -> Response:
    args: dict[str, Any] = {"topic": topic, "speaker": speaker.strip(), "starts_at": starts_at.replace("T", " "),
                            "duration": duration}
    if host.strip():
        args["host"] = host.strip()
    if group:
        args["group"] = group
    try:
        made = page.command("sessions", "create", args)
    except CommandError as exc:
        return page.redirect("sessions", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect(f"sessions/{made['id']}", msg="sessions.created")


@router.post("/c/{community}/sessions/{sid}/stage")
def update_stage(page: Admin, sid: str, stage: str = Form(max_length=64), done: str = Form("", max_length=8),
                 owner: str = Form("", max_length=200), due: str = Form("", max_length=20)) -> Response:
    args: dict[str, Any] = {"session": sid, "stage": stage}
    if done in ("yes", "no"):
        args["done"] = done == "yes"
    if owner.strip():
        args["owner"] = owner.strip()
    if due.strip():
        args["due"] = due.strip()
    try:
        page.command("sessions", "stage", args, id=None)
    except CommandError as exc:
        return page.redirect(f"sessions/{sid}", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect(f"sessions/{sid}", msg="msg.saved")


@router.post("/c/{community}/sessions/{sid}/cancel")
def cancel_session(page: Admin, sid: str, reason: str = Form("", max_length=200)) -> Response:
    try:
        page.command("sessions", "cancel", {"session": sid, "reason": reason})
    except CommandError as exc:
        return page.redirect(f"sessions/{sid}", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect(f"sessions/{sid}", msg="sessions.cancelled")
