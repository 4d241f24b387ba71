"""Console pages: the member directory and one member's profile.

The directory searches ``member_directory``, one compact row per member
kept current by ``qunyun.console.directory`` (refreshed before each query
when the community's epoch moved): filters, sorting and paging happen in
the database, and only the page's rows are read in full (``members``, the
profile and levels state, the ledger). It honours the
profile playbook's sharing level (docs/playbooks/profile.md): a viewer sees
the directory as a member would (``community`` level: no name and no
private fields, and those are not searchable either; ``admins``: nobody;
opted-out members: never); admins see every member and every field,
opted-out ones marked as such.

A profile lives at ``/c/{community}/members/{id}`` with ``id`` the
``members.id`` of that community (another community's id is a 404).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection, bindparam, text

from qunyun.config.model import CommunitySettings
from qunyun.console.web import Admin, ConsoleState, Page, Viewer

router = APIRouter()

SORTS = ("name", "joined", "last_seen", "points", "level", "messages")
STATUSES = ("active", "left", "removed")
#: the playbooks whose records make a member's moderation history
MODERATION_PLAYBOOKS = ("moderation", "guard", "elimination", "gate", "hours")
PER_PAGE = 50


# ----------------------------------------------------------------- settings


def enabled(community: CommunitySettings, playbook: str) -> bool:
    """Whether ``playbook`` runs in any group of ``community``."""
    return any(playbook in g.playbooks for g in community.groups.values())


def _profile_config(community: CommunitySettings) -> Any:
    from qunyun.playbooks.profile import ProfileConfig

    return ProfileConfig.model_validate(community.playbook_specs.get("profile") or {})


def _levels_config(community: CommunitySettings) -> Any:
    from qunyun.playbooks.levels import LevelsConfig

    return LevelsConfig.model_validate(community.playbook_specs.get("levels") or {})


@dataclass(frozen=True)
class Fields:
    """The community's profile fields as the directory needs them."""

    order: tuple[str, ...]
    labels: dict[str, dict[str, str]]
    private: frozenset[str]
    plain_tag: tuple[str, ...]  # is_tag without prefix: what "expertise" searches
    city: tuple[str, ...]  # tag_prefix "city"
    #: tag prefixes ("" for plain) of fields visible at the community level, and of private ones
    public_prefixes: frozenset[str]
    private_prefixes: frozenset[str]
    sharing: str

    def label(self, fid: str, lang: str) -> str:
        return self.labels.get(fid, {}).get(lang) or fid

    def tag_public(self, tag: str) -> bool:
        """Whether ``tag`` can only come from fields members may see at the ``community`` level."""
        prefix = tag.split(":", 1)[0] if ":" in tag else ""
        return prefix in self.public_prefixes and prefix not in self.private_prefixes


def fields_of(community: CommunitySettings) -> Fields:
    cfg = _profile_config(community)
    return Fields(
        order=tuple(f.id for f in cfg.fields),
        labels={f.id: {"en": f.label("en"), "zh-CN": f.label("zh-CN")} for f in cfg.fields},
        private=frozenset(f.id for f in cfg.fields if f.private_in_community),
        plain_tag=tuple(f.id for f in cfg.fields if f.is_tag and not f.tag_prefix),
        city=tuple(f.id for f in cfg.fields if f.is_tag and f.tag_prefix == "city"),
        public_prefixes=frozenset(f.tag_prefix for f in cfg.fields if f.is_tag and not f.private_in_community),
        private_prefixes=frozenset(f.tag_prefix for f in cfg.fields if f.is_tag and f.private_in_community),
        sharing=cfg.sharing,
    )


def level_names(community: CommunitySettings, lang: str) -> list[str]:
    return [lv.title(lang) for lv in _levels_config(community).levels]


def points_currency(community: CommunitySettings) -> str:
    return str(_levels_config(community).currency)


# ------------------------------------------------------------------ search


@dataclass(frozen=True)
class Criteria:
    """What the directory is asked for; every given criterion must hold."""

    text: str | None = None
    tag: str | None = None
    expertise: str | None = None
    city: str | None = None
    group: str | None = None
    level: int | None = None
    archetype: str | None = None
    status: str | None = None

    @property
    def about_activity(self) -> bool:
        return any(v is not None for v in (self.group, self.level, self.archetype, self.status))


def _clean(value: str | None, limit: int = 120) -> str | None:
    from qunyun.playbooks.profile import normalize_tag

    if value is None:
        return None
    out = normalize_tag(value[:limit])
    return out or None


