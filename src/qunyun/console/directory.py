"""The member directory's search table: built once, then kept current incrementally.

``member_directory`` (migration 0007) holds one compact row per member: the
texts a directory search may match, NFKC-normalised and case-folded once
here (name, user id, the profile fields an admin may search, those a
console viewer may search at the community's sharing level, expertise,
city, tags), the memberships, and the numbers the directory sorts by
(level, points, messages, first and last seen). A search is then plain
substring tests and indexed sorts over that one table
(``qunyun.console.pages.members.build``) instead of reading and parsing
every member's profile JSON, levels state and ledger.

Keeping it current (:func:`ensure`, called before every directory query):

- ``member_directory_state`` remembers, per community, the community epoch
  and the watermarks of the last refresh: the highest ``members.id``,
  ``events.seq`` and ``ledger_postings.id``, and the latest
  ``playbook_state.updated_at`` of the ``profile`` and ``levels``
  playbooks. The engine bumps the epoch in every transaction that writes,
  so an unchanged epoch means an unchanged directory: one primary-key read.
- When the epoch moved, only the members touched since the watermarks are
  read again: new members, the actors of new events (messages, joins,
  leaves: last seen, name, message counts, memberships), the owners of
  accounts with new postings (points), members whose profile or levels
  state changed. If the count of rows no longer matches the count of
  members (a merge deleted two rows, an import added members), the missing
  and surplus rows are found with one anti-join.
- A full build runs when the community has no directory yet, when the
  settings the rows depend on changed (profile fields, the community's
  sharing level, the points currency: :func:`fingerprint`), and when a
  refresh would touch more than a fifth of the members (bulk is cheaper).
- The source is read on the reading connection pool (on SQLite a WAL
  snapshot that never blocks the engine); the rows are written in one short
  transaction of their own, which first checks that nobody refreshed the
  community in between (another console process): if so, it writes nothing.
  A per-community lock keeps two requests of one process from building at
  the same time: the second waits and finds the work done.

``Engine.erase_member`` deletes the erased member's row in its own
transaction, and a merge of two members deletes both rows
(``identities.MERGE_RULES``): the next refresh sees the row count differ
and rebuilds the merged member's row.
"""

from __future__ import annotations

import hashlib
import json
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update

from qunyun.config.model import CommunitySettings
from qunyun.core.clock import Clock
from qunyun.store import models as m

#: bump when what a row holds changes: every directory is then built again
FORMAT = 1
#: a refresh touching more than this share of the members builds the whole directory instead
FULL_SHARE = 0.2
#: ids per ``IN (…)`` list
CHUNK = 500
#: between the texts of one row: a search word never holds it (words are split on white space)
SEP = "\n"

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def fold(value: str) -> str:
    """Text as the directory compares it: NFKC-normalised and case-folded (like the query words)."""
    return unicodedata.normalize("NFKC", value).casefold()


# ------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Layout:
    """What the rows depend on in the community's settings."""

    order: tuple[str, ...]
    public: tuple[str, ...]
    private: frozenset[str]
    plain_tag: tuple[str, ...]
    city: tuple[str, ...]
    sharing: str
    currency: str

    @property
    def fingerprint(self) -> str:
        doc = {"format": FORMAT, "order": self.order, "private": sorted(self.private), "plain_tag": self.plain_tag,
               "city": self.city, "sharing": self.sharing, "currency": self.currency}
        return hashlib.sha256(json.dumps(doc, ensure_ascii=False).encode()).hexdigest()[:32]


def layout_of(community: CommunitySettings) -> Layout:
    from qunyun.console.pages.members import fields_of, points_currency

    fields = fields_of(community)
    return Layout(
        order=fields.order, public=tuple(f for f in fields.order if f not in fields.private),
        private=fields.private, plain_tag=fields.plain_tag, city=fields.city, sharing=fields.sharing,
        currency=points_currency(community),
    )


def fingerprint(community: CommunitySettings) -> str:
    """The directory settings of ``community`` in one string: a change forces a full build."""
    return layout_of(community).fingerprint


