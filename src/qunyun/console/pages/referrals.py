"""Console page: referrals — who brought whom (the board) and how far invitations spread (the cascade).

Both come from the ``referrals`` playbook's read-only commands through
``Engine.query`` (nothing is recorded): ``board`` for the current local
day, week or month, ``cascade`` for the invitation tree (roots, depth,
subtree sizes). Names are the playbook's (erased members show as such).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import bindparam, text

from qunyun.config.model import CommunitySettings
from qunyun.console.pages.members import enabled
from qunyun.console.web import ConsoleState, Viewer

router = APIRouter()

PERIODS = ("day", "week", "month")
TOP = 50


def referrals_of(state: ConsoleState, community: CommunitySettings, period: str, top: int = TOP) -> dict[str, Any] | None:
    """``{"board": …, "cascade": …}`` from the playbook, or None when it is not enabled."""
    if not enabled(community, "referrals"):
        return None
    with state.lock:
        board = state.engine.query(community.id, "referrals", "board", {"period": period})
        cascade = state.engine.query(community.id, "referrals", "cascade", {"top": top})
    ids = _member_ids(state, community.id, {r["member"] for r in board["rows"]}
                      | {r["member"] for r in cascade["nodes"]} | {r["member"] for r in cascade["roots"]})
    for row in (*board["rows"], *cascade["nodes"], *cascade["roots"]):
        row["id"] = ids.get(row["member"])
    return {"board": board, "cascade": cascade}


def _member_ids(state: ConsoleState, community: str, uids: set[str]) -> dict[str, int]:
    """members.id of the user ids (for links to profiles); erased aliases have none."""
    if not uids:
        return {}
    stmt = text("SELECT user_id, id FROM members WHERE community_id = :c AND user_id IN :u AND erased = :no")
    with state.db.connect() as conn:
        return {uid: int(mid) for uid, mid in conn.execute(
            stmt.bindparams(bindparam("u", expanding=True)), {"c": community, "u": sorted(uids), "no": False}
        )}


@router.get("/c/{community}/referrals")
def board_page(page: Viewer) -> Response:
    period = page.request.query_params.get("period", "week")
    if period not in PERIODS:
        period = "week"
    found = referrals_of(page.state, page.community, period)
    return page.render("referrals/board.html", found=found, period=period, periods=PERIODS)
