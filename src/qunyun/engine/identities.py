"""One person, several platform ids: linking identities and merging members.

A member is ``(community, platform, user_id)``. When an operator says that a
Telegram account and a Matrix account (or two QQ numbers) are one person,
the second id becomes an *identity* of the first member
(``member_identities``), and from then on:

- the engine resolves events from either id to the one member id (rollups,
  memberships, messages, aggregates);
- playbooks see the member under **one** user id, the member's own
  (``members.user_id``): the engine rewrites ``actor``, ``mentions``,
  ``inviter`` and ``by`` of events from a linked id before playbooks see
  them, so check-in streaks, points, levels and every other ``m:<uid>``
  state key keep counting for one person;
- actions a playbook addresses to that user id in a group on another
  platform are delivered to the member's id on that platform (``member`` and
  ``mentions`` of the action are translated);
- ``ctx.ledger.member_account`` gives the member's own account whatever the
  group's platform, and ``ctx.role`` looks at every linked id.

Linking an id that already has history merges its member into the other one,
in one transaction: every row that holds its member id moves over (summing
counters where both have a row for the same key, see :data:`MERGE_RULES`),
its ledger accounts join the other member's (postings move, balances add,
every transaction still sums to zero), records naming it are renamed, the
report aggregates are corrected, and each playbook's ``merge_member`` moves
its state. A merge cannot be undone; ``unlink`` only detaches an id for the
future (its later events make a new member). See ``docs/identities.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, and_, case, delete, exists, insert, select, text, update

from qunyun.core.errors import CommandError, Msg
from qunyun.store import models as m

if TYPE_CHECKING:
    from qunyun.config.model import CommunitySettings
    from qunyun.core.events import BaseEvent
    from qunyun.engine.engine import Engine

#: ``Engine.command(community, "members", ...)``: the engine's own member commands.
MEMBERS = "members"
COMMANDS = {
    "link": "Link two platform ids as one member (merging the second into the first).",
    "unlink": "Detach a linked platform id; its later events make a new member.",
}

_ROLE_RANK = {"owner": 4, "admin": 3, "assistant": 2, "member": 1, "guest": 0}


# ---------------------------------------------------------------- hot path


@dataclass(slots=True)
class Links:
    """One community's linked identities, in the shape the engine's hot path wants."""

    #: (platform, linked user id) -> the member's own user id, where they differ
    canonical: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (platform, the member's own user id) -> its linked id on that platform
    #: (platforms other than the member's own)
    native: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (platform, user id) -> (own platform, own user id), for every linked id and
    #: for the member's own id as written in a group of another platform
    owner: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    #: own user id -> every user id of the member (its own first)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def view(self, event: BaseEvent) -> BaseEvent:
        """``event`` as playbooks see it: linked ids replaced by the member's own id."""
        canon = self.canonical
        platform = event.platform
        update_: dict[str, Any] = {}
        own = canon.get((platform, event.actor.id))
        if own is not None:
            update_["actor"] = event.actor.model_copy(update={"id": own})
        mentions = getattr(event, "mentions", None)
        if mentions:
            mapped = [canon.get((platform, u), u) for u in mentions]
            if mapped != mentions:
                update_["mentions"] = mapped
        for name in ("inviter", "by"):
            value = getattr(event, name, None)
            if value is not None and (platform, value) in canon:
                update_[name] = canon[(platform, value)]
        return event.model_copy(update=update_) if update_ else event

    def address(self, action: dict[str, Any], platform: str) -> dict[str, Any]:
        """``action`` with the member's own ids replaced by its ids on ``platform``."""
        native = self.native
        member = action.get("member")
        mentions = action.get("mentions")
        changed: dict[str, Any] = {}
        if isinstance(member, str) and (platform, member) in native:
            changed["member"] = native[(platform, member)]
        if mentions:
            mapped = [native.get((platform, u), u) for u in mentions]
            if mapped != mentions:
                changed["mentions"] = mapped
        return {**action, **changed} if changed else action

    def role(self, community: CommunitySettings, uid: str) -> str:
        """The highest role configured for any id of the member."""
        best = community.role_of(uid)
        for other in self.ids.get(uid, ()):
            role = community.role_of(other)
            if _ROLE_RANK.get(role, 1) > _ROLE_RANK.get(best, 1):
                best = role
        return best


