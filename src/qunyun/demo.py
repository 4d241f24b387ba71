"""``qunyun demo``: a simulated community run through the real engine.

:func:`run_demo` writes the demo directory (the config, every simulated
event as JSON Lines, the SQLite database), runs the simulation hour by hour
through :class:`~qunyun.engine.engine.Engine` on event time — showing the
simulation what the bot did after each hour, so members react to it — and
then :func:`summarize` reads the result back **from the database**: the
same numbers an operator's console will show. Nothing here prints; the CLI
(``qunyun.cli.demo``) renders the plain data returned.
"""

from __future__ import annotations

import shutil
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Engine as SAEngine
from sqlalchemy import func, or_, select

from qunyun.adapters.sim import Simulation
from qunyun.config.model import Settings, settings_from_text
from qunyun.core.clock import FakeClock, monotonic
from qunyun.core.errors import QunyunError
from qunyun.engine.engine import Engine
from qunyun.playbooks.welcome import localized
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

CONFIG_FILE = "qunyun.yaml"
EVENTS_FILE = "events.jsonl"
#: The operator's commands, one JSON object per line, with the moment they were given.
COMMANDS_FILE = "commands.jsonl"
#: Where the digest playbook writes the weekly digests.
DIGESTS_DIR = "digests"
DB_FILE = "demo.db"
#: Marks a directory as the demo's own: only such a directory is wiped.
MARKER = ".qunyun-demo"
#: Transactions of this many events: the demo is a replay, not a live chat.
BATCH_SIZE = 200
#: Best-streak buckets of the streak distribution: (label, lowest, highest).
STREAK_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2-3", 2, 3),
    ("4-6", 4, 6),
    ("7-13", 7, 13),
    ("14-29", 14, 29),
    ("30+", 30, 10**9),
)


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class GroupHealth:
    key: str
    name: str
    #: Members in the group now (joined and not gone).
    members: int
    #: Members now who sent at least one message in the last 7 days.
    speakers_7d: int
    messages: int

    @property
    def active_ratio(self) -> float:
        return self.speakers_7d / self.members if self.members else 0.0


@dataclass(frozen=True)
class ActiveMember:
    user_id: str
    name: str
    messages: int
    checkins: int
    points: int


@dataclass(frozen=True)
class Cohort:
    """Newcomers of one ISO week (activation's join cohort)."""

    cohort: str
    joined: int
    activated: int

    @property
    def rate(self) -> float:
        return self.activated / self.joined if self.joined else 0.0


@dataclass(frozen=True)
class AwardWeek:
    """One week's award from the fund."""

    week: str
    pool: int
    #: (name, what for: answers|shares, rank, amount), in the order paid
    winners: list[tuple[str, str, int, int]]

    @property
    def paid(self) -> int:
        return sum(w[3] for w in self.winners)


@dataclass(frozen=True)
class DutyWeek:
    """One week of the duty roster, with its KPI (frozen once the week is closed)."""

    week: str
    on_duty: list[str]
    answerers: int | None
    votes: int | None
    resolved: int | None
    digest: bool | None
    checklist_done: int
    checklist_total: int
    #: duty pay, minor units (0 while the week runs)
    paid: int
    final: bool