def criteria_from(values: Mapping[str, Any]) -> Criteria:
    """Criteria from query parameters: empty ones dropped, texts normalised like tags."""
    from qunyun.playbooks.profile import normalize_tag

    def text_of(key: str) -> str | None:
        raw = values.get(key)
        return raw if isinstance(raw, str) and raw.strip() else None

    level = values.get("level")
    try:
        level_n = int(level) if level not in (None, "") else None
    except (TypeError, ValueError):
        level_n = None
    status = text_of("status")
    free = text_of("q")
    return Criteria(
        text=" ".join(w for w in (normalize_tag(t) for t in (free or "")[:200].split()[:8]) if w) or None,
        tag=_clean(text_of("tag")),
        expertise=_clean(text_of("expertise")),
        city=_clean(text_of("city")),
        group=text_of("group"),
        level=level_n if level_n is not None and 0 <= level_n < 1000 else None,
        archetype=text_of("archetype"),
        status=status if status in STATUSES else None,
    )


def _has(pg: bool, column: str, param: str, within: str | None = None) -> str:
    """``column`` holds the text of ``:param`` (a plain substring test: no pattern characters);
    ``within``: in its first ``within`` characters (the part a viewer may match)."""
    found = f"strpos({column}, :{param})" if pg else f"instr({column}, :{param})"
    # the first occurrence starts in the prefix if any does (a word never holds the separator,
    # so an occurrence that starts in the prefix also ends there)
    return f"{found} BETWEEN 1 AND {within}" if within else f"{found} > 0"


@dataclass
class Query:
    """The directory's SQL for one request (``FROM``/``WHERE`` and the sort expression)."""

    sql_from: str
    where: list[str]
    params: dict[str, Any]
    order: str
    #: the sort column and direction (the viewer's page is read in two parts: see :func:`directory`)
    expr: str = "d.last_seen_at"
    direction: str = "DESC"


SORT_COLUMNS = {
    "name": "d.name_key",
    "joined": "d.first_seen_at",
    "last_seen": "d.last_seen_at",
    "points": "d.points",
    "level": "d.level",
    "messages": "d.messages",
}


def build(conn: Connection, community: CommunitySettings, fields: Fields, crit: Criteria, *, admin: bool,
          sort: str | None, desc: bool) -> Query | None:
    """The directory query over ``member_directory``, or None when the viewer may see nobody (level ``admins``).

    The rows hold the texts each audience may match, already normalised
    (``qunyun.console.directory``): an admin's free text matches name, user
    id and every configured field (``search``); a viewer's only the first
    ``viewer_len`` characters of it, what the sharing level shows (the name
    and every field of an ``open`` profile, the public fields of a
    ``community`` one). Rows a viewer may not see at all have ``view = 0``.
    """
    if not admin and fields.sharing == "admins":
        return None
    pg = conn.dialect.name == "postgresql"
    params: dict[str, Any] = {"c": community.id}
    where = ["d.community_id = :c"]
    if not admin:
        where.append("d.view > 0")
        if crit.about_activity:
            where.append("d.view = 2")  # activity filters would point at people whose name is hidden
    if crit.text:
        for i, term in enumerate(crit.text.split()):
            params[f"t{i}"] = term
            where.append(_has(pg, "d.search", f"t{i}", None if admin else "d.viewer_len"))
    if crit.tag:
        params["tag"] = "|" + crit.tag.replace("|", "\x1f") + "|"
        where.append(_has(pg, "d.tags", "tag"))
        if not admin and not fields.tag_public(crit.tag):
            where.append("d.view = 2")
    if crit.expertise:
        params["exp"] = crit.expertise
        where.append(_has(pg, "d.expertise", "exp", None if admin else "d.expertise_len"))
    if crit.city:
        params["city"] = crit.city
        where.append(_has(pg, "d.city", "city", None if admin else "d.city_len"))
    if crit.group:
        gids = [int(r[0]) for r in conn.execute(
            text("SELECT id FROM groups WHERE community_id = :c AND key = :k ORDER BY id"),
            {"c": community.id, "k": crit.group})]
        parts = []
        for i, gid in enumerate(gids):
            params[f"g{i}"] = f"|{gid}:{crit.status}|" if crit.status else f"|{gid}:"
            parts.append(_has(pg, "d.groups", f"g{i}"))
        where.append("(" + " OR ".join(parts) + ")" if parts else "1 = 0")
    elif crit.status:
        params["active"] = ":active|"
        if crit.status == "active":
            where.append(_has(pg, "d.groups", "active"))
        else:
            params["st"] = f":{crit.status}|"
            where.append(f"NOT ({_has(pg, 'd.groups', 'active')})")
            where.append(_has(pg, "d.groups", "st"))
    if crit.level is not None:
        params["lvl"] = crit.level
        where.append("d.level = :lvl")
    expr = SORT_COLUMNS.get(sort or "last_seen", "d.last_seen_at")
    direction = "DESC" if desc else "ASC"
    if admin:
        order = f"{expr} {direction}, d.member_id {direction}"
    else:
        # rows whose name is hidden come last and keep their values to themselves (ordered by id only)
        order = f"d.view DESC, CASE WHEN d.view = 2 THEN {expr} END {direction}, d.member_id {direction}"
    return Query("FROM member_directory d", where, params, order, expr, direction)


