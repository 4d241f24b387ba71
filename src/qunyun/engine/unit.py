"""The unit of work: what one batch of events will write, held until commit.

Hot rows (events, messages, rollup increments, state, actions, postings) are
buffered and written with one ``executemany`` per table at commit; rare rows
(a new member, group, account or membership) are written at once inside the
same open transaction. Either way everything commits together or not at all.

A :class:`Layer` holds what one playbook did for one cause. If the playbook
raises, its layer is dropped (with a real SAVEPOINT rolled back if it used
``ctx.db``); otherwise the layer is merged into the unit. That is the
savepoint of the architecture, kept in memory because it is ~50x cheaper
than a database savepoint per playbook per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

MISSING: Any = object()
DELETED: Any = object()


@dataclass(slots=True)
class PendingPosting:
    txn_id: str
    account_code: str
    currency: str
    amount: int
    member: tuple[str, str] | None


@dataclass(slots=True)
class PendingTxn:
    id: str
    community_id: str
    ts: datetime
    currency: str
    reason: str
    playbook: str
    cause: str
    postings: list[PendingPosting]


@dataclass(slots=True)
class PendingJob:
    id: str
    community_id: str
    group_key: str
    platform: str
    playbook: str
    name: str
    kind: str
    spec: str
    timezone: str
    due_at: datetime
    payload: dict[str, Any]

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "community_id": self.community_id,
            "group_key": self.group_key,
            "platform": self.platform,
            "playbook": self.playbook,
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "timezone": self.timezone,
            "due_at": self.due_at,
            "payload": self.payload,
        }


class Layer:
    """One playbook's pending effects for one cause.

    Containers are created on first write: most playbooks do nothing for
    most events, and this object is made once per playbook per event.
    """

    __slots__ = (
        "actions",
        "cause",
        "community_id",
        "counts",
        "jobs",
        "nested",
        "ordinal",
        "playbook",
        "records",
        "seed",
        "state",
        "suppress",
        "txn_ordinal",
        "txns",
    )

    def __init__(
        self, playbook: str, cause: str, community_id: str, ordinal: int, txn_ordinal: int, seed: str = ""
    ) -> None:
        self.playbook = playbook
        #: what ids are derived from: the platform-qualified cause
        self.seed = seed or cause
        self.cause = cause
        self.community_id = community_id
        self.ordinal = ordinal
        self.txn_ordinal = txn_ordinal
        self.state: dict[str, Any] | None = None
        self.actions: list[dict[str, Any]] | None = None
        self.txns: list[PendingTxn] | None = None
        self.records: list[dict[str, Any]] | None = None
        self.counts: list[tuple[str, str, int, date]] | None = None
        self.jobs: dict[str, PendingJob | None] | None = None
        self.nested: Any = None
        self.suppress = False

    def state_w(self) -> dict[str, Any]:
        if self.state is None:
            self.state = {}
        return self.state

    def jobs_w(self) -> dict[str, PendingJob | None]:
        if self.jobs is None:
            self.jobs = {}
        return self.jobs


@dataclass
class Unit:
    """Everything a batch will write at commit."""

    #: rows as tuples in the database's own representation (see store/bulk.py)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    event_keys: set[tuple[str, str]] = field(default_factory=set)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    #: members first seen in this batch (their ids are allocated already)
    new_members: list[tuple[Any, ...]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    #: every outbox row of the transaction, for Engine.on_commit (not cleared by flushes)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    txns: list[PendingTxn] = field(default_factory=list)
    #: (group_id, member_id, day) -> [community_id, counter -> delta]
    rollups: dict[tuple[int, int, date], dict[str, Any]] = field(default_factory=dict)
    #: (community_id, playbook, key) dirty state keys
    state_dirty: set[tuple[str, str, str]] = field(default_factory=set)
    jobs_dirty: set[str] = field(default_factory=set)
    group_last: dict[int, datetime] = field(default_factory=dict)
    #: (group_id, member_id) -> membership fields to upsert
    memberships: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    member_seen: dict[int, tuple[str | None, datetime]] = field(default_factory=dict)
    #: (cause, playbook) -> next ordinal for action ids / transaction ids
    ordinals: dict[tuple[str, str], int] = field(default_factory=dict)
    txn_ordinals: dict[tuple[str, str], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)
