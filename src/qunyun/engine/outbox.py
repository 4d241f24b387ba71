"""The outbox: actions waiting to be delivered by an adapter.

Actions are inserted in the same transaction as the event that caused them.
An adapter takes pending actions in order, performs them, and marks them
delivered. If it crashes in between, the same actions are pending again on
restart: delivery is at-least-once, and since every action carries a stable
id, an adapter that passes the id to the platform (Matrix txnId) or keeps a
record of ids it has done (the replay file sink) never shows one twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from qunyun.store import models as m


def pending(db: Engine, *, limit: int = 1000, after_seq: int = 0, platform: str | None = None) -> list[dict[str, Any]]:
    """Pending actions in the order they were decided, as outbox rows."""
    t = m.table(m.ActionRow)
    q = select(t).where(t.c.status == "pending", t.c.seq > after_seq).order_by(t.c.seq).limit(limit)
    if platform is not None:
        q = q.where(t.c.platform == platform)
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def mark_delivered(db: Engine, ids: Iterable[str], when: datetime) -> None:
    rows = [{"i": i, "w": when} for i in ids]
    if not rows:
        return
    t = m.table(m.ActionRow)
    with db.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.id == bindparam("i"))
            .values(status="delivered", delivered_at=bindparam("w"), attempts=t.c.attempts + 1),
            rows,
        )


def mark_failed(db: Engine, action_id: str, error: str, *, give_up: bool = False) -> None:
    """Count a failed attempt; ``give_up`` marks it failed for good (else it stays pending)."""
    t = m.table(m.ActionRow)
    with db.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.id == action_id)
            .values(
                attempts=t.c.attempts + 1,
                last_error=error[:2000],
                status="failed" if give_up else "pending",
            )
        )