@dataclass
class Summary:
    """What happened, read from the database. Plain data for any renderer."""

    community: str
    first_day: date
    last_day: date
    events: int = 0
    messages: int = 0
    reactions: int = 0
    joins: int = 0
    leaves: int = 0
    removed: int = 0
    members_now: int = 0
    # welcome
    welcome_messages: int = 0
    newcomers_welcomed: int = 0
    charters: int = 0
    # checkin
    checkins: int = 0
    checkin_members: int = 0
    longest_streak: int = 0
    longest_streak_member: str | None = None
    #: (bucket label, members whose best streak falls in it)
    streaks: list[tuple[str, int]] = field(default_factory=list)
    # levels
    level_ups: int = 0
    #: (level name, members holding it now), from the second rung up
    levels: list[tuple[str, int]] = field(default_factory=list)
    # faq
    faq_answers: int = 0
    #: (entry id, answers), most answered first
    faq_by_entry: list[tuple[str, int]] = field(default_factory=list)
    # moderation
    moderation_hits: int = 0
    deletions: int = 0
    warnings: int = 0
    removals: int = 0
    #: rule → (hits, removals)
    by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the ten members with most messages
    top_members: list[ActiveMember] = field(default_factory=list)
    groups: list[GroupHealth] = field(default_factory=list)
    #: playbook → actions it took
    bot_actions: dict[str, int] = field(default_factory=dict)
    #: playbook failures recorded (isolated and rolled back by the engine)
    failures: int = 0
    #: playbook → members it removed (`remove` actions)
    removed_by: dict[str, int] = field(default_factory=dict)
    # gate (the entry quiz after the join)
    gate_applicants: int = 0
    gate_admitted: int = 0
    gate_failed_attempts: int = 0
    gate_blocked: int = 0
    #: removed at the deadline without having passed
    gate_removed: int = 0
    # rules
    rules_acknowledged: int = 0
    #: in a group now, asked, and not acknowledged
    rules_pending: int = 0
    #: deadline passed without acknowledgement (the admins were told)
    rules_lapsed: int = 0
    # profile
    profile_intros: int = 0
    #: members whose card has at least one field
    profiles_filled: int = 0
    #: members whose card names their expertise
    profiles_with_expertise: int = 0
    #: members asked by direct message for missing fields
    profiles_asked: int = 0
    #: (tag, members), expertise tags, most common first
    top_tags: list[tuple[str, int]] = field(default_factory=list)
    #: (city, members), most common first
    top_cities: list[tuple[str, int]] = field(default_factory=list)
    # activation
    activation_nudged: int = 0
    activation_activated: int = 0
    cohorts: list[Cohort] = field(default_factory=list)
    # hours
    #: names of the groups with open hours
    hours_groups: list[str] = field(default_factory=list)
    hours_reminders: int = 0
    hours_strikes: int = 0
    #: members reminded at least once
    hours_members: int = 0
    #: notes to the admins about members who reached max_strikes
    hours_admin_notes: int = 0
    #: opening and closing notices posted
    hours_notices: int = 0
    # guard
    guard_alerts: int = 0
    #: distinct members named in alerts
    guard_members: int = 0
    # microphone
    microphone_passes: int = 0
    #: times an expert was @-mentioned (one pass names up to `experts`)
    microphone_asked: int = 0
    #: distinct experts asked
    microphone_experts: int = 0
    # elimination
    elimination_warned: int = 0
    elimination_spared: int = 0
    elimination_removed: int = 0
    #: people from the waiting list invited to a freed place
    elimination_invited: int = 0
    # referrals
    referrals: int = 0
    #: distinct members who brought someone in
    referrers: int = 0
    #: (name, referrals), the five with most
    top_inviters: list[tuple[str, int]] = field(default_factory=list)
    # qa
    qa_questions: int = 0
    #: questions with at least one answer
    qa_answered: int = 0
    qa_answers: int = 0
    qa_answerers: int = 0
    qa_votes: int = 0
    qa_best: int = 0
    #: median minutes from a question to its first answer (None: nothing answered)
    qa_median_minutes: float | None = None
    # fund (amounts in minor units of `currency`)
    currency: str = "CNY"
    fund_in: int = 0
    fund_out: int = 0
    fund_balance: int = 0
    fund_awards: int = 0
    #: dues payments and the members who paid them
    dues_payments: int = 0
    dues_total: int = 0
    donations: int = 0
    #: the admin dues account (community:dues), which pays duty
    admin_dues_balance: int = 0
    award_weeks: list[AwardWeek] = field(default_factory=list)
    # challenge (the first one the operator created)
    challenge: str | None = None
    challenge_days: int = 0
    challenge_settled: int = 0
    challenge_participants: int = 0
    challenge_deposits: int = 0
    challenge_checkins: int = 0
    #: every participant's days made, and those who made every day
    challenge_days_made: int = 0
    challenge_perfect: int = 0
    challenge_refunded: int = 0
    challenge_redistributed: int = 0
    challenge_to_fund: int = 0
    #: what the challenge pots hold at the end (0 once settled)
    challenge_pot: int = 0
    # duty
    duty_queue: list[str] = field(default_factory=list)
    duty_weeks: list[DutyWeek] = field(default_factory=list)
    duty_paid: int = 0
    # essence and digest
    essence_entries: int = 0
    essence_authors: int = 0
    digest_periods: list[str] = field(default_factory=list)
    digest_entries: int = 0
    #: distinct members credited in a digest (`digest_included` records)
    digest_authors: int = 0
    digest_files: list[str] = field(default_factory=list)
    # sessions, medals, titles
    sessions_held: int = 0
    session_questions: int = 0
    #: (medal name, holders)
    medals: list[tuple[str, int]] = field(default_factory=list)
    #: (member, title)
    titles: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DemoRun:
    out: Path
    config_path: Path
    events_path: Path
    commands_path: Path
    db_url: str
    events: int
    actions: int
    seconds: float
    engine_stats: dict[str, int]
    sim_stats: dict[str, int]
    personas: dict[str, int]
    summary: Summary

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- the run