# -------------------------------------------------------------------- rows


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return orjson.loads(value)
    except (TypeError, ValueError):
        return None


def _texts(fields: dict[str, Any], fids: Iterable[str]) -> list[str]:
    return [fold(v) for f in fids if isinstance(v := fields.get(f), str)]


def row_of(layout: Layout, member: tuple[Any, ...], profile: Any, has_profile: bool, levels: Any, points: int,
           messages: int, groups: list[tuple[int, str]], epoch: int, community: str) -> dict[str, Any]:
    """The directory row of one member (``member``: id, user id, name, first seen, last seen)."""
    from qunyun.console.pages.members import _level_index

    mid, uid, name, first, last = member
    prof: dict[str, Any] = profile if isinstance(profile, dict) else {}
    raw = prof.get("fields")
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    sharing = prof.get("sharing") if prof.get("sharing") in ("open", "community", "admins") else None
    level = sharing or layout.sharing
    full = level == "open"
    # what a console viewer sees of the row, the rule of pages.members.present and the viewer's WHERE
    if not has_profile or bool(prof.get("opt_out")) or level == "admins":
        view = 0
    elif full:
        view = 2
    elif any(fields.get(f) is not None for f in layout.public):
        view = 1
    else:
        view = 0  # nothing a viewer may see: not listed
    name_f = fold(name) if isinstance(name, str) else ""
    tags = [t.replace("|", "\x1f") for t in (prof.get("tags") or []) if isinstance(t, str)]

    def split(fids: Iterable[str], extra_full: list[str], extra_hidden: list[str]) -> tuple[str, int]:
        """(the text, how many of its first characters a viewer may match)."""
        fids = list(fids)
        if view == 2:
            shown, hidden = [*extra_full, *_texts(fields, fids)], extra_hidden
        elif view == 1:
            shown = _texts(fields, (f for f in fids if f not in layout.private))
            hidden = [*extra_full, *extra_hidden, *_texts(fields, (f for f in fids if f in layout.private))]
        else:
            shown, hidden = [], [*extra_full, *extra_hidden, *_texts(fields, fids)]
        head = SEP.join(shown)
        return SEP.join([head, *hidden]) if hidden else head, len(head)

    search, search_len = split(layout.order, [name_f], [fold(uid)])
    expertise, expertise_len = split(layout.plain_tag, [], [])
    city, city_len = split(layout.city, [], [])
    return {
        "member_id": int(mid),
        "community_id": community,
        "view": view,
        "name_key": (name.lower() if isinstance(name, str) else "")[:200],
        "search": search,
        "viewer_len": search_len,
        "expertise": expertise,
        "expertise_len": expertise_len,
        "city": city,
        "city_len": city_len,
        "tags": "|" + "|".join(tags) + "|" if tags else "",
        "groups": "|" + "|".join(f"{g}:{s}" for g, s in groups) + "|" if groups else "",
        "level": _level_index(levels),
        "points": int(points),
        "messages": int(messages),
        "first_seen_at": first,
        "last_seen_at": last,
        "epoch": epoch,
    }


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i: i + CHUNK]


