"""Read-only lookups in the engine's own tables, through ``ctx.db``.

The ``essence`` and ``knowledge`` playbooks do not keep a copy of every
message: when a message is marked (or voted for), they read its text and
author once from the engine's ``messages`` table. The ``digest`` playbook
reads the text of best answers the same way (the ``qa`` state keeps the
answer's message id, not its text) and a member's awards from the ``fund``
playbook's records. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from qunyun.engine import Context
from qunyun.store import models as m


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the engine stored it."""

    msg_id: str
    group: str
    platform: str
    author: str
    ts: datetime
    text: str
    content_type: str
    status: str
    reply_to: str | None


def find_messages(ctx: Context, msg_ids: Iterable[str], *, group: str | None = None) -> dict[str, StoredMessage]:
    """The stored messages with these ids in the community (in ``group`` only, if given).

    When one id exists in several groups, the one in the current group wins,
    then the latest.
    """
    wanted = sorted(set(msg_ids))
    if not wanted:
        return {}
    msg = m.table(m.MessageRow)
    gt = m.table(m.Group)
    mt = m.table(m.Member)
    found: dict[str, StoredMessage] = {}
    for i in range(0, len(wanted), 500):
        q = (
            select(
                msg.c.msg_id, gt.c.key, gt.c.platform, mt.c.user_id, msg.c.ts, msg.c.text,
                msg.c.content_type, msg.c.status, msg.c.reply_to,
            )
            .select_from(msg.join(gt, gt.c.id == msg.c.group_id).join(mt, mt.c.id == msg.c.member_id))
            .where(gt.c.community_id == ctx.community.id, msg.c.msg_id.in_(wanted[i : i + 500]))
            .order_by(msg.c.id)
        )
        if group is not None:
            q = q.where(gt.c.key == group)
        for row in ctx.db.execute(q):
            stored = StoredMessage(
                row[0], row[1], row[2], row[3], row[4], row[5] or "", row[6], row[7], row[8]
            )
            prior = found.get(stored.msg_id)
            if prior is not None and prior.group == ctx.group.key and stored.group != ctx.group.key:
                continue
            found[stored.msg_id] = stored
    return found


def find_message(ctx: Context, msg_id: str, *, group: str | None = None) -> StoredMessage | None:
    """One stored message, or None if the engine never saw it."""
    return find_messages(ctx, [msg_id], group=group).get(msg_id)


def records_of(ctx: Context, playbook: str, kind: str, member: str, limit: int = 500) -> list[dict[str, Any]]:
    """Another playbook's log lines of ``kind`` about ``member`` (e.g. ``fund`` awards)."""
    rt = m.table(m.Record)
    q = (
        select(rt.c.ts, rt.c.group_key, rt.c.data)
        .where(
            rt.c.community_id == ctx.community.id,
            rt.c.playbook == playbook,
            rt.c.kind == kind,
            rt.c.member == member,
        )
        .order_by(rt.c.id)
        .limit(limit)
    )
    return [
        {"ts": ts.isoformat(), "group": group, "data": data if isinstance(data, dict) else {}}
        for ts, group, data in ctx.db.execute(q)
    ]
