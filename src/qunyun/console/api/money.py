"""API: money — the fund's accounts, statements and awards, recording a payment,
the deposit challenges and the duty roster.

Amounts are integer minor units (fen for CNY) everywhere, as in the ledger.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from qunyun.console.api.common import ERRORS, Ok, Reader, Writer, ok
from qunyun.console.pages.challenges import participants
from qunyun.console.pages.duty import duty_config, kpi_page
from qunyun.console.pages.fund import (
    ACCOUNT_SORTS,
    KINDS,
    MAX_AMOUNT,
    accounts_page,
    awards_page,
    member_exists,
    member_names,
    statement,
)
from qunyun.core.errors import CommandError

router = APIRouter(tags=["money"], responses=ERRORS)


# ------------------------------------------------------------------ models


class AccountOut(BaseModel):
    code: str = Field(description="e.g. `community:fund:CNY`, `member:sim:u-17:CNY`")
    kind: str = Field(description="member | community | system")
    currency: str
    balance: int = Field(description="integer minor units")
    member: str | None = Field(description="the member's user id, for member accounts")
    name: str | None


class AccountsOut(BaseModel):
    total: int
    offset: int
    limit: int
    accounts: list[AccountOut]


class StatementLine(BaseModel):
    account: str
    opening: int
    in_: int = Field(alias="in")
    out: int
    closing: int

    model_config = {"populate_by_name": True}


class StatementOut(BaseModel):
    period: str
    first: date = Field(description="first local day (community time zone)")
    last: date = Field(description="last local day, included")
    currency: str
    accounts: list[StatementLine]


class AwardLine(BaseModel):
    uid: str | None = Field(description="null for an erased winner")
    name: str | None
    kind: str = Field(description="answers | shares")
    rank: int
    score: int
    amount: int


class AwardWeek(BaseModel):
    week: str
    status: str = Field(description="paid | pending (waiting for approval) | empty")
    pool: int
    total: int = Field(description="the lines' sum")
    paid_total: int
    lines: list[AwardLine]


class AwardsOut(BaseModel):
    total: int
    awards: list[AwardWeek]


class PaymentIn(BaseModel):
    member: str = Field(min_length=1, max_length=256, description="the member's platform user id, e.g. u-17")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="integer minor units (1234 = 12.34)")
    kind: Literal["dues", "admin_dues", "donation", "topup"] = "dues"


class PaymentOut(BaseModel):
    member: str
    amount: int
    kind: str
    result: dict[str, Any]


class ChallengeOut(BaseModel):
    id: str
    name: str
    keyword: str
    start: str
    days: int
    deadline: str
    deposit: int
    currency: str
    status: str = Field(description="open | running | done | cancelled")
    settled: int
    participants_count: int
    pot: int


class ParticipantOut(BaseModel):
    member: str
    name: str | None
    ok: int = Field(description="days done")
    fail: int = Field(description="days failed")
    left: bool
    paid: int
    held: int = Field(description="deposit still held in the pot for them")
    back: int = Field(description="stakes refunded")
    won: int = Field(description="share of others' forfeits")
    forfeit: int
    returned: int = Field(description="given back when the challenge was cancelled")


class DayOut(BaseModel):
    day: str
    stake: int
    ok: int
    fail: int
    forfeit: int
    to: str


class ChallengeDetail(ChallengeOut):
    participants: list[ParticipantOut]
    history: list[DayOut]


class ChecklistItemOut(BaseModel):
    n: int
    id: str
    done: bool


class DutyOut(BaseModel):
    enabled: bool
    week: str | None
    current: list[str]
    queue: list[str]
    next: int
    checklist: list[ChecklistItemOut]
    kpi: list[dict[str, Any]] = Field(description="duty weeks, newest first (frozen once closed)")


# ------------------------------------------------------------------ fund


@router.get("/communities/{community}/fund/accounts", response_model=Ok[AccountsOut],
            summary="Money accounts with their balances (points excluded)")
def fund_accounts(
    call: Reader,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    sort: Annotated[Literal["code", "kind", "name", "balance"], Query()] = "balance",
    desc: bool = True,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    assert sort in ACCOUNT_SORTS
    with call.read() as conn:
        total, rows = accounts_page(conn, call.community.id, offset=offset, limit=limit, sort=sort, desc=desc,
                                    search=(q or "").strip() or None)
    return ok(AccountsOut(total=total, offset=offset, limit=limit,
                          accounts=[AccountOut(**{k: r[k] for k in AccountOut.model_fields}) for r in rows]))


@router.get("/communities/{community}/fund/statement", response_model=Ok[StatementOut],
            summary="Opening, in, out and closing of the fund, admin dues and suspense for a period")
def fund_statement(
    call: Reader,
    period: Literal["week", "month", "season"] = "month",
    to: Annotated[date | None, Query(description="last local day (default today)")] = None,
) -> dict[str, Any]:
    last = to or call.state.clock.now().astimezone(call.community.tz).date()
    if not date(1970, 1, 2) <= last <= date(9999, 12, 30):
        raise HTTPException(422, "to: a date between 1970-01-02 and 9999-12-30")
    with call.read() as conn:
        st = statement(conn, call.community, period, last)
    return ok(StatementOut(period=st.period, first=st.first, last=st.last, currency=st.currency,
                           accounts=[StatementLine(**r) for r in st.accounts]).model_dump(by_alias=True))


@router.get("/communities/{community}/fund/awards", response_model=Ok[AwardsOut],
            summary="Weekly awards, newest week first")
def fund_awards(
    call: Reader,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    with call.read() as conn:
        total, rows = awards_page(conn, call.community.id, offset=offset, limit=limit)
    return ok(AwardsOut(total=total, awards=[
        AwardWeek(week=r["week"], status=r["status"], pool=r["pool"], total=r["total"], paid_total=r["paid_total"],
                  lines=[AwardLine(uid=ln.get("uid"), name=ln.get("name") or None, kind=str(ln.get("kind")),
                                   rank=int(ln.get("rank") or 0), score=int(ln.get("score") or 0),
                                   amount=int(ln.get("amount") or 0)) for ln in r["lines"]])
        for r in rows]))


@router.post("/communities/{community}/fund/payments", response_model=Ok[PaymentOut],
             summary="Record a payment an admin took outside the chat (fund record)")
def fund_payment(call: Writer, body: PaymentIn) -> dict[str, Any]:
    member = body.member.strip().lstrip("@")
    with call.read() as conn:
        if not member or not member_exists(conn, call.community.id, member):
            raise HTTPException(404, f"no member {member!r} in community {call.community.id!r}; "
                                     "give a user id from GET /communities/{community}/members")
    assert body.kind in KINDS
    result = call.command("fund", "record", {"member": member, "amount": body.amount, "kind": body.kind})
    return ok(PaymentOut(member=member, amount=body.amount, kind=body.kind, result=result))


# ------------------------------------------------------------------ challenges


def _enabled(call: Any, playbook: str) -> bool:
    return any(playbook in g.playbooks for g in call.community.groups.values())


@router.get("/communities/{community}/challenges", response_model=Ok[list[ChallengeOut]],
            summary="Deposit challenges with status, participants and pot")
def challenges(call: Reader) -> dict[str, Any]:
    if not _enabled(call, "challenge"):
        return ok([])
    found = call.state.engine.query(call.community.id, "challenge", "list", {})
    return ok([ChallengeOut(**{k: c[k] for k in ChallengeOut.model_fields}) for c in found.get("challenges") or []])


@router.get("/communities/{community}/challenges/{name}", response_model=Ok[ChallengeDetail],
            summary="One challenge (by id or name): participants' days and money, day-by-day history")
def challenge(call: Reader, name: Annotated[str, Path(min_length=1, max_length=64)]) -> dict[str, Any]:
    if not _enabled(call, "challenge"):
        raise HTTPException(404, f"no challenge {name!r}")
    try:
        found = call.state.engine.query(call.community.id, "challenge", "status", {"challenge": name})
    except CommandError:
        raise HTTPException(404, f"no challenge {name!r}; GET /communities/{{community}}/challenges lists them") from None
    with call.read() as conn:
        names = member_names(conn, call.community.id, (found.get("participants") or {}).keys())
    people = participants(found, names)
    return ok(ChallengeDetail(
        **{k: found[k] for k in ChallengeOut.model_fields},
        participants=[ParticipantOut(**{k: p[k] for k in ParticipantOut.model_fields}) for p in people],
        history=[DayOut(**{k: h.get(k) for k in DayOut.model_fields}) for h in found.get("history") or []],
    ))


# ------------------------------------------------------------------ duty


class _Probe:
    """The few attributes the duty readers need from a page (community, state)."""

    def __init__(self, call: Any) -> None:
        self.community = call.community
        self.state = call.state


@router.get("/communities/{community}/duty", response_model=Ok[DutyOut],
            summary="The duty roster: who is on duty, the queue, this week's checklist, KPI per week")
def duty(
    call: Reader,
    weeks: Annotated[int, Query(ge=1, le=104, description="how many duty weeks of KPI")] = 12,
) -> dict[str, Any]:
    cfg = duty_config(call.community)
    if cfg is None:
        return ok(DutyOut(enabled=False, week=None, current=[], queue=[], next=0, checklist=[], kpi=[]))
    info = call.state.engine.query(call.community.id, "duty", "roster", {})
    done = set(info.get("done") or [])
    _, kpis = kpi_page(_Probe(call), offset=0, limit=weeks)
    return ok(DutyOut(
        enabled=True, week=info.get("week"), current=list(info.get("current") or []),
        queue=list(info.get("queue") or []), next=int(info.get("next") or 0),
        checklist=[ChecklistItemOut(n=i + 1, id=it.id, done=it.id in done)
                   for i, it in enumerate(cfg.checklist)],
        kpi=kpis,
    ))