def prepare_out(out: Path) -> None:
    """Make ``out`` an empty directory of the demo's, removing a previous run.

    A directory that is not empty is only deleted if an earlier demo created
    it (it holds the :data:`MARKER` file); anything else is refused.
    """
    if out.exists() and not out.is_dir():
        raise QunyunError(f"{out} exists and is not a directory", hint="choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            shown = ", ".join(sorted(p.name for p in out.iterdir())[:5])
            raise QunyunError(
                f"{out} is not empty ({shown}…) and was not made by `qunyun demo`; the demo "
                "recreates its directory on every run, so it will not use this one",
                hint="choose a new or empty directory with --out",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "Written by `qunyun demo`. This directory is deleted and recreated on every run.\n",
        encoding="utf-8",
    )


def run_demo(
    *,
    seed: int = 42,
    groups: int = 3,
    members: int = 300,
    days: int = 30,
    lang: str = "zh-CN",
    out: Path = Path("qunyun-demo"),
    db_url: str | None = None,
    on_day: Callable[[int, int], None] | None = None,
    commands: bool = True,
) -> DemoRun:
    """Simulate, run through the engine, and summarise from the database.

    ``on_day(days_done, events_so_far)`` is called after each simulated day.
    ``commands=False`` leaves out the operator's commands (no challenge, no
    sharing session): then the events file alone replays the whole run.
    """
    try:
        sim = Simulation(seed=seed, groups=groups, members=members, days=days)
    except ValueError as exc:
        raise QunyunError(str(exc)) from None
    prepare_out(out)
    digests = (out / DIGESTS_DIR).resolve()
    config_text = sim.config_yaml(lang, digest_dir=str(digests))
    config_path = out / CONFIG_FILE
    config_path.write_text(config_text, encoding="utf-8")
    settings = settings_from_text(config_text, str(config_path))
    url = db_url or f"sqlite:///{(out / DB_FILE).resolve()}"
    db = open_engine(url)
    try:
        migrate(db)
        _require_empty(db, url)
        engine = Engine(db, settings, clock=FakeClock(sim.start), batch_size=BATCH_SIZE)
        events_path = out / EVENTS_FILE
        commands_path = out / COMMANDS_FILE
        started = monotonic()
        with events_path.open("wb") as fh, commands_path.open("wb") as ch:
            n_events, n_actions = drive(
                sim, engine, events_out=fh, commands_out=ch, on_day=on_day, commands=commands
            )
        seconds = monotonic() - started
        summary = summarize(
            db, settings, community_id=sim.community_id, until=sim.end, digest_dir=digests
        )
    finally:
        db.dispose()
    return DemoRun(
        out=out,
        config_path=config_path,
        events_path=events_path,
        commands_path=commands_path,
        db_url=url,
        events=n_events,
        actions=n_actions,
        seconds=seconds,
        engine_stats=dict(engine.stats),
        sim_stats=dict(sim.stats),
        personas=sim.persona_counts(),
        summary=summary,
    )


def drive(
    sim: Simulation,
    engine: Engine,
    *,
    observe: bool = True,
    events_out: BinaryIO | None = None,
    commands_out: BinaryIO | None = None,
    on_day: Callable[[int, int], None] | None = None,
    commands: bool = True,
) -> tuple[int, int]:
    """Run ``sim`` through ``engine`` hour by hour; return (events, actions).

    After each simulated hour the engine is advanced to the hour's end (so
    due jobs fire on time) and, with ``observe``, the simulation is shown the
    actions committed meanwhile; then the operator's commands of that hour
    (:meth:`Simulation.commands`: the challenge, the sharing session) are
    given through :meth:`Engine.command`, and the simulation sees what they
    did too. Each event is also written to ``events_out`` as one JSON line,
    and each command to ``commands_out``, when given.
    """
    planned: dict[tuple[int, int], list[Any]] = {}
    for cmd in sim.commands() if observe and commands else ():
        planned.setdefault((cmd.day, cmd.hour), []).append(cmd)
    committed: list[dict[str, Any]] = []
    previous = engine.on_commit

    def collect(rows: list[dict[str, Any]]) -> None:
        committed.extend(r["payload"] for r in rows)
        if previous is not None:
            previous(rows)

    engine.on_commit = collect
    n_events = 0
    n_actions = 0
    try:
        # The engine sets its groups up when the first event arrives, as a
        # replay of the events file does: a job that would otherwise fall due
        # before the first event (an opening notice at 06:00, say) then
        # happens in neither, and the replay gives exactly the demo's actions.
        for hour in sim.hours():
            if hour.events:
                if events_out is not None:
                    events_out.write(
                        b"".join(
                            orjson.dumps(e.model_dump(mode="json")) + b"\n" for e in hour.events
                        )
                    )
                engine.handle_many(hour.events)
                n_events += len(hour.events)
            engine.advance_to(hour.end)
            for cmd in planned.get((hour.day, hour.hour), ()):
                engine.command(
                    sim.community_id, cmd.playbook, cmd.name, cmd.args, actor=cmd.actor, id=cmd.id
                )
                if commands_out is not None:
                    commands_out.write(orjson.dumps(command_line(sim, cmd, hour.end)) + b"\n")
            if committed:
                n_actions += len(committed)
                if observe:
                    sim.observe(committed)
                committed.clear()
            if hour.hour == 23 and on_day is not None:
                on_day(hour.day + 1, n_events)
    finally:
        engine.on_commit = previous
    return n_events, n_actions


def command_line(sim: Simulation, cmd: Any, at: datetime) -> dict[str, Any]:
    """One line of the commands file: when (after the events before ``at``) and what."""
    return {
        "at": at.isoformat(),
        "community": sim.community_id,
        "playbook": cmd.playbook,
        "name": cmd.name,
        "args": cmd.args,
        "actor": cmd.actor,
        "id": cmd.id,
    }


def read_commands(path: Path) -> list[dict[str, Any]]:
    """The commands file of a demo run, in order."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _require_empty(db: SAEngine, url: str) -> None:
    with db.connect() as conn:
        found = conn.execute(select(func.count()).select_from(m.table(m.EventRow))).scalar_one()
    if found:
        raise QunyunError(
            f"the database {url} already holds {found:,} events; the demo needs an empty one",
            hint="omit --db to use a fresh SQLite file in the demo directory, or pass an empty database",
        )


# ------------------------------------------------------------- the summary


def summarize(
    db: SAEngine,
    settings: Settings,
    *,
    community_id: str,
    until: datetime,
    digest_dir: Path | None = None,
) -> Summary:
    """Read what happened in ``community_id`` up to ``until`` from the database.

    ``digest_dir``, when given, is where the digest files were written: the
    summary lists the files named in the digest playbook's state that are there.
    """
    community = settings.communities[community_id]
    tz = community.tz
    last_day = (until - timedelta(seconds=1)).astimezone(tz).date()
    g = m.table(m.Group)
    r = m.table(m.Rollup)
    e = m.table(m.EventRow)
    ms = m.table(m.Membership)
    mem = m.table(m.Member)
    acc = m.table(m.Account)
    with db.connect() as conn:
        group_rows = conn.execute(
            select(g.c.id, g.c.key, g.c.name)
            .where(g.c.community_id == community_id)
            .order_by(g.c.id)
        ).all()
        gids = [row.id for row in group_rows]
        first = conn.execute(
            select(func.min(r.c.day)).where(r.c.community_id == community_id)
        ).scalar()
        s = Summary(community=community.name, first_day=first or last_day, last_day=last_day)
        s.events = conn.execute(
            select(func.count()).select_from(e).where(e.c.group_id.in_(gids))
        ).scalar_one()
        s.reactions = conn.execute(
            select(func.count())
            .select_from(e)
            .where(e.c.group_id.in_(gids), e.c.type == "reaction")
        ).scalar_one()
        totals = conn.execute(
            select(
                func.coalesce(func.sum(r.c.messages), 0),
                func.coalesce(func.sum(r.c.joins), 0),
                func.coalesce(func.sum(r.c.leaves), 0),
                func.coalesce(func.sum(r.c.checkins), 0),
            ).where(r.c.community_id == community_id)
        ).one()
        s.messages, s.joins, s.leaves, s.checkins = (int(v) for v in totals)
        s.checkin_members = conn.execute(
            select(func.count(func.distinct(r.c.member_id))).where(
                r.c.community_id == community_id, r.c.checkins > 0
            )
        ).scalar_one()
        status_counts: dict[str, int] = dict(
            conn.execute(
                select(ms.c.status, func.count())
                .where(ms.c.group_id.in_(gids))
                .group_by(ms.c.status)
            ).all()
        )
        s.removed = int(status_counts.get("removed", 0))
        s.members_now = conn.execute(
            select(func.count(func.distinct(ms.c.member_id))).where(
                ms.c.group_id.in_(gids), ms.c.status == "active"
            )
        ).scalar_one()

        # groups: members now, speakers in the last 7 days, messages
        since = last_day - timedelta(days=6)
        for row in group_rows:
            members_now = conn.execute(
                select(func.count())
                .select_from(ms)
                .where(ms.c.group_id == row.id, ms.c.status == "active")
            ).scalar_one()
            # speakers among the members now (not those removed or gone since)
            present = select(ms.c.member_id).where(
                ms.c.group_id == row.id, ms.c.status == "active"
            )
            speakers = conn.execute(
                select(func.count(func.distinct(r.c.member_id))).where(
                    r.c.group_id == row.id,
                    r.c.day >= since,
                    r.c.day <= last_day,
                    r.c.messages > 0,
                    r.c.member_id.in_(present),
                )
            ).scalar_one()
            messages = conn.execute(
                select(func.coalesce(func.sum(r.c.messages), 0)).where(r.c.group_id == row.id)
            ).scalar_one()
            s.groups.append(
                GroupHealth(row.key, row.name or row.key, members_now, speakers, int(messages))
            )

        # most active members, with their points
        top = conn.execute(
            select(
                r.c.member_id,
                func.sum(r.c.messages).label("messages"),
                func.sum(r.c.checkins).label("checkins"),
            )
            .where(r.c.community_id == community_id)
            .group_by(r.c.member_id)
            .order_by(func.sum(r.c.messages).desc(), r.c.member_id)
            .limit(10)
        ).all()
        ids = [row.member_id for row in top]
        people = {
            row.id: (row.user_id, row.name)
            for row in conn.execute(
                select(mem.c.id, mem.c.user_id, mem.c.name).where(mem.c.id.in_(ids))
            )
        }
        points = dict(
            conn.execute(
                select(acc.c.member_id, acc.c.balance).where(
                    acc.c.member_id.in_(ids), acc.c.currency == "POINTS", acc.c.kind == "member"
                )
            ).all()
        )
        for row in top:
            uid, name = people.get(row.member_id, ("?", None))
            s.top_members.append(
                ActiveMember(
                    uid,
                    name or uid,
                    int(row.messages),
                    int(row.checkins),
                    int(points.get(row.member_id, 0)),
                )
            )

        actions = conn.execute(
            select(
                m.table(m.ActionRow).c.playbook,
                m.table(m.ActionRow).c.type,
                m.table(m.ActionRow).c.cause,
                m.table(m.ActionRow).c.payload,
            )
            .where(m.table(m.ActionRow).c.community_id == community_id)
            .order_by(m.table(m.ActionRow).c.seq)
        ).all()
        rec = m.table(m.Record)
        records = conn.execute(
            select(rec.c.playbook, rec.c.kind, rec.c.member, rec.c.cause, rec.c.data)
            .where(rec.c.community_id == community_id)
            .order_by(rec.c.id)
        ).all()
        state = m.table(m.PlaybookState)
        states = conn.execute(
            select(state.c.playbook, state.c.key, state.c.value).where(
                state.c.community_id == community_id,
                state.c.playbook.in_(("checkin", "levels", "profile", "rules", "activation")),
                or_(state.c.key.like("m:%"), state.c.key.like("c:%")),
            )
        ).all()
        f = m.table(m.Failure)
        s.failures = conn.execute(
            select(func.count()).select_from(f).where(f.c.community_id == community_id)
        ).scalar_one()
        names = dict(
            conn.execute(
                select(mem.c.user_id, mem.c.name).where(mem.c.community_id == community_id)
            ).all()
        )
        contribution = conn.execute(
            select(state.c.playbook, state.c.key, state.c.value).where(
                state.c.community_id == community_id,
                state.c.playbook.in_(CONTRIBUTION),
            )
        ).all()
        balances = dict(
            conn.execute(
                select(acc.c.code, acc.c.balance).where(
                    acc.c.community_id == community_id, acc.c.kind != "member"
                )
            ).all()
        )
        fund_moves = conn.execute(
            select(m.table(m.Posting).c.amount, m.table(m.LedgerTransaction).c.reason)
            .join(
                m.table(m.LedgerTransaction),
                m.table(m.LedgerTransaction).c.id == m.table(m.Posting).c.transaction_id,
            )
            .join(acc, acc.c.id == m.table(m.Posting).c.account_id)
            .where(acc.c.community_id == community_id, acc.c.code.like("community:fund:%"))
        ).all()

    _bot_summary(s, actions, records)
    _lifecycle_summary(s, actions, records, names)
    _state_summary(s, [row for row in states if row[1].startswith("m:")], settings, community_id, names)
    _lifecycle_state(s, states, _rules_exempt(community))
    _contribution_summary(
        s, contribution, records, balances, fund_moves, names, community, digest_dir
    )
    s.hours_groups = [g.name for g in community.groups.values() if "hours" in g.playbooks]
    return s


def _rules_exempt(community: Any) -> set[str]:
    """Members the rules playbook never asks (by role), so never pending."""
    for group in community.groups.values():
        cfg = group.playbooks.get("rules")
        if cfg is not None:
            roles = set(getattr(cfg, "exempt_roles", ()))
            return {uid for uid, role in community.roles.items() if role in roles}
    return set()


def _lifecycle_summary(
    s: Summary, actions: Sequence[Any], records: Sequence[Any], names: dict[str, str | None]
) -> None:
    """The member-lifecycle playbooks, from their records and actions."""
    distinct: dict[tuple[str, str], set[str]] = {}
    count: Counter[tuple[str, str]] = Counter()
    inviters: Counter[str] = Counter()
    for playbook, kind, member, _cause, _data in records:
        count[(playbook, kind)] += 1
        if member:
            distinct.setdefault((playbook, kind), set()).add(member)
        if playbook == "referrals" and kind == "referral" and member:
            inviters[member] += 1

    def people(playbook: str, kind: str) -> int:
        return len(distinct.get((playbook, kind), ()))

    s.gate_applicants = people("gate", "applied")
    s.gate_admitted = people("gate", "admitted")
    s.gate_failed_attempts = count[("gate", "quiz_failed")]
    s.gate_blocked = count[("gate", "blocked")]
    s.gate_removed = count[("gate", "removed")]
    s.rules_acknowledged = people("rules", "ack")
    s.rules_lapsed = count[("rules", "lapsed")]
    s.profile_intros = count[("profile", "intro")]
    s.activation_nudged = count[("activation", "nudged")]
    s.activation_activated = count[("activation", "activated")]
    s.hours_reminders = count[("hours", "reminder")]
    s.hours_strikes = count[("hours", "strike")]
    s.hours_members = people("hours", "reminder")
    s.guard_members = people("guard", "alert")
    s.microphone_asked = count[("microphone", "passed")]
    s.microphone_experts = people("microphone", "passed")
    s.elimination_warned = count[("elimination", "warned")]
    s.elimination_spared = count[("elimination", "spared")]
    s.elimination_removed = count[("elimination", "removed")]
    s.elimination_invited = count[("elimination", "invited")]
    s.referrals = count[("referrals", "referral")]
    s.referrers = len(inviters)
    s.top_inviters = [
        (names.get(uid) or uid, n)
        for uid, n in sorted(inviters.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    ]
    removed_by: Counter[str] = Counter()
    for playbook, atype, _cause, payload in actions:
        if atype == "remove":
            removed_by[playbook] += 1
        elif playbook == "hours":
            if atype == "notify_admins":
                s.hours_admin_notes += 1
            elif atype == "send" and not (payload or {}).get("mentions"):
                s.hours_notices += 1
        elif playbook == "guard" and atype == "notify_admins":
            s.guard_alerts += 1
        elif playbook == "microphone" and atype == "send":
            s.microphone_passes += 1
    s.removed_by = dict(sorted(removed_by.items(), key=lambda kv: (-kv[1], kv[0])))


def _lifecycle_state(s: Summary, states: Sequence[Any], exempt: set[str]) -> None:
    """Profiles, pending acknowledgements and activation cohorts, from playbook state."""
    tags: Counter[str] = Counter()
    cities: Counter[str] = Counter()
    for playbook, key, value in states:
        if not isinstance(value, dict):
            continue
        if playbook == "profile" and key.startswith("m:"):
            if value.get("fields"):
                s.profiles_filled += 1
                if (value.get("fields") or {}).get("expertise"):
                    s.profiles_with_expertise += 1
            if value.get("asked"):
                s.profiles_asked += 1
            for tag in value.get("tags") or ():
                if not isinstance(tag, str):
                    continue
                if tag.startswith("city:"):
                    cities[tag[5:]] += 1
                elif ":" not in tag:
                    tags[tag] += 1
        elif playbook == "rules" and key.startswith("m:"):
            if value.get("in") and not value.get("acked") and key[2:] not in exempt:
                s.rules_pending += 1
        elif playbook == "activation" and key.startswith("c:"):
            s.cohorts.append(
                Cohort(key[2:], int(value.get("joined") or 0), int(value.get("activated") or 0))
            )
    s.top_tags = sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    s.top_cities = sorted(cities.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    s.cohorts.sort(key=lambda c: c.cohort)


def _bot_summary(s: Summary, actions: Sequence[Any], records: Sequence[Any]) -> None:
    per_playbook: Counter[str] = Counter()
    welcomed: dict[str, None] = {}
    faq: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    removed_by_rule: Counter[str] = Counter()
    removal_causes: set[str] = set()
    for playbook, kind, member, cause, data in records:
        data = data or {}
        if playbook == "welcome" and kind == "welcomed" and member:
            welcomed[member] = None
        elif playbook == "faq" and kind == "answered":
            faq[str(data.get("entry", "?"))] += 1
        elif playbook == "levels" and kind == "level_up":
            s.level_ups += 1
        elif playbook == "moderation":
            if kind == "hit":
                hits[str(data.get("rule", "?"))] += 1
            elif kind in ("removed", "rejoin_removed"):
                removed_by_rule[str(data.get("rule", "rejoin"))] += 1
                removal_causes.add(cause)
    for playbook, atype, cause, payload in actions:
        per_playbook[playbook] += 1
        if playbook == "welcome" and atype == "send":
            if (payload or {}).get("mentions"):
                s.welcome_messages += 1
            else:
                s.charters += 1
        elif playbook == "moderation":
            if atype == "delete":
                s.deletions += 1
            elif atype == "remove":
                s.removals += 1
            elif atype == "send" and cause not in removal_causes:
                s.warnings += 1
    s.newcomers_welcomed = len(welcomed)
    s.faq_answers = sum(faq.values())
    s.faq_by_entry = sorted(faq.items(), key=lambda kv: (-kv[1], kv[0]))
    s.moderation_hits = sum(hits.values())
    rules = list(dict.fromkeys([*hits, *removed_by_rule]))
    s.by_rule = {
        rule: (hits[rule], removed_by_rule[rule]) for rule in sorted(rules, key=lambda k: -hits[k])
    }
    s.bot_actions = dict(per_playbook.most_common())


def _state_summary(
    s: Summary,
    states: Sequence[Any],
    settings: Settings,
    community_id: str,
    names: dict[str, str | None],
) -> None:
    best: list[tuple[int, str]] = []
    held: Counter[int] = Counter()
    for playbook, key, value in states:
        uid = key[2:]
        if not isinstance(value, dict):
            continue
        if playbook == "checkin" and value.get("best"):
            best.append((int(value["best"]), uid))
        elif playbook == "levels" and "level" in value:
            held[int(value["level"])] += 1
    if best:
        top = min(best, key=lambda b: (-b[0], b[1]))
        s.longest_streak = top[0]
        s.longest_streak_member = names.get(top[1]) or top[1]
    s.streaks = [
        (label, sum(1 for value, _ in best if lo <= value <= hi))
        for label, lo, hi in STREAK_BUCKETS
    ]
    community = settings.communities[community_id]
    ladder = _level_names(community, settings)
    if ladder:
        # everybody starts on the first rung; the others are earned
        s.levels = [(name, held[i]) for i, name in enumerate(ladder) if i > 0]


def _level_names(community: Any, settings: Settings) -> list[str]:
    """The level ladder's names in the community's locale, if levels is on."""
    for group in community.groups.values():
        cfg = group.playbooks.get("levels")
        ladder = getattr(cfg, "levels", None)
        if ladder:
            out = []
            for level in ladder:
                title = getattr(level, "title", None)
                out.append(title(community.locale) if callable(title) else str(level))
            return out
    return []


#: The contribution playbooks whose state the summary reads.
CONTRIBUTION = ("qa", "fund", "challenge", "duty", "essence", "digest", "sessions", "medals", "titles")


def _contribution_summary(
    s: Summary,
    states: Sequence[Any],
    records: Sequence[Any],
    balances: dict[str, int],
    fund_moves: Sequence[Any],
    names: dict[str, str | None],
    community: Any,
    digest_dir: Path | None,
) -> None:
    """Q&A, the fund, the challenge, duty, essence and digest, sessions, medals and titles:
    from their state (the keys other playbooks read too), records and the ledger."""

    def name(uid: Any) -> str:
        return str(names.get(uid) or uid) if uid else "—"

    by: dict[str, dict[str, Any]] = {}
    for playbook, key, value in states:
        by.setdefault(playbook, {})[key] = value
    fund_cfg = _community_config(community, "fund")
    s.currency = str(getattr(fund_cfg, "currency", "CNY"))
    cur = s.currency

    # qa: the questions (q:<qid>) and the best-answer records
    waits: list[float] = []
    answerers: set[str] = set()
    for key, q in by.get("qa", {}).items():
        if not key.startswith("q:") or not isinstance(q, dict):
            continue
        s.qa_questions += 1
        answers = q.get("answers") or {}
        if answers:
            s.qa_answered += 1
        for a in answers.values():
            s.qa_answers += 1
            s.qa_votes += int(a.get("votes") or 0)
            if a.get("by"):
                answerers.add(a["by"])
        if q.get("first_answer_ts") and q.get("ts"):
            gap = datetime.fromisoformat(q["first_answer_ts"]) - datetime.fromisoformat(q["ts"])
            waits.append(gap.total_seconds() / 60)
    s.qa_answerers = len(answerers)
    s.qa_median_minutes = statistics.median(waits) if waits else None
    count: Counter[tuple[str, str]] = Counter((pb, kind) for pb, kind, *_ in records)
    s.qa_best = count[("qa", "best_answer")]

    # fund: the ledger's fund account, payments recorded, the weekly awards
    s.fund_in = sum(a for a, _ in fund_moves if a > 0)
    s.fund_out = -sum(a for a, _ in fund_moves if a < 0)
    s.fund_awards = -sum(a for a, reason in fund_moves if a < 0 and reason.startswith("weekly award"))
    s.fund_balance = int(balances.get(f"community:fund:{cur}", 0))
    s.admin_dues_balance = int(balances.get(f"community:dues:{cur}", 0))
    for playbook, kind, _member, _cause, data in records:
        if playbook == "fund" and kind == "payment":
            data = data or {}
            if data.get("purpose") == "dues":
                s.dues_payments += 1
                s.dues_total += int(data.get("amount") or 0)
            elif data.get("purpose") == "donation":
                s.donations += int(data.get("amount") or 0)
    for key in sorted(by.get("fund", {})):
        award = by["fund"][key]
        if not key.startswith("award:") or not isinstance(award, dict):
            continue
        if award.get("status") == "empty" and not award.get("pool"):
            continue  # a week before the season (or with an empty fund): nothing to show
        paid = award.get("status") == "paid"
        winners = [
            (name(ln.get("uid")), str(ln.get("kind")), int(ln.get("rank") or 0), int(ln.get("amount") or 0))
            for ln in award.get("lines") or ()
            if paid
        ]
        s.award_weeks.append(AwardWeek(key[6:], int(award.get("pool") or 0), winners))

    # challenge: each challenge's state and its pot in the ledger
    for key in sorted(by.get("challenge", {})):
        ch = by["challenge"][key]
        if not key.startswith("c:") or not isinstance(ch, dict):
            continue
        people = ch.get("participants") or {}
        if s.challenge is None:
            s.challenge = str(ch.get("name"))
            s.challenge_days = int(ch.get("days") or 0)
            s.challenge_settled = int(ch.get("settled") or 0)
        s.challenge_participants += len(people)
        s.challenge_deposits += sum(int(p.get("paid") or 0) for p in people.values())
        s.challenge_days_made += sum(int(p.get("ok") or 0) for p in people.values())
        s.challenge_perfect += sum(1 for p in people.values() if int(p.get("ok") or 0) == ch.get("days"))
        s.challenge_refunded += sum(int(p.get("back") or 0) for p in people.values())
        s.challenge_redistributed += sum(int(p.get("won") or 0) for p in people.values())
        s.challenge_pot += int(balances.get(f"challenge:{ch.get('id')}:pot:{ch.get('currency')}", 0))
    for playbook, kind, _member, _cause, data in records:
        if playbook == "challenge" and kind == "checkin":
            s.challenge_checkins += 1
        elif playbook == "challenge" and kind == "settled":
            s.challenge_to_fund += int((data or {}).get("to_fund") or 0)

    # duty: the roster and every week's KPI (kpi:<W>; the running week from current)
    duty = by.get("duty", {})
    s.duty_queue = [name(u) for u in duty.get("queue") or ()]
    weeks = sorted(k[4:] for k in duty if k.startswith("kpi:"))
    current_week = duty.get("current_week")
    if isinstance(current_week, str) and current_week not in weeks:
        weeks.append(current_week)
    for week in weeks:
        kpi = duty.get(f"kpi:{week}") or {}
        members = kpi.get("members") or (duty.get("current") if week == current_week else []) or []
        s.duty_weeks.append(
            DutyWeek(
                week,
                [name(u) for u in members],
                kpi.get("answerers"),
                kpi.get("votes"),
                kpi.get("resolved"),
                kpi.get("digest"),
                int(kpi.get("checklist_done") or 0),
                int(kpi.get("checklist_total") or 0),
                int(kpi.get("paid_total") or 0),
                bool(kpi.get("final")),
            )
        )
    s.duty_paid = sum(w.paid for w in s.duty_weeks)

    # essence and digest
    authors = {e.get("by") for k, e in by.get("essence", {}).items() if k.startswith("e:") and isinstance(e, dict)}
    s.essence_entries = sum(1 for k in by.get("essence", {}) if k.startswith("e:"))
    s.essence_authors = len(authors - {None})
    files: list[str] = []
    for key in sorted(by.get("digest", {})):
        pub = by["digest"][key]
        if key.startswith("published:") and isinstance(pub, dict):
            s.digest_periods.append(key[10:])
            s.digest_entries += int(pub.get("entries") or 0)
            files += [str(f) for f in pub.get("files") or ()]
    s.digest_authors = len(
        {member for pb, kind, member, *_ in records if kind == "digest_included" and member}
    )
    if digest_dir is not None:
        s.digest_files = [str(digest_dir / Path(f).name) for f in files if (digest_dir / Path(f).name).is_file()]

    # sessions, medals, titles
    for key, value in by.get("sessions", {}).items():
        if key.startswith("s:") and ":q:" not in key and isinstance(value, dict):
            s.sessions_held += value.get("status") == "done"
        elif ":q:" in key:
            s.session_questions += 1
    held: Counter[str] = Counter()
    for key, value in by.get("medals", {}).items():
        if key.startswith("m:") and isinstance(value, dict):
            held.update((value.get("medals") or {}).keys())
    medal_names = {
        str(md.id): localized(md.name, community.locale)
        for md in getattr(_community_config(community, "medals"), "medals", ()) or ()
    }
    s.medals = sorted(((medal_names.get(k, k), n) for k, n in held.items()), key=lambda kv: (-kv[1], kv[0]))
    s.titles = sorted(
        (name(k[2:]), str(v.get("title")))
        for k, v in by.get("titles", {}).items()
        if k.startswith("m:") and isinstance(v, dict) and v.get("title")
    )


def _community_config(community: Any, playbook: str) -> Any:
    """``playbook``'s settings in the first group that runs it (None if none does)."""
    for group in community.groups.values():
        cfg = group.playbooks.get(playbook)
        if cfg is not None:
            return cfg
    return None
