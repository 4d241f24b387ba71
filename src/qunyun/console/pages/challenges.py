"""Console page: deposit challenges (押金挑战) — the list, one challenge's
participants and days, and the admin's actions (create, record a deposit,
withdraw, cancel), all through the ``challenge`` playbook's commands.

The list and the detail are the playbook's own ``list`` and ``status``
answers (``Engine.query``: read-only, nothing recorded), memoised per
community epoch; a community holds a handful of challenges, so sorting and
paging them happens on that answer.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import Response

from qunyun.console.pages.fund import (
    AmountError,
    amount_message,
    form_error,
    member_field,
    member_names,
    parse_yuan,
    today,
)
from qunyun.console.web import Admin, Page, Viewer, refused
from qunyun.core.errors import CommandError
from qunyun.playbooks.challenge import stake

router = APIRouter()

LIST_SORTS = ("name", "start", "days", "status", "participants", "pot")
PEOPLE_SORTS = ("name", "ok", "fail", "held", "back", "won", "forfeit")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def enabled(page: Page) -> bool:
    return any("challenge" in g.playbooks for g in page.community.groups.values())


def challenge_list(page: Page) -> list[dict[str, Any]]:
    """Every challenge's summary (id, name, status, participants, pot…), from the ``list`` command."""
    if not enabled(page):
        return []
    key = ("challenge-list", page.community.id, page.state.epoch(page.community.id))
    found = page.state.memo.get(key)
    if found is None:
        found = list(page.state.engine.query(page.community.id, "challenge", "list", {}).get("challenges") or [])
        page.state.memo[key] = found
    return [dict(c) for c in found]


def challenge_status(page: Page, ref: str) -> dict[str, Any]:
    """One challenge with its participants and day-by-day history; 404 if there is none."""
    if not enabled(page):
        raise HTTPException(404, "not_found")
    key = ("challenge-status", page.community.id, ref, page.state.epoch(page.community.id))
    found = page.state.memo.get(key)
    if found is None:
        try:
            found = page.state.engine.query(page.community.id, "challenge", "status", {"challenge": ref})
        except CommandError:
            raise HTTPException(404, f"no challenge {ref!r}") from None
        page.state.memo[key] = found
    return dict(found)