def load_links(conn: Connection) -> dict[str, Links]:
    """Every community's linked identities (a small table: read whole)."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    rows = conn.execute(
        select(it.c.community_id, it.c.platform, it.c.user_id, mt.c.platform, mt.c.user_id)
        .select_from(it.join(mt, mt.c.id == it.c.member_id))
        .order_by(it.c.linked_at, it.c.platform, it.c.user_id)
    ).all()
    out: dict[str, Links] = {}
    for cid, platform, uid, own_platform, own_uid in rows:
        links = out.setdefault(cid, Links())
        links.owner[(platform, uid)] = (own_platform, own_uid)
        if uid != own_uid:
            links.canonical[(platform, uid)] = own_uid
        if platform != own_platform:
            links.native.setdefault((platform, own_uid), uid)
            links.owner.setdefault((platform, own_uid), (own_platform, own_uid))
        links.ids.setdefault(own_uid, [own_uid]).append(uid)
    return out


# ------------------------------------------------------------------ merge


@dataclass(slots=True)
class Merge:
    """One member (``source``) being merged into another (``target``)."""

    conn: Connection
    community: str
    target: int
    source: int
    #: (platform, user id) of each, as on their members rows
    target_id: tuple[str, str]
    source_id: tuple[str, str]
    dialect: str


def _move(col: str) -> Callable[[Merge, Any], None]:
    def run(merge: Merge, table: Any) -> None:
        merge.conn.execute(update(table).where(table.c[col] == merge.source).values({col: merge.target}))

    run.__doc__ = f"{col}: the source's rows become the target's"
    return run


def combine(
    keys: tuple[str, ...],
    *,
    sums: tuple[str, ...] = (),
    mins: tuple[str, ...] = (),
    maxs: tuple[str, ...] = (),
    col: str = "member_id",
) -> Callable[[Merge, Any], None]:
    """A rule for a table unique on ``(col, *keys)``: where both members have a row
    for the same keys, the target's row takes the sum (``sums``), the earliest
    (``mins``) and the latest (``maxs``) of the two and the source's goes; the
    source's other rows move. Columns not named keep the target's value."""

    def run(merge: Merge, t: Any) -> None:
        other = t.alias("merge_source")
        same = and_(other.c[col] == merge.source, *(other.c[k] == t.c[k] for k in keys))

        def theirs(c: str) -> Any:
            return select(other.c[c]).where(same).scalar_subquery()

        values: dict[str, Any] = {c: t.c[c] + theirs(c) for c in sums}
        for c in (*mins, *maxs):
            better = theirs(c) < t.c[c] if c in mins else theirs(c) > t.c[c]
            values[c] = case((t.c[c].is_(None), theirs(c)), (better, theirs(c)), else_=t.c[c])
        conn = merge.conn
        if values:
            conn.execute(update(t).where(t.c[col] == merge.target, exists(select(1).where(same))).values(values))
        mine = t.alias("merge_target")
        clash = and_(mine.c[col] == merge.target, *(mine.c[k] == t.c[k] for k in keys))
        conn.execute(delete(t).where(t.c[col] == merge.source, exists(select(1).select_from(mine).where(clash))))
        conn.execute(update(t).where(t.c[col] == merge.source).values({col: merge.target}))

    return run


def _memberships(merge: Merge, t: Any) -> None:
    """One membership per group: the active one wins; the earliest join is kept."""
    conn = merge.conn
    rows = {
        (int(r["member_id"]), int(r["group_id"])): dict(r)
        for r in conn.execute(select(t).where(t.c.member_id.in_([merge.target, merge.source]))).mappings()
    }
    for (mid, gid), theirs in rows.items():
        if mid != merge.source:
            continue
        mine = rows.get((merge.target, gid))
        if mine is None:
            conn.execute(update(t).where(t.c.id == theirs["id"]).values(member_id=merge.target))
            continue
        first = min((mine, theirs), key=lambda r: (r["joined_at"] is None, r["joined_at"] or 0))
        current = mine if mine["status"] == "active" or theirs["status"] != "active" else theirs
        values = {
            "status": current["status"],
            "left_at": current["left_at"],
            "joined_at": first["joined_at"],
            "via": first["via"],
            "inviter_member_id": first["inviter_member_id"],
            "role": max((mine["role"], theirs["role"]), key=lambda r: _ROLE_RANK.get(r, 1)),
        }
        conn.execute(delete(t).where(t.c.id == theirs["id"]))
        conn.execute(update(t).where(t.c.id == mine["id"]).values(**values))


def _ledger(merge: Merge, t: Any) -> None:
    """The source's accounts join the target's: postings move, balances add.

    ``member:<platform>:<uid>:<currency>`` becomes the target's account of that
    currency (created by renaming if the target has none). Every transaction
    keeps its postings, so it still sums to zero, and the total is unchanged.
    """
    conn = merge.conn
    pt = m.table(m.Posting)
    tp, tu = merge.target_id
    sp, su = merge.source_id
    prefix = f"member:{sp}:{su}:"
    for aid, code, balance in conn.execute(
        select(t.c.id, t.c.code, t.c.balance).where(t.c.member_id == merge.source).order_by(t.c.id)
    ).all():
        new_code = f"member:{tp}:{tu}:{code[len(prefix):]}" if code.startswith(prefix) else code
        into = conn.execute(
            select(t.c.id, t.c.currency).where(t.c.community_id == merge.community, t.c.code == new_code)
        ).first() if new_code != code else None
        if into is None:
            conn.execute(update(t).where(t.c.id == aid).values(code=new_code, member_id=merge.target))
            continue
        conn.execute(update(pt).where(pt.c.account_id == aid).values(account_id=into[0]))
        conn.execute(update(t).where(t.c.id == into[0]).values(balance=t.c.balance + int(balance)))
        conn.execute(delete(t).where(t.c.id == aid))


def _rollups(merge: Merge, t: Any) -> None:
    """Sum the counters of days both members have; correct the aggregates beside them.

    ``group_days``, ``community_days`` and ``retention_cells`` count *members*
    (speakers, people who checked in, weekly cohorts): two rows that become
    one count once. ``member_groups`` is rebuilt for the target from its rollups.
    """
    conn = merge.conn
    a, b = t.alias("a"), t.alias("b")
    both = conn.execute(
        select(a.c.group_id, a.c.day, a.c.messages, a.c.checkins, b.c.messages, b.c.checkins)
        .select_from(a.join(b, and_(a.c.group_id == b.c.group_id, a.c.day == b.c.day)))
        .where(a.c.member_id == merge.target, b.c.member_id == merge.source)
    ).all()
    gd = m.table(m.GroupDay)
    for gid, day, am, ac, bm, bc in both:
        speakers = 1 if am > 0 and bm > 0 else 0
        checkins = 1 if ac > 0 and bc > 0 else 0
        if speakers or checkins:
            conn.execute(
                update(gd)
                .where(gd.c.group_id == gid, gd.c.day == day)
                .values(speakers=gd.c.speakers - speakers, checkins=gd.c.checkins - checkins)
            )

    def spoke(mid: int) -> set[date]:
        return {
            _day(r[0])
            for r in conn.execute(select(t.c.day).where(t.c.member_id == mid, t.c.messages > 0).distinct())
        }

    days_a, days_b = spoke(merge.target), spoke(merge.source)
    cd = m.table(m.CommunityDay)
    for day in sorted(days_a & days_b):
        conn.execute(
            update(cd).where(cd.c.community_id == merge.community, cd.c.day == day).values(speakers=cd.c.speakers - 1)
        )
    weeks_a = {_monday(d) for d in days_a}
    weeks_b = {_monday(d) for d in days_b}
    if weeks_a and weeks_b:
        delta: dict[tuple[date, date], int] = {}
        cohort_a, cohort_b = min(weeks_a), min(weeks_b)
        for week in weeks_a:
            delta[(cohort_a, week)] = delta.get((cohort_a, week), 0) - 1
        for week in weeks_b:
            delta[(cohort_b, week)] = delta.get((cohort_b, week), 0) - 1
        cohort = min(cohort_a, cohort_b)
        for week in weeks_a | weeks_b:
            delta[(cohort, week)] = delta.get((cohort, week), 0) + 1
        rc = m.table(m.RetentionCell)
        for (c, w), n in sorted(delta.items()):
            if n == 0:
                continue
            where = and_(rc.c.community_id == merge.community, rc.c.cohort == c, rc.c.week == w)
            if conn.execute(select(rc.c.speakers).where(where)).first() is None:
                conn.execute(insert(rc).values(community_id=merge.community, cohort=c, week=w, speakers=n))
            else:
                conn.execute(update(rc).where(where).values(speakers=rc.c.speakers + n))
    combine(("group_id", "day"), sums=m.ROLLUP_COUNTERS)(merge, t)


def _member_groups(merge: Merge, t: Any) -> None:
    """Rebuilt for the target from its (already merged) rollups: exact, and few rows."""
    conn = merge.conn
    conn.execute(delete(t).where(t.c.member_id.in_([merge.target, merge.source])))
    conn.execute(text(m.aggregate_sql(merge.dialect, where=f"member_id = {int(merge.target)}")[1]))


def _member_months(merge: Merge, t: Any) -> None:
    """Rebuilt for the target from its (already merged) rollups, like member_groups."""
    from qunyun.store.member_months import rebuild

    merge.conn.execute(delete(t).where(t.c.member_id.in_([merge.target, merge.source])))
    rebuild(merge.conn, where=f"member_id = {int(merge.target)}")


def _checkin_streaks(merge: Merge, t: Any) -> None:
    """Rebuilt for the target from its (already merged) rollups."""
    from qunyun.store.member_months import streaks_sql

    merge.conn.execute(delete(t).where(t.c.member_id.in_([merge.target, merge.source])))
    merge.conn.exec_driver_sql(streaks_sql(merge.dialect, where=f"member_id = {int(merge.target)}"))


def _directory(merge: Merge, t: Any) -> None:
    """The console's search rows of both members are dropped; the console builds the target's again."""
    merge.conn.execute(delete(t).where(t.c.member_id.in_([merge.target, merge.source])))


#: Every column that holds a member id, and what a merge does with it. A new
#: table with a column pointing at ``members.id`` must be listed here:
#: ``tests/test_identities.py`` walks the schema and fails otherwise. Rules
#: run in this order (rollups before member_groups, which is rebuilt from them).
MERGE_RULES: dict[tuple[str, str], Callable[[Merge, Any], None]] = {
    ("memberships", "member_id"): _memberships,
    ("memberships", "inviter_member_id"): _move("inviter_member_id"),
    ("messages", "member_id"): _move("member_id"),
    ("ledger_accounts", "member_id"): _ledger,
    ("rollups", "member_id"): _rollups,
    ("member_groups", "member_id"): _member_groups,
    ("member_months", "member_id"): _member_months,
    ("checkin_streaks", "member_id"): _checkin_streaks,
    ("member_identities", "member_id"): _move("member_id"),
    ("member_directory", "member_id"): _directory,
}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


# --------------------------------------------------------------- commands


def parse_identity(text_: str) -> tuple[str, str]:
    """``PLATFORM:USER_ID`` → (platform, user id); the user id may hold colons (Matrix)."""
    platform, sep, uid = text_.partition(":")
    if not sep or not platform or not uid:
        raise CommandError(
            Msg("{text!r} is not PLATFORM:USER_ID", text=text_),
            hint=Msg("e.g. telegram:123456789, matrix:@alice:example.org, onebot:10001"),
        )
    return platform, uid


def _identity_arg(args: Mapping[str, Any], key: str) -> tuple[str, str]:
    value = args.get(key)
    if isinstance(value, str):
        return parse_identity(value)
    if isinstance(value, Mapping) and isinstance(value.get("platform"), str) and isinstance(value.get("user_id"), str):
        return value["platform"], value["user_id"]
    raise CommandError(
        Msg('the command needs {key!r}: "PLATFORM:USER_ID" or {mapping}', key=key,
            mapping='{"platform": …, "user_id": …}'),
        hint=Msg("e.g. {example}", example='{"into": "matrix:@alice:example.org", "other": "telegram:123456789"}'),
    )


def _lookup(conn: Connection, cid: str, platform: str, uid: str) -> tuple[int, bool] | None:
    """(member id, is a linked identity) of ``platform:uid`` in community ``cid``."""
    it = m.table(m.MemberIdentity)
    row = conn.execute(
        select(it.c.member_id).where(it.c.community_id == cid, it.c.platform == platform, it.c.user_id == uid)
    ).first()
    if row is not None:
        return int(row[0]), True
    mt = m.table(m.Member)
    row = conn.execute(
        select(mt.c.id).where(mt.c.community_id == cid, mt.c.platform == platform, mt.c.user_id == uid)
    ).first()
    return (int(row[0]), False) if row is not None else None


def _member_row(conn: Connection, mid: int) -> dict[str, Any]:
    mt = m.table(m.Member)
    row = conn.execute(select(mt).where(mt.c.id == mid)).mappings().first()
    assert row is not None
    return dict(row)


def _check_platform(community: CommunitySettings, platform: str, text_: str) -> None:
    platforms = sorted({g.platform for g in community.groups.values()})
    if platform not in platforms:
        raise CommandError(
            Msg("{identity}: community {community!r} has no groups on platform {platform!r}",
                identity=text_, community=community.id, platform=platform),
            hint=Msg("the platforms of its groups: {platforms}",
                     platforms=", ".join(platforms) or Msg("none yet: add groups first")),
        )


def _elsewhere(conn: Connection, cid: str, platform: str, uid: str) -> list[str]:
    mt = m.table(m.Member)
    return sorted(
        {
            str(r[0])
            for r in conn.execute(
                select(mt.c.community_id).where(mt.c.platform == platform, mt.c.user_id == uid, mt.c.community_id != cid)
            )
        }
    )


def member_command(
    engine: Engine,
    community: str,
    name: str,
    args: Mapping[str, Any],
    *,
    actor: str,
    id: str | None,
) -> dict[str, Any]:
    """``Engine.command(community, "members", name, args)``: one transaction, audited,
    idempotent by ``id`` (a repeat returns ``{"duplicate": True}``)."""
    settings = engine.settings.communities.get(community)
    if settings is None:
        raise CommandError(
            Msg("unknown community {community!r}", community=community),
            hint=Msg("known: {communities}", communities=", ".join(sorted(engine.settings.communities))),
        )
    if name not in COMMANDS:
        raise CommandError(
            Msg("the engine has no member command {command!r}", command=name),
            hint=Msg("known: {commands}", commands=", ".join(sorted(COMMANDS))),
        )
    payload = dict(args)
    try:
        blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise CommandError(Msg("command arguments must be JSON values ({error})", error=str(exc))) from None
    now = engine.clock.now()
    if id is None:
        engine._commands += 1
        seed = f"{MEMBERS}\0{name}\0{actor}\0{now.isoformat()}\0{engine._commands}\0".encode() + blob
        id = f"cmd-{hashlib.sha256(seed).hexdigest()[:16]}"
    cause = f"cmd:{id}"
    groups = list(settings.groups.values())
    chosen = next((g for g in groups if g.admin), None) or next(iter(groups), None)
    rt = m.table(m.Record)
    with engine.transaction() as conn:
        done = conn.execute(
            select(rt.c.id)
            .where(rt.c.community_id == community, rt.c.playbook == MEMBERS)
            .where(rt.c.kind == "command", rt.c.cause == cause)
            .limit(1)
        ).first()
        if done is not None:
            return {"duplicate": True}
        engine._flush()
        if name == "link":
            result = _link(engine, conn, settings, payload, actor, cause)
        else:
            result = _unlink(engine, conn, settings, payload)
        # the record's data names both ids, so a member's export lists the command
        conn.execute(
            insert(rt).values(
                community_id=community,
                group_key=chosen.key if chosen is not None else "",
                playbook=MEMBERS,
                kind="command",
                member=None,
                ts=now,
                cause=cause,
                data={"actor": actor, "name": name, "args": payload},
            )
        )
        engine._tx_wrote = True
    # every cache may hold the merged member: read it all again (other processes
    # notice through the community epoch, which this transaction bumped)
    engine._reset_caches()
    return result


def _link(
    engine: Engine,
    conn: Connection,
    community: CommunitySettings,
    args: Mapping[str, Any],
    actor: str,
    cause: str,
) -> dict[str, Any]:
    cid = community.id
    into = _identity_arg(args, "into")
    other = _identity_arg(args, "other")
    into_text, other_text = ":".join(into), ":".join(other)
    for ident, txt in ((into, into_text), (other, other_text)):
        _check_platform(community, ident[0], txt)
    if into == other:
        raise CommandError(
            Msg("cannot link {identity} to itself", identity=into_text),
            hint=Msg("give two different ids: the member's, then the other one"),
        )
    found_into = _lookup(conn, cid, *into)
    found_other = _lookup(conn, cid, *other)
    for ident, txt, found in ((into, into_text, found_into), (other, other_text, found_other)):
        if found is None:
            elsewhere = _elsewhere(conn, cid, *ident)
            if elsewhere:
                raise CommandError(
                    Msg("{identity} is not a member of community {community!r} (it is one of {communities}): "
                        "members of different communities cannot be linked",
                        identity=txt, community=cid, communities=", ".join(elsewhere)),
                    hint=Msg("link ids within one community: --community {community}", community=elsewhere[0]),
                )
        elif _member_row(conn, found[0])["erased"]:
            raise CommandError(
                Msg("{identity} belongs to a member whose data was erased; an erased member cannot be linked",
                    identity=txt),
                hint=Msg("erasure is final: the person starts afresh under a new id"),
            )
    if found_into is not None and found_other is not None and found_into[0] == found_other[0]:
        return {"linked": False, "already": True, "member": found_into[0]}
    if found_other is not None and found_other[1]:
        holder = _member_row(conn, found_other[0])
        holder_text = f"{holder['platform']}:{holder['user_id']}"
        raise CommandError(
            Msg("{identity} is already linked to another member ({holder})", identity=other_text, holder=holder_text),
            hint=Msg("link {holder} itself instead, or unlink {identity} first", holder=holder_text,
                     identity=other_text),
        )
    if found_into is None:
        # neither seen yet, or only the other one: the first id becomes a member now
        engine._member_id(cid, into[0], into[1], None, None)
        engine._flush_members()
        found_into = _lookup(conn, cid, *into)
        assert found_into is not None
    target = _member_row(conn, found_into[0])
    own = (str(target["platform"]), str(target["user_id"]))
    # the member's own id written in a group of the other platform must not be someone else there
    if other[0] != own[0]:
        clash = _lookup(conn, cid, other[0], own[1])
        if clash is not None and clash[0] != target["id"] and (found_other is None or clash[0] != found_other[0]):
            raise CommandError(
                Msg("{identity} is another member, with the same user id as {own}",
                    identity=f"{other[0]}:{own[1]}", own=f"{own[0]}:{own[1]}"),
                hint=Msg("playbooks would mix the two up; link that id too if it is the same person"),
            )
    now = engine.clock.now()
    merged: dict[str, Any] = {}
    if found_other is not None:
        merged = _merge(engine, conn, community, target, _member_row(conn, found_other[0]))
    conn.execute(
        insert(m.table(m.MemberIdentity)).values(
            community_id=cid, platform=other[0], user_id=other[1], member_id=int(target["id"]),
            linked_at=now, linked_by=actor,
        )
    )
    # the merged playbook state is written with the command; later events see the link.
    # Only a member with history has state to move: a never-seen id's user id may
    # be someone else's on another platform (playbook state keys carry no platform).
    engine._links = load_links(conn)
    engine._links_loaded = True
    if found_other is not None and other[1] != own[1]:
        merged["playbooks"] = _merge_playbooks(engine, conn, community, other[1], own[1], cause)
    return {
        "linked": True,
        "member": int(target["id"]),
        "into": f"{own[0]}:{own[1]}",
        "other": other_text,
        "merged": found_other is not None,
        **merged,
    }


def _merge(
    engine: Engine, conn: Connection, community: CommunitySettings, target: dict[str, Any], source: dict[str, Any]
) -> dict[str, Any]:
    """Move everything of member ``source`` to member ``target``; delete ``source``."""
    merge = Merge(
        conn, community.id, int(target["id"]), int(source["id"]),
        (str(target["platform"]), str(target["user_id"])), (str(source["platform"]), str(source["user_id"])),
        conn.dialect.name,
    )
    moved: dict[str, int] = {}
    for (table_name, col), rule in MERGE_RULES.items():
        t = m.Base.metadata.tables[table_name]
        n = conn.execute(select(text("count(*)")).select_from(t).where(t.c[col] == merge.source)).scalar_one()
        moved[f"{table_name}.{col}"] = int(n)
        if n:
            rule(merge, t)
    # the target's console directory row is stale even when the source had none: drop it too
    _directory(merge, m.table(m.MemberDirectoryRow))
    # records name members by user id
    if merge.source_id[1] != merge.target_id[1]:
        rt = m.table(m.Record)
        conn.execute(
            update(rt)
            .where(rt.c.community_id == community.id, rt.c.member == merge.source_id[1])
            .values(member=merge.target_id[1])
        )
    mt = m.table(m.Member)
    firsts = [target["first_seen_at"], source["first_seen_at"]]
    lasts = [target["last_seen_at"], source["last_seen_at"]]
    conn.execute(
        update(mt)
        .where(mt.c.id == merge.target)
        .values(
            first_seen_at=min(firsts),
            last_seen_at=max(lasts),
            title=target["title"] or source["title"],
            name=target["name"] or source["name"],
        )
    )
    conn.execute(delete(mt).where(mt.c.id == merge.source))
    # the engine's caches held the source member, its accounts and message authors
    engine._accounts.clear()
    engine._members.clear()
    engine._members_loaded = False
    engine._authors.clear()
    return {"moved": {k: v for k, v in moved.items() if v}}


def _merge_playbooks(
    engine: Engine, conn: Connection, community: CommunitySettings, source: str, target: str, cause: str
) -> dict[str, Any]:
    """Each enabled playbook's ``merge_member(ctx, source, target)``; what it could not merge."""
    from qunyun.engine.context import Context

    out: dict[str, Any] = {}
    done: set[str] = set()
    for group in community.groups.values():
        for pid in group.playbooks:
            if pid in done:
                continue
            done.add(pid)
            pb = engine.playbook(pid)
            layer = engine._layer(pid, f"{cause}:merge", community.id)
            ctx = Context(engine, pb, layer, group, engine.clock.now())
            kept: list[str] = []

            def call(c: Context, pair: tuple[str, str], pb: Any = pb, kept: list[str] = kept) -> None:
                kept.extend(pb.merge_member(c, *pair) or ())

            if not engine._run(call, ctx, (source, target), group):
                out[pid] = {"failed": True}
            elif kept:
                out[pid] = {"kept_target": kept}
    return out


