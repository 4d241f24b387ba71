"""The database schema, as SQLAlchemy 2 typed models.

Every table here is created by an Alembic migration (``store/migrations``);
``qunyun migrate`` applies them. Times are UTC; money and points are integer
minor units in a double-entry ledger; rollups are member × group × local-day
counters maintained in the same transaction as the event that moved them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from qunyun.store.types import JSONText, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Community(Base):
    __tablename__ = "communities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Bumped by every engine transaction that writes for this community, so an
    #: engine in another process (a running ``qunyun run`` while an operator's
    #: command is given) knows its caches are stale.
    epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("platform", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), index=True)
    platform: Mapped[str] = mapped_column(String(64))
    #: The ``group`` field of events.
    key: Mapped[str] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(256))
    room: Mapped[str | None] = mapped_column(String(512))
    capacity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Member(Base):
    """A person, community-wide (one identity across the community's groups)."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("community_id", "platform", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"))
    platform: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(4096))
    title: Mapped[str | None] = mapped_column(String(256))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    erased: Mapped[bool] = mapped_column(Boolean, default=False)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("group_id", "member_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    role: Mapped[str] = mapped_column(String(32), default="member")
    #: active | left | removed
    status: Mapped[str] = mapped_column(String(16), default="active")
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    via: Mapped[str | None] = mapped_column(String(16))
    inviter_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        Index("ix_events_group_ts", "group_id", "ts"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(256))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(256))
    #: handled | late (arrived after later events of its group; still handled)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONText())


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_group_msg", "group_id", "msg_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    msg_id: Mapped[str] = mapped_column(String(256))
    event_id: Mapped[str] = mapped_column(String(256))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    content_type: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(256))
    mentions: Mapped[list[str] | None] = mapped_column(JSONText())
    #: visible | recalled | deleted
    status: Mapped[str] = mapped_column(String(16), default="visible")


class ActionRow(Base):
    """The outbox: every action, with its delivery state."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_status_seq", "status", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    community_id: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(256))
    platform: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    playbook: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(512), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONText())
    #: pending | delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    #: the original type when the platform could not do it and it was downgraded
    downgraded_from: Mapped[str | None] = mapped_column(String(32))


class Job(Base):
    """A scheduled job: one-shot, interval or cron, in a community's time zone."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "due_at"),)

    #: community/platform/group/playbook/key
    id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(256))
    platform: Mapped[str] = mapped_column(String(64))
    playbook: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    #: once | interval | cron
    kind: Mapped[str] = mapped_column(String(16))
    #: cron expression or interval seconds; empty for once
    spec: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONText())


