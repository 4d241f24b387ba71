"""API: contribution — Q&A, the week's fund awards, sharing sessions, digests.

The same reads and commands as the console's pages (``pages/qa.py``,
``pages/sessions.py``, ``pages/digests.py``); every change is a playbook
command through :meth:`Caller.command` (write scope, admin role, audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from qunyun.console.api.common import ERRORS, Ok, Reader, Writer, ok
from qunyun.console.pages import digests as digest_pages
from qunyun.console.pages import qa as qa_pages
from qunyun.console.pages import sessions as session_pages

router = APIRouter(tags=["contribution"], responses=ERRORS)

WEEK = r"^\d{4}-W\d{2}$"


class AnswerOut(BaseModel):
    msg: str
    member: str | None
    name: str
    votes: int
    best: bool
    text: str | None = Field(description="The answer's text from the stored message (null if recalled or unknown)")


class QuestionOut(BaseModel):
    id: str
    status: str
    asker: str | None
    asker_name: str
    group: str | None
    ts: datetime | None
    text: str
    answers: list[AnswerOut]


class QuestionPage(BaseModel):
    total: int
    offset: int
    questions: list[QuestionOut]


class BoardRow(BaseModel):
    member: str
    name: str
    score: int


class Board(BaseModel):
    week: str
    answerers: list[BoardRow]
    asked: int
    resolved: int
    votes: int
    open: int
    answered: int


class PickIn(BaseModel):
    question: str = Field(min_length=1, max_length=20, description="The question's id, e.g. Q12")
    answer: str | None = Field(None, min_length=1, max_length=256, description="The answer's message id")
    member: str | None = Field(None, min_length=1, max_length=256, description="Or the answerer's user id")


class AwardIn(BaseModel):
    week: str = Field(pattern=WEEK, description="The ISO week to award, e.g. 2026-W45")
    expect: int | None = Field(None, ge=0, le=10**15,
                               description="The total (minor units) you reviewed; refused if the awards changed since")


class AwardLine(BaseModel):
    uid: str | None
    kind: str
    rank: int
    score: int
    amount: int


class AwardOut(BaseModel):
    week: str
    status: str
    pool: int
    lines: list[AwardLine]
    paid: dict[str, int]


class StageOut(BaseModel):
    id: str
    owner: str
    due: str
    done: str | None
    late: bool


class SessionOut(BaseModel):
    id: str
    group: str
    topic: str
    speaker: str | None
    speaker_name: str
    host: str | None
    host_name: str
    starts_at: datetime
    ends_at: datetime
    status: str
    questions: int
    answered: int
    stages: list[StageOut]


class SessionIn(BaseModel):
    topic: str = Field(min_length=1, max_length=200)
    speaker: str = Field(min_length=1, max_length=200, description="The speaker's platform user id")
    starts_at: str = Field(min_length=1, max_length=40, description='"2026-11-20 20:00" (community time) or ISO 8601')
    host: str | None = Field(None, min_length=1, max_length=200)
    duration: int = Field(60, ge=5, le=1440)
    group: str | None = Field(None, min_length=1, max_length=256)


class DigestOut(BaseModel):
    period: str
    entries: int
    authors: int
    published: dict[str, Any] | None
    edited: bool
    md: str
    html: str


def _session(s: session_pages.Session) -> SessionOut:
    return SessionOut(
        id=s.id, group=s.group, topic=s.topic, speaker=s.speaker, speaker_name=s.speaker_name, host=s.host,
        host_name=s.host_name, starts_at=s.starts, ends_at=s.ends, status=s.status, questions=s.questions,
        answered=s.answered,
        stages=[StageOut(id=st.id, owner=st.owner, due=st.due, done=st.done, late=st.late) for st in s.stages],
    )


@router.get("/communities/{community}/qa/questions", response_model=Ok[QuestionPage], summary="Q&A questions")
def list_questions(
    call: Reader,
    status: Literal["open", "answered", "resolved", "all"] = "all",
    sort: Literal["id", "answers", "status"] = "id",
    order: Literal["asc", "desc"] = "desc",
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    with call.read() as conn:
        total = qa_pages.count_questions(conn, call.community.id, status)
        rows = qa_pages.questions(conn, call.community, status=status, sort=sort, desc=order == "desc",
                                  offset=offset, limit=limit)
    return ok(QuestionPage(total=total, offset=offset, questions=[
        QuestionOut(id=q.id, status=q.status, asker=q.asker, asker_name=q.asker_name, group=q.group, ts=q.ts,
                    text=q.text, answers=[AnswerOut(msg=a.msg, member=a.by, name=a.name, votes=a.votes, best=a.best,
                                                    text=a.text) for a in q.answers])
        for q in rows
    ]))


@router.get("/communities/{community}/qa/board", response_model=Ok[Board], summary="A week's Q&A board")
def qa_board(call: Reader, week: str | None = Query(None, pattern=WEEK)) -> dict[str, Any]:
    with call.read() as conn:
        chosen = qa_pages.chosen_week(call.state, call.community, conn, week)
    data = qa_pages.board(call.state, call.community, chosen)
    with call.read() as conn:
        names = qa_pages.names_of(conn, call.community.id, {r["member"] for r in data["answerers"]})
    rows = [BoardRow(member=r["member"], name=names.get(r["member"], r["member"]), score=r["score"])
            for r in data["answerers"]]
    return ok(Board(**{**{k: data[k] for k in ("week", "asked", "resolved", "votes", "open", "answered")},
                       "answerers": rows}))


@router.post("/communities/{community}/qa/pick", response_model=Ok[dict[str, Any]], summary="Pick a best answer")
def qa_pick(call: Writer, body: PickIn) -> dict[str, Any]:
    if not body.answer and not body.member:
        raise HTTPException(422, "give answer (a message id) or member (a user id)")
    args = {"question": body.question, **({"answer": body.answer} if body.answer else {"member": body.member})}
    return ok(call.command("qa", "pick", args))


@router.post("/communities/{community}/fund/awards", response_model=Ok[AwardOut],
             summary="Pay a week's fund awards (award, then approve when the fund asks for approval)")
def fund_awards(call: Writer, body: AwardIn) -> dict[str, Any]:
    if not qa_pages.runs(call.community, "fund"):
        raise HTTPException(404, "the fund does not run in this community")
    result = qa_pages.pay_awards(call.command, call.state, call.community, body.week, body.expect)
    return ok(AwardOut(week=body.week, status=str(result.get("status")), pool=int(result.get("pool") or 0),
                       lines=[AwardLine(**{k: ln.get(k) for k in ("uid", "kind", "rank", "score", "amount")})
                              for ln in result.get("lines") or []],
                       paid={str(k): int(v) for k, v in (result.get("paid") or {}).items()}))


@router.get("/communities/{community}/sessions", response_model=Ok[list[SessionOut]], summary="Sharing sessions")
def list_sessions(
    call: Reader,
    status: Literal["scheduled", "live", "done", "no_show", "cancelled"] | None = None,
    offset: int = Query(0, ge=0, le=1_000_000),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    today = call.state.clock.now().astimezone(call.community.tz).date()
    with call.read() as conn:
        rows = session_pages.list_sessions(conn, call.community, today, status=status, offset=offset, limit=limit)
    return ok([_session(s) for s in rows])


@router.post("/communities/{community}/sessions", response_model=Ok[SessionOut], status_code=201,
             summary="Plan a sharing session")
def create_session(call: Writer, body: SessionIn) -> dict[str, Any]:
    args = body.model_dump(exclude_none=True)
    made = call.command("sessions", "create", args)
    today = call.state.clock.now().astimezone(call.community.tz).date()
    with call.read() as conn:
        return ok(_session(session_pages.one_session(conn, call.community, str(made["id"]), today)))


@router.get("/communities/{community}/digests/{period}", response_model=Ok[DigestOut],
            summary="A period's digest (the edited text if there is one)")
def get_digest(call: Reader, period: str = Path(pattern=r"^(\d{4}-W\d{2}|\d{4}-\d{2}-\d{2})$")) -> dict[str, Any]:
    if not digest_pages.runs_digest(call.community):
        raise HTTPException(404, "the digest does not run in this community")
    rendered = digest_pages.render_period(call.state, call.community, period)
    docs = digest_pages.documents(rendered, period, call.community.locale)
    return ok(DigestOut(period=period, entries=int(rendered.get("entries") or 0),
                        authors=int(rendered.get("authors") or 0), published=rendered.get("published"),
                        edited=bool(rendered.get("draft")), md=docs["md"], html=docs["html"]))