def _unlink(engine: Engine, conn: Connection, community: CommunitySettings, args: Mapping[str, Any]) -> dict[str, Any]:
    ident = _identity_arg(args, "id")
    txt = ":".join(ident)
    it = m.table(m.MemberIdentity)
    where = and_(it.c.community_id == community.id, it.c.platform == ident[0], it.c.user_id == ident[1])
    row = conn.execute(select(it.c.member_id).where(where)).first()
    if row is None:
        found = _lookup(conn, community.id, *ident)
        if found is not None:
            raise CommandError(
                Msg("{identity} is not a linked id in community {community!r}", identity=txt, community=community.id),
                hint=Msg("it is a member's own id; link ids to it, or erase the member"),
            )
        raise CommandError(
            Msg("{identity} is not a linked id in community {community!r}", identity=txt, community=community.id),
            hint=Msg("see the linked ids with: qunyun members identities MEMBER"),
        )
    conn.execute(delete(it).where(where))
    return {"unlinked": txt, "member": int(row[0])}


# ----------------------------------------------------------------- reading


def identities(conn: Connection, community: str, platform: str, uid: str) -> dict[str, Any] | None:
    """The member ``platform:uid`` belongs to, with every id of it (its own first)."""
    found = _lookup(conn, community, platform, uid)
    if found is None:
        return None
    row = _member_row(conn, found[0])
    it = m.table(m.MemberIdentity)
    linked = conn.execute(
        select(it.c.platform, it.c.user_id, it.c.linked_at, it.c.linked_by)
        .where(it.c.member_id == found[0])
        .order_by(it.c.linked_at, it.c.platform, it.c.user_id)
    ).all()
    return {
        "member": int(row["id"]),
        "name": row["name"],
        "erased": bool(row["erased"]),
        "ids": [
            {"platform": row["platform"], "user_id": row["user_id"], "own": True, "linked_at": None,
             "linked_by": None},
            *(
                {"platform": p, "user_id": u, "own": False, "linked_at": at.isoformat(), "linked_by": by}
                for p, u, at, by in linked
            ),
        ],
    }