@dataclass
class DirectoryPage:
    total: int
    rows: list[dict[str, Any]]
    admins_only: bool = False


def _where(conn: Connection, q: Query, extra: list[str] | None = None, *, scan: bool = False) -> str:
    """``q``'s conditions (and ``extra``); ``scan``: on SQLite, keep the planner off the
    community's indexes, so that it reads the table straight through instead of
    looking every row up from an index that does not narrow anything."""
    conds = [*q.where, *(extra or [])]
    if scan and conn.dialect.name == "sqlite":
        conds = [c.replace("d.community_id = :c", "+d.community_id = :c").replace("d.view ", "+d.view ")
                 for c in conds]
    return " AND ".join(conds)


#: a search matching at most this many rows is answered from one pass over the table
FEW = 2000


def _few(conn: Connection, q: Query, *, admin: bool) -> list[int] | None:
    """Every matching id in order, if a search matches at most :data:`FEW` rows, else None.

    A selective search would otherwise read the table twice (the count, then
    the page): this reads it once, stopping at ``FEW + 1`` matches, and sorts
    the few it found (in the database: its collation decides, as for the page).
    """
    if len(q.where) <= (1 if admin else 2):
        return None  # browsing: the indexes answer both the count and the page
    order = ("sort_key {d}, member_id {d}" if admin else
             "view DESC, CASE WHEN view = 2 THEN sort_key END {d}, member_id {d}").format(d=q.direction)
    sql = (f"SELECT member_id FROM (SELECT d.member_id AS member_id, {q.expr} AS sort_key, d.view AS view "
           f"{q.sql_from} WHERE {_where(conn, q, scan=True)} LIMIT :few) x ORDER BY {order}")
    ids = [int(r[0]) for r in conn.execute(text(sql), {**q.params, "few": FEW + 1})]
    return ids if len(ids) <= FEW else None


def _ordered(conn: Connection, q: Query, extra: list[str], order: str, offset: int, limit: int, matching: int, *,
             by_id: bool = False) -> list[int]:
    """One page of ids of the rows matching ``q`` and ``extra``, ``matching`` of them in all.

    Walking a sort index finds a page after about ``(offset + limit) ×
    rows / matching`` rows, each one looked up; reading the table straight
    through and sorting costs about a third of a lookup per row. So a
    search that matches few rows is read straight through (SQLite; the
    PostgreSQL planner weighs this itself from its statistics).
    """
    if limit <= 0 or matching <= 0:
        return []
    sort = f"d.member_id {order}" if by_id else f"{order}, d.member_id {q.direction}"
    scan = matching < 3 * (offset + limit)
    sql = f"SELECT d.member_id {q.sql_from} WHERE {_where(conn, q, extra, scan=scan)} ORDER BY {sort} " \
          "LIMIT :lim OFFSET :off"
    return [int(r[0]) for r in conn.execute(text(sql), {**q.params, "lim": limit, "off": offset})]


def keep_current(state: ConsoleState, community: CommunitySettings) -> None:
    """Bring the community's ``member_directory`` rows up to date before a query (usually: one read)."""
    from qunyun.console.directory import ensure

    ensure(state.db, state.engine.db, community, state.clock)


