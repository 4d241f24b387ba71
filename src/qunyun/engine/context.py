"""What a playbook sees: :class:`Context`.

Everything a playbook may touch comes through here — the event or job, the
group and community, its configuration, its state, the ledger, the
scheduler, templates and the outbox. Nothing is written until the engine
merges the playbook's layer; if the playbook raises, none of it happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection

from qunyun.core.actions import ACTION_ADAPTER, ACTION_TYPES
from qunyun.core.errors import PlaybookError
from qunyun.core.events import BaseEvent
from qunyun.core.ids import action_id
from qunyun.core.text import clip, display_name
from qunyun.engine.scheduler import validate_cron
from qunyun.engine.templates import pick, render
from qunyun.engine.unit import DELETED, MISSING, Layer, PendingJob, PendingPosting, PendingTxn

if TYPE_CHECKING:
    from qunyun.config.model import CommunitySettings, GroupSettings
    from qunyun.engine.engine import Engine
    from qunyun.engine.playbook import Playbook

log = logging.getLogger("qunyun.playbook")


@dataclass(frozen=True, slots=True)
class JobCall:
    """A scheduled job coming due."""

    id: str
    name: str
    key: str
    payload: dict[str, Any]
    due: datetime
    kind: str


@dataclass(frozen=True, slots=True)
class Command:
    """An operator's command to one playbook, from the CLI, the API or the console.

    ``actor`` is who gave it (a console user, ``cli``, or a platform user id
    for commands typed in the admin group); ``args`` are JSON values.
    """

    id: str
    name: str
    args: dict[str, Any]
    actor: str


@dataclass(frozen=True, slots=True)
class Posting:
    """A ledger posting, as shown to ``on_postings`` watchers."""

    transaction: str
    account: str
    member: str | None
    currency: str
    amount: int
    reason: str
    playbook: str


class State:
    """A playbook's key → JSON value store, scoped to its community."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def get(self, key: str, default: Any = None) -> Any:
        ctx = self._ctx
        layer = ctx._layer
        value = layer.state.get(key, MISSING) if layer is not None and layer.state is not None else MISSING
        if value is MISSING:
            value = ctx._engine._state_get(ctx._cid, ctx._playbook.id, key)
        if value is MISSING or value is DELETED:
            return default
        return value

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (dicts, lists, str, int, float, bool, None)."""
        try:
            orjson.dumps(value)
        except TypeError as exc:
            raise PlaybookError(f"state {key!r}: the value cannot be stored as JSON ({exc})") from None
        self._ctx._lw().state_w()[key] = value

    def delete(self, key: str) -> None:
        self._ctx._lw().state_w()[key] = DELETED

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        ctx = self._ctx
        layer = ctx._layer
        merged = dict(ctx._engine._state_scan(ctx._cid, ctx._playbook.id, prefix))
        for key, value in ((layer.state if layer is not None else None) or {}).items():
            if key.startswith(prefix):
                merged[key] = value
        for key in sorted(merged):
            value = merged[key]
            if value is not DELETED and value is not MISSING:
                yield key, value


class ReadOnlyState:
    """Another playbook's state in the same community, for reading only.

    ``ctx.state_of("profile").get(f"m:{uid}")`` lets ``microphone`` see the
    expertise tags that ``profile`` keeps. Writes go through the owning
    playbook (its commands or events), never through this view.
    """

    __slots__ = ("_ctx", "_pid")

    def __init__(self, ctx: Context, pid: str) -> None:
        self._ctx = ctx
        self._pid = pid

    def get(self, key: str, default: Any = None) -> Any:
        ctx = self._ctx
        if ctx._layer is not None and ctx._layer.playbook == self._pid:
            return ctx.state.get(key, default)
        value = ctx._engine._state_get(ctx._cid, self._pid, key)
        if value is MISSING or value is DELETED:
            return default
        return value

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        ctx = self._ctx
        if ctx._layer is not None and ctx._layer.playbook == self._pid:
            yield from ctx.state.scan(prefix)
            return
        for key, value in sorted(ctx._engine._state_scan(ctx._cid, self._pid, prefix)):
            if value is not DELETED and value is not MISSING:
                yield key, value


class Ledger:
    """Double-entry bookkeeping in integer minor units. Points are a currency."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def member_account(self, member: str, currency: str) -> str:
        """The account code of ``member`` (a user id on this group's platform).

        A linked id, or a member's own id in a group of another platform, gives
        the member's own account (docs/identities.md)."""
        ctx = self._ctx
        platform, uid = ctx._engine._own_id(ctx._cid, ctx.group.platform, member)
        return f"member:{platform}:{uid}:{currency}"

    @staticmethod
    def issuance_account(currency: str) -> str:
        """Where points are minted from (its balance is minus all points issued)."""
        return f"community:issuance:{currency}"

    def balance(self, account: str) -> int:
        ctx = self._ctx
        layer = ctx._layer
        txns = (layer.txns if layer is not None else None) or ()
        pending = sum(p.amount for t in txns for p in t.postings if p.account_code == account)
        return ctx._engine._account_balance(ctx._cid, account) + pending

    def points(self, member: str, currency: str = "POINTS") -> int:
        return self.balance(self.member_account(member, currency))

    def transfer(
        self,
        source: str,
        destination: str,
        amount: int,
        currency: str,
        reason: str,
    ) -> str:
        """Move ``amount`` minor units from ``source`` to ``destination``; return the txn id."""
        return self.post([(source, -amount), (destination, amount)], currency, reason)

    def post(self, legs: Sequence[tuple[str, int]], currency: str, reason: str) -> str:
        """Post one balanced transaction; the amounts must be integers summing to zero."""
        if not legs:
            raise PlaybookError("a ledger transaction needs at least two postings")
        for account, amount in legs:
            if type(amount) is not int:
                raise PlaybookError(
                    f"ledger amounts are integer minor units; got {amount!r} for {account}"
                )
        if sum(a for _, a in legs) != 0:
            raise PlaybookError(f"unbalanced ledger transaction {legs!r}: postings must sum to zero")
        # the reason is a short label (it may come from a member's payment memo)
        reason = clip(reason.replace("\x00", "\ufffd"), 256)
        ctx = self._ctx
        layer = ctx._lw()
        for account, _ in legs:
            held = ctx._engine._account_currency(layer.community_id, account)
            if held is not None and held != currency:
                raise PlaybookError(f"account {account} holds {held}, not {currency}")
        ordinal = layer.txn_ordinal
        layer.txn_ordinal += 1
        txn_id = "txn-" + action_id(layer.seed, layer.playbook, ordinal)[4:]
        postings = [
            PendingPosting(txn_id, account, currency, amount, _member_of(account))
            for account, amount in legs
            if amount != 0
        ]
        if layer.txns is None:
            layer.txns = []
        layer.txns.append(
            PendingTxn(txn_id, layer.community_id, ctx.now, currency, reason, layer.playbook, layer.cause, postings)
        )
        return txn_id

    def award_points(self, member: str, amount: int, reason: str, currency: str = "POINTS") -> str:
        """Mint ``amount`` points to ``member`` from the community's issuance account."""
        return self.transfer(
            self.issuance_account(currency), self.member_account(member, currency), amount, currency, reason
        )