def own_id(conn: Connection, community: str, platform: str, uid: str) -> tuple[str, str]:
    """The member's own ``(platform, user id)`` if ``platform:uid`` is a linked id, else itself."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    row = conn.execute(
        select(mt.c.platform, mt.c.user_id)
        .select_from(it.join(mt, mt.c.id == it.c.member_id))
        .where(it.c.community_id == community, it.c.platform == platform, it.c.user_id == uid)
    ).first()
    return (str(row[0]), str(row[1])) if row is not None else (platform, uid)


def linked_ids(conn: Connection, community: str, platform: str, uid: str) -> list[tuple[str, str]]:
    """The ids linked to the member whose own id is ``platform:uid``."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    return [
        (str(p), str(u))
        for p, u in conn.execute(
            select(it.c.platform, it.c.user_id)
            .select_from(it.join(mt, mt.c.id == it.c.member_id))
            .where(mt.c.community_id == community, mt.c.platform == platform, mt.c.user_id == uid)
            .order_by(it.c.platform, it.c.user_id)
        )
    ]


def member_of(conn: Connection, community: str, platform: str, uid: str) -> tuple[int, str | None] | None:
    """(member id, name) of the member ``platform:uid`` is a linked id of."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    row = conn.execute(
        select(mt.c.id, mt.c.name)
        .select_from(it.join(mt, mt.c.id == it.c.member_id))
        .where(it.c.community_id == community, it.c.platform == platform, it.c.user_id == uid)
    ).first()
    return (int(row[0]), row[1]) if row is not None else None


def forget(conn: Connection, community: str, platform: str, uid: str) -> None:
    """Privacy, erasure: the links of the member whose own id is ``platform:uid`` go."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    mid = select(mt.c.id).where(mt.c.community_id == community, mt.c.platform == platform, mt.c.user_id == uid)
    conn.execute(delete(it).where(it.c.community_id == community, it.c.member_id.in_(mid.scalar_subquery())))