def participants(status: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """Per participant: days done and failed, deposit still held, refunded, won, forfeited."""
    deposit, days, settled = int(status["deposit"]), int(status["days"]), int(status["settled"])
    released = sum(stake(deposit, days, i) for i in range(min(settled, days)))
    cancelled = status.get("status") == "cancelled"
    rows = []
    for uid, p in (status.get("participants") or {}).items():
        paid = int(p.get("paid") or deposit)
        back, won = int(p.get("back") or 0), int(p.get("won") or 0)
        still = paid - released
        rows.append({
            "member": uid,
            "erased": uid.startswith("(erased"),
            "name": names.get(uid, uid),
            "paid": paid,
            "ok": int(p.get("ok") or 0),
            "fail": int(p.get("fail") or 0),
            "left": bool(p.get("left")),
            # what the pot still holds for them; a cancelled challenge gave it back
            "held": 0 if cancelled else still,
            "returned": still if cancelled and not uid.startswith("(erased") else 0,
            "back": back,
            "won": won,
            "forfeit": released - back,
        })
    return rows


def _sorted(rows: list[dict[str, Any]], key: str, desc: bool) -> list[dict[str, Any]]:
    def value(r: dict[str, Any]) -> tuple[Any, ...]:
        v = r.get(key)
        return (str(v or "").casefold() if isinstance(v, str) or v is None else v, str(r.get("id") or r.get("member")))

    return sorted(rows, key=value, reverse=desc)


def _board(page: Page, *, error: str | None = None, status: int = 200, form: dict[str, str] | None = None) -> Response:
    rows = challenge_list(page)
    for r in rows:
        r["participants"] = int(r.get("participants_count") or 0)
    paging = page.paging(len(rows), sorts=LIST_SORTS, default="start")
    rows = _sorted(rows, paging.sort or "start", paging.desc)[paging.offset:paging.offset + paging.per_page]
    return page.render("challenges/list.html", status=status, rows=rows, paging=paging, enabled=enabled(page),
                       error=error, form=form or {}, today=today(page).isoformat())


@router.get("/c/{community}/challenges")
def board(page: Viewer) -> Response:
    return _board(page)


def _detail(page: Page, ref: str, *, error: str | None = None, status: int = 200,
            form: dict[str, str] | None = None) -> Response:
    found = challenge_status(page, ref)
    with page.read() as conn:
        names = member_names(conn, page.community.id, (found.get("participants") or {}).keys())
    everyone = participants(found, names)
    totals = {k: sum(r[k] for r in everyone) for k in ("held", "returned", "back", "won", "forfeit")}
    paging = page.paging(len(everyone), sorts=PEOPLE_SORTS, default="ok")
    rows = _sorted(everyone, paging.sort or "ok", paging.desc)[paging.offset:paging.offset + paging.per_page]
    history = list(reversed(found.get("history") or []))
    return page.render("challenges/detail.html", status=status, ch=found, rows=rows, paging=paging,
                       history=history, totals=totals, error=error, form=form or {})


@router.get("/c/{community}/challenges/{ref}")
def detail(page: Viewer, ref: str) -> Response:
    return _detail(page, ref)


# ------------------------------------------------------------------ actions


@router.post("/c/{community}/challenges")
def create(
    page: Admin,
    name: Annotated[str, Form(max_length=64)] = "",
    start: Annotated[str, Form(max_length=16)] = "",
    days: Annotated[str, Form(max_length=8)] = "",
    deposit: Annotated[str, Form(max_length=64)] = "",
    deadline: Annotated[str, Form(max_length=8)] = "",
    keyword: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    form = {"name": name, "start": start, "days": days, "deposit": deposit, "deadline": deadline,
            "keyword": keyword}

    def bad(key: str, **values: Any) -> Response:
        return _board(page, error=page.t(key, **values), status=400, form=form)

    clean = unicodedata.normalize("NFKC", name).strip()
    if not clean or len(clean) > 20 or any(c.isspace() or not c.isprintable() for c in clean):
        return bad("challenges.err.name", value=name)
    try:
        first = date.fromisoformat(start.strip())
    except ValueError:
        return bad("challenges.err.start", value=start)
    if not days.strip().isdecimal() or not 1 <= int(days.strip()) <= 1000:
        return bad("challenges.err.days", value=days)
    if not _HHMM.match(deadline.strip()):
        return bad("challenges.err.deadline", value=deadline)
    try:
        minor = parse_yuan(deposit, field="deposit")
    except AmountError as exc:
        return _board(page, error=amount_message(page, exc), status=400, form=form)
    args: dict[str, Any] = {"challenge": clean, "start": first.isoformat(), "days": int(days.strip()),
                            "deposit": minor, "deadline": deadline.strip()}
    if keyword.strip():
        args["keyword"] = keyword.strip()
    try:
        made = page.command("challenge", "create", args)
    except CommandError as exc:
        return _board(page, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409, form=form)
    return page.redirect(f"challenges/{made['id']}", msg="msg.done")


@router.post("/c/{community}/challenges/{ref}/deposit")
def record_deposit(
    page: Admin,
    ref: str,
    member: Annotated[str, Form(max_length=256)] = "",
    amount: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    found = challenge_status(page, ref)
    form = {"member": member, "amount": amount}
    try:
        uid = member_field(page, member)
        args: dict[str, Any] = {"member": uid, "challenge": found["id"]}
        if amount.strip():
            args["amount"] = parse_yuan(amount, field="deposit")
    except AmountError as exc:
        return _detail(page, ref, error=form_error(page, exc), status=400, form=form)
    try:
        page.command("challenge", "record", args)
    except CommandError as exc:
        return _detail(page, ref, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409, form=form)
    return page.redirect(f"challenges/{found['id']}", msg="msg.done")


@router.post("/c/{community}/challenges/{ref}/withdraw")
def withdraw(page: Admin, ref: str, member: Annotated[str, Form(max_length=256)] = "") -> Response:
    found = challenge_status(page, ref)
    try:
        page.command("challenge", "withdraw", {"member": member.strip(), "challenge": found["id"]})
    except CommandError as exc:
        return _detail(page, ref, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409)
    return page.redirect(f"challenges/{found['id']}", msg="msg.done")


@router.post("/c/{community}/challenges/{ref}/cancel")
def cancel(page: Admin, ref: str) -> Response:
    found = challenge_status(page, ref)
    try:
        page.command("challenge", "cancel", {"challenge": found["id"]})
    except CommandError as exc:
        return _detail(page, ref, error=page.t("msg.refused", why=refused(exc, page.lang)), status=409)
    return page.redirect(f"challenges/{found['id']}", msg="msg.done")