def directory(state: ConsoleState | None, conn: Connection, community: CommunitySettings, crit: Criteria, *,
              admin: bool, sort: str | None, desc: bool, offset: int, limit: int, lang: str = "en") -> DirectoryPage:
    """One page of the directory, as an admin (``admin``) or a viewer may see it.

    Call it before ``conn`` has read anything: the directory is refreshed on
    a connection of its own first, and ``conn``'s snapshot must see that
    (``state`` None: the caller keeps the directory current itself).
    """
    fields = fields_of(community)
    if not admin and fields.sharing == "admins":
        return DirectoryPage(0, [], admins_only=True)
    if state is not None:
        keep_current(state, community)
    q = build(conn, community, fields, crit, admin=admin, sort=sort, desc=desc)
    if q is None:
        return DirectoryPage(0, [], admins_only=True)
    where = " AND ".join(q.where)
    if crit.archetype:
        # archetypes are computed for the whole community (memoised per epoch); filter the ordered ids
        assert state is not None
        wanted = {mid for mid, v in member_values(state, conn, community.id).items() if v[2] == crit.archetype}
        ids = [r[0] for r in conn.execute(
            text(f"SELECT d.member_id {q.sql_from} WHERE {where} ORDER BY {q.order}"), q.params) if r[0] in wanted]
        total, page_ids = len(ids), ids[offset: offset + limit]
    elif (few := _few(conn, q, admin=admin)) is not None:
        total, page_ids = len(few), few[offset: offset + limit]
    elif admin:
        filtered = len(q.where) > 1
        total = int(conn.execute(text(f"SELECT count(*) {q.sql_from} WHERE {_where(conn, q, scan=filtered)}"),
                                 q.params).scalar() or 0)
        page_ids = _ordered(conn, q, [], f"{q.expr} {q.direction}", offset, limit, total)
    else:
        total, shown = (int(x or 0) for x in conn.execute(text(
            f"SELECT count(*), sum(CASE WHEN d.view = 2 THEN 1 ELSE 0 END) {q.sql_from} "
            f"WHERE {_where(conn, q, scan=len(q.where) > 2)}"),
            q.params).one())
        # rows with the name shown first, in the asked order; then the others by id only
        page_ids = _ordered(conn, q, ["d.view = 2"], f"{q.expr} {q.direction}", offset, min(limit, shown - offset),
                            shown) if offset < shown else []
        if len(page_ids) < limit and offset + limit > shown:
            page_ids += _ordered(conn, q, ["d.view = 1"], q.direction, max(0, offset - shown), limit - len(page_ids),
                                 total - shown, by_id=True)
    return DirectoryPage(total, rows_of(conn, community, fields, page_ids, admin=admin, lang=lang))


def rows_of(conn: Connection, community: CommunitySettings, fields: Fields, ids: list[int], *, admin: bool,
            lang: str) -> list[dict[str, Any]]:
    """The directory rows of ``ids`` (in that order), shown as the viewer may see them."""
    if not ids:
        return []
    cur = points_currency(community)
    found = {}
    stmt = text(
        """SELECT m.id, m.platform, m.user_id, m.name, m.title, m.first_seen_at, m.last_seen_at, p.value, lv.value,
                  (SELECT coalesce(sum(a.balance), 0) FROM ledger_accounts a
                    WHERE a.member_id = m.id AND a.currency = :cur),
                  (SELECT coalesce(sum(mg.messages), 0) FROM member_groups mg WHERE mg.member_id = m.id),
                  m.community_id
           FROM members m
           LEFT JOIN playbook_state p ON p.community_id = :c AND p.playbook = 'profile' AND p.key = 'm:' || m.user_id
           LEFT JOIN playbook_state lv ON lv.community_id = :c AND lv.playbook = 'levels' AND lv.key = 'm:' || m.user_id
           WHERE m.id IN :ids"""
    ).bindparams(bindparam("ids", expanding=True))
    # by primary key only: with the community in the WHERE, SQLite walks the community's members index
    for row in conn.execute(stmt, {"c": community.id, "cur": cur, "ids": ids}):
        if row[11] == community.id:
            found[int(row[0])] = row
    groups = groups_of(conn, community.id, ids)
    names = level_names(community, lang)
    out = []
    for mid in ids:
        hit = found.get(mid)
        if hit is None:
            continue
        row = hit
        profile = _loads(row[7])
        shown = present(profile, fields, admin=admin)
        level = _level_index(_loads(row[8]))
        ms = groups.get(mid, [])
        item: dict[str, Any] = {
            "id": mid if shown["full"] else None,
            "platform": row[1] if shown["full"] else None,
            "user_id": row[2] if shown["full"] else None,
            "name": row[3] if shown["full"] else None,
            "title": row[4] if shown["full"] else None,
            "joined": _dt(row[5]) if shown["full"] else None,
            "last_seen": _dt(row[6]) if shown["full"] else None,
            "points": int(row[9] or 0) if shown["full"] else None,
            "messages": int(row[10] or 0) if shown["full"] else None,
            "level": level if shown["full"] else None,
            "level_name": (names[min(level, len(names) - 1)] if names else str(level)) if shown["full"] else None,
            "groups": ms if shown["full"] else [],
            "status": status_of(ms) if shown["full"] else None,
            **{k: shown[k] for k in ("fields", "tags", "verified", "opted_out", "sharing")},
        }
        out.append(item)
    return out


