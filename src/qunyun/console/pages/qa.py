"""Console page: the Q&A board (``/c/{community}/qa``).

The week's board (the ``qa`` playbook's ``board`` command, read through
``Engine.query``), the questions (read from ``qa`` state with SQL: filtered,
sorted and paged in the database, so a community with a hundred thousand
questions costs one page of rows), and the admins' journey "award the week's
best answers": pick a best answer for a question still waiting (``qa pick``)
and pay the week's fund awards (``fund award``, then ``approve_awards`` when
the fund asks for approval) after seeing what will be paid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, text

from qunyun.config.model import CommunitySettings
from qunyun.console.web import Admin, ConsoleState, Viewer, refused
from qunyun.core.errors import CommandError, Msg
from qunyun.playbooks.qa import iso_week

router = APIRouter()

STATUSES = ("open", "answered", "resolved", "all")
SORTS = ("id", "answers", "status")
WEEK = re.compile(r"^\d{4}-W\d{2}$")


# ------------------------------------------------------------------ reading


def json_field(conn: Connection, column: str, name: str) -> str:
    """SQL for the text of a top-level field of a JSON text column (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return f"(CAST({column} AS jsonb) ->> '{name}')"
    return f"json_extract({column}, '$.{name}')"


def _answers_count(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return "(SELECT count(*) FROM jsonb_object_keys(COALESCE(CAST(s.value AS jsonb) -> 'answers', '{}'::jsonb)))"
    return "(SELECT count(*) FROM json_each(s.value, '$.answers'))"


@dataclass
class Answer:
    msg: str
    by: str | None
    name: str
    ts: str | None
    votes: int
    text: str | None
    best: bool


@dataclass
class Question:
    id: str
    status: str
    asker: str | None
    asker_name: str
    group: str | None
    ts: datetime | None
    text: str
    answers: list[Answer] = field(default_factory=list)

    @property
    def best(self) -> Answer | None:
        return next((a for a in self.answers if a.best), None)


def names_of(conn: Connection, community: str, uids: set[str]) -> dict[str, str]:
    """Display names of these user ids in the community (one query)."""
    wanted = sorted(u for u in uids if u)
    if not wanted:
        return {}
    found: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ", ".join(f":u{j}" for j in range(len(chunk)))
        rows = conn.execute(
            text(f"SELECT user_id, name FROM members WHERE community_id = :c AND user_id IN ({marks})"),
            {"c": community, **{f"u{j}": u for j, u in enumerate(chunk)}},
        )
        for uid, name in rows:
            found[uid] = name or uid
    return found


def message_texts(conn: Connection, community: str, msg_ids: set[str]) -> dict[str, str]:
    """The stored texts of these messages (visible ones only) in the community's groups."""
    wanted = sorted(m for m in msg_ids if m)
    if not wanted:
        return {}
    found: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ", ".join(f":m{j}" for j in range(len(chunk)))
        rows = conn.execute(
            text(
                "SELECT m.msg_id, m.text FROM messages m JOIN groups g ON g.id = m.group_id "
                f"WHERE g.community_id = :c AND m.msg_id IN ({marks}) AND m.status = 'visible' ORDER BY m.id"
            ),
            {"c": community, **{f"m{j}": v for j, v in enumerate(chunk)}},
        )
        for msg_id, body in rows:
            found[msg_id] = body or ""
    return found


def count_questions(conn: Connection, community: str, status: str) -> int:
    where, params = _where(conn, community, status)
    return int(conn.execute(text(f"SELECT count(*) FROM playbook_state s WHERE {where}"), params).scalar() or 0)


def _where(conn: Connection, community: str, status: str) -> tuple[str, dict[str, Any]]:
    where = "s.community_id = :c AND s.playbook = 'qa' AND s.key LIKE 'q:Q%'"
    params: dict[str, Any] = {"c": community}
    if status != "all":
        where += f" AND {json_field(conn, 's.value', 'status')} = :status"
        params["status"] = status
    return where, params


def questions(conn: Connection, community: CommunitySettings, *, status: str = "all", sort: str = "id",
              desc: bool = True, offset: int = 0, limit: int = 50) -> list[Question]:
    """One page of questions, filtered, sorted and paged in SQL, with names and answer texts."""
    where, params = _where(conn, community.id, status)
    number = "CAST(substr(s.key, 4) AS INTEGER)"
    order = {"id": number, "answers": _answers_count(conn), "status": json_field(conn, "s.value", "status")}[sort]
    direction = "DESC" if desc else "ASC"
    rows = conn.execute(
        text(f"SELECT s.key, s.value FROM playbook_state s WHERE {where} "
             f"ORDER BY {order} {direction}, {number} DESC LIMIT :limit OFFSET :offset"),
        {**params, "limit": limit, "offset": offset},
    ).all()
    values = [(key[2:], orjson.loads(value) if isinstance(value, str | bytes) else value) for key, value in rows]
    uids: set[str] = set()
    msgs: set[str] = set()
    for _, q in values:
        uids.add(q.get("asker") or "")
        for msg, a in (q.get("answers") or {}).items():
            uids.add(a.get("by") or "")
            msgs.add(msg)
    names = names_of(conn, community.id, uids)
    texts = message_texts(conn, community.id, msgs)
    out = []
    for qid, q in values:
        asker = q.get("asker")
        answers = [
            Answer(msg, a.get("by"), names.get(a.get("by") or "", a.get("by") or "—"), a.get("ts"),
                   int(a.get("votes") or 0), texts.get(msg), q.get("best") == msg)
            for msg, a in (q.get("answers") or {}).items()
        ]
        answers.sort(key=lambda a: (not a.best, -a.votes, a.ts or ""))
        ts = datetime.fromisoformat(q["ts"]).astimezone(community.tz) if q.get("ts") else None
        out.append(Question(qid, str(q.get("status") or ""), asker, names.get(asker or "", asker or "—"),
                            q.get("group"), ts, q.get("text") or "", answers))
    return out


def weeks(conn: Connection, community: str, limit: int = 104) -> list[str]:
    """The weeks the ``qa`` playbook has numbers for, newest first."""
    rows = conn.execute(
        text("SELECT key FROM playbook_state WHERE community_id = :c AND playbook = 'qa' AND key LIKE 'week:%' "
             "ORDER BY key DESC LIMIT :n"),
        {"c": community, "n": limit},
    )
    return [r[0][5:] for r in rows]


def this_week(state: ConsoleState, community: CommunitySettings) -> str:
    return iso_week(state.clock.now().astimezone(community.tz).date())


def chosen_week(state: ConsoleState, community: CommunitySettings, conn: Connection, asked: str | None) -> str:
    """The week asked for; else this week if it has numbers, else the latest week that has (else this week)."""
    if asked:
        if not WEEK.match(asked):
            raise HTTPException(422, f"week {asked[:20]!r} is not an ISO week like 2026-W45")
        return asked
    now = this_week(state, community)
    has_now = conn.execute(
        text("SELECT 1 FROM playbook_state WHERE community_id = :c AND playbook = 'qa' AND key = :k"),
        {"c": community.id, "k": f"week:{now}"},
    ).first()
    known = weeks(conn, community.id, 1)
    return now if has_now or not known else known[0]


def board(state: ConsoleState, community: CommunitySettings, week: str) -> dict[str, Any]:
    """The ``qa`` board of ``week`` (read-only command), or an empty board without ``qa``."""
    if not runs(community, "qa"):
        return {"week": week, "answerers": [], "asked": 0, "resolved": 0, "votes": 0, "open": 0, "answered": 0}
    with state.lock:
        return state.engine.query(community.id, "qa", "board", {"week": week})


def runs(community: CommunitySettings, playbook: str) -> bool:
    return any(playbook in g.playbooks for g in community.groups.values())


def fund_currency(community: CommunitySettings) -> str:
    for g in community.groups.values():
        if "fund" in g.playbooks:
            return str(g.playbooks["fund"].currency)
    return "CNY"


def award_state(conn: Connection, community: str, week: str) -> dict[str, Any] | None:
    row = conn.execute(
        text("SELECT value FROM playbook_state WHERE community_id = :c AND playbook = 'fund' AND key = :k"),
        {"c": community, "k": f"award:{week}"},
    ).first()
    if row is None:
        return None
    value: dict[str, Any] = orjson.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
    return value


def award_preview(state: ConsoleState, community: CommunitySettings, week: str) -> dict[str, Any]:
    """What ``fund award`` would pay for ``week`` now (run and rolled back: nothing is paid)."""
    with state.lock:
        return state.engine.query(community.id, "fund", "award", {"week": week})


def pay_awards(run: Any, state: ConsoleState, community: CommunitySettings, week: str,
               expect: int | None) -> dict[str, Any]:
    """``fund award`` for ``week`` and, if the fund waits for approval, ``approve_awards``.

    ``run(playbook, name, args)`` is the caller's audited command. With
    ``expect`` (the total the operator saw), the award is refused when the
    numbers changed since: the operator reviews them again.
    """
    if expect is not None:
        plan = award_preview(state, community, week)
        if plan.get("already"):
            raise CommandError(Msg("the awards of {week} were already handled ({status})", week=week,
                                   status=plan.get("status")))
        total = sum(int(ln.get("amount") or 0) for ln in plan.get("lines") or [])
        if total != expect:
            raise CommandError(Msg("the awards of {week} changed since you looked (now {total}, you saw {seen})",
                                   week=week, total=total, seen=expect),
                               hint=Msg("review them again, then approve"))
    result: dict[str, Any] = run("fund", "award", {"week": week})
    if result.get("already") and result.get("status") != "pending":
        raise CommandError(Msg("the awards of {week} were already handled ({status})", week=week,
                               status=result.get("status")))
    if result.get("status") == "pending":
        result = run("fund", "approve_awards", {"week": week})
    return result


# -------------------------------------------------------------------- pages


@router.get("/c/{community}/qa")
def qa_board(page: Viewer, week: str | None = None, status: str = "all") -> Response:
    if status not in STATUSES:
        status = "all"
    # the engine's read-only commands run first: a SQLite connection holds its lock while open
    with page.read() as conn:
        chosen = chosen_week(page.state, page.community, conn, week)
        awarded = award_state(conn, page.community.id, chosen) if runs(page.community, "fund") else None
    data = board(page.state, page.community, chosen)
    preview = None
    if runs(page.community, "fund") and awarded is None and page.may("admin"):
        preview = award_preview(page.state, page.community, chosen)
    with page.read() as conn:
        total = count_questions(conn, page.community.id, status)
        paging = page.paging(total, per_page=25, sorts=SORTS, default="id")
        rows = questions(conn, page.community, status=status, sort=paging.sort or "id", desc=paging.desc,
                         offset=paging.offset, limit=paging.per_page)
        known = weeks(conn, page.community.id)
        lines = (awarded or preview or {}).get("lines") or []
        names = names_of(conn, page.community.id,
                         {r["member"] for r in data["answerers"]} | {ln.get("uid") or "" for ln in lines})
    if chosen not in known:
        known = sorted({*known, chosen}, reverse=True)
    return page.render(
        "qa/board.html", week=chosen, weeks=known, this_week=this_week(page.state, page.community), board=data,
        top=data["answerers"][:10], names=names, rows=rows, paging=paging, qstatus=status, statuses=STATUSES,
        awarded=awarded, preview=preview, currency=fund_currency(page.community),
        preview_total=sum(int(ln["amount"]) for ln in (preview or {}).get("lines") or []),
        fund=runs(page.community, "fund"), error=page.flash_error(),
    )


@router.post("/c/{community}/qa/pick")
def qa_pick(page: Admin, question: str = Form(max_length=20), answer: str = Form(max_length=256),
            back: str = Form("", max_length=500)) -> Response:
    try:
        page.command("qa", "pick", {"question": question, "answer": answer})
    except CommandError as exc:
        return page.redirect("qa", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return _back(page, back, "msg.done")


@router.post("/c/{community}/qa/award")
def qa_award(page: Admin, week: str = Form(pattern=r"^\d{4}-W\d{2}$"), expect: int | None = Form(None, ge=0)) -> Response:
    if not runs(page.community, "fund"):
        raise HTTPException(404, "the fund does not run in this community")
    try:
        pay_awards(page.command, page.state, page.community, week, expect)
    except CommandError as exc:
        return page.redirect("qa", week=week, error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect("qa", week=week, msg="qa.awarded")


def _back(page: Any, back: str, msg: str) -> Response:
    """Back to the list the form came from (a path on this page only), with ``msg``."""
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or parts.path != f"{page.base}/qa":
        redirect: Response = page.redirect("qa", msg=msg)
        return redirect
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("msg", "error", "sig")] + [("msg", msg)]
    return RedirectResponse(f"{parts.path}?{urlencode(query)}", status_code=303)
