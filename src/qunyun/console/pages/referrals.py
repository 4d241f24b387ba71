"""Console page: referrals — who brought whom (the board) and how far invitations spread (the cascade).

Both come from the ``referrals`` playbook's read-only commands through
``Engine.query`` (nothing is recorded): ``board`` for a local day, week or
month, ``cascade`` for the invitation tree (roots, depth, subtree sizes).
Names are the playbook's (erased members show as such).

The page shows the period that contains ``?day=`` when it is given (as
asked, even empty); else the current period by the clock, or — when that has
no referrals — the latest period that has (the board's ``latest`` day), and
says so: a replayed or imported community whose data ended weeks ago still
opens on data.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from sqlalchemy import bindparam, text

from qunyun.config.model import CommunitySettings
from qunyun.console.pages.members import enabled
from qunyun.console.web import ConsoleState, Page, Viewer

router = APIRouter()

PERIODS = ("day", "week", "month")
TOP = 50
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def referrals_of(state: ConsoleState, community: CommunitySettings, period: str, top: int = TOP, *,
                 day: date | None = None, fall_back: bool = False) -> dict[str, Any] | None:
    """``{"board": …, "cascade": …, "fell_back": bool}`` from the playbook, or None when it is not enabled.

    The board is of the period that contains ``day`` (default: today). With ``fall_back`` and no ``day``,
    an empty board of the current period gives way to the period of the latest referral
    (``"fell_back": True``)."""
    if not enabled(community, "referrals"):
        return None
    args: dict[str, Any] = {"period": period}
    if day is not None:
        args["day"] = day.isoformat()
    fell_back = False
    with state.lock:
        board = state.engine.query(community.id, "referrals", "board", args)
        if fall_back and day is None and not board["rows"] and board.get("latest"):
            board = state.engine.query(community.id, "referrals", "board", {"period": period, "day": board["latest"]})
            fell_back = True
        cascade = state.engine.query(community.id, "referrals", "cascade", {"top": top})
    ids = _member_ids(state, community.id, {r["member"] for r in board["rows"]}
                      | {r["member"] for r in cascade["nodes"]} | {r["member"] for r in cascade["roots"]})
    for row in (*board["rows"], *cascade["nodes"], *cascade["roots"]):
        row["id"] = ids.get(row["member"])
    return {"board": board, "cascade": cascade, "fell_back": fell_back}


def _member_ids(state: ConsoleState, community: str, uids: set[str]) -> dict[str, int]:
    """members.id of the user ids (for links to profiles); erased aliases have none."""
    if not uids:
        return {}
    stmt = text("SELECT user_id, id FROM members WHERE community_id = :c AND user_id IN :u AND erased = :no")
    with state.db.connect() as conn:
        return {uid: int(mid) for uid, mid in conn.execute(
            stmt.bindparams(bindparam("u", expanding=True)), {"c": community, "u": sorted(uids), "no": False}
        )}


def _asked_day(page: Page) -> date | None:
    """``?day=`` as a date, None when not given; a malformed one is refused (422)."""
    raw = page.request.query_params.get("day")
    if not raw:
        return None
    try:
        if _DAY.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise HTTPException(422, f"day {raw[:20]!r} is not a date like 2026-11-02")


@router.get("/c/{community}/referrals")
def board_page(page: Viewer) -> Response:
    period = page.request.query_params.get("period", "week")
    if period not in PERIODS:
        period = "week"
    asked = _asked_day(page)
    found = referrals_of(page.state, page.community, period, day=asked, fall_back=True)
    today = page.state.clock.now().astimezone(page.community.tz).date()
    fell_back = bool(found and found["fell_back"])
    shown = asked or (date.fromisoformat(found["board"]["latest"]) if found and fell_back else today)
    return page.render("referrals/board.html", found=found, period=period, periods=PERIODS, asked=asked,
                       shown=shown, fell_back=fell_back, is_current=not fell_back and asked in (None, today))
