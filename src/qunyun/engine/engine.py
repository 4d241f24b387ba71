"""The engine: events in, playbooks decide, actions out — one transaction.

For each event, in ``ts`` order per group:

1. de-duplicate by ``(platform, id)``;
2. fire every scheduled job due at or before the event's time;
3. keep the core records (member, membership, message, rollups);
4. run each enabled playbook that handles this event type in its own layer
   (a playbook that raises is rolled back alone and the failure recorded);
5. let ledger watchers (``levels``) see the postings just made;
6. write the event row.

A batch of events shares one database transaction (group commit): every
event's effects commit together or not at all, and a crash loses only the
uncommitted batch, which the next run handles again (duplicates are skipped
by id). ``batch_size=1`` gives one transaction per event (live default).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import operator
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import Engine as SAEngine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from qunyun.config.model import CommunitySettings, GroupSettings, Settings, auto_group
from qunyun.core.clock import Clock, FakeClock
from qunyun.core.errors import CommandError, Msg
from qunyun.core.events import BaseEvent
from qunyun.engine import identities
from qunyun.engine.context import Command, Context, JobCall, Posting
from qunyun.engine.identities import Links, load_links
from qunyun.engine.playbook import Playbook
from qunyun.engine.registry import Registry, default_registry
from qunyun.engine.scheduler import next_due
from qunyun.engine.unit import DELETED, MISSING, Layer, PendingJob, PendingTxn, Unit
from qunyun.store import member_months as mm_
from qunyun.store import models as m
from qunyun.store.bulk import Bulk
from qunyun.store.types import JSONText

log = logging.getLogger("qunyun.engine")

_MEDIA = frozenset({"image", "voice", "video", "file", "sticker"})
_COUNTERS = m.ROLLUP_COUNTERS
_ZERO_COUNTS = dict.fromkeys(_COUNTERS, 0)
_NO_ARG: Any = object()

_MEMBER_COLS = ("id", "community_id", "platform", "user_id", "name", "first_seen_at", "last_seen_at", "erased")
_EVENT_COLS = ("platform", "event_id", "group_id", "type", "ts", "actor", "status", "payload")
_MESSAGE_COLS = (
    "group_id", "member_id", "msg_id", "event_id", "ts", "content_type", "text", "reply_to", "mentions", "status",
)
_ROLLUP_COLS = ("group_id", "member_id", "day", "community_id", *_COUNTERS)
_STATE_COLS = ("community_id", "playbook", "key", "value", "updated_at")
_GROUP_DAY_COLS = ("group_id", "day", "community_id", "messages", "speakers", "joins", "leaves", "checkins")
_MEMBER_GROUP_COLS = (
    "group_id", "member_id", "community_id", "first_day", "first_message_day", "last_message_day",
    "messages", "checkin_days",
)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _to_date(value: Any) -> date:
    """A DATE column's value as a date (SQLite hands back ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
_ACTION_COLS = (
    "id", "ts", "community_id", "group_key", "platform", "type", "playbook", "cause", "payload",
    "status", "attempts", "downgraded_from",
)
_RECORD_COLS = ("community_id", "group_key", "playbook", "kind", "member", "ts", "cause", "data")
_TXN_COLS = ("id", "community_id", "ts", "currency", "reason", "playbook", "cause")
_POSTING_COLS = ("transaction_id", "account_id", "amount")


_DOWNGRADE = {
    "zh-CN": "⚠️ {platform} 不支持机器人执行「{what}」（{playbook}，群 {group}）：{detail}。请管理员手动处理。",
    "en": "⚠️ {platform} does not let the bot {what} ({playbook}, group {group}): {detail}. Please do it by hand.",
}
_WHAT = {
    "zh-CN": {"delete": "撤回消息", "remove": "移出成员", "mute": "禁言", "invite": "邀请", "pin": "置顶",
              "direct": "私信", "create_group": "建群", "dissolve_group": "解散群", "send": "发消息"},
    "en": {"delete": "delete a message", "remove": "remove a member", "mute": "mute a member",
           "invite": "invite a member", "pin": "pin a message", "direct": "send a direct message",
           "create_group": "create a group", "dissolve_group": "dissolve the group", "send": "post"},
}


def _downgrade_text(action: dict[str, Any], group: GroupSettings) -> str:
    """The note admins get when the platform cannot do what a playbook decided."""
    from qunyun.core.text import clip

    locale = group.community.locale if group.community.locale in _DOWNGRADE else "en"
    parts = []
    for key in ("member", "msg_id", "reason", "text", "until", "template"):
        if action.get(key):
            value = action[key].isoformat() if isinstance(action[key], datetime) else str(action[key])
            parts.append(f"{key}={clip(value, 80)}")
    return _DOWNGRADE[locale].format(
        platform=group.platform,
        what=_WHAT[locale].get(action["type"], action["type"]),
        playbook=action["playbook"],
        group=group.name,
        detail=", ".join(parts) or "-",
    )