def present(profile: Any, fields: Fields, *, admin: bool) -> dict[str, Any]:
    """What of a stored profile the viewer may see: ``full`` (name and every field) or the public part."""
    from qunyun.playbooks.profile import normalize_tag

    prof = profile if isinstance(profile, dict) else {}
    sharing = prof.get("sharing") if prof.get("sharing") in ("open", "community", "admins") else None
    level = sharing or fields.sharing
    full = admin or level == "open"
    given = prof.get("fields")
    raw: dict[str, Any] = given if isinstance(given, dict) else {}
    order = {fid: i for i, fid in enumerate(fields.order)}
    shown = {
        fid: value for fid, value in sorted(raw.items(), key=lambda kv: order.get(kv[0], len(order)))
        if isinstance(value, str) and (full or (fid in order and fid not in fields.private))
    }
    tags = [t for t in (prof.get("tags") or []) if isinstance(t, str)]
    if not full:
        tags = [t for t in tags if fields.tag_public(normalize_tag(t))]
    return {
        "full": full,
        "fields": shown,
        "tags": tags,
        "verified": bool(prof.get("verified")),
        "opted_out": bool(prof.get("opt_out")) if admin else False,
        "sharing": sharing if admin else None,
    }


def groups_of(conn: Connection, community: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    stmt = text(
        """SELECT ms.member_id, g.key, g.name, ms.status, ms.role, ms.joined_at, ms.left_at
           FROM memberships ms JOIN groups g ON g.id = ms.group_id
           WHERE g.community_id = :c AND ms.member_id IN :ids ORDER BY g.key"""
    ).bindparams(bindparam("ids", expanding=True))
    for mid, key, name, status, role, joined, left in conn.execute(stmt, {"c": community, "ids": ids}):
        out.setdefault(int(mid), []).append(
            {"key": key, "name": name or key, "status": status, "role": role, "joined": _dt(joined), "left": _dt(left)}
        )
    return out


def status_of(memberships: list[dict[str, Any]]) -> str | None:
    seen = {m["status"] for m in memberships}
    for status in STATUSES:
        if status in seen:
            return status
    return None


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _level_index(value: Any) -> int:
    level = value.get("level") if isinstance(value, dict) else None
    return level if isinstance(level, int) and not isinstance(level, bool) and level >= 0 else 0


def _dt(value: Any) -> datetime | None:
    """A time read with plain SQL (SQLite gives text): aware UTC datetime."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value if isinstance(value, datetime) else None


# ------------------------------------------------------------ member values


def as_of_day(conn: Connection, state: ConsoleState, community: CommunitySettings) -> date:
    """The day member values are judged on: today, or the last day with data if the clock is behind it."""
    today = state.clock.now().astimezone(community.tz).date()
    last = conn.execute(text("SELECT max(day) FROM rollups WHERE community_id = :c"), {"c": community.id}).scalar()
    if last is None:
        return today
    last_day = last if isinstance(last, date) else date.fromisoformat(str(last)[:10])
    return max(today, last_day) if today >= last_day else last_day


def member_values(state: ConsoleState, conn: Connection, community: str) -> dict[int, tuple[float, str, str]]:
    """``{members.id: (score, value level, archetype)}`` (analytics.value), memoised per community epoch."""
    from qunyun.analytics.value import member_values as compute

    settings = state.settings.communities[community]
    day = as_of_day(conn, state, settings)
    # the epoch from this connection: a second one would wait for this one's lock (SQLite)
    epoch = int(conn.execute(text("SELECT epoch FROM communities WHERE id = :c"), {"c": community}).scalar() or 0)
    key = ("members.values", community, epoch, day)
    found = state.memo.get(key)
    if found is None:
        found = {v.member_id: (v.score, v.level, v.archetype) for v in compute(conn, community, day)}
        for old in [k for k in state.memo if isinstance(k, tuple) and k[:2] == ("members.values", community)]:
            state.memo.pop(old, None)
        state.memo[key] = found
    return found


# ----------------------------------------------------------------- profile


@dataclass
class Profile:
    id: int
    platform: str
    user_id: str
    name: str | None
    title: str | None
    erased: bool
    joined: datetime | None
    last_seen: datetime | None
    groups: list[dict[str, Any]]
    points: int
    level: int
    level_name: str
    messages: int
    shown: dict[str, Any]
    value: tuple[float, str, str] | None
    medals: list[dict[str, Any]] = field(default_factory=list)


def member_row(conn: Connection, community: str, member_id: int) -> tuple[Any, ...] | None:
    row = conn.execute(
        text("""SELECT id, platform, user_id, name, title, erased, first_seen_at, last_seen_at
                FROM members WHERE id = :m AND community_id = :c"""),
        {"m": member_id, "c": community},
    ).first()
    return tuple(row) if row is not None else None


def profile_of(state: ConsoleState, conn: Connection, community: CommunitySettings, member_id: int, *, admin: bool,
               lang: str) -> Profile | None:
    """One member's header data, or None if ``member_id`` is not a member of ``community``."""
    row = member_row(conn, community.id, member_id)
    if row is None:
        return None
    mid, platform, uid, name, title, erased, first, last = row
    fields = fields_of(community)

    def state_value(playbook: str) -> Any:
        return _loads(conn.execute(
            text("SELECT value FROM playbook_state WHERE community_id = :c AND playbook = :p AND key = :k"),
            {"c": community.id, "p": playbook, "k": f"m:{uid}"},
        ).scalar())

    cur = points_currency(community)
    points = conn.execute(
        text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE member_id = :m AND currency = :cur"),
        {"m": mid, "cur": cur},
    ).scalar()
    messages = conn.execute(
        text("SELECT coalesce(sum(messages), 0) FROM member_groups WHERE member_id = :m"), {"m": mid}
    ).scalar()
    level = _level_index(state_value("levels"))
    names = level_names(community, lang)
    medal_state = state_value("medals")
    medal_names = _medal_names(community, lang)
    medals = [
        {"id": k, "name": medal_names.get(k, k), "at": _dt(v) if isinstance(v, str) else None}
        for k, v in ((medal_state or {}).get("medals") or {}).items()
    ] if isinstance(medal_state, dict) else []
    medals.sort(key=lambda x: str(x["at"] or ""))
    values = member_values(state, conn, community.id) if not erased else {}
    return Profile(
        id=int(mid), platform=platform, user_id=uid, name=name, title=title, erased=bool(erased),
        joined=_dt(first), last_seen=_dt(last), groups=groups_of(conn, community.id, [int(mid)]).get(int(mid), []),
        points=int(points or 0), level=level, level_name=names[min(level, len(names) - 1)] if names else str(level),
        messages=int(messages or 0), shown=present(state_value("profile"), fields, admin=admin),
        value=values.get(int(mid)), medals=medals,
    )


def _medal_names(community: CommunitySettings, lang: str) -> dict[str, str]:
    try:
        from qunyun.playbooks.medals import MedalsConfig

        cfg = MedalsConfig.model_validate(community.playbook_specs.get("medals") or {})
    except Exception:  # a medal list the engine refused is the config page's business, not ours
        return {}
    out = {}
    for medal in cfg.medals:
        name = medal.name
        texts: dict[str, str] = {} if isinstance(name, str) else {str(k): v for k, v in name.items()}
        out[medal.id] = name if isinstance(name, str) else (texts.get(lang) or texts.get("en") or medal.id)
    return out


def weeks_of(conn: Connection, member_id: int, until: date, weeks: int = 12) -> list[dict[str, Any]]:
    """Messages, joins, leaves and check-ins per ISO week (Monday) over the last ``weeks`` weeks (rollups)."""
    first = until - timedelta(days=until.weekday()) - timedelta(weeks=weeks - 1)
    sqlite = conn.dialect.name == "sqlite"
    rows = conn.execute(
        text("""SELECT day, sum(messages), sum(joins), sum(leaves), sum(checkins), sum(points)
                FROM rollups WHERE member_id = :m AND day >= :first AND day <= :last GROUP BY day"""),
        {"m": member_id, "first": first.isoformat() if sqlite else first, "last": until.isoformat() if sqlite else until},
    )
    out: dict[date, dict[str, Any]] = {}
    for i in range(weeks):
        monday = first + timedelta(weeks=i)
        out[monday] = {"week": monday, "messages": 0, "joins": 0, "leaves": 0, "checkins": 0, "points": 0}
    for day, msgs, joins, leaves, checkins, pts in rows:
        d = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        bucket = out.get(d - timedelta(days=d.weekday()))
        if bucket is None:
            continue
        for key, v in (("messages", msgs), ("joins", joins), ("leaves", leaves), ("checkins", checkins),
                       ("points", pts)):
            bucket[key] += int(v or 0)
    return list(out.values())


def records_of(conn: Connection, community: str, uid: str, *, playbooks: tuple[str, ...] | None = None,
               offset: int = 0, limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """(count, one page of) the records naming member ``uid``, newest first."""
    where = "community_id = :c AND member = :u"
    stmt_params: dict[str, Any] = {"c": community, "u": uid}
    extra = ""
    if playbooks is not None:
        extra = " AND playbook IN :pbs"
        stmt_params["pbs"] = list(playbooks)
    count_stmt = text(f"SELECT count(*) FROM records WHERE {where}{extra}")
    page_stmt = text(
        f"""SELECT ts, playbook, kind, group_key, data FROM records WHERE {where}{extra}
            ORDER BY ts DESC, id DESC LIMIT :lim OFFSET :off"""
    )
    if playbooks is not None:
        count_stmt = count_stmt.bindparams(bindparam("pbs", expanding=True))
        page_stmt = page_stmt.bindparams(bindparam("pbs", expanding=True))
    total = int(conn.execute(count_stmt, stmt_params).scalar() or 0)
    rows = [
        {"ts": _dt(ts), "playbook": pb, "kind": kind, "group": group, "data": _brief(_loads(data))}
        for ts, pb, kind, group, data in conn.execute(page_stmt, {**stmt_params, "lim": limit, "off": offset})
    ]
    return total, rows


def _brief(data: Any) -> str:
    """A record's data on one line (it is member-influenced text: escaped by the template)."""
    if not isinstance(data, dict):
        return ""
    parts = [f"{k}={v}" for k, v in data.items() if isinstance(v, str | int | float | bool)]
    text_ = ", ".join(parts)
    return text_ if len(text_) <= 200 else text_[:199] + "…"


def ledger_of(conn: Connection, member_id: int, *, limit: int = 20) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The member's ledger accounts and their latest postings (newest first)."""
    accounts = [
        {"code": code, "currency": cur, "balance": int(bal or 0)}
        for code, cur, bal in conn.execute(
            text("SELECT code, currency, balance FROM ledger_accounts WHERE member_id = :m ORDER BY currency, code"),
            {"m": member_id},
        )
    ]
    postings = [
        {"ts": _dt(ts), "currency": cur, "amount": int(amount), "reason": reason, "playbook": pb}
        for ts, cur, amount, reason, pb in conn.execute(
            text("""SELECT t.ts, a.currency, p.amount, t.reason, t.playbook
                    FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                    JOIN ledger_transactions t ON t.id = p.transaction_id
                    WHERE a.member_id = :m ORDER BY t.ts DESC, p.id DESC LIMIT :lim"""),
            {"m": member_id, "lim": limit},
        )
    ]
    return accounts, postings


def export_of(state: ConsoleState, community: CommunitySettings, platform: str, uid: str) -> dict[str, Any]:
    """What ``qunyun members export`` writes: ``Engine.export_member`` (the same function)."""
    with state.lock:
        return state.engine.export_member(community.id, platform, uid)


def export_text(data: dict[str, Any]) -> str:
    """The export as the CLI prints it."""
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False)


def erase(state: ConsoleState, community: CommunitySettings, platform: str, uid: str) -> list[str]:
    """``Engine.erase_member`` (the path of ``qunyun members erase``); the playbooks that failed."""
    with state.lock:
        return state.engine.erase_member(community.id, platform, uid)


def archive_of(state: ConsoleState, community: CommunitySettings, uid: str) -> dict[str, Any] | None:
    """The digest playbook's talent archive of ``uid`` (read-only query), or None if digest is off."""
    if not enabled(community, "digest"):
        return None
    with state.lock:
        return state.engine.query(community.id, "digest", "archive", {"member": uid})


# ------------------------------------------------------------------ routes


def _options(page: Page) -> dict[str, Any]:
    from qunyun.analytics.value import ARCHETYPES

    return {
        "groups": sorted((g.key, g.name or g.key) for g in page.community.groups.values()),
        "levels": list(enumerate(level_names(page.community, page.lang))),
        "archetypes": [(k, v["label"].get(page.lang, k)) for k, v in ARCHETYPES.items()],
        "statuses": STATUSES,
    }


@router.get("/c/{community}/members")
def directory_page(page: Viewer) -> Response:
    q = page.request.query_params
    crit = criteria_from(q)
    admin = page.may("admin")
    fields = fields_of(page.community)
    sort = q.get("sort") if q.get("sort") in SORTS else "last_seen"
    desc = q.get("dir", "desc" if sort == "last_seen" else "asc") == "desc"
    try:
        number = max(1, min(100_000, int(q.get("page", "1"))))
    except ValueError:
        number = 1
    with page.read() as conn:
        found = directory(page.state, conn, page.community, crit, admin=admin, sort=sort, desc=desc,
                          offset=(number - 1) * PER_PAGE, limit=PER_PAGE, lang=page.lang)
    paging = page.paging(found.total, per_page=PER_PAGE, sorts=SORTS, default="last_seen")
    paging.sort, paging.desc = sort, desc
    return page.render(
        "members/directory.html", found=found, paging=paging, crit=crit, admin=admin, fields=fields,
        profile_on=enabled(page.community, "profile"), q=q, **_options(page),
    )


def _member_or_404(page: Page, conn: Connection, member_id: int) -> Profile:
    found = profile_of(page.state, conn, page.community, member_id, admin=page.may("admin"), lang=page.lang)
    if found is None:
        raise HTTPException(404, "not_found")
    return found


@router.get("/c/{community}/members/{member_id}")
def profile_page(page: Viewer, member_id: int) -> Response:
    from qunyun.analytics.value import ARCHETYPES, LEVEL_LABELS

    admin = page.may("admin")
    with page.read() as conn:
        prof = _member_or_404(page, conn, member_id)
        total, _ = records_of(conn, page.community.id, prof.user_id, limit=0)
        paging = page.paging(total, per_page=20)
        _, records = records_of(conn, page.community.id, prof.user_id, offset=paging.offset, limit=paging.per_page)
        _, moderation = records_of(conn, page.community.id, prof.user_id, playbooks=MODERATION_PLAYBOOKS, limit=50)
        weeks = weeks_of(conn, prof.id, as_of_day(conn, page.state, page.community))
        accounts, postings = ledger_of(conn, prof.id)
        _, levels = records_of(conn, page.community.id, prof.user_id, playbooks=("levels",), limit=20)
    archive = archive_of(page.state, page.community, prof.user_id) if not prof.erased else None
    cur = points_currency(page.community)
    value = None
    if prof.value is not None:
        score, vlevel, arch = prof.value
        value = {"score": score, "level": LEVEL_LABELS.get(vlevel, {}).get(page.lang, vlevel),
                 "archetype": ARCHETYPES.get(arch, {}).get("label", {}).get(page.lang, arch)}
    return page.render(
        "members/profile.html", prof=prof, records=records, paging=paging, moderation=moderation, weeks=weeks,
        accounts=[a for a in accounts if a["currency"] != cur], points_postings=[p for p in postings if p["currency"] == cur],
        money_postings=[p for p in postings if p["currency"] != cur], level_records=levels, archive=archive,
        admin=admin, fields=fields_of(page.community), value=value, currency=cur,
        max_week=max([w["messages"] for w in weeks] + [1]),
    )


@router.get("/c/{community}/members/{member_id}/export")
def export_page(page: Admin, member_id: int) -> Response:
    with page.read() as conn:
        row = member_row(conn, page.community.id, member_id)
    if row is None:
        raise HTTPException(404, "not_found")
    data = export_of(page.state, page.community, row[1], row[2])
    page.audit("member.export", target=str(member_id))
    return Response(
        export_text(data), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="member-{member_id}.json"'},
    )


@router.post("/c/{community}/members/{member_id}/erase")
def erase_page(page: Admin, member_id: int) -> Response:
    with page.read() as conn:
        row = member_row(conn, page.community.id, member_id)
    if row is None:
        raise HTTPException(404, "not_found")
    if row[5]:
        return page.redirect(f"members/{member_id}", msg="msg.done", note="already_erased")
    failed = erase(page.state, page.community, row[1], row[2])
    # the entry names the member by id only: it must hold nothing of the person
    page.audit("member.erase", target=str(member_id), before={"member_id": member_id, "erased": False},
               after={"member_id": member_id, "erased": True, "failed": failed})
    return page.redirect(f"members/{member_id}", msg=None if failed else "msg.done",
                         note="erase_failed" if failed else "erased")