def read_rows(conn: Connection, community: CommunitySettings, layout: Layout, epoch: int,
              ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The rows of the community's members not erased (all, or those of ``ids``)."""
    if ids is not None and not ids:
        return []
    if ids is None:
        return _read(conn, community, layout, epoch, None)
    out: list[dict[str, Any]] = []
    for part in _chunks(sorted(ids)):
        out.extend(_read(conn, community, layout, epoch, part))
    return out


def _read(conn: Connection, community: CommunitySettings, layout: Layout, epoch: int,
          ids: list[int] | None) -> list[dict[str, Any]]:
    cid = community.id
    mt = m.table(m.Member)
    # with ids, by primary key alone: the community's indexes would be walked whole (member ids
    # are unique across communities; the community is checked on the members read)
    q = select(mt.c.id, mt.c.user_id, mt.c.name, mt.c.first_seen_at, mt.c.last_seen_at).where(
        mt.c.erased.is_(False)
    )
    q = q.where(mt.c.id.in_(ids)) if ids is not None else q.where(mt.c.community_id == cid)
    if ids is not None:
        q = q.add_columns(mt.c.community_id)
    members = [tuple(r)[:5] for r in conn.execute(q) if ids is None or tuple(r)[5] == cid]
    if not members:
        return []
    some = ids is not None

    def expanding(sql: str, name: str) -> Any:
        stmt = text(sql)
        return stmt.bindparams(bindparam(name, expanding=True)) if some else stmt

    keys = [f"m:{r[1]}" for r in members]
    state: dict[str, dict[str, Any]] = {"profile": {}, "levels": {}}
    for pb in state:
        sql = "SELECT key, value FROM playbook_state WHERE community_id = :c AND playbook = :p"
        stmt = expanding(sql + (" AND key IN :keys" if some else ""), "keys")
        for key, value in conn.execute(stmt, {"c": cid, "p": pb, **({"keys": keys} if some else {})}):
            state[pb][key] = value
    by_id = {"ids": [r[0] for r in members]} if some else {}
    points = {
        int(mid): int(total or 0) for mid, total in conn.execute(expanding(
            "SELECT member_id, sum(balance) FROM ledger_accounts WHERE currency = :cur "
            + ("AND member_id IN :ids " if some else "AND community_id = :c AND member_id IS NOT NULL ")
            + "GROUP BY member_id", "ids"), {"c": cid, "cur": layout.currency, **by_id})
    }
    messages = {
        int(mid): int(total or 0) for mid, total in conn.execute(expanding(
            "SELECT member_id, sum(messages) FROM member_groups WHERE "
            + ("member_id IN :ids " if some else "community_id = :c ") + "GROUP BY member_id", "ids"),
            {"c": cid, **by_id})
    }
    groups: dict[int, list[tuple[int, str]]] = {}
    for mid, gid, status in conn.execute(expanding(
        "SELECT ms.member_id, ms.group_id, ms.status FROM memberships ms JOIN groups g ON g.id = ms.group_id "
        "WHERE g.community_id = :c " + ("AND ms.member_id IN :ids " if some else "") + "ORDER BY ms.group_id",
        "ids"), {"c": cid, **by_id}
    ):
        groups.setdefault(int(mid), []).append((int(gid), str(status)))
    out = []
    for member in members:
        mid, key = int(member[0]), f"m:{member[1]}"
        raw = state["profile"].get(key)
        out.append(row_of(layout, member, _loads(raw), key in state["profile"], _loads(state["levels"].get(key)),
                          points.get(mid, 0), messages.get(mid, 0), groups.get(mid, []), epoch, cid))
    return out


# -------------------------------------------------------------- watermarks


@dataclass
class Marks:
    epoch: int
    member: int
    event: int
    posting: int
    record: int
    state: datetime | None


def read_marks(conn: Connection, community: str) -> Marks:
    """The community's epoch and the watermarks, read before the rows they cover."""
    ct, mt, et, pt = m.table(m.Community), m.table(m.Member), m.table(m.EventRow), m.table(m.Posting)
    st, rt = m.table(m.PlaybookState), m.table(m.Record)
    epoch = conn.execute(select(ct.c.epoch).where(ct.c.id == community)).scalar()
    return Marks(
        epoch=int(epoch or 0),
        member=int(conn.execute(select(func.max(mt.c.id)).where(mt.c.community_id == community)).scalar() or 0),
        event=int(conn.execute(select(func.max(et.c.seq))).scalar() or 0),
        posting=int(conn.execute(select(func.max(pt.c.id))).scalar() or 0),
        record=int(conn.execute(select(func.max(rt.c.id))).scalar() or 0),
        state=conn.execute(select(func.max(st.c.updated_at)).where(
            st.c.community_id == community, st.c.playbook.in_(("profile", "levels")))).scalar(),
    )


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """The short strings in a command record's data (user ids among them), a few levels deep."""
    if isinstance(value, str):
        if 0 < len(value) <= 256:
            yield value
    elif depth < 4 and isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth + 1)
    elif depth < 4 and isinstance(value, list):
        for v in value[:1000]:
            yield from _strings(v, depth + 1)