def _clean(text: str) -> str:
    """Text as every database can store it: PostgreSQL refuses NUL characters."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class _Answered(Exception):
    """Carries a read-only command's answer out of the transaction it rolls back."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("read-only command answered")
        self.result = result


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event."""

    key: str
    #: handled | late | duplicate | rejected | failed
    status: str
    detail: str = ""


class _LRU(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)


class Engine:
    """Runs events through playbooks against the store.

    ``capabilities`` maps a platform to the action types its adapter can do;
    other actions are downgraded to ``notify_admins`` and the downgrade is
    recorded. ``None`` means every platform can do everything (replay, sim).
    """

    def __init__(
        self,
        db: SAEngine,
        settings: Settings,
        *,
        clock: Clock,
        registry: Registry | None = None,
        capabilities: Mapping[str, frozenset[str]] | None = None,
        batch_size: int = 1,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.registry = registry or default_registry()
        self._commands = 0
        self.capabilities = capabilities
        self.batch_size = max(1, batch_size)
        self._drives_clock = isinstance(clock, FakeClock)
        self._playbooks: dict[str, Playbook] = {}
        self._dispatch_cache: dict[tuple[int, str], list[tuple[str, Playbook]]] = {}
        self._group_by_key: dict[tuple[str, str], GroupSettings] = {}
        self._conn: Connection | None = None
        self._tx_wrote = False
        self._unit = Unit()
        self._upsert = postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert
        self._bulk = Bulk(db.dialect.name)
        self._build_statements()
        self._reset_caches()
        self._jobs_loaded = False
        self._setup_done: set[tuple[str, str]] = set()
        self._written = 0
        self._analyze_at = 10_000
        self.stats: dict[str, int] = {
            "handled": 0,
            "late": 0,
            "duplicate": 0,
            "rejected": 0,
            "failed": 0,
            "jobs": 0,
            "actions": 0,
            "playbook_failures": 0,
        }
        #: Optional hook: called with each committed batch's action rows.
        self.on_commit: Callable[[list[dict[str, Any]]], None] | None = None

    # ------------------------------------------------------------ statements

    #: Up to this many members are loaded into memory when a batch starts.
    MEMBER_PRELOAD_LIMIT = 500_000

    def _build_statements(self) -> None:
        """Statements built once: executing them hits SQLAlchemy's compiled cache."""
        mt = m.table(m.Member)
        self._q_member = select(mt.c.id, mt.c.name, mt.c.title).where(
            mt.c.community_id == bindparam("c"), mt.c.platform == bindparam("p"), mt.c.user_id == bindparam("u")
        )
        st = m.table(m.PlaybookState)
        self._q_state = select(st.c.value).where(
            st.c.community_id == bindparam("c"), st.c.playbook == bindparam("p"), st.c.key == bindparam("k")
        )
        self._q_state_all = select(st.c.key, st.c.value).where(
            st.c.community_id == bindparam("c"), st.c.playbook == bindparam("p")
        )
        msg = m.table(m.MessageRow)
        self._q_author = (
            select(msg.c.member_id)
            .where(msg.c.group_id == bindparam("g"), msg.c.msg_id == bindparam("mid"))
            .limit(1)
        )
        self._membership_upserts: dict[frozenset[str], Any] = {}

    def _membership_stmt(self, fields: frozenset[str]) -> Any:
        stmt = self._membership_upserts.get(fields)
        if stmt is None:
            ms = m.table(m.Membership)
            ins = self._upsert(ms)
            stmt = ins.on_conflict_do_update(
                index_elements=[ms.c.group_id, ms.c.member_id],
                set_={f: ins.excluded[f] for f in fields if f not in ("group_id", "member_id", "role")},
            )
            self._membership_upserts[fields] = stmt
        return stmt

    # ------------------------------------------------------------------ caches

    def _reset_caches(self) -> None:
        self._groups: dict[tuple[str, str], tuple[int, datetime | None]] = {}
        self._members: dict[tuple[str, str, str], list[Any]] = {}
        self._state: dict[tuple[str, str, str], Any] = {}
        self._state_loaded: set[tuple[str, str]] = set()
        self._titles: dict[tuple[str, str, str], datetime] = {}
        self._member_id_next: int | None = None
        self._member_id_pool: list[int] = []
        self._members_loaded = False
        #: (community, code) -> [account id, balance, currency]
        self._accounts: dict[tuple[str, str], list[Any]] = {}
        self._authors: _LRU = _LRU(200_000)
        self._communities_ready = False
        self._jobs: dict[str, PendingJob] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._jobs_loaded = False
        self._savepoints: dict[int, Any] = {}
        #: community -> the epoch this engine last saw (None: not read yet)
        self._epochs: dict[str, int] | None = None
        #: community -> its linked platform ids (docs/identities.md); only communities that have some
        self._links: dict[str, Links] = {}
        self._links_loaded = False

    def playbook(self, pid: str) -> Playbook:
        found = self._playbooks.get(pid)
        if found is None:
            found = self.registry[pid]()
            self._playbooks[pid] = found
        return found

    # ------------------------------------------------------------- transaction

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Open the batch transaction (reentrant); commit at the outermost exit."""
        if self._conn is not None:
            yield self._conn
            return
        conn = self.db.connect()
        conn.begin()
        self._conn = conn
        self._tx_wrote = False
        self._member_id_next = None
        try:
            self._prepare()
            yield conn
            written = len(self._unit.event_keys)
            self._flush()
            if self._tx_wrote:
                self._bump_epochs(conn)
            actions = self._unit.delivered
            conn.commit()
            self._after_commit(written)
            if self.on_commit is not None and actions:
                self.on_commit(actions)
        except BaseException:
            try:
                conn.rollback()
            finally:
                self._unit = Unit()
                self._reset_caches()
            raise
        finally:
            self._conn = None
            self._unit = Unit()
            self._savepoints.clear()
            conn.close()

    #: Tables whose statistics steer the engine's own queries.
    HOT_TABLES = ("events", "messages", "members", "rollups", "playbook_state", "ledger_accounts")

    def _after_commit(self, written: int) -> None:
        """PostgreSQL: refresh planner statistics each time our writes double.

        The de-duplication and lookup queries need an index plan; on a table
        that grew quickly since its last ANALYZE (autovacuum off, or not yet
        run) the planner may pick a scan and every batch slows down as the
        table grows. ANALYZE samples, so it costs a fraction of a second.
        """
        if self._bulk.sqlite or not written:
            return
        self._written += written
        if self._written < self._analyze_at:
            return
        self._analyze_at = self._written * 2
        with self.db.connect() as conn:
            for table in self.HOT_TABLES:
                conn.exec_driver_sql(f"ANALYZE {table}")
            conn.commit()

    def _prepare(self) -> None:
        conn = self._conn
        assert conn is not None
        if self._epochs is not None and self._read_epochs(conn) != self._epochs:
            # another process wrote (an operator's command from the CLI, say):
            # what we cached may be stale, so read it all again
            log.info("the store was changed by another process: reloading the engine's caches")
            self._reset_caches()
        if not self._communities_ready:
            existing = {r[0] for r in conn.execute(select(m.Community.id))}
            for c in self.settings.communities.values():
                if c.id not in existing:
                    conn.execute(
                        insert(m.Community).values(
                            id=c.id,
                            name=c.name,
                            timezone=c.timezone,
                            locale=c.locale,
                            created_at=self.clock.now(),
                        )
                    )
            self._communities_ready = True
        if self._epochs is None:
            self._epochs = self._read_epochs(conn)
        if not self._links_loaded:
            self._links = load_links(conn)
            self._links_loaded = True
        if not self._members_loaded:
            mt = m.table(m.Member)
            n = conn.execute(select(func.count()).select_from(mt)).scalar_one()
            if n <= self.MEMBER_PRELOAD_LIMIT:
                for row in conn.execute(
                    select(mt.c.community_id, mt.c.platform, mt.c.user_id, mt.c.id, mt.c.name, mt.c.title)
                ):
                    self._members[(row[0], row[1], row[2])] = [int(row[3]), row[4], row[5]]
                self._members_loaded = True
        if not self._jobs_loaded:
            self._jobs = {}
            self._heap = []
            for job_row in conn.execute(select(m.table(m.Job))).mappings():
                job = PendingJob(**dict(job_row))
                self._jobs[job.id] = job
                self._heap.append((job.due_at, job.id))
            heapq.heapify(self._heap)
            self._jobs_loaded = True

    # -------------------------------------------------------------- public API

    def handle(self, event: BaseEvent) -> Outcome:
        """Handle one event in its own transaction."""
        return self.handle_many([event])[0]

    def handle_many(self, events: Sequence[BaseEvent]) -> list[Outcome]:
        """Handle events in order, ``batch_size`` per transaction.

        If a batch fails to commit (a database error), it is rolled back, the
        caches are reloaded, and its events are handled again one transaction
        each, so one bad event cannot take its neighbours down; an event that
        fails on its own too is stored marked ``failed``.
        """
        outcomes: list[Outcome] = []
        for start in range(0, len(events), self.batch_size):
            chunk = events[start : start + self.batch_size]
            clock_before = self.clock.now()
            setup_before = set(self._setup_done)
            try:
                outcomes.extend(self._run_batch(chunk))
            except SQLAlchemyError as exc:
                # The rollback reset the caches (e.g. a member another process
                # added meanwhile is now found); each event is tried once more.
                self._restore(clock_before, setup_before)
                log.warning("batch of %d failed to commit (%s); retrying one by one", len(chunk), exc)
                for event in chunk:
                    clock_before = self.clock.now()
                    setup_before = set(self._setup_done)
                    try:
                        outcomes.extend(self._run_batch([event]))
                    except SQLAlchemyError as exc1:
                        self._restore(clock_before, setup_before)
                        outcomes.append(self._record_broken(event, exc1))
        return outcomes

    def _restore(self, clock: datetime, setup_done: set[tuple[str, str]]) -> None:
        """After a rolled-back batch: time and setup as they were before it."""
        if self._drives_clock:
            assert isinstance(self.clock, FakeClock)
            self.clock._rewind(clock)
        self._setup_done = setup_done

    def advance_to(self, when: datetime) -> int:
        """Fire every job due at or before ``when`` (moving a fake clock there)."""
        with self.transaction():
            fired = self._fire_due(when)
            if self._drives_clock:
                assert isinstance(self.clock, FakeClock)
                self.clock.set(when)
        return fired

    def export_member(self, community: str, platform: str, member: str) -> dict[str, Any]:
        """Everything we hold about ``member`` (a user id on ``platform``) in ``community``.

        Privacy, right of access: the member row, memberships, the messages
        and raw events they sent, their ledger accounts and postings, the
        records naming them, and every playbook's ``export_member`` under
        ``"playbooks"``. Times are ISO 8601 strings; the result is JSON-able.
        """
        self._known_community(community)
        playbooks: dict[str, Any] = {}
        with self.transaction() as conn:
            # a linked id stands for its member: export the whole person
            platform, member = identities.own_id(conn, community, platform, member)
            for group in self._any_group(community, platform):
                for pid in group.playbooks:
                    if pid in playbooks:
                        continue
                    pb = self.playbook(pid)
                    layer = self._layer(pid, f"export:{member}", community)
                    ctx = Context(self, pb, layer, group, self.clock.now())
                    playbooks[pid] = pb.export_member(ctx, member)
            self._flush()
            out = self._export_core(conn, community, platform, member)
            identities.export_linked(self, conn, community, platform, member, out)
        out["playbooks"] = playbooks
        return out

    def erase_member(self, community: str, platform: str, member: str) -> list[str]:
        """Erase ``member``'s personal data in ``community``; returns the playbooks that failed.

        Privacy, right to erasure, in one transaction: every playbook's
        ``erase_member``; then the core tables — the member's name becomes
        ``erased-<id>`` (the id keeps rollups and ledger accounts, which stay:
        the ledger still balances), their messages lose their text, their raw
        events are cut down to what the counters need, records and operator
        commands naming them lose their data, the bot's messages to or about
        them lose their text (those not yet delivered to them are cancelled),
        and their name is replaced wherever it appears in the community's
        messages, events, outbox, records, failures and ledger reasons.
        """
        self._known_community(community)
        failed: list[str] = []
        with self.transaction() as conn:
            self._tx_wrote = True  # the core tables are changed with SQL of its own below
            # a linked id stands for its member: erase the whole person, every id of it
            platform, member = identities.own_id(conn, community, platform, member)
            linked = identities.linked_ids(conn, community, platform, member)
            done: set[str] = set()
            for group in self._any_group(community, platform):
                for pid in group.playbooks:
                    if pid in done:
                        continue
                    done.add(pid)
                    pb = self.playbook(pid)
                    layer = self._layer(pid, f"erase:{member}", community)
                    ctx = Context(self, pb, layer, group, self.clock.now())
                    if not self._run(pb.erase_member, ctx, member, group):
                        failed.append(pid)
            # The playbooks' logs name the member; keep the counts, drop the person.
            self._flush()
            rt = m.table(m.Record)
            conn.execute(
                update(rt)
                .where(rt.c.community_id == community, rt.c.member == member)
                .values(member=None, data={"erased": True})
            )
            self._erase_core(conn, community, platform, member)
            for other_platform, other in linked:
                self._erase_core(conn, community, other_platform, other)
            if linked:
                identities.forget(conn, community, platform, member)
        if linked:
            self._reset_caches()  # the linked ids no longer lead to the erased member
        return failed

    # ------------------------------------------------- privacy: the core tables

    def _known_community(self, community: str) -> None:
        if community not in self.settings.communities:
            raise CommandError(
                Msg("unknown community {community!r}", community=community),
                hint=Msg("known: {communities}", communities=", ".join(sorted(self.settings.communities))),
            )

    def _member_groups(self, conn: Connection, community: str, platform: str) -> dict[int, str]:
        """Group id → key, for the community's groups on ``platform``."""
        gt = m.table(m.Group)
        q = select(gt.c.id, gt.c.key).where(gt.c.community_id == community, gt.c.platform == platform)
        return {int(gid): key for gid, key in conn.execute(q)}

    def _export_core(self, conn: Connection, community: str, platform: str, member: str) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        mt = m.table(m.Member)
        row = conn.execute(
            select(mt).where(mt.c.community_id == community, mt.c.platform == platform, mt.c.user_id == member)
        ).mappings().first()
        groups = self._member_groups(conn, community, platform)
        out: dict[str, Any] = {
            "community": community,
            "platform": platform,
            "user_id": member,
            "member": None,
            "memberships": [],
            "messages": [],
            "events": [],
            "ledger": {"accounts": [], "postings": []},
            "records": [],
        }
        et = m.table(m.EventRow)
        if groups:
            out["events"] = [
                {"group": groups[int(r["group_id"])], "id": r["event_id"], "type": r["type"], "ts": iso(r["ts"]),
                 "status": r["status"], "payload": r["payload"]}
                for r in conn.execute(
                    select(et)
                    .where(et.c.group_id.in_(list(groups)), et.c.actor == member)
                    .order_by(et.c.ts, et.c.seq)
                ).mappings()
            ]
        rt = m.table(m.Record)
        uid_json = orjson.dumps(member).decode()
        out["records"] = [
            {"playbook": r["playbook"], "kind": r["kind"], "group": r["group_key"], "ts": iso(r["ts"]),
             "member": r["member"], "data": r["data"]}
            for r in conn.execute(
                select(rt)
                .where(rt.c.community_id == community)
                .where(
                    or_(
                        rt.c.member == member,
                        and_(rt.c.kind == "command", type_coerce(rt.c.data, Text).contains(uid_json, autoescape=True)),
                    )
                )
                .order_by(rt.c.id)
            ).mappings()
        ]
        if row is None:
            return out
        mid = int(row["id"])
        out["member"] = {
            "id": mid,
            "name": row["name"],
            "title": row["title"],
            "first_seen_at": iso(row["first_seen_at"]),
            "last_seen_at": iso(row["last_seen_at"]),
            "erased": bool(row["erased"]),
        }
        ms = m.table(m.Membership)
        inviter = mt.alias("inviter")
        out["memberships"] = [
            {"group": groups.get(int(r["group_id"]), str(r["group_id"])), "role": r["role"], "status": r["status"],
             "joined_at": iso(r["joined_at"]), "left_at": iso(r["left_at"]), "via": r["via"],
             "inviter": r["inviter"]}
            for r in conn.execute(
                select(ms, inviter.c.user_id.label("inviter"))
                .select_from(ms.outerjoin(inviter, inviter.c.id == ms.c.inviter_member_id))
                .where(ms.c.member_id == mid)
                .order_by(ms.c.id)
            ).mappings()
        ]
        msg = m.table(m.MessageRow)
        out["messages"] = [
            {"group": groups.get(int(r["group_id"]), str(r["group_id"])), "msg_id": r["msg_id"], "ts": iso(r["ts"]),
             "content_type": r["content_type"], "text": r["text"], "reply_to": r["reply_to"],
             "mentions": r["mentions"], "status": r["status"]}
            for r in conn.execute(select(msg).where(msg.c.member_id == mid).order_by(msg.c.ts, msg.c.id)).mappings()
        ]
        at = m.table(m.Account)
        accounts = conn.execute(
            select(at.c.id, at.c.code, at.c.currency, at.c.balance)
            .where(at.c.community_id == community, at.c.member_id == mid)
            .order_by(at.c.code)
        ).all()
        out["ledger"]["accounts"] = [
            {"code": code, "currency": currency, "balance": int(balance)} for _, code, currency, balance in accounts
        ]
        if accounts:
            pt = m.table(m.Posting)
            tx = m.table(m.LedgerTransaction)
            codes = {int(aid): code for aid, code, _, _ in accounts}
            out["ledger"]["postings"] = [
                {"transaction": r["transaction_id"], "ts": iso(r["ts"]), "account": codes[int(r["account_id"])],
                 "amount": int(r["amount"]), "currency": r["currency"], "reason": r["reason"],
                 "playbook": r["playbook"]}
                for r in conn.execute(
                    select(pt.c.transaction_id, pt.c.account_id, pt.c.amount, tx.c.ts, tx.c.currency, tx.c.reason,
                           tx.c.playbook)
                    .select_from(pt.join(tx, tx.c.id == pt.c.transaction_id))
                    .where(pt.c.account_id.in_(list(codes)))
                    .order_by(tx.c.ts, pt.c.id)
                ).mappings()
            ]
        return out

    #: Event fields kept when a member's raw events are erased: what the
    #: counters, de-duplication and threading need, nothing they wrote.
    _ERASED_EVENT_KEEP = (
        "v", "id", "ts", "platform", "group", "type", "msg_id", "content_type", "reply_to", "target", "via", "by",
        "amount", "currency", "inviter", "mentions",
    )

    def _erase_core(self, conn: Connection, community: str, platform: str, member: str) -> None:
        mt = m.table(m.Member)
        rt = m.table(m.Record)
        uid_json = orjson.dumps(member).decode()
        # operator commands about them (e.g. "profile set" with their values): keep that one was given
        commands = conn.execute(
            select(rt.c.id, rt.c.data).where(
                rt.c.community_id == community,
                rt.c.kind == "command",
                type_coerce(rt.c.data, Text).contains(uid_json, autoescape=True),
            )
        ).all()
        if commands:
            conn.execute(
                update(rt).where(rt.c.id == bindparam("k_")).values(data=bindparam("v_", type_=rt.c.data.type)),
                [
                    {"k_": rid, "v_": {"name": (data or {}).get("name"), "erased": True}}
                    for rid, data in commands
                ],
            )
        row: Any = conn.execute(
            select(mt.c.id, mt.c.name).where(
                mt.c.community_id == community, mt.c.platform == platform, mt.c.user_id == member
            )
        ).first()
        if row is None:
            # a linked id of a member: its own events and the bot's messages to it
            row = identities.member_of(conn, community, platform, member)
        if row is None:
            return
        mid = int(row[0])
        label = f"erased-{mid}"
        gids = list(self._member_groups(conn, community, platform))
        et = m.table(m.EventRow)
        names = {row[1]} if row[1] else set()
        own_events = conn.execute(
            select(et.c.seq, et.c.payload).where(et.c.group_id.in_(gids), et.c.actor == member)
        ).all() if gids else []
        rewritten = []
        for seq, payload in own_events:
            payload = payload if isinstance(payload, dict) else {}
            actor = payload.get("actor")
            if isinstance(actor, dict) and isinstance(actor.get("name"), str):
                names.add(actor["name"])
            kept = {k: payload[k] for k in self._ERASED_EVENT_KEEP if k in payload}
            kept["actor"] = {"id": member, "name": label}
            kept["erased"] = True
            rewritten.append({"k_": seq, "v_": kept})
        if rewritten:
            conn.execute(
                update(et).where(et.c.seq == bindparam("k_")).values(payload=bindparam("v_", type_=et.c.payload.type)),
                rewritten,
            )
        msg = m.table(m.MessageRow)
        conn.execute(update(msg).where(msg.c.member_id == mid).values(text="", mentions=None))
        # their name, in the forms it was written down (raw, and as the bot displays it)
        from qunyun.core.text import display_name

        needles = set()
        for name in names:
            for form in (name, display_name(name, "")):
                if form and form != label and len(form) >= (2 if any(ord(c) > 127 for c in form) else 3):
                    needles.add(form)
        # the bot's own messages to, mentioning or naming them: their text goes
        # (a search reply naming them also listed their profile); any not yet
        # delivered is cancelled
        at = m.table(m.ActionRow)
        patterns = [uid_json, *(orjson.dumps(n).decode()[1:-1] for n in needles)]
        concerning = conn.execute(
            select(at.c.seq, at.c.status, at.c.payload).where(
                at.c.community_id == community,
                or_(*(type_coerce(at.c.payload, Text).contains(p, autoescape=True) for p in patterns)),
            )
        ).all()
        for seq, status, payload in concerning:
            if not isinstance(payload, dict):
                continue
            texts = [v for k, v in payload.items() if k in ("text", "reason") and isinstance(v, str)]
            if not (
                payload.get("member") == member
                or member in (payload.get("mentions") or ())
                or any(n in t for n in needles for t in texts)
            ):
                continue
            values: dict[str, Any] = {}
            if status == "pending":
                values.update(status="failed", last_error="cancelled: the member's data was erased")
            blanked = {k: "" if k in ("text", "reason") and isinstance(v, str) else v for k, v in payload.items()}
            blanked["erased"] = True
            values["payload"] = blanked
            conn.execute(update(at).where(at.c.seq == seq).values(**values))
        ft = m.table(m.Failure)
        tx = m.table(m.LedgerTransaction)
        places: list[tuple[Any, Any, Any, list[Any]]] = [
            (msg, msg.c.id, msg.c.text, [msg.c.group_id.in_(gids)]),
            (et, et.c.seq, et.c.payload, [et.c.group_id.in_(gids)]),
            (at, at.c.seq, at.c.payload, [at.c.community_id == community]),
            (rt, rt.c.id, rt.c.data, [rt.c.community_id == community]),
            (ft, ft.c.id, ft.c.error, [ft.c.community_id == community]),
            (ft, ft.c.id, ft.c.traceback, [ft.c.community_id == community]),
            (tx, tx.c.id, tx.c.reason, [tx.c.community_id == community]),
        ]
        # longest first: "小王同学" must go before "小王" takes part of it
        for needle in sorted(needles, key=lambda n: (-len(n), n)):
            for table, key_col, col, where in places:
                if gids or table not in (msg, et):
                    self._scrub(conn, table, key_col, col, where, needle, label)
        conn.execute(update(mt).where(mt.c.id == mid).values(name=label, title=None, erased=True))
        # the console's directory row holds their name and profile values: gone with them
        # (derived data; an erased member gets no row again)
        dt = m.table(m.MemberDirectoryRow)
        conn.execute(delete(dt).where(dt.c.member_id == mid))
        cached = self._members.get((community, platform, member))
        if cached is not None:
            cached[1] = label
            cached[2] = None
        self._titles.pop((community, platform, member), None)

    @staticmethod
    def _scrub(
        conn: Connection, table: Any, key_col: Any, col: Any, where: list[Any], needle: str, label: str
    ) -> None:
        """Replace ``needle`` by ``label`` in one text or JSON column, where it occurs."""
        is_json = isinstance(col.type, JSONText)
        pattern = orjson.dumps(needle).decode()[1:-1] if is_json else needle
        target = type_coerce(col, Text) if is_json else col
        rows = conn.execute(select(key_col, col).where(*where, target.contains(pattern, autoescape=True))).all()
        changes = []
        for key, value in rows:
            new = Engine._replace_all(value, needle, label)
            if new != value:
                changes.append({"k_": key, "v_": new})
        if changes:
            conn.execute(
                update(table).where(key_col == bindparam("k_")).values({col.name: bindparam("v_", type_=col.type)}),
                changes,
            )

    @staticmethod
    def _replace_all(value: Any, needle: str, label: str) -> Any:
        """``value`` with ``needle`` replaced by ``label`` in every string it holds (JSON values too)."""
        if isinstance(value, str):
            return value.replace(needle, label) if needle in value else value
        if isinstance(value, list):
            return [Engine._replace_all(v, needle, label) for v in value]
        if isinstance(value, dict):
            return {k: Engine._replace_all(v, needle, label) for k, v in value.items()}
        return value

    def command(
        self,
        community: str,
        playbook: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        actor: str = "cli",
        group: str | None = None,
        id: str | None = None,
        _read_only: bool = False,
    ) -> dict[str, Any]:
        """Carry out an operator's command with ``playbook.on_command``, in one transaction.

        The command runs in ``group`` (a group key; default: the community's
        admin group, else its first group — or the first group that runs the
        playbook) and may do anything a handler may: change state, post to
        the ledger, emit actions. Actions and ledger transactions get ids from
        the command ``id`` (default: derived from the clock, the name, the
        arguments and a counter of this engine's commands), so a retry with the same id does nothing twice (it returns
        ``{"duplicate": True}``). It is logged as a ``command`` record (who,
        what, when). A :class:`CommandError` leaves nothing behind.
        """
        if playbook == identities.MEMBERS:
            # the engine's own member commands (link, unlink): docs/identities.md
            return identities.member_command(self, community, name, args or {}, actor=actor, id=id)
        settings = self.settings.communities.get(community)
        if settings is None:
            raise CommandError(
                Msg("unknown community {community!r}", community=community),
                hint=Msg("known: {communities}", communities=", ".join(sorted(self.settings.communities))),
            )
        groups = list(settings.groups.values())
        if group is None:
            chosen = next((g for g in groups if g.admin), None) or next(iter(groups), None)
        else:
            chosen = next((g for g in groups if g.key == group), None)
            if chosen is None:
                raise CommandError(Msg("community {community!r} has no group {group!r}", community=community, group=group))
        if chosen is None or playbook not in chosen.playbooks:
            # the admins' group may not run the playbook itself: use a group that does
            chosen = next((g for g in groups if playbook in g.playbooks), None)
            if chosen is None:
                raise CommandError(
                    Msg("playbook {playbook!r} is not enabled in community {community!r}",
                        playbook=playbook, community=community),
                    hint=Msg("enable it under the community's playbooks in the configuration"),
                )
        payload = dict(args or {})
        try:
            blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            raise CommandError(Msg("command arguments must be JSON values ({error})", error=str(exc))) from None
        now = self.clock.now()
        if id is None:
            # two identical commands at the same instant are two commands: count them
            self._commands += 1
            seed = f"{playbook}\0{name}\0{actor}\0{now.isoformat()}\0{self._commands}\0".encode() + blob
            id = f"cmd-{hashlib.sha256(seed).hexdigest()[:16]}"
        call = Command(id=id, name=name, args=payload, actor=actor)
        cause = f"cmd:{id}"
        pb = self.playbook(playbook)
        with self.transaction() as conn:
            rt = m.table(m.Record)
            done = conn.execute(
                select(rt.c.id)
                .where(rt.c.community_id == community, rt.c.playbook == playbook)
                .where(rt.c.kind == "command", rt.c.cause == cause)
                .limit(1)
            ).first()
            if done is not None:
                return {"duplicate": True}
            # no setup here: on a replayed database the clock of a command is not the
            # community's time, and a command needs no recurring jobs
            ctx = Context(self, pb, self._layer(playbook, cause, community), chosen, now)
            result = pb.on_command(ctx, call)
            if _read_only:
                raise _Answered(dict(result or {}))
            ctx.record("command", None, actor=actor, name=name, args=payload)
            layer = ctx._layer
            assert layer is not None
            if layer.nested is not None:
                layer.nested.commit()
            self._merge(layer, chosen)
            self._watch_ledger([layer], chosen, now, cause)
        return dict(result or {})

    def query(
        self,
        community: str,
        playbook: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        actor: str = "console",
        group: str | None = None,
    ) -> dict[str, Any]:
        """The answer of a command that only reads (a preview, a board, a list).

        Runs ``playbook.on_command`` like :meth:`command`, then rolls the
        transaction back: nothing it did is kept, no ``command`` record is
        written and no action is sent. For pages that show a command's answer
        on every view (the console's elimination preview, say).
        """
        try:
            self.command(community, playbook, name, args, actor=actor, group=group, _read_only=True)
        except _Answered as answered:
            return answered.result
        raise AssertionError("unreachable: a read-only command always answers")  # pragma: no cover

    def _any_group(self, community: str, platform: str) -> list[GroupSettings]:
        settings = self.settings.communities.get(community)
        if settings is None:
            raise KeyError(f"unknown community {community!r}")
        return [g for g in settings.groups.values() if g.platform == platform]

    def setup_groups(self) -> None:
        """Run every configured group's playbook ``setup`` (registers cron jobs)."""
        with self.transaction():
            self._setup_all()

    # ------------------------------------------------------------ the batch

    def _run_batch(self, events: Sequence[BaseEvent]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with self.transaction() as conn:
            existing = self._existing_keys(conn, events)
            for event in events:
                outcomes.append(self._process(event, existing))
        for o in outcomes:
            self.stats[o.status] += 1
        return outcomes

    def _existing_keys(self, conn: Connection, events: Sequence[BaseEvent]) -> set[tuple[str, str]]:
        """Which of these events are already stored: one query per platform and chunk."""
        by_platform: dict[str, list[str]] = {}
        for e in events:
            by_platform.setdefault(e.platform, []).append(e.id)
        found: set[tuple[str, str]] = set()
        if self._bulk.sqlite:
            t = m.table(m.EventRow)
            for platform, ids in by_platform.items():
                for i in range(0, len(ids), 500):
                    rows = conn.execute(
                        select(t.c.event_id).where(t.c.platform == platform, t.c.event_id.in_(ids[i : i + 500]))
                    )
                    found.update((platform, r[0]) for r in rows)
            return found
        # PostgreSQL: one array parameter instead of hundreds of IN parameters
        # (the IN form took ~100 ms a query to plan).
        for platform, ids in by_platform.items():
            rows = conn.exec_driver_sql(
                "SELECT event_id FROM events WHERE platform = %s AND event_id = ANY(%s)", (platform, ids)
            )
            found.update((platform, r[0]) for r in rows)
        return found

    def _record_broken(self, event: BaseEvent, exc: Exception) -> Outcome:
        """A single event whose transaction cannot commit: keep it, marked failed."""
        log.error("event %s could not be stored: %s", event.key, exc)
        self.stats["failed"] += 1
        try:
            with self.transaction() as conn:
                group = self._group_settings(event)
                gid = self._group_id(group) if group else None
                if gid is not None:
                    conn.execute(
                        insert(m.EventRow).values(
                            platform=event.platform,
                            event_id=event.id,
                            group_id=gid,
                            type=getattr(event, "type", "?"),
                            ts=event.ts,
                            actor=event.actor.id,
                            status="failed",
                            payload=event.model_dump(mode="json"),
                        )
                    )
                    conn.execute(
                        insert(m.Failure).values(
                            community_id=group.community.id if group else "",
                            group_key=event.group,
                            playbook="(engine)",
                            cause=event.id,
                            ts=event.ts,
                            error=str(exc)[:2000],
                            traceback=traceback.format_exc()[-8000:],
                        )
                    )
        except SQLAlchemyError:
            log.exception("could not record the failure of %s either", event.key)
        return Outcome(event.key, "failed", str(exc)[:500])

    def _dispatch(self, group: GroupSettings, etype: str) -> list[tuple[str, Playbook]]:
        """The playbooks of ``group`` that handle ``etype``, in configured order (cached)."""
        key = (id(group), etype)
        found = self._dispatch_cache.get(key)
        if found is None:
            found = [
                (pid, self.playbook(pid)) for pid in group.playbooks if etype in self.playbook(pid).handles
            ]
            self._dispatch_cache[key] = found
        return found

    def _group_settings(self, event: BaseEvent) -> GroupSettings | None:
        group = self.settings.group(event.platform, event.group)
        if group is None:
            catch_all = self.settings.catch_all()
            if catch_all is None:
                return None
            group = auto_group(catch_all, event.platform, event.group, self.registry)
        return group

    def _process(self, event: BaseEvent, existing: set[tuple[str, str]]) -> Outcome:
        unit = self._unit
        dedup = (event.platform, event.id)
        if dedup in existing or dedup in unit.event_keys:
            return Outcome(event.key, "duplicate", "already handled")
        gkey = (event.platform, event.group)
        group = self._group_by_key.get(gkey)
        if group is None:
            group = self._group_settings(event)
            if group is not None:
                self._group_by_key[gkey] = group
        if group is None:
            return Outcome(
                event.key,
                "rejected",
                f"group {event.group!r} on {event.platform} is not in the configuration; "
                "add it under a community's groups, or set catch_all: true on one community",
            )
        ts = event.ts
        heap = self._heap
        if heap and heap[0][0] <= ts:
            self._fire_due(ts)
        if self._drives_clock:
            self.clock.set(ts)  # type: ignore[attr-defined]
        now = self.clock.now()
        if gkey not in self._setup_done:
            self._setup_all(extra=group)

        gid, last = self._group_info(group)
        late = last is not None and ts < last
        if not late:
            self._groups[(group.platform, group.key)] = (gid, ts)
            unit.group_last[gid] = ts
        community = group.community
        cid = community.id
        day = ts.astimezone(community.tz).date()
        actor = event.actor
        mid = self._member_id(cid, group.platform, actor.id, actor.name, ts)

        etype: str = event.type  # type: ignore[attr-defined]
        if etype == "message":
            self._core_message(event, group, gid, mid, day)
        elif etype == "member_joined":
            self._core_join(event, group, gid, mid, day)
        elif etype == "member_left":
            self._core_leave(event, group, gid, mid, day)
        elif etype == "reaction":
            self._bump(gid, mid, day, cid, "reactions_given", 1)
            author = self._author(gid, event.target)  # type: ignore[attr-defined]
            if author is not None:
                self._bump(gid, author, day, cid, "reactions_received", 1)
        elif etype in ("edit", "recall"):
            self._core_edit(event, gid)

        # playbooks
        cause = event.id
        merged: list[Layer] = []
        dispatch = self._dispatch(group, etype)
        # playbooks see a linked id as the member's own user id (docs/identities.md)
        links = self._links.get(cid)
        seen = links.view(event) if links is not None and links.canonical else event
        if dispatch:
            ctx = Context(self, None, None, group, now, event=seen, cause=cause, key=event.platform)
            configs = group.playbooks
            for pid, pb in dispatch:
                ctx._bind(pb, configs[pid])
                if self._run(pb.on_event, ctx, seen, group):
                    layer = ctx._layer
                    if layer is not None:
                        merged.append(layer)
                        if layer.suppress:
                            break
        if merged:
            self._watch_ledger(merged, group, now, cause, event=seen)

        bulk = self._bulk
        unit.events.append(
            (
                event.platform,
                event.id,
                gid,
                etype,
                bulk.ts(ts),
                actor.id,
                "late" if late else "handled",
                _clean(event.model_dump_json()),
            )
        )
        unit.event_keys.add(dedup)
        if late:
            return Outcome(
                event.key,
                "late",
                f"arrived after later events of group {event.group!r}; handled at {now.isoformat()}",
            )
        return Outcome(event.key, "handled")

    # ----------------------------------------------------------- core records

    def _core_message(self, event: Any, group: GroupSettings, gid: int, mid: int, day: date) -> None:
        cid = group.community.id
        text: str = event.text
        bulk = self._bulk
        self._unit.messages.append(
            (
                gid,
                mid,
                event.msg_id,
                event.id,
                bulk.ts(event.ts),
                event.content_type,
                _clean(text),
                event.reply_to,
                bulk.json(event.mentions) if event.mentions else None,
                "visible",
            )
        )
        self._authors.put((gid, event.msg_id), mid)
        row = self._rollup(gid, mid, day, cid)
        row["messages"] += 1
        row["characters"] += len(text)
        ct = event.content_type
        if ct in _MEDIA:
            row["media"] += 1
        if ct == "link" or "http://" in text or "https://" in text:
            row["links"] += 1
        if event.reply_to is not None:
            row["replies"] += 1
        if event.mentions:
            row["mentions_sent"] += len(event.mentions)
            for uid in dict.fromkeys(event.mentions):
                if uid == event.actor.id:
                    continue
                target = self._member_id(cid, group.platform, uid, None, None)
                self._bump(gid, target, day, cid, "mentions_received", 1)

    def _core_join(self, event: Any, group: GroupSettings, gid: int, mid: int, day: date) -> None:
        cid = group.community.id
        self._bump(gid, mid, day, cid, "joins", 1)
        inviter = None
        if event.inviter:
            inviter = self._member_id(cid, group.platform, event.inviter, None, None)
        self._set_membership(
            gid, mid, status="active", joined_at=event.ts, left_at=None, via=event.via,
            inviter_member_id=inviter, role=group.community.role_of(event.actor.id),
        )

    def _core_leave(self, event: Any, group: GroupSettings, gid: int, mid: int, day: date) -> None:
        self._bump(gid, mid, day, group.community.id, "leaves", 1)
        status = "removed" if event.by and event.by != event.actor.id else "left"
        self._set_membership(gid, mid, status=status, left_at=event.ts)

    def _core_edit(self, event: Any, gid: int) -> None:
        conn = self._conn
        assert conn is not None
        self._flush_messages()
        t = m.table(m.MessageRow)
        values: dict[str, Any] = (
            {"text": event.text} if event.type == "edit" else {"status": "recalled"}
        )
        conn.execute(update(t).where(t.c.group_id == gid, t.c.msg_id == event.target).values(**values))

    def _set_membership(self, gid: int, mid: int, **values: Any) -> None:
        """Buffer a membership change; the latest value of each field wins at flush."""
        row = self._unit.memberships.setdefault((gid, mid), {"group_id": gid, "member_id": mid})
        row.update(values)

    def _rollup(self, gid: int, mid: int, day: date, cid: str) -> dict[str, Any]:
        key = (gid, mid, day)
        row = self._unit.rollups.get(key)
        if row is None:
            row = dict(_ZERO_COUNTS)
            row["community_id"] = cid
            self._unit.rollups[key] = row
        return row

    def _bump(self, gid: int, mid: int, day: date, cid: str, counter: str, n: int) -> None:
        self._rollup(gid, mid, day, cid)[counter] += n

    def _author(self, gid: int, msg_id: str) -> int | None:
        found = self._authors.get((gid, msg_id))
        if found is not None:
            return int(found)
        conn = self._conn
        assert conn is not None
        self._flush_messages()
        row = conn.execute(self._q_author, {"g": gid, "mid": msg_id}).first()
        if row is None:
            return None
        self._authors.put((gid, msg_id), row[0])
        return int(row[0])

    # ------------------------------------------------------ identity lookups

    def _group_info(self, group: GroupSettings) -> tuple[int, datetime | None]:
        key = (group.platform, group.key)
        found = self._groups.get(key)
        if found is not None:
            return found
        conn = self._conn
        assert conn is not None
        t = m.table(m.Group)
        row = conn.execute(
            select(t.c.id, t.c.last_event_at).where(t.c.platform == group.platform, t.c.key == group.key)
        ).first()
        if row is None:
            gid = conn.execute(
                insert(t)
                .values(
                    community_id=group.community.id,
                    platform=group.platform,
                    key=group.key,
                    name=group.name,
                    room=group.room,
                    capacity=group.capacity,
                    created_at=self.clock.now(),
                )
                .returning(t.c.id)
            ).scalar_one()
            found = (int(gid), None)
        else:
            found = (int(row[0]), row[1])
        self._groups[key] = found
        return found

    def _group_id(self, group: GroupSettings) -> int:
        return self._group_info(group)[0]

    def _member_id(
        self, cid: str, platform: str, uid: str, name: str | None, ts: datetime | None
    ) -> int:
        key = (cid, platform, uid)
        entry = self._members.get(key)
        links = self._links.get(cid) if entry is None else None
        owner = links.owner.get((platform, uid)) if links is not None else None
        if owner is not None and owner != (platform, uid):
            # a linked id (or the member's own id seen from another platform): the
            # member it belongs to, sharing its cache entry (docs/identities.md)
            self._member_id(cid, owner[0], owner[1], None, None)
            entry = self._members[key] = self._members[(cid, owner[0], owner[1])]
        elif entry is None:
            conn = self._conn
            assert conn is not None
            row = None
            if not self._members_loaded:
                row = conn.execute(self._q_member, {"c": cid, "p": platform, "u": uid}).first()
            if row is None:
                # A new member: take an id now, write the row with the batch.
                when = self._bulk.ts(ts or self.clock.now())
                mid = self._alloc_member_id()
                self._unit.new_members.append(
                    (mid, cid, platform, uid, _clean(name) if name else name, when, when, False)
                )
                entry = [mid, name, None]
            else:
                entry = [int(row[0]), row[1], row[2]]
            self._members[key] = entry
        if ts is not None:
            if name is not None and name != entry[1]:
                entry[1] = name
            self._unit.member_seen[entry[0]] = (entry[1], ts)
        return int(entry[0])

    def _alloc_member_id(self) -> int:
        """A fresh member id without a round trip per member.

        SQLite: the batch holds the write lock (BEGIN IMMEDIATE), so max(id)+1
        onwards is ours until it commits. PostgreSQL: ids come from the
        table's sequence, 256 at a time (sequence values are never reused).
        """
        conn = self._conn
        assert conn is not None
        if self._bulk.sqlite:
            if self._member_id_next is None:
                top = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM members").scalar()
                self._member_id_next = int(top or 0) + 1
            mid = self._member_id_next
            self._member_id_next += 1
            return mid
        if not self._member_id_pool:
            rows = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, 256)"
            ).all()
            self._member_id_pool = [int(r[0]) for r in reversed(rows)]
        return self._member_id_pool.pop()

    def _flush_members(self) -> None:
        """New members first: every other row may refer to them."""
        unit = self._unit
        if unit.new_members:
            conn = self._conn
            assert conn is not None
            self._bulk.insert(conn, m.table(m.Member), _MEMBER_COLS, unit.new_members)
            unit.new_members = []

    def _member_name(self, group: GroupSettings, uid: str) -> str | None:
        key = (group.community.id, group.platform, uid)
        entry = self._members.get(key)
        if entry is None and self._conn is not None:
            self._member_id(group.community.id, group.platform, uid, None, None)
            entry = self._members.get(key)
        return entry[1] if entry else None

    #: Titles are conferred by admins outside the engine: re-read them this often.
    TITLE_TTL = timedelta(minutes=10)

    def _member_title(self, group: GroupSettings, uid: str) -> str | None:
        """A member's title, re-read from the database at most every ``TITLE_TTL``
        of clock time (titles are conferred outside the engine)."""
        key = (group.community.id, group.platform, uid)
        self._member_name(group, uid)
        entry = self._members[key]
        now = self.clock.now()
        checked = self._titles.get(key)
        if checked is None:
            self._titles[key] = now  # just loaded or created: fresh
            return entry[2]  # type: ignore[no-any-return]
        if now - checked >= self.TITLE_TTL:
            conn = self._conn
            assert conn is not None
            platform, own = self._own_id(key[0], key[1], uid)
            row = conn.execute(self._q_member, {"c": key[0], "p": platform, "u": own}).first()
            entry[2] = row[2] if row is not None else None
            self._titles[key] = now
        return entry[2]  # type: ignore[no-any-return]

    def _own_id(self, cid: str, platform: str, uid: str) -> tuple[str, str]:
        """The member's own ``(platform, user id)`` for a linked id, else ``(platform, uid)``."""
        links = self._links.get(cid)
        if links is None:
            return platform, uid
        return links.owner.get((platform, uid), (platform, uid))

    def _role(self, community: CommunitySettings, uid: str) -> str:
        """The configured role of ``uid``, or the highest of its member's linked ids."""
        links = self._links.get(community.id)
        return community.role_of(uid) if links is None else links.role(community, uid)

    # ------------------------------------------------------------- playbooks

    def _layer(self, pid: str, cause: str, cid: str, *, key: str | None = None) -> Layer:
        """A fresh layer. ``key`` (the platform, for events) makes ids unique across platforms."""
        unit = self._unit
        seed = f"{key}:{cause}" if key else cause
        if not unit.ordinals and not unit.txn_ordinals:
            return Layer(pid, cause, cid, 0, 0, seed)
        k = (seed, pid)
        return Layer(pid, cause, cid, unit.ordinals.get(k, 0), unit.txn_ordinals.get(k, 0), seed)

    def _run(self, fn: Callable[..., Any], ctx: Context, arg: Any, group: GroupSettings) -> bool:
        """Call a playbook handler in isolation; merge what it did, or drop it and record why."""
        try:
            if arg is _NO_ARG:
                fn(ctx)
            else:
                fn(ctx, arg)
        except Exception as exc:
            layer = ctx._layer
            if layer is not None and layer.nested is not None:
                layer.nested.rollback()
                self._unit.new_members = []
                # rows the engine itself inserted inside the savepoint (a member
                # first named by this playbook) are gone: forget what we cached
                self._members.clear()
                self._members_loaded = False
                self._accounts.clear()
                self._groups.clear()
            pid = ctx._playbook.id
            self.stats["playbook_failures"] += 1
            log.warning("playbook %s failed on %s: %r", pid, ctx._cause, exc)
            self._unit.failures.append(
                {
                    "community_id": ctx._cid,
                    "group_key": group.key,
                    "playbook": pid,
                    "cause": ctx._cause,
                    "ts": ctx.now,
                    "error": _clean(f"{type(exc).__name__}: {exc}"[:2000]),
                    "traceback": _clean(traceback.format_exc()[-8000:]),
                }
            )
            ctx._layer = None
            return False
        layer = ctx._layer
        if layer is not None:
            if layer.nested is not None:
                layer.nested.commit()
            self._merge(layer, group)
        return True

    def _merge(self, layer: Layer, group: GroupSettings) -> None:
        unit = self._unit
        cid = layer.community_id
        pid = layer.playbook
        if layer.ordinal:
            unit.ordinals[(layer.seed, pid)] = layer.ordinal
        if layer.txn_ordinal:
            unit.txn_ordinals[(layer.seed, pid)] = layer.txn_ordinal
        if layer.state is not None:
            state = self._state
            dirty = unit.state_dirty
            for key, value in layer.state.items():
                skey = (cid, pid, key)
                state[skey] = value
                dirty.add(skey)
        if layer.actions is not None:
            for action in layer.actions:
                row = self._outbox_row(action, group)
                unit.actions.append(row)
                unit.delivered.append(row)
        if layer.txns is not None:
            for txn in layer.txns:
                for posting in txn.postings:
                    acct = self._account(cid, posting.account_code, posting.currency, posting.member)
                    acct[1] += posting.amount
            unit.txns.extend(layer.txns)
        if layer.records is not None:
            unit.records.extend(layer.records)
        if layer.counts is not None:
            gid = self._group_id(group)
            for counter, who, n, day in layer.counts:
                mid = self._member_id(cid, group.platform, who, None, None)
                self._bump(gid, mid, day, cid, counter, n)
        if layer.jobs is not None:
            for job_id, job in layer.jobs.items():
                if job is None:
                    self._jobs.pop(job_id, None)
                else:
                    self._jobs[job_id] = job
                    heapq.heappush(self._heap, (job.due_at, job_id))
                unit.jobs_dirty.add(job_id)

    def _outbox_row(self, action: dict[str, Any], group: GroupSettings) -> dict[str, Any]:
        links = self._links.get(group.community.id)
        if links is not None and links.native:
            # a member's own id addressed in a group of another platform: its id there
            action = links.address(action, group.platform)
        atype = action["type"]
        downgraded = None
        caps = self.capabilities.get(group.platform) if self.capabilities is not None else None
        if caps is not None and atype not in caps:
            downgraded = atype
            action = {
                "v": 1,
                "id": action["id"],
                "ts": action["ts"],
                "group": action["group"],
                "type": "notify_admins",
                "text": _downgrade_text(action, group),
                "playbook": action["playbook"],
                "cause": action["cause"],
            }
        self.stats["actions"] += 1
        payload = dict(action)
        ts = payload["ts"]
        payload["ts"] = ts.isoformat()
        if "until" in payload and isinstance(payload["until"], datetime):
            payload["until"] = payload["until"].isoformat()
        return {
            "id": action["id"],
            "ts": ts,
            "community_id": group.community.id,
            "group_key": action["group"],
            "platform": group.platform,
            "type": action["type"],
            "playbook": action["playbook"],
            "cause": action["cause"],
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "downgraded_from": downgraded,
        }

    def _watch_ledger(
        self,
        merged: list[Layer],
        group: GroupSettings,
        now: datetime,
        cause: str,
        *,
        event: BaseEvent | None = None,
        job: JobCall | None = None,
    ) -> None:
        postings = [
            Posting(t.id, p.account_code, p.member[1] if p.member else None, p.currency, p.amount, t.reason, t.playbook)
            for layer in merged
            for t in layer.txns or ()
            for p in t.postings
        ]
        if not postings:
            return
        for pid in group.playbooks:
            pb = self.playbook(pid)
            if not pb.watches_ledger:
                continue
            layer = self._layer(pid, cause, group.community.id, key=event.platform if event is not None else None)
            ctx = Context(self, pb, layer, group, now, event=event, job=job)
            self._run(pb.on_postings, ctx, postings, group)

    def _savepoint_for(self, layer: Layer) -> Connection:
        conn = self._conn
        assert conn is not None
        if layer.nested is None:
            self._flush()
            layer.nested = conn.begin_nested()
            # nothing is buffered now; members first named inside the savepoint
            # are buffered after this point and dropped if it rolls back
        return conn

    # ----------------------------------------------------------------- state

    def _state_get(self, cid: str, pid: str, key: str) -> Any:
        skey = (cid, pid, key)
        value = self._state.get(skey, MISSING)
        if value is MISSING:
            if (cid, pid) not in self._state_loaded:
                self._load_state(cid, pid)
                value = self._state.get(skey, MISSING)
                if value is not MISSING:
                    return value
            else:
                return DELETED
            conn = self._conn
            assert conn is not None
            row = conn.execute(self._q_state, {"c": cid, "p": pid, "k": key}).first()
            value = row[0] if row is not None else DELETED
            self._state[skey] = value
        return value

    #: Playbook state of up to this many keys is loaded whole on first use.
    STATE_PRELOAD_LIMIT = 200_000

    def _load_state(self, cid: str, pid: str) -> None:
        """Load a playbook's whole state into the cache, if it is small enough."""
        conn = self._conn
        assert conn is not None
        t = m.table(m.PlaybookState)
        n = conn.execute(
            select(func.count()).select_from(t).where(t.c.community_id == cid, t.c.playbook == pid)
        ).scalar_one()
        if n > self.STATE_PRELOAD_LIMIT:
            return
        self._flush_state()
        for key, value in conn.execute(self._q_state_all, {"c": cid, "p": pid}):
            self._state.setdefault((cid, pid, key), value)
        self._state_loaded.add((cid, pid))

    def _state_scan(self, cid: str, pid: str, prefix: str) -> Iterator[tuple[str, Any]]:
        conn = self._conn
        assert conn is not None
        self._flush_state()
        t = m.table(m.PlaybookState)
        rows = conn.execute(
            select(t.c.key, t.c.value).where(
                t.c.community_id == cid,
                t.c.playbook == pid,
                t.c.key >= prefix,
                t.c.key < prefix + "\U0010ffff",
            )
        )
        for key, value in rows:
            cached = self._state.get((cid, pid, key), MISSING)
            yield key, (value if cached is MISSING else cached)

    # ---------------------------------------------------------------- ledger

    def _account(self, cid: str, code: str, currency: str, member: tuple[str, str] | None) -> list[Any]:
        key = (cid, code)
        acct = self._accounts.get(key)
        if acct is not None:
            return acct
        conn = self._conn
        assert conn is not None
        t = m.table(m.Account)
        row = conn.execute(
            select(t.c.id, t.c.balance, t.c.currency).where(t.c.community_id == cid, t.c.code == code)
        ).first()
        if row is None:
            mid = self._member_id(cid, member[0], member[1], None, None) if member else None
            self._flush_members()
            kind = "member" if member else ("community" if code.startswith("community:") else "system")
            aid = conn.execute(
                insert(t)
                .values(
                    community_id=cid,
                    code=code,
                    kind=kind,
                    member_id=mid,
                    currency=currency,
                    balance=0,
                    created_at=self.clock.now(),
                )
                .returning(t.c.id)
            ).scalar_one()
            acct = [int(aid), 0, currency]
        else:
            acct = [int(row[0]), int(row[1]), row[2]]
        self._accounts[key] = acct
        return acct

    def _account_currency(self, cid: str, code: str) -> str | None:
        """The currency of an existing account, or None if it does not exist yet."""
        acct = self._accounts.get((cid, code))
        if acct is not None and len(acct) > 2:
            return str(acct[2])
        conn = self._conn
        assert conn is not None
        t = m.table(m.Account)
        row = conn.execute(select(t.c.currency).where(t.c.community_id == cid, t.c.code == code)).first()
        return None if row is None else str(row[0])

    def _account_balance(self, cid: str, code: str) -> int:
        acct = self._accounts.get((cid, code))
        if acct is None:
            currency = self._account_currency(cid, code)
            if currency is None:
                return 0
            acct = self._account(cid, code, currency, None)
        return int(acct[1])

    # ------------------------------------------------------------------ jobs

    def _job_get(self, job_id: str) -> PendingJob | None:
        return self._jobs.get(job_id)

    def _setup_all(self, extra: GroupSettings | None = None) -> None:
        groups = [g for c in self.settings.communities.values() for g in list(c.groups.values())]
        if extra is not None and extra not in groups:
            groups.append(extra)
        now = self.clock.now()
        for group in groups:
            gkey = (group.platform, group.key)
            if gkey in self._setup_done:
                continue
            self._group_id(group)
            for pid in group.playbooks:
                pb = self.playbook(pid)
                if type(pb).setup is Playbook.setup:
                    continue
                layer = self._layer(pid, f"setup:{group.key}", group.community.id)
                ctx = Context(self, pb, layer, group, now)
                self._run(pb.setup, ctx, _NO_ARG, group)
            self._setup_done.add(gkey)

    def _fire_due(self, until: datetime) -> int:
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= until:
            due, job_id = heapq.heappop(heap)
            job = self._jobs.get(job_id)
            if job is None or job.due_at != due:
                continue  # cancelled or rescheduled: a stale heap entry
            fired += 1
            self._fire(job)
        return fired

    def _fire(self, job: PendingJob) -> None:
        if self._drives_clock:
            self.clock.set(job.due_at)  # type: ignore[attr-defined]
        now = self.clock.now()
        self.stats["jobs"] += 1
        group = self.settings.group(job.platform, job.group_key)
        if group is None:
            catch_all = self.settings.communities.get(job.community_id)
            if catch_all is not None and catch_all.catch_all:
                group = auto_group(catch_all, job.platform, job.group_key, self.registry)
        cause = f"job:{job.id}@{job.due_at.astimezone(UTC).isoformat()}"
        # advance or remove the job first, so a failing handler cannot loop
        nxt = next_due(job.kind, job.spec, job.due_at, now, self.settings.communities[job.community_id].tz) if job.community_id in self.settings.communities else None
        if nxt is None:
            self._jobs.pop(job.id, None)
        else:
            job.due_at = nxt
            heapq.heappush(self._heap, (nxt, job.id))
        self._unit.jobs_dirty.add(job.id)
        if group is None or job.playbook not in group.playbooks:
            log.info("job %s dropped: its group or playbook is no longer configured", job.id)
            self._jobs.pop(job.id, None)
            return
        pb = self.playbook(job.playbook)
        call = JobCall(
            id=job.id,
            name=job.name,
            key=str(job.payload.get("_key", job.name)),
            payload={k: v for k, v in job.payload.items() if not k.startswith("_")},
            due=job.due_at if nxt is None else now,
            kind=job.kind,
        )
        layer = self._layer(job.playbook, cause, job.community_id)
        ctx = Context(self, pb, layer, group, now, job=call)
        merged = [layer] if self._run(pb.on_job, ctx, call, group) else []
        self._watch_ledger(merged, group, now, cause, job=call)

    # ----------------------------------------------------------------- flush

    def _flush_messages(self) -> None:
        conn = self._conn
        assert conn is not None
        self._flush_members()
        if self._unit.messages:
            b = self._bulk
            b.insert(conn, m.table(m.MessageRow), _MESSAGE_COLS, self._unit.messages)
            self._unit.messages = []

    def _flush_state(self) -> None:
        conn = self._conn
        assert conn is not None
        unit = self._unit
        if not unit.state_dirty:
            return
        b = self._bulk
        t = m.table(m.PlaybookState)
        now = b.ts(self.clock.now())
        puts = []
        dels = []
        for cid, pid, key in unit.state_dirty:
            value = self._state.get((cid, pid, key), DELETED)
            if value is DELETED or value is MISSING:
                dels.append((cid, pid, key))
            else:
                puts.append((cid, pid, key, b.json(value), now))
        b.upsert(conn, t, _STATE_COLS, ("community_id", "playbook", "key"), puts, replace=("value", "updated_at"))
        if dels:
            mark = "?" if b.sqlite else "%s"
            b.run(
                conn,
                f"DELETE FROM playbook_state WHERE community_id = {mark} AND playbook = {mark} AND key = {mark}",
                dels,
            )
        unit.state_dirty = set()

    def _read_epochs(self, conn: Connection) -> dict[str, int]:
        ct = m.table(m.Community)
        ids = list(self.settings.communities)
        return {str(c): int(e) for c, e in conn.execute(select(ct.c.id, ct.c.epoch).where(ct.c.id.in_(ids)))}

    def _bump_epochs(self, conn: Connection) -> None:
        """Tell other processes this transaction wrote; remember the epochs it leaves.

        If another engine wrote since this transaction read the epochs, the
        database now holds more than ours + 1: the next transaction sees the
        difference and reloads its caches.
        """
        ct = m.table(m.Community)
        ids = list(self.settings.communities)
        conn.execute(update(ct).where(ct.c.id.in_(ids)).values(epoch=ct.c.epoch + 1))
        seen = self._epochs or {}
        self._epochs = {c: seen.get(c, -1) + 1 for c in ids}

    def _flush(self) -> None:
        conn = self._conn
        assert conn is not None
        unit = self._unit
        if (
            unit.events or unit.messages or unit.new_members or unit.actions or unit.records or unit.failures
            or unit.txns or unit.rollups or unit.state_dirty or unit.jobs_dirty or unit.memberships
            or unit.member_seen or unit.group_last
        ):
            self._tx_wrote = True
        b = self._bulk
        self._flush_members()
        if unit.events:
            b.insert(conn, m.table(m.EventRow), _EVENT_COLS, unit.events)
            unit.events = []
        self._flush_messages()
        if unit.rollups:
            self._flush_aggregates(unit.rollups)
            self._flush_member_months(unit.rollups)  # member values' inputs (store/member_months.py)
            rows = [
                (g, mm, b.day(d), counts["community_id"], *[counts[c] for c in _COUNTERS])
                for (g, mm, d), counts in unit.rollups.items()
            ]
            b.upsert(conn, m.table(m.Rollup), _ROLLUP_COLS, ("group_id", "member_id", "day"), rows, add=_COUNTERS)
            unit.rollups = {}
        self._flush_state()
        if unit.txns:
            self._flush_ledger(unit.txns)
            unit.txns = []
        if unit.actions:
            rows = [
                (
                    a["id"], b.ts(a["ts"]), a["community_id"], a["group_key"], a["platform"], a["type"],
                    a["playbook"], a["cause"], b.json(a["payload"]), a["status"], a["attempts"],
                    a["downgraded_from"],
                )
                for a in unit.actions
            ]
            b.insert(conn, m.table(m.ActionRow), _ACTION_COLS, rows)
            unit.actions = []
        if unit.records:
            rows = [
                (
                    r["community_id"], r["group_key"], r["playbook"], r["kind"], r["member"],
                    b.ts(r["ts"]), r["cause"], b.json(r["data"]),
                )
                for r in unit.records
            ]
            b.insert(conn, m.table(m.Record), _RECORD_COLS, rows)
            unit.records = []
        if unit.failures:
            conn.execute(insert(m.table(m.Failure)), unit.failures)
            unit.failures = []
        if unit.memberships:
            shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
            for row in unit.memberships.values():
                shapes.setdefault(frozenset(row), []).append(row)
            for fields, rows_ in shapes.items():
                full = [{"role": "member", "status": "active", **r} for r in rows_]
                conn.execute(self._membership_stmt(fields), full)
            unit.memberships = {}
        if unit.jobs_dirty:
            t = m.table(m.Job)
            puts = [self._jobs[j].row() for j in unit.jobs_dirty if j in self._jobs]
            dels = [{"j": j} for j in unit.jobs_dirty if j not in self._jobs]
            if dels:
                conn.execute(delete(t).where(t.c.id == bindparam("j")), dels)
            if puts:
                stmt = self._upsert(t)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.c.id],
                    set_={c.name: stmt.excluded[c.name] for c in t.c if c.name != "id"},
                )
                conn.execute(stmt, puts)
            unit.jobs_dirty = set()
        if unit.group_last:
            b.update_by_id(
                conn, m.table(m.Group), ("last_event_at",), [(b.ts(ts), g) for g, ts in unit.group_last.items()]
            )
            unit.group_last = {}
        if unit.member_seen:
            b.update_by_id(
                conn,
                m.table(m.Member),
                ("name", "last_seen_at"),
                [(_clean(nm) if nm else nm, b.ts(ts), mid) for mid, (nm, ts) in unit.member_seen.items()],
            )
            unit.member_seen = {}

    def _flush_aggregates(self, deltas: Mapping[tuple[int, int, date], Mapping[str, Any]]) -> None:
        """Keep group_days, member_groups, community_days and retention_cells with the rollups.

        Called with the batch's rollup increments before they are written: the
        touched members' rollup rows of the touched weeks are read first (the
        ``(member_id, day)`` index), so "first message of the day / week in
        this group / in the community" is decided exactly, whatever the order
        in which events arrive. The report then reads these small tables.
        """
        conn = self._conn
        assert conn is not None
        b = self._bulk
        mark = "?" if b.sqlite else "%s"
        # members whose message or check-in counts moved need their earlier rows
        movers = {mm for (_, mm, _), c in deltas.items() if c["messages"] or c["checkins"]}
        pre: dict[tuple[int, int, date], tuple[int, int]] = {}
        spoke: dict[int, set[date]] = {}
        first_pre: dict[int, date] = {}
        if movers:
            days = [d for (_, mm, d) in deltas if mm in movers]
            lo = _monday(min(days))
            hi = _monday(max(days)) + timedelta(days=6)
            ids = sorted(movers)
            for i in range(0, len(ids), 500):
                chunk = ", ".join(str(int(x)) for x in ids[i : i + 500])
                for g, mm, d, n, ck in conn.exec_driver_sql(
                    "SELECT group_id, member_id, day, messages, checkins FROM rollups "
                    f"WHERE member_id IN ({chunk}) AND day >= {mark} AND day <= {mark}",
                    (b.day(lo), b.day(hi)),
                ):
                    day = _to_date(d)
                    pre[(int(g), int(mm), day)] = (int(n or 0), int(ck or 0))
                    if n and n > 0:
                        spoke.setdefault(int(mm), set()).add(day)
                for mm, first in conn.exec_driver_sql(
                    f"SELECT member_id, min(first_message_day) FROM member_groups WHERE member_id IN ({chunk}) "
                    "GROUP BY member_id"
                ):
                    if first is not None:
                        first_pre[int(mm)] = _to_date(first)
        gd: dict[tuple[int, date], list[Any]] = {}
        mg: dict[tuple[int, int], list[Any]] = {}
        wrote: dict[int, tuple[str, set[date]]] = {}  # member → (community, days now with a message)
        for (g, mm, d), c in deltas.items():
            cid = c["community_id"]
            dm, dc = c["messages"], c["checkins"]
            pm, pc = pre.get((g, mm, d), (0, 0))
            spoke_new = (pm + dm > 0) - (pm > 0)
            ck_new = (pc + dc > 0) - (pc > 0)
            a = gd.get((g, d))
            if a is None:
                gd[(g, d)] = [cid, dm, spoke_new, c["joins"], c["leaves"], ck_new]
            else:
                a[1] += dm
                a[2] += spoke_new
                a[3] += c["joins"]
                a[4] += c["leaves"]
                a[5] += ck_new
            said = d if pm + dm > 0 and dm else None
            e = mg.get((g, mm))
            if e is None:
                mg[(g, mm)] = [cid, d, said, said, dm, ck_new]
            else:
                e[1] = min(e[1], d)
                if said is not None:
                    e[2] = said if e[2] is None else min(e[2], said)
                    e[3] = said if e[3] is None else max(e[3], said)
                e[4] += dm
                e[5] += ck_new
            if pm + dm > 0 and dm:
                wrote.setdefault(mm, (cid, set()))[1].add(d)
        cdays: dict[tuple[str, date], int] = {}
        cells: dict[tuple[str, date, date], int] = {}
        for mm, (cid, days_) in wrote.items():
            before = spoke.get(mm, set())
            before_weeks = {_monday(x) for x in before}
            old_first = first_pre.get(mm)
            first = min(days_) if old_first is None else min(old_first, min(days_))
            cohort = _monday(first)
            if old_first is not None and cohort < _monday(old_first):
                # an earlier first message (a late event): move the member to the new cohort
                old_cohort = _monday(old_first)
                weeks = {
                    _monday(_to_date(d))
                    for (d,) in conn.exec_driver_sql(
                        f"SELECT day FROM rollups WHERE member_id = {mark} AND messages > 0", (int(mm),)
                    )
                }
                for w in weeks:
                    cells[(cid, old_cohort, w)] = cells.get((cid, old_cohort, w), 0) - 1
                    cells[(cid, cohort, w)] = cells.get((cid, cohort, w), 0) + 1
                before_weeks |= weeks
            for d in days_:
                if d not in before:
                    cdays[(cid, d)] = cdays.get((cid, d), 0) + 1
                w = _monday(d)
                if w not in before_weeks:
                    before_weeks.add(w)
                    cells[(cid, cohort, w)] = cells.get((cid, cohort, w), 0) + 1
        b.upsert(
            conn, m.table(m.GroupDay), _GROUP_DAY_COLS, ("group_id", "day"),
            [(g, b.day(d), *a) for (g, d), a in gd.items()], add=_GROUP_DAY_COLS[3:],
        )
        b.upsert(
            conn, m.table(m.MemberGroup), _MEMBER_GROUP_COLS, ("group_id", "member_id"),
            [
                (g, mm, cid, b.day(first), None if fm is None else b.day(fm), None if lm is None else b.day(lm), n, ck)
                for (g, mm), (cid, first, fm, lm, n, ck) in mg.items()
            ],
            add=("messages", "checkin_days"), low=("first_day", "first_message_day"), high=("last_message_day",),
        )
        if cdays:
            b.upsert(
                conn, m.table(m.CommunityDay), ("community_id", "day", "speakers"), ("community_id", "day"),
                [(cid, b.day(d), n) for (cid, d), n in cdays.items()], add=("speakers",),
            )
        if cells:
            b.upsert(
                conn, m.table(m.RetentionCell), ("community_id", "cohort", "week", "speakers"),
                ("community_id", "cohort", "week"),
                [(cid, b.day(c), b.day(w), n) for (cid, c, w), n in cells.items() if n],
                add=("speakers",),
            )

    def _flush_member_months(self, deltas: Mapping[tuple[int, int, date], Mapping[str, Any]]) -> None:
        """Keep ``member_months`` (per member and month: decayed points, level needs, counters) with the rollups.

        Called with the batch's rollup increments before they are written. A
        rollup row's points are capped, so the stored counters of the rows
        whose point counters move are read first (one query per 500 members,
        ``(member_id, day)`` index), then those members' month rows. Days in
        order (the usual case) update a row from its stored values; a late day,
        or points that went down, rebuild that member's month from its rollups
        (see store/member_months.py). Increments that move no point counter
        (joins, leaves, mentions sent) only mark the day as seen.
        """
        conn = self._conn
        assert conn is not None
        b = self._bulk
        mark = "?" if b.sqlite else "%s"
        cols = mm_.ROLLUP_COLUMNS
        weights = [mm_.POINTS.get(k, 0.0) for k in cols]
        cap = mm_.DAILY_CAP
        moving = {key: c for key, c in deltas.items() if any(c[k] for k in cols)}
        pre: dict[tuple[int, int, date], tuple[Any, ...]] = {}
        old: dict[tuple[int, date], mm_.MonthState] = {}
        touched = sorted({mm for (_, mm, _) in moving})
        if touched:
            lo = min(d for (_, _, d) in moving)
            hi = max(d for (_, _, d) in moving)
            for i in range(0, len(touched), 500):
                chunk = ", ".join(str(int(x)) for x in touched[i : i + 500])
                for row in conn.exec_driver_sql(
                    f"SELECT group_id, member_id, day, {', '.join(cols)} FROM rollups "
                    f"WHERE member_id IN ({chunk}) AND day >= {mark} AND day <= {mark}",
                    (b.day(lo), b.day(hi)),
                ):
                    pre[(int(row[0]), int(row[1]), _to_date(row[2]))] = tuple(row[3:])
                for row in conn.exec_driver_sql(
                    f"SELECT member_id, {', '.join(mm_.COLUMNS[1:])} FROM member_months "
                    f"WHERE member_id IN ({chunk}) AND month >= {mark} AND month <= {mark}",
                    (b.day(mm_.month_of(lo)), b.day(mm_.month_of(hi))),
                ):
                    st = mm_.from_row(row[1:], _to_date)
                    old[(int(row[0]), st.month)] = st
        zero = (0,) * len(cols)
        # per member and month: the days touched, with the change of the day's points
        changes: dict[tuple[int, date], tuple[str, dict[date, float], list[Mapping[str, Any]]]] = {}
        seen_only: dict[tuple[int, date], tuple[str, date]] = {}
        months: dict[date, date] = {}
        for (g, mm, d), c in deltas.items():
            month = months.get(d)
            if month is None:
                month = months[d] = mm_.month_of(d)
            key = (mm, month)
            if (g, mm, d) not in moving:
                last = seen_only.get(key)
                if last is None or d > last[1]:
                    seen_only[key] = (c["community_id"], d)
                continue
            before = pre.get((g, mm, d), zero)
            step = [c[k] for k in cols]
            if min(before) >= 0 and min(step) >= 0:  # counters only grow: no clamping at 0 needed
                p0 = sum(map(operator.mul, weights, before))
                p1 = p0 + sum(map(operator.mul, weights, step))
            else:
                p0 = sum(w * max(0, v) for w, v in zip(weights, before, strict=True))
                p1 = sum(w * max(0, v + dv) for w, v, dv in zip(weights, before, step, strict=True))
            dp = min(cap, p1) - min(cap, p0)
            entry = changes.get(key)
            if entry is None:
                entry = changes[key] = (c["community_id"], {}, [])
            entry[1][d] = entry[1].get(d, 0.0) + dp
            entry[2].append(c)
        rows = []
        for (mm, month), (cid, days, counts) in changes.items():
            state: mm_.MonthState | None = old.get((mm, month))
            moved = [d for d, dp in days.items() if dp != 0]
            last_p = state.last_points_day if state is not None else None
            late = last_p is not None and any(
                d < last_p for d in moved
            )
            if late or any(days[d] < 0 for d in moved):
                state = self._member_month_rebuilt(mm, month, cid, deltas)
            else:
                if state is None:
                    state = mm_.MonthState(cid, month)
                for d in sorted(days):
                    state.seen(d)
                    state.add_points(d, days[d])
                for c in counts:
                    state.add_counts(c)
            seen = seen_only.pop((mm, month), None)
            if seen is not None:
                state.seen(seen[1])
            rows.append(state.row(mm, b.day))
        b.upsert(conn, m.table(m.MemberMonth), mm_.COLUMNS, ("member_id", "month"), rows, replace=mm_.COLUMNS[2:])
        if seen_only:
            # a new row, or only a later last day for a stored one
            b.upsert(
                conn, m.table(m.MemberMonth), mm_.COLUMNS, ("member_id", "month"),
                [mm_.MonthState(cid, month, last_day=d).row(mm, b.day) for (mm, month), (cid, d) in seen_only.items()],
                high=("last_day",),
            )
        self._flush_streaks(deltas, pre)

    def _flush_streaks(
        self, deltas: Mapping[tuple[int, int, date], Mapping[str, Any]], pre: Mapping[tuple[int, int, date], Any]
    ) -> None:
        """Keep ``checkin_streaks``: a member's days with a check-in in any group, longest and current run.

        ``pre`` holds the touched members' stored rollup rows of the batch's
        days (``mm_.ROLLUP_COLUMNS``). A new day after the last one extends or
        restarts the run; an earlier day, or a day that lost its check-in,
        rebuilds the member's row from the rollups.
        """
        ck = mm_.ROLLUP_COLUMNS.index("checkins")
        changed: dict[tuple[int, date], list[tuple[int, int]]] = {}
        for (g, mm, d), c in deltas.items():
            if c["checkins"]:
                changed.setdefault((mm, d), []).append((g, int(c["checkins"])))
        moved = set(changed)
        if not moved:
            return
        conn = self._conn
        assert conn is not None
        b = self._bulk
        mark = "?" if b.sqlite else "%s"
        # per member-day: check-ins per group, stored and after this batch
        stored: dict[tuple[int, date], dict[int, int]] = {}
        for (g, mm, d), row in pre.items():
            if (mm, d) in moved:
                stored.setdefault((mm, d), {})[g] = int(row[ck] or 0)
        gained: dict[int, list[date]] = {}
        rebuild: set[int] = set()
        for mm, d in moved:
            per_group = stored.get((mm, d), {})
            was = any(n > 0 for n in per_group.values())
            now_ = dict(per_group)
            for g, n in changed[(mm, d)]:
                now_[g] = now_.get(g, 0) + n
            now = any(n > 0 for n in now_.values())
            if now and not was:
                gained.setdefault(mm, []).append(d)
            elif was and not now:
                rebuild.add(mm)
        members = sorted(set(gained) | rebuild)
        if not members:
            return
        cid_of = {mm: c["community_id"] for (_, mm, _), c in deltas.items()}
        stored_rows: dict[int, mm_.Streak] = {}
        ids = ", ".join(str(int(x)) for x in members)
        for mm, days, longest, last, run in conn.exec_driver_sql(
            f"SELECT member_id, days, longest, last_day, run FROM checkin_streaks WHERE member_id IN ({ids})"
        ):
            stored_rows[int(mm)] = mm_.Streak(int(days), int(longest), _to_date(last), int(run))
        out = []
        for mm in members:
            st = stored_rows.get(mm)
            ok = mm not in rebuild
            for d in sorted(gained.get(mm, ())):
                if not ok:
                    break
                if st is None:
                    st = mm_.Streak(1, 1, d, 1)
                else:
                    ok = st.add(d)
            if not ok:
                # the member's check-in days from the rollups, with this batch's increments
                days_ck: dict[tuple[int, date], int] = {}
                for g, d, n in conn.exec_driver_sql(
                    f"SELECT group_id, day, checkins FROM rollups WHERE member_id = {mark}", (int(mm),)
                ):
                    days_ck[(int(g), _to_date(d))] = int(n or 0)
                for (g, mm2, d), c in deltas.items():
                    if mm2 == mm:
                        days_ck[(g, d)] = days_ck.get((g, d), 0) + c["checkins"]
                st = mm_.streak_of(d for (_, d), n in days_ck.items() if n > 0)
            if st is None:
                conn.exec_driver_sql(f"DELETE FROM checkin_streaks WHERE member_id = {mark}", (int(mm),))
                continue
            out.append((mm, cid_of[mm], st.days, st.longest, b.day(st.last_day), st.run))
        b.upsert(
            conn, m.table(m.CheckinStreak), ("member_id", "community_id", "days", "longest", "last_day", "run"),
            ("member_id",), out, replace=("days", "longest", "last_day", "run"),
        )

    def _member_month_rebuilt(
        self, member: int, month: date, cid: str, deltas: Mapping[tuple[int, int, date], Mapping[str, Any]]
    ) -> mm_.MonthState:
        """One member's month from its stored rollups plus this batch's increments (the rare path)."""
        conn = self._conn
        assert conn is not None
        b = self._bulk
        mark = "?" if b.sqlite else "%s"
        cols = mm_.ROLLUP_COLUMNS
        nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        found: dict[tuple[int, date], dict[str, Any]] = {}
        for row in conn.exec_driver_sql(
            f"SELECT group_id, day, {', '.join(cols)} FROM rollups WHERE member_id = {mark} "
            f"AND day >= {mark} AND day < {mark}",
            (int(member), b.day(month), b.day(nxt)),
        ):
            found[(int(row[0]), _to_date(row[1]))] = {k: row[2 + i] or 0 for i, k in enumerate(cols)}
        for (g, mm, d), c in deltas.items():
            if mm == member and month <= d < nxt:
                row_ = found.setdefault((g, d), dict.fromkeys(cols, 0))
                for k in cols:
                    row_[k] += c[k]
        return mm_.month_state(cid, month, [(d, c) for (_, d), c in found.items()])

    def _flush_ledger(self, txns: list[PendingTxn]) -> None:
        conn = self._conn
        assert conn is not None
        b = self._bulk
        b.insert(
            conn,
            m.table(m.LedgerTransaction),
            _TXN_COLS,
            [(t.id, t.community_id, b.ts(t.ts), t.currency, t.reason, t.playbook, t.cause) for t in txns],
        )
        postings = []
        deltas: dict[int, int] = {}
        for t in txns:
            for p in t.postings:
                aid = self._accounts[(t.community_id, p.account_code)][0]
                postings.append((t.id, aid, p.amount))
                deltas[aid] = deltas.get(aid, 0) + p.amount
        b.insert(conn, m.table(m.Posting), _POSTING_COLS, postings)
        b.update_by_id(conn, m.table(m.Account), ("balance",), [(d, a) for a, d in deltas.items()], add=True)


def run_events(engine: Engine, events: Iterable[BaseEvent]) -> list[Outcome]:
    """Handle an iterable of events in ``engine.batch_size`` chunks."""
    out: list[Outcome] = []
    chunk: list[BaseEvent] = []
    for e in events:
        chunk.append(e)
        if len(chunk) >= engine.batch_size:
            out.extend(engine.handle_many(chunk))
            chunk = []
    if chunk:
        out.extend(engine.handle_many(chunk))
    return out