def _member_of(account: str) -> tuple[str, str] | None:
    """(platform, user id) of a ``member:<platform>:<user>:<currency>`` account."""
    if account.startswith("member:"):
        platform, _, rest = account[7:].partition(":")
        return platform, rest.rsplit(":", 1)[0]
    return None


class Context:
    """The one argument every playbook handler receives, besides the event or job."""

    __slots__ = (
        "_cause",
        "_cid",
        "_engine",
        "_key",
        "_layer",
        "_playbook",
        "config",
        "event",
        "group",
        "job",
        "ledger",
        "now",
        "state",
    )

    def __init__(
        self,
        engine: Engine,
        playbook: Playbook | None,
        layer: Layer | None,
        group: GroupSettings,
        now: datetime,
        event: BaseEvent | None = None,
        job: JobCall | None = None,
        *,
        cause: str = "",
        key: str | None = None,
    ) -> None:
        self._engine = engine
        self._layer = layer
        self._cid = group.community.id
        self._cause = layer.cause if layer is not None else cause
        self._key = key
        self.group = group
        self.now = now
        self.event = event
        self.job = job
        self.state = State(self)
        self.ledger = Ledger(self)
        if playbook is not None:
            self._playbook = playbook
            self.config: Any = group.playbooks.get(playbook.id)

    def state_of(self, playbook: str) -> ReadOnlyState:
        """Read (never write) another playbook's state in this community."""
        return ReadOnlyState(self, playbook)

    def enabled(self, playbook: str) -> bool:
        """Whether ``playbook`` runs in this group (e.g. ``qa`` asks if ``microphone`` does)."""
        return playbook in self.group.playbooks

    def _bind(self, playbook: Playbook, config: Any) -> None:
        """Engine use: hand this context to the next playbook (no layer until it writes)."""
        self._playbook = playbook
        self.config = config
        self._layer = None

    def _lw(self) -> Layer:
        """The layer to write to, made on the first write."""
        layer = self._layer
        if layer is None:
            layer = self._engine._layer(self._playbook.id, self._cause, self._cid, key=self._key)
            self._layer = layer
        return layer

    # --- where and when -----------------------------------------------------

    @property
    def community(self) -> CommunitySettings:
        return self.group.community

    @property
    def local_now(self) -> datetime:
        """The clock's time in the community's time zone."""
        return self.now.astimezone(self.group.community.tz)

    @property
    def today(self) -> date:
        """The local date in the community's time zone."""
        return self.local_now.date()

    def local_day(self, when: datetime) -> date:
        return when.astimezone(self.group.community.tz).date()

    @property
    def log(self) -> logging.Logger:
        return log

    # --- people -------------------------------------------------------------

    def role(self, member: str) -> str:
        """owner, admin, assistant, guest or member (from the configuration).

        For a member with linked ids, the highest role any of its ids has."""
        return self._engine._role(self.group.community, member)

    def name(self, member: str) -> str:
        """A display-safe name for ``member``: controls and bidi marks removed."""
        return display_name(self._engine._member_name(self.group, member), member)

    def title(self, member: str) -> str | None:
        """The member's conferred title (e.g. "资深运营"), display-safe, or None.

        A title conferred with the ``titles`` playbook wins; otherwise the
        member row's title (set by an adapter or an import), if any.
        """
        raw: Any = None
        if "titles" in self.community.playbook_specs:
            st = self.state_of("titles").get(f"m:{member}")
            raw = st.get("title") if isinstance(st, dict) else None
        if not isinstance(raw, str) or not raw:
            raw = self._engine._member_title(self.group, member)
        return display_name(raw, "") or None if raw else None

    # --- words --------------------------------------------------------------

    def render(self, template: str, **values: Any) -> str:
        """Fill this playbook's template ``template`` in the community's locale."""
        community = self.group.community
        text = pick(
            self._playbook.templates, community.templates, self._playbook.id, template, community.locale
        )
        return render(text, values)

    @property
    def locale(self) -> str:
        return self.group.community.locale

    # --- actions ------------------------------------------------------------

    def _emit(self, type_: str, fields: dict[str, Any], group: str | None = None) -> str:
        layer = self._lw()
        aid = action_id(layer.seed, layer.playbook, layer.ordinal)
        layer.ordinal += 1
        body = {
            "v": 1,
            "id": aid,
            "ts": self.now,
            "group": group or self.group.key,
            "type": type_,
            **fields,
            "playbook": layer.playbook,
            "cause": layer.cause,
        }
        if type_ not in ACTION_TYPES:
            raise PlaybookError(f"unknown action type {type_!r}")
        emits = self._playbook.emits
        if emits and type_ not in emits:
            raise PlaybookError(
                f"{layer.playbook} emitted {type_!r} but declares emits={sorted(emits)}; add it to emits"
            )
        try:
            ACTION_ADAPTER.validate_python(body)
        except ValidationError as exc:
            raise PlaybookError(f"{layer.playbook} emitted an invalid {type_} action: {exc}") from None
        if layer.actions is None:
            layer.actions = []
        layer.actions.append(body)
        return aid

    def send(
        self, text: str, *, mentions: Sequence[str] = (), reply_to: str | None = None, group: str | None = None
    ) -> str:
        """Post ``text`` in the group (or in ``group``, another group key of this
        community on the same platform), @-mentioning ``mentions``."""
        return self._emit(
            "send", {"text": text, "mentions": list(mentions), "reply_to": reply_to}, group=self._other_group(group)
        )

    def direct(self, member: str, text: str) -> str:
        return self._emit("direct", {"member": member, "text": text})

    def remove(self, member: str, reason: str, *, group: str | None = None) -> str:
        """Remove ``member`` from this group, or from ``group`` (another group key of
        this community on the same platform)."""
        return self._emit("remove", {"member": member, "reason": reason}, group=self._other_group(group))

    def delete(self, msg_id: str) -> str:
        return self._emit("delete", {"msg_id": msg_id})

    def mute(self, member: str, until: datetime) -> str:
        return self._emit("mute", {"member": member, "until": until})

    def invite(self, member: str, *, group: str | None = None) -> str:
        """Invite ``member`` into this group, or into ``group`` (another group key of
        this community on the same platform: how the capacity router places newcomers)."""
        return self._emit("invite", {"member": member}, group=self._other_group(group))

    def _other_group(self, key: str | None) -> str | None:
        if key is None or key == self.group.key:
            return None
        other = next((g for g in self.community.groups.values() if g.key == key), None)
        if other is None:
            raise PlaybookError(f"community {self._cid!r} has no group {key!r}")
        if other.platform != self.group.platform:
            raise PlaybookError(f"group {key!r} is on {other.platform}, not {self.group.platform}")
        return key

    def pin(self, msg_id: str) -> str:
        return self._emit("pin", {"msg_id": msg_id})

    def notify_admins(self, text: str) -> str:
        return self._emit("notify_admins", {"text": text})

    def create_group(self, template: str) -> str:
        return self._emit("create_group", {"template": template})

    def dissolve_group(self) -> str:
        return self._emit("dissolve_group", {})

    def suppress(self) -> None:
        """Later playbooks will not see this event (e.g. moderation removed spam)."""
        self._lw().suppress = True

    # --- records, counters --------------------------------------------------

    def record(self, kind: str, member: str | None = None, **data: Any) -> None:
        """Append a line to this playbook's log (e.g. the moderation log)."""
        try:
            orjson.dumps(data)
        except TypeError as exc:
            raise PlaybookError(f"record {kind!r}: data cannot be stored as JSON ({exc})") from None
        layer = self._lw()
        if layer.records is None:
            layer.records = []
        layer.records.append(
            {
                "community_id": layer.community_id,
                "group_key": self.group.key,
                "playbook": layer.playbook,
                "kind": kind,
                "member": member,
                "ts": self.now,
                "cause": layer.cause,
                "data": data,
            }
        )

    def count(self, counter: str, n: int = 1, member: str | None = None) -> None:
        """Add ``n`` to today's rollup ``counter`` for ``member`` (default: the actor)."""
        from qunyun.store.models import ROLLUP_COUNTERS

        if counter not in ROLLUP_COUNTERS:
            raise PlaybookError(f"unknown rollup counter {counter!r}; known: {', '.join(ROLLUP_COUNTERS)}")
        who = member or (self.event.actor.id if self.event is not None else None)
        if who is None:
            raise PlaybookError("ctx.count outside an event needs member=")
        layer = self._lw()
        if layer.counts is None:
            layer.counts = []
        day = self.local_day(self.event.ts if self.event is not None else self.now)
        layer.counts.append((counter, who, n, day))

    # --- time ---------------------------------------------------------------

    def schedule(
        self,
        name: str,
        *,
        at: datetime | None = None,
        cron: str | None = None,
        every: timedelta | None = None,
        payload: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Schedule ``on_job`` for this playbook and group. Same key replaces; returns the job id.

        ``at``: once; ``every``: interval; ``cron``: five-field cron in the
        community's time zone. Scheduling an identical recurring job again
        keeps its next due time (so ``setup`` may call this on every start).
        """
        if sum(x is not None for x in (at, cron, every)) != 1:
            raise PlaybookError("schedule needs exactly one of at=, cron=, every=")
        community = self.group.community
        job_key = key or name
        job_id = f"{community.id}/{self.group.platform}/{self.group.key}/{self._playbook.id}/{job_key}"
        if at is not None:
            if at.tzinfo is None:
                raise PlaybookError("schedule(at=...) needs an aware datetime")
            kind, spec, due = "once", "", at.astimezone(UTC)
        elif cron is not None:
            try:
                validate_cron(cron)
            except ValueError as exc:
                raise PlaybookError(str(exc)) from None
            from qunyun.engine.scheduler import next_cron

            kind, spec, due = "cron", cron, next_cron(cron, self.now, community.tz)
        else:
            assert every is not None
            if every <= timedelta(0):
                raise PlaybookError("schedule(every=...) needs a positive interval")
            kind, spec, due = "interval", str(every.total_seconds()), self.now + every
        data = dict(payload or {})
        try:
            orjson.dumps(data)
        except TypeError as exc:
            raise PlaybookError(f"job {name!r}: payload cannot be stored as JSON ({exc})") from None
        data["_name"] = name
        data["_key"] = job_key
        existing = self._engine._job_get(job_id)
        if (
            existing is not None
            and kind != "once"
            and existing.kind == kind
            and existing.spec == spec
            and existing.payload == data
        ):
            return job_id
        self._lw().jobs_w()[job_id] = PendingJob(
            job_id,
            community.id,
            self.group.key,
            self.group.platform,
            self._playbook.id,
            name,
            kind,
            spec,
            community.timezone,
            due,
            data,
        )
        return job_id

    def cancel(self, key: str) -> None:
        """Cancel this playbook's job ``key`` in this group (no error if absent)."""
        community = self.group.community
        job_id = f"{community.id}/{self.group.platform}/{self.group.key}/{self._playbook.id}/{key}"
        self._lw().jobs_w()[job_id] = None

    def job_due(self, key: str) -> datetime | None:
        """When this playbook's job ``key`` in this group fires next, if scheduled."""
        community = self.group.community
        job_id = f"{community.id}/{self.group.platform}/{self.group.key}/{self._playbook.id}/{key}"
        layer = self._layer
        if layer is not None and layer.jobs is not None and job_id in layer.jobs:
            pending = layer.jobs[job_id]
            return pending.due_at if pending else None
        existing = self._engine._job_get(job_id)
        return existing.due_at if existing else None

    # --- the raw store, for playbooks with tables of their own ---------------

    @property
    def db(self) -> Connection:
        """The event's database connection, inside a SAVEPOINT for this playbook.

        Use it only for tables your playbook owns (ship an Alembic migration).
        The savepoint is rolled back if the playbook raises.
        """
        return self._engine._savepoint_for(self._lw())