def touched(conn: Connection, community: str, since: Any) -> set[int]:
    """Members whose rows may have changed since the watermarks of ``since`` (a state row)."""
    out: set[int] = set()
    params = {"c": community}
    out.update(int(r[0]) for r in conn.execute(
        text("SELECT id FROM members WHERE community_id = :c AND id > :mk"), {**params, "mk": since.member_mark}))
    # actors of new events (their own id, or a platform id linked to them)
    for sql in (
        """SELECT DISTINCT mb.id FROM events e JOIN groups g ON g.id = e.group_id
           JOIN members mb ON mb.community_id = g.community_id AND mb.platform = e.platform AND mb.user_id = e.actor
           WHERE e.seq > :ev AND g.community_id = :c""",
        """SELECT DISTINCT i.member_id FROM events e JOIN groups g ON g.id = e.group_id
           JOIN member_identities i ON i.community_id = g.community_id AND i.platform = e.platform
                AND i.user_id = e.actor
           WHERE e.seq > :ev AND g.community_id = :c""",
    ):
        out.update(int(r[0]) for r in conn.execute(text(sql), {**params, "ev": since.event_mark}))
    out.update(int(r[0]) for r in conn.execute(text(
        """SELECT DISTINCT a.member_id FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
           WHERE p.id > :pk AND a.community_id = :c AND a.member_id IS NOT NULL"""),
        {**params, "pk": since.posting_mark}))
    # members the playbooks' records name since (level changes, verifications, …) and the
    # members an operator's command named (``profile set``: its arguments hold the user id)
    uids: set[str] = set()
    for member, kind, data in conn.execute(text(
        "SELECT member, kind, data FROM records WHERE id > :rk AND community_id = :c"),
        {**params, "rk": since.record_mark}
    ):
        if member:
            uids.add(str(member))
        if kind == "command":
            uids.update(_strings(_loads(data)))
    if since.state_mark is not None:
        st = m.table(m.PlaybookState)
        # ">", not ">=": a batch writes all its state rows with one time, and a bulk import
        # would otherwise be read again on every refresh until a later write moves the mark
        uids.update(k[2:] for (k,) in conn.execute(select(st.c.key).where(
            st.c.community_id == community, st.c.playbook.in_(("profile", "levels")),
            st.c.updated_at > since.state_mark)) if k.startswith("m:"))
    named = sorted(uids)
    mt = m.table(m.Member)
    # the platforms let the lookup use the (community, platform, user id) index
    platforms = [r[0] for r in conn.execute(
        text("SELECT DISTINCT platform FROM groups WHERE community_id = :c"), params)] if named else []
    for i in range(0, len(named), CHUNK):
        out.update(int(r[0]) for r in conn.execute(select(mt.c.id).where(
            mt.c.community_id == community, mt.c.platform.in_(platforms), mt.c.user_id.in_(named[i: i + CHUNK]))))
    # rows missing (a merge deleted them, members written around the engine) or left over
    members = conn.execute(text("SELECT count(*) FROM members WHERE community_id = :c AND erased = :no"),
                           {**params, "no": False}).scalar()
    rows = conn.execute(text("SELECT count(*) FROM member_directory WHERE community_id = :c"), params).scalar()
    if members != rows:
        out.update(int(r[0]) for r in conn.execute(text(
            """SELECT mb.id FROM members mb WHERE mb.community_id = :c AND mb.erased = :no
               AND NOT EXISTS (SELECT 1 FROM member_directory d WHERE d.member_id = mb.id)"""), {**params, "no": False}))
        out.update(int(r[0]) for r in conn.execute(text(
            """SELECT d.member_id FROM member_directory d WHERE d.community_id = :c AND NOT EXISTS
               (SELECT 1 FROM members mb WHERE mb.id = d.member_id AND mb.erased = :no)"""), {**params, "no": False}))
    return out


# ------------------------------------------------------------------ upkeep