class PlaybookState(Base):
    """A playbook's state: JSON values under keys, per community."""

    __tablename__ = "playbook_state"

    community_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    playbook: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONText())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Record(Base):
    """An append-only log line a playbook wrote: a moderation hit, a welcome…"""

    __tablename__ = "records"
    __table_args__ = (Index("ix_records_community_playbook_kind", "community_id", "playbook", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(256))
    playbook: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    member: Mapped[str | None] = mapped_column(String(256), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    cause: Mapped[str] = mapped_column(String(512))
    data: Mapped[dict[str, Any]] = mapped_column(JSONText())


class Failure(Base):
    """A playbook raised; its changes for that cause were rolled back."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(256))
    playbook: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(512))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text)


class Account(Base):
    """A ledger account. One currency per account; points are a currency too."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("community_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(String(64))
    #: e.g. ``member:sim:u-1:POINTS`` or ``community:issuance:POINTS``
    code: Mapped[str] = mapped_column(String(512))
    #: member | community | system
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    currency: Mapped[str] = mapped_column(String(16))
    #: Integer minor units; always equals the sum of this account's postings.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    #: Deterministic from (cause, playbook, ordinal), like action ids.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(256))
    playbook: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(512))


class Posting(Base):
    __tablename__ = "ledger_postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    #: Signed integer minor units; the postings of one transaction sum to zero.
    amount: Mapped[int] = mapped_column(BigInteger)


class Rollup(Base):
    """Member × group × local-day counters, kept in the event's transaction."""

    __tablename__ = "rollups"
    __table_args__ = (
        Index("ix_rollups_community_id_day", "community_id", "day"),
        Index("ix_rollups_member_id_day", "member_id", "day"),
        # joins and check-ins are rare among rollup rows: activation and streaks read only these
        Index(
            "ix_rollups_joins", "community_id", "day",
            sqlite_where=text("joins > 0"), postgresql_where=text("joins > 0"),
        ),
        Index(
            "ix_rollups_checkins", "community_id", "day", "member_id",
            sqlite_where=text("checkins > 0"), postgresql_where=text("checkins > 0"),
        ),
    )

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    #: The day in the community's time zone.
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    characters: Mapped[int] = mapped_column(BigInteger, default=0)
    media: Mapped[int] = mapped_column(Integer, default=0)
    links: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    mentions_sent: Mapped[int] = mapped_column(Integer, default=0)
    mentions_received: Mapped[int] = mapped_column(Integer, default=0)
    reactions_given: Mapped[int] = mapped_column(Integer, default=0)
    reactions_received: Mapped[int] = mapped_column(Integer, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)
    checkins: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class GroupDay(Base):
    """Group × local-day totals, kept with the rollups (same transaction).

    ``speakers`` and ``checkins`` count members (rollup rows with a message,
    with a check-in), the others sum the rollups' counters.
    """

    __tablename__ = "group_days"
    __table_args__ = (Index("ix_group_days_community_id_day", "community_id", "day"),)

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    speakers: Mapped[int] = mapped_column(Integer, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)
    checkins: Mapped[int] = mapped_column(Integer, default=0)


class MemberGroup(Base):
    """One member in one group, over all time: first seen, first and last message, totals."""

    __tablename__ = "member_groups"
    __table_args__ = (Index("ix_member_groups_community_id", "community_id"),)

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, index=True)
    community_id: Mapped[str] = mapped_column(String(64))
    #: the first local day with any rollup (joined, spoke, reacted, was mentioned…)
    first_day: Mapped[date] = mapped_column(Date)
    first_message_day: Mapped[date | None] = mapped_column(Date)
    last_message_day: Mapped[date | None] = mapped_column(Date)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    #: days with a check-in
    checkin_days: Mapped[int] = mapped_column(Integer, default=0)


class CommunityDay(Base):
    """Distinct people who wrote in any group of a community on a local day."""

    __tablename__ = "community_days"

    community_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    speakers: Mapped[int] = mapped_column(Integer, default=0)


class RetentionCell(Base):
    """Community-wide weekly speakers by first-message cohort.

    ``speakers`` people whose first message in the community was in the ISO
    week starting ``cohort`` wrote in the week starting ``week``. Summed over
    cohorts, a week's cells give its distinct speakers.
    """

    __tablename__ = "retention_cells"

    community_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Monday of the cohort's week
    cohort: Mapped[date] = mapped_column(Date, primary_key=True)
    #: Monday of the week
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    speakers: Mapped[int] = mapped_column(Integer, default=0)


class MemberMonth(Base):
    """One member's member-value inputs for one local month (``qunyun.store.member_months``).

    Kept by the engine with the rollups (same transaction); the health report
    reads these few rows per member instead of 120 days of rollups.
    """

    __tablename__ = "member_months"
    __table_args__ = (Index("ix_member_months_community_id_month", "community_id", "month"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    #: the month's first day
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64))
    #: the last day of the month with any rollup row; the last with points
    last_day: Mapped[date] = mapped_column(Date)
    last_points_day: Mapped[date | None] = mapped_column(Date)
    points: Mapped[float] = mapped_column(Double, default=0.0)
    #: Σ points(d)·2^((d − month)/half-life)
    weighted: Mapped[float] = mapped_column(Double, default=0.0)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    links_media: Mapped[int] = mapped_column(BigInteger, default=0)
    attention: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the smallest score on the month's first day that reaches each level within the month
    need_core: Mapped[float] = mapped_column(Double, default=100.0)
    need_active: Mapped[float] = mapped_column(Double, default=20.0)
    need_casual: Mapped[float] = mapped_column(Double, default=3.0)