def export_linked(
    engine: Engine, conn: Connection, community: str, platform: str, uid: str, out: dict[str, Any]
) -> None:
    """Privacy, access: the member's linked ids, and the raw events each of them sent."""
    it = m.table(m.MemberIdentity)
    mt = m.table(m.Member)
    rows = conn.execute(
        select(it.c.platform, it.c.user_id, it.c.linked_at, it.c.linked_by)
        .select_from(it.join(mt, mt.c.id == it.c.member_id))
        .where(mt.c.community_id == community, mt.c.platform == platform, mt.c.user_id == uid)
        .order_by(it.c.linked_at, it.c.platform, it.c.user_id)
    ).all()
    out["identities"] = [
        {"platform": p, "user_id": u, "linked_at": at.isoformat(), "linked_by": by} for p, u, at, by in rows
    ]
    et = m.table(m.EventRow)
    for p, u, _, _ in rows:
        groups = engine._member_groups(conn, community, p)
        if not groups:
            continue
        out["events"].extend(
            {"group": groups[int(r["group_id"])], "id": r["event_id"], "type": r["type"], "ts": r["ts"].isoformat(),
             "status": r["status"], "payload": r["payload"], "platform": p, "user_id": u}
            for r in conn.execute(
                select(et).where(et.c.group_id.in_(list(groups)), et.c.actor == u).order_by(et.c.ts, et.c.seq)
            ).mappings()
        )