@dataclass
class Outcome:
    """What :func:`ensure` did: ``"current"``, ``"refreshed"``, ``"built"`` or ``"skipped"`` (raced)."""

    action: str
    rows: int = 0


def _lock(writes: Engine, community: str) -> threading.Lock:
    key = (writes.url.render_as_string(hide_password=True), community)
    with _locks_guard:
        found = _locks.get(key)
        if found is None:
            found = _locks[key] = threading.Lock()
        return found


def _status(conn: Connection, community: str) -> tuple[int, Any]:
    epoch = conn.execute(text("SELECT epoch FROM communities WHERE id = :c"), {"c": community}).scalar()
    dt = m.table(m.MemberDirectoryState)
    state = conn.execute(select(dt).where(dt.c.community_id == community)).first()
    return int(epoch or 0), state


def ensure(reads: Engine, writes: Engine, community: CommunitySettings, clock: Clock, *,
           full: bool = False) -> Outcome:
    """Make the community's directory rows current (see the module's docstring).

    ``reads`` reads the source (the console's deferred pool), ``writes``
    writes the rows (the engine's pool, ``BEGIN IMMEDIATE`` on SQLite).
    ``full`` builds every row again whatever the watermarks say.
    """
    layout = layout_of(community)
    cid = community.id
    with reads.connect() as conn:
        epoch, state = _status(conn, cid)
    if not full and state is not None and state.fingerprint == layout.fingerprint and state.epoch == epoch:
        return Outcome("current")
    with _lock(writes, cid):
        with reads.connect() as conn:
            epoch, state = _status(conn, cid)
            if not full and state is not None and state.fingerprint == layout.fingerprint and state.epoch == epoch:
                return Outcome("current")  # another request did it while we waited
            marks = read_marks(conn, cid)
            ids: set[int] | None = None
            if not full and state is not None and state.fingerprint == layout.fingerprint:
                ids = touched(conn, cid, state)
                total = conn.execute(text("SELECT count(*) FROM member_directory WHERE community_id = :c"),
                                     {"c": cid}).scalar() or 0
                if len(ids) > max(CHUNK, FULL_SHARE * total):
                    ids = None
            rows = read_rows(conn, community, layout, marks.epoch, None if ids is None else sorted(ids))
        outcome = _write(writes, cid, layout, marks, state, rows, ids, clock)
        if outcome.action == "built" and writes.dialect.name == "postgresql":
            # a build replaced every row of the community: reclaim the old versions and refresh the
            # planner's statistics now (count(*) can then use the indexes alone), not when autovacuum comes
            with writes.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE member_directory")
        return outcome


def _write(writes: Engine, cid: str, layout: Layout, marks: Marks, before: Any, rows: list[dict[str, Any]],
           ids: set[int] | None, clock: Clock) -> Outcome:
    dt, st = m.table(m.MemberDirectoryRow), m.table(m.MemberDirectoryState)
    now = clock.now()
    with writes.begin() as conn:
        current = conn.execute(select(st).where(st.c.community_id == cid)).first()
        if (current is None) != (before is None) or (
            current is not None and before is not None and tuple(current) != tuple(before)
        ):
            return Outcome("skipped")  # another process refreshed meanwhile: its rows stand
        if ids is None:
            conn.execute(delete(dt).where(dt.c.community_id == cid))
        else:
            for part in _chunks(sorted(ids)):
                conn.execute(delete(dt).where(dt.c.member_id.in_(part)))
        for i in range(0, len(rows), 1000):
            conn.execute(insert(dt), rows[i: i + 1000])
        values = {
            "fingerprint": layout.fingerprint, "epoch": marks.epoch, "member_mark": marks.member,
            "event_mark": marks.event, "posting_mark": marks.posting, "record_mark": marks.record, "state_mark": marks.state,
            "refreshed_at": now, "refreshed_rows": len(rows),
        }
        if ids is None:
            values["built_at"] = now
        if current is None:
            conn.execute(insert(st).values(community_id=cid, **values))
        else:
            conn.execute(update(st).where(st.c.community_id == cid).values(**values))
    return Outcome("built" if ids is None else "refreshed", len(rows))