class CheckinStreak(Base):
    """One member's check-in streaks over all time (days with a check-in in any group of the community).

    Kept by the engine with the rollups; ``run`` is the length of the streak
    that ends on ``last_day``.
    """

    __tablename__ = "checkin_streaks"
    __table_args__ = (Index("ix_checkin_streaks_community_id", "community_id"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    community_id: Mapped[str] = mapped_column(String(64))
    days: Mapped[int] = mapped_column(Integer, default=0)
    longest: Mapped[int] = mapped_column(Integer, default=0)
    last_day: Mapped[date] = mapped_column(Date)
    run: Mapped[int] = mapped_column(Integer, default=0)


#: Counters a playbook may bump with ``ctx.count(name)``.
ROLLUP_COUNTERS = (
    "messages",
    "characters",
    "media",
    "links",
    "replies",
    "mentions_sent",
    "mentions_received",
    "reactions_given",
    "reactions_received",
    "joins",
    "leaves",
    "checkins",
    "points",
)


# ---------------------------------------------------------------- console
# The operators' accounts for the console and the API (migration 0004). They
# are people who run the community, not its members: a console user is never
# a row of ``members``, and erasing a member touches none of these tables
# except to drop the member's personal data from audit entries.


class ConsoleUser(Base):
    """An operator's login to the console and the API."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    #: argon2id hash (argon2-cffi's encoded form, parameters included)
    password_hash: Mapped[str] = mapped_column(String(256))
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ConsoleRole(Base):
    """A user's role in one community: owner, admin or viewer."""

    __tablename__ = "console_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), primary_key=True)
    #: not a foreign key: a role may be granted before the community's first event
    community_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class ConsoleSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A personal API token with scopes. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: e.g. ["read", "write"]
    scopes: Mapped[list[str]] = mapped_column(JSONText())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One state change made by an operator in the console or the API."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_community_at", "community_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str | None] = mapped_column(String(64))
    #: the console username (or ``token:NAME`` for an API token)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(512))
    before: Mapped[Any] = mapped_column(JSONText(), nullable=True)
    after: Mapped[Any] = mapped_column(JSONText(), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))


class ConfigVersion(Base):
    """A saved version of the deployment configuration (the YAML text), for history and undo."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    community_id: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberDirectoryRow(Base):
    """One member as the console's directory searches it (migration 0007).

    Derived data, kept by ``qunyun.console.directory``: the texts a search
    may match, already NFKC-normalised and case-folded, and the numbers it
    sorts by, so a search reads one compact row per member instead of the
    profile JSON, levels state and ledger. ``view`` is what a console viewer
    may see of the row at the community's sharing level (0 nothing, 1 the
    public fields, 2 everything); each text starts with the part a viewer may
    match (``*_len`` characters long), so one column serves both audiences
    and the rows stay narrow (a search reads them all). It holds names and
    profile values: erasing a member deletes the row (``Engine.erase_member``),
    merging two members deletes both rows (``identities.MERGE_RULES``); the
    console rebuilds them.
    """

    __tablename__ = "member_directory"
    __table_args__ = (
        Index("ix_member_directory_last_seen", "community_id", "last_seen_at", "member_id"),
        Index("ix_member_directory_first_seen", "community_id", "first_seen_at", "member_id"),
        Index("ix_member_directory_name", "community_id", "name_key", "member_id"),
        Index("ix_member_directory_points", "community_id", "points", "member_id"),
        Index("ix_member_directory_level", "community_id", "level", "member_id"),
        Index("ix_member_directory_messages", "community_id", "messages", "member_id"),
        Index("ix_member_directory_view", "community_id", "view", "member_id"),
    )

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, autoincrement=False)
    community_id: Mapped[str] = mapped_column(String(64))
    view: Mapped[int] = mapped_column(Integer)
    #: the name lower-cased (Python ``str.lower``, clipped), the name sort's key
    name_key: Mapped[str] = mapped_column(String(256))
    #: name, user id and every configured field, what an admin's free text matches; the
    #: first ``viewer_len`` characters are what a viewer's may match (the rest is hidden)
    search: Mapped[str] = mapped_column(Text)
    viewer_len: Mapped[int] = mapped_column(Integer)
    #: the expertise (untagged-prefix tag fields) and city fields, the viewer's part first
    expertise: Mapped[str] = mapped_column(Text)
    expertise_len: Mapped[int] = mapped_column(Integer)
    city: Mapped[str] = mapped_column(Text)
    city_len: Mapped[int] = mapped_column(Integer)
    #: the stored tags as ``|tag|tag|``
    tags: Mapped[str] = mapped_column(Text)
    #: memberships as ``|<groups.id>:<status>|…|``
    groups: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the community epoch the row was read at
    epoch: Mapped[int] = mapped_column(BigInteger)


class MemberDirectoryState(Base):
    """How far ``member_directory`` is built, per community: the watermarks of its last refresh."""

    __tablename__ = "member_directory_state"

    community_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the directory settings it was built with (profile fields, sharing level, points currency)
    fingerprint: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(BigInteger)
    member_mark: Mapped[int] = mapped_column(BigInteger)
    event_mark: Mapped[int] = mapped_column(BigInteger)
    posting_mark: Mapped[int] = mapped_column(BigInteger)
    record_mark: Mapped[int] = mapped_column(BigInteger)
    state_mark: Mapped[datetime | None] = mapped_column(UTCDateTime())
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: members whose rows the last refresh rewrote (a full build: all)
    refreshed_rows: Mapped[int] = mapped_column(Integer)


def table(model: type[Base]) -> Table:
    """The :class:`~sqlalchemy.Table` of a model, typed as such (``__table__`` is not)."""
    return Base.metadata.tables[model.__tablename__]


#: The aggregates kept beside the rollups, derived from them alone.
AGGREGATE_TABLES = ("group_days", "member_groups", "community_days", "retention_cells")


def aggregate_sql(dialect: str, where: str = "") -> list[str]:
    """Statements that fill the aggregate tables from ``rollups`` (``where``: an optional rollups filter).

    The engine keeps these tables current event by event; this rebuilds them
    in bulk (data written around the engine: benchmarks, repairs). Migration
    0002 holds its own frozen copy for the backfill.
    """
    cond = f"WHERE {where}" if where else ""
    and_ = f"AND {where}" if where else ""
    if dialect == "sqlite":
        week = "date(day, '-' || ((CAST(strftime('%w', day) AS INTEGER) + 6) % 7) || ' days')"
    else:
        week = "CAST(date_trunc('week', day) AS date)"
    return [
        f"""INSERT INTO group_days (group_id, day, community_id, messages, speakers, joins, leaves, checkins)
            SELECT group_id, day, min(community_id), sum(messages),
                   sum(CASE WHEN messages > 0 THEN 1 ELSE 0 END), sum(joins), sum(leaves),
                   sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
            FROM rollups {cond} GROUP BY group_id, day""",
        f"""INSERT INTO member_groups (group_id, member_id, community_id, first_day, first_message_day,
                                       last_message_day, messages, checkin_days)
            SELECT group_id, member_id, min(community_id), min(day),
                   min(CASE WHEN messages > 0 THEN day END), max(CASE WHEN messages > 0 THEN day END),
                   sum(messages), sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
            FROM rollups {cond} GROUP BY group_id, member_id""",
        f"""INSERT INTO community_days (community_id, day, speakers)
            SELECT community_id, day, count(DISTINCT member_id)
            FROM rollups WHERE messages > 0 {and_} GROUP BY community_id, day""",
        f"""INSERT INTO retention_cells (community_id, cohort, week, speakers)
            SELECT community_id, cohort, week, count(*) FROM (
                SELECT community_id, week, min(week) OVER (PARTITION BY member_id) AS cohort FROM (
                    SELECT DISTINCT community_id, member_id, {week} AS week
                    FROM rollups WHERE messages > 0 {and_}
                ) mw
            ) x GROUP BY community_id, cohort, week""",
    ]


class MemberIdentity(Base):
    """Another platform id of a member: events from it count for that member.

    A member's own ``(platform, user_id)`` stays on its ``members`` row; the
    ids linked to it since (``qunyun members link``) are here. Linking a
    member that already had history merges it into the other one first (see
    ``qunyun.engine.identities``), so no ``members`` row has the same id.
    """

    __tablename__ = "member_identities"

    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: who gave the command (a console user, ``cli``, an admin's user id)
    linked_by: Mapped[str] = mapped_column(String(256))
