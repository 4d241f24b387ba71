"""A simulated learning community, as a stream of validated events.

The simulation is a small discrete-event model, advanced one simulated hour
at a time::

    sim = Simulation(seed=42)
    for hour in sim.hours():
        engine.handle_many(hour.events)
        engine.advance_to(hour.end)
        sim.observe(actions_committed_meanwhile)

Each hour, every present member may speak of their own accord (at a rate set
by their persona, the time of day, the day of the week, the size of their
group, their fading vigour and any recent boost); what they do schedules
what others do next — an answer to a question, a 👍 on a good share, a
"welcome!" after a self-introduction. :meth:`Simulation.observe` shows the
simulation what the bot did in the hour just handled, and members react to
it: a newcomer who was welcomed often introduces themselves, a member
reminded to check in often does, a spammer the bot removed is gone (the
platform reports the removal as a ``member_left`` event). Newcomers answer
the entry quiz (mostly right), acknowledge the rules, say hello after the
activation nudge, answer questions the microphone passes them, keep quiet
in the reading club while it is closed, speak up when warned of removal;
people on the waiting list join when invited. Without ``observe`` the
community lives as if no bot were there.

Everything is drawn from one ``random.Random(seed)`` and nothing iterates
over an unordered collection, so the same seed and the same observations
give the same events, byte for byte.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from qunyun.adapters.sim import personas as P
from qunyun.core.events import Event, parse_event

PLATFORM = "sim"
COMMUNITY_ID = "demo"
#: The user id the simulated platform reports as the remover when the bot removes someone.
BOT_ID = "qunyun-bot"
DEFAULT_START = date(2026, 11, 2)  # a Monday
#: Days on which newcomers arrive in a wave (a poster, an article, a live-stream).
WAVE_DAYS = (3, 10, 17, 24)
#: Share of members already there on day 0 (the seed core), and in the waves.
CORE_SHARE = 0.40
WAVE_SHARE = 0.48
#: Domain the big names share material from; the demo config allow-lists it.
SHARE_DOMAIN = "mp.weixin.qq.com"
#: The study group with open hours (the second group, when there is one).
HOURS_GROUP = "g-reading"
#: Its open windows, local time, whole hours: [start, end).
OPEN_HOURS: tuple[tuple[int, int], ...] = ((6, 9), (12, 14), (19, 23))
#: People on the waiting list for a place (extra to ``members``), per member.
WAITLIST_SHARE = 0.04
#: Daily chance, per group, that two members start quarrelling.
QUARREL_P = 0.12
#: The entry quiz of the demo's gate: choice questions, answered by letter, so
#: that the same answers pass in both languages.
QUIZ: list[dict[str, Any]] = [
    {
        "question": {
            "zh-CN": "每天晚上几点提醒还没打卡的同学？",
            "en": "At what time are members who have not checked in reminded?",
        },
        "choices": ["07:00", "12:00", "21:00"],
        "answers": ["C"],
    },
    {
        "question": {
            "zh-CN": "每周的主题分享在星期几晚上？",
            "en": "On which evening is the weekly themed share?",
        },
        "choices": ["周一 Mon", "周三 Wed", "周六 Sat"],
        "answers": ["B"],
    },
    {
        "question": {
            "zh-CN": "打卡消息要以哪个词开头？",
            "en": "Which word does a check-in message start with?",
        },
        "choices": ["打卡", "签到", "#checkin"],
        "answers": ["A"],
    },
    {
        "question": {
            "zh-CN": "连续打卡几天可以拿到第一次额外奖励？",
            "en": "How many days in a row earn the first streak bonus?",
        },
        "choices": ["3", "7", "100"],
        "answers": ["B"],
    },
    {
        "question": {
            "zh-CN": "可以在群里发推广链接和二维码吗？",
            "en": "May you post promotional links or QR codes in the group?",
        },
        "choices": ["可以 Yes", "不可以 No"],
        "answers": ["B"],
    },
]
#: How members of each persona meet the bot: (answers the quiz at once,
#: gets a quiz answer right, acknowledges the rules at once, says hello after
#: the activation nudge, speaks up when warned of removal, answers when the
#: microphone is passed to them).
_ANSWERS_QUIZ = {"big_name": 0.98, "regular": 0.95, "lurker": 0.8, "spammer": 0.0}
_RIGHT = {"big_name": 0.97, "regular": 0.92, "lurker": 0.82, "spammer": 0.0}
_ACKS = {"big_name": 0.97, "regular": 0.92, "lurker": 0.6, "spammer": 0.0}
_HELLO = {"big_name": 0.9, "regular": 0.75, "lurker": 0.35, "spammer": 0.0}
_STILL_HERE = {"big_name": 0.95, "regular": 0.9, "lurker": 0.4, "spammer": 0.0}
_EXPERT_ANSWERS = {"big_name": 0.85, "regular": 0.65, "lurker": 0.4, "spammer": 0.0}
#: Share of each persona who pay the camp's dues once they have answered the quiz.
_PAYS_DUES = {"big_name": 0.7, "regular": 0.85, "lurker": 0.55, "spammer": 0.0}
#: Share who put down the deposit for the early-rise challenge: early birds, the others.
_JOINS_CHALLENGE = {"big_name": (0.7, 0.3), "regular": (0.6, 0.2), "lurker": (0.3, 0.04), "spammer": (0.0, 0.0)}
#: Daily chance that a participant rises and checks in on time.
_RISES = {"big_name": 0.92, "regular": 0.86, "lurker": 0.72, "spammer": 0.0}

#: Share of the ordinary (non-FAQ) questions asked in the ``qa`` format (``提问：…``).
QA_FORMAT_P = 0.5
#: The camp's dues, paid once after the entry quiz, in fen (¥50.00).
DUES = 5000
CURRENCY = "CNY"
#: What the owner gives the fund on the first morning, in fen (¥1,000.00).
SEED_DONATION = 100_000
#: The deposit challenge the operator creates on the first morning (``challenge create``):
#: from day 1, ``days`` days, check in with its keyword before the deadline.
CHALLENGE: dict[str, Any] = {"challenge": "早起", "days": 14, "deposit": 5000, "deadline": "07:00"}
#: The sharing session the operator plans on the first morning: on this day, at this hour.
SESSION_DAY = 9
SESSION_HOUR = 20
SESSION_TOPIC = "社群冷启动的五个步骤"
#: The title the owner confers on the week's best answerer after the award.
AWARD_TITLE = "答疑之星"

_DAY = 86_400.0
_HOUR = 3_600.0
_MIN = 60.0

_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("g-main", "大本营", "Main hall"),
    ("g-reading", "读书会", "Reading club"),
    ("g-writing", "写作打卡组", "Writing circle"),
    ("g-english", "英语角", "English corner"),
    ("g-data", "数据分析小组", "Data study group"),
    ("g-design", "设计练习室", "Design studio"),
)
_GROUP_TOPIC = {
    "g-reading": "reading",
    "g-writing": "writing",
    "g-english": "english",
    "g-data": "data",
    "g-design": "design",
}
#: Expected reactions on a message, by what it is.
_REACTIONS = {
    "share": 1.8,
    "answer": 0.8,
    "intro": 1.3,
    "chat": 0.25,
    "checkin": 0.3,
    "reply": 0.12,
    "question": 0.1,
    "mention": 0.1,
    "greet": 0.1,
    "thanks": 0.05,
}
_EMOJI = ("👍", "👍", "👍", "👍", "👍", "👍", "👍", "❤️", "👏", "🌹")
#: On a share, some react with 🔥 or ⭐ — the demo's essence votes.
_SHARE_EMOJI = ("👍", "👍", "👍", "🔥", "🔥", "⭐", "❤️", "👏")
#: The medals of the demo (a month is short: a one-week streak, ten answers…).
MEDALS: list[dict[str, Any]] = [
    {"id": "first-essence", "name": {"zh-CN": "首篇精华", "en": "First essence"},
     "rule": {"source": "essence", "key": "essence", "at_least": 1}},
    {"id": "streak-7", "name": {"zh-CN": "坚持一周", "en": "One-week streak"},
     "rule": {"source": "checkin", "key": "best", "at_least": 7}},
    {"id": "streak-30", "name": {"zh-CN": "连续打卡 30 天", "en": "30-day streak"},
     "rule": {"source": "checkin", "key": "best", "at_least": 30}},
    {"id": "helper", "name": {"zh-CN": "热心答主", "en": "Helpful answerer"},
     "rule": {"source": "qa", "key": "answers", "at_least": 10}},
    {"id": "best-answers-5", "name": {"zh-CN": "五佳回答", "en": "Five best answers"},
     "rule": {"source": "qa", "key": "best", "at_least": 5}},
    {"id": "referrals-10", "name": {"zh-CN": "拉新达人", "en": "10 referrals"},
     "rule": {"source": "referrals", "key": "invited", "at_least": 10}},
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimGroup:
    """One simulated group chat."""

    key: str
    name: dict[str, str]
    #: Activity multiplier from the group's size: small groups talk more per head.
    factor: float = 1.0


@dataclass(eq=False, slots=True)
class SimMember:
    """A simulated person and what the simulation remembers about them."""

    uid: str
    name: str
    persona: str
    traits: P.Traits
    #: group key → day they join it (their home group first).
    joins: dict[str, int]
    #: group key → pending | in | left | removed
    status: dict[str, str] = field(default_factory=dict)
    vigor: float = 1.0
    boost: float = 0.0
    checkins: int = 0
    checked_day: int = -1
    #: groups where they introduced themselves (or an introduction is on its way)
    introduced: dict[str, bool] = field(default_factory=dict)
    #: groups where the bot welcomed them
    welcomed: dict[str, bool] = field(default_factory=dict)
    warnings: int = 0
    messages: int = 0
    #: what they are good at (their intro's 擅长 line)
    expertise: list[str] = field(default_factory=list)
    #: on the waiting list: joins only when the bot invites them
    waiting: bool = False
    #: acknowledged the rules (or an acknowledgement is on its way)
    acked: bool = False
    #: group → the right letters of the quiz the gate last gave them
    quiz: dict[str, list[str]] = field(default_factory=dict)
    #: group → whether they answered that quiz (or an answer is on its way)
    answered: dict[str, bool] = field(default_factory=dict)
    #: group → the simulated time until which they keep quiet (told off by hours)
    hushed: dict[str, float] = field(default_factory=dict)
    #: what they already reacted to once: "hello", "alive:<group>", "card"
    done: set[str] = field(default_factory=set)

    @property
    def home(self) -> str:
        return next(iter(self.joins))

    def share_of(self, group: str) -> float:
        """How much of their talking happens in ``group``."""
        if len(self.joins) == 1:
            return 1.0
        return 0.7 if group == self.home else 0.3


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A command the operator gives at the end of one simulated hour (``Engine.command``)."""

    day: int
    hour: int
    playbook: str
    name: str
    args: dict[str, Any]
    #: A fixed id, so that a replay giving the same command gets the same action ids.
    id: str
    actor: str


@dataclass(frozen=True, slots=True)
class Hour:
    """One simulated hour: its events, in time order, and its bounds."""

    day: int
    hour: int
    start: datetime
    end: datetime
    events: list[Event]


class _GroupState:
    __slots__ = ("pos", "present", "questions", "recent")

    def __init__(self) -> None:
        self.present: list[str] = []
        self.pos: dict[str, int] = {}
        #: [msg_id, author, t, kind]
        self.recent: deque[tuple[str, str, float, str]] = deque(maxlen=40)
        #: [msg_id, asker, t, answers]
        self.questions: deque[list[Any]] = deque(maxlen=20)

    def add(self, uid: str) -> None:
        if uid not in self.pos:
            self.pos[uid] = len(self.present)
            self.present.append(uid)

    def remove(self, uid: str) -> None:
        i = self.pos.pop(uid, None)
        if i is None:
            return
        last = self.present.pop()
        if last != uid:
            self.present[i] = last
            self.pos[last] = i


class Simulation:
    """A seeded, deterministic learning community on the ``sim`` platform.

    ``groups`` chats, ``members`` people in all (personas: about 3% big
    names, 17% regulars, the rest lurkers, plus one or two spammers),
    ``days`` days from ``start`` (local midnight in ``timezone``).
    """

    def __init__(
        self,
        seed: int = 42,
        *,
        groups: int = 3,
        members: int = 300,
        days: int = 30,
        start: date | datetime = DEFAULT_START,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        if not 1 <= groups <= 50:
            raise ValueError("groups must be between 1 and 50")
        if not 1 <= members <= 100_000:
            raise ValueError("members must be between 1 and 100000")
        if not 1 <= days <= 3650:
            raise ValueError("days must be between 1 and 3650")
        self.seed = seed
        self.days = days
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self.platform = PLATFORM
        self.community_id = COMMUNITY_ID
        first = start.date() if isinstance(start, datetime) else start
        #: Local midnight of day 0.
        self.start = datetime.combine(first, time(0, 0), tzinfo=self.tz)
        self._start_utc = self.start.astimezone(UTC)
        self.rng = random.Random(seed)
        self._heap: list[tuple[float, int, str, str, str, dict[str, Any] | None]] = []
        self._seq = 0
        self._event_n = 0
        self._msg_n = 0
        self._hour = 0
        self._t = 0.0
        self._out: list[Event] = []
        #: msg_id → (author, group), for replies and for the bot's answers
        self._authors: dict[str, tuple[str, str]] = {}
        #: what was generated, by kind (for docs, tests and curiosity)
        self.stats: dict[str, int] = {}
        #: questions asked in the qa format: msg_id → {group, asker, t, answers, done}
        self._qa: dict[str, dict[str, Any]] = {}
        #: answer msg_id → the qa question it answers; and the votes it got
        self._answer_of: dict[str, str] = {}
        #: shares: msg_id → (group, author, t), for the staff's essence marking
        self._shares: dict[str, tuple[str, str, float]] = {}
        self._votes: dict[str, int] = {}
        #: who put down the challenge deposit (decided when it is announced)
        self.challengers: list[str] = []
        self._challenge_seen = False
        self._build(groups, members)
        self._plan_contribution()

    # ------------------------------------------------------------- the cast

    def _build(self, n_groups: int, n_members: int) -> None:
        rng = self.rng
        specs = [
            _GROUPS[i]
            if i < len(_GROUPS)
            else (f"g-{i + 1}", f"学习小组 {i + 1}", f"Study group {i + 1}")
            for i in range(n_groups)
        ]
        keys = [s[0] for s in specs]
        mix = P.persona_mix(n_members)
        kinds = (
            ["big_name"] * mix["big_name"]
            + ["regular"] * mix["regular"]
            + ["lurker"] * mix["lurker"]
            + ["spammer"] * mix["spammer"]
        )
        # Big names are the seed members and come first (the first is the owner);
        # the others are shuffled so that join order does not follow persona.
        rest = kinds[mix["big_name"] :]
        rng.shuffle(rest)
        kinds = kinds[: mix["big_name"]] + rest
        waves = [d for d in WAVE_DAYS if d < self.days]
        other_days = [d for d in range(1, self.days) if d not in waves]
        taken: set[str] = set()
        width = max(4, len(str(n_members)))
        self.members: list[SimMember] = []
        spammer_i = 0
        home_weights = [2.0 if i == 0 else 1.0 for i in range(n_groups)]
        for i, kind in enumerate(kinds):
            traits = P.draw_traits(kind, rng)
            if kind == "spammer":
                home = keys[0] if spammer_i % 2 == 0 or n_groups == 1 else keys[-1]
                day = waves[min(spammer_i, len(waves) - 1)] if waves else min(1, self.days - 1)
                spammer_i += 1
            else:
                home = keys[0] if i == 0 else rng.choices(keys, weights=home_weights)[0]
                r = rng.random()
                if kind == "big_name" or r < CORE_SHARE or not (waves or other_days):
                    day = 0
                elif waves and (r < CORE_SHARE + WAVE_SHARE or not other_days):
                    day = rng.choice(waves)
                else:
                    day = rng.choice(other_days)
            if home in _GROUP_TOPIC and rng.random() < 0.6:
                traits.topic = _GROUP_TOPIC[home]
            joins = {home: day}
            second_p = {"big_name": 0.6, "regular": 0.08}.get(kind, 0.0)
            if n_groups > 1 and rng.random() < second_p:
                other = rng.choice([k for k in keys if k != home])
                joins[other] = min(self.days - 1, day + rng.randint(0, 5))
            member = SimMember(
                uid=f"u-{i + 1:0{width}d}",
                name=P.member_name(rng, taken),
                persona=kind,
                traits=traits,
                joins=joins,
            )
            member.expertise = P.expertise_of(rng, traits.topic)
            member.status = dict.fromkeys(joins, "pending")
            self.members.append(member)
        # The waiting list: people who want in once a place frees up. They join
        # only when the bot invites them (elimination), one list per group.
        for j in range(round(n_members * WAITLIST_SHARE)):
            kind = "regular" if rng.random() < 0.4 else "lurker"
            traits = P.draw_traits(kind, rng)
            group = keys[j % n_groups]
            member = SimMember(
                uid=f"u-{n_members + j + 1:0{width}d}",
                name=P.member_name(rng, taken),
                persona=kind,
                traits=traits,
                joins={group: -1},
                waiting=True,
            )
            member.expertise = P.expertise_of(rng, traits.topic)
            member.status = {group: "pending"}
            self.members.append(member)
        self._by_uid = {m.uid: m for m in self.members}
        #: Two big names help the owner run the community (role admin).
        self.admins = [m.uid for m in self.members[1:3] if m.persona == "big_name"]
        self.hours_group = HOURS_GROUP if HOURS_GROUP in keys else None
        sizes = dict.fromkeys(keys, 0)
        for m in self.members:
            for g in m.joins:
                sizes[g] += 1
        self.groups = [
            SimGroup(
                key=key,
                name={"zh-CN": zh, "en": en},
                factor=min(1.3, max(0.75, (60 / max(1, sizes[key])) ** 0.25)),
            )
            for key, zh, en in specs
        ]
        self._group = {g.key: g for g in self.groups}
        self._state = {g.key: _GroupState() for g in self.groups}
        self._joins_by_day: dict[int, list[tuple[SimMember, str]]] = {}
        for m in self.members:
            for g, day in m.joins.items():
                self._joins_by_day.setdefault(day, []).append((m, g))

    @property
    def owner(self) -> SimMember:
        """The group owner (群主): the first big name."""
        return self.members[0]

    def persona_counts(self) -> dict[str, int]:
        """Members by persona (the waiting list not included)."""
        counts = dict.fromkeys(P.PERSONAS, 0)
        for m in self.members:
            if not m.waiting:
                counts[m.persona] += 1
        return counts

    @property
    def waitlist(self) -> dict[str, list[str]]:
        """Group key → the user ids waiting for a place there, in order."""
        out: dict[str, list[str]] = {}
        for m in self.members:
            if m.waiting:
                out.setdefault(m.home, []).append(m.uid)
        return out

    def member(self, uid: str) -> SimMember | None:
        return self._by_uid.get(uid)

    @property
    def staff(self) -> list[str]:
        """The owner and the admins (who pick best answers and confer titles)."""
        return [self.owner.uid, *self.admins]

    def _plan_contribution(self) -> None:
        """Who volunteers for duty and who gives the sharing session (no random draws:
        the rest of the simulation is the same with or without them)."""
        main = self.groups[0].key
        day0 = [
            m for m in self.members
            if not m.waiting and m.persona != "spammer" and m.joins.get(m.home) == 0
        ]  # fmt: skip
        admins = [self._by_uid[u] for u in self.admins]
        regulars = [m for m in day0 if m.persona == "regular" and m.traits.talk > 0]
        #: Members who sign up for the duty roster on the second evening.
        self.duty_volunteers = [m.uid for m in (admins + regulars)[:3]]
        speakers = [
            m for m in day0 if m.persona == "big_name" and m.uid not in self.staff and m.home == main
        ] or [m for m in regulars if m.home == main]
        #: The speaker of the sharing session (a big name who is not staff), if any.
        self.speaker: str | None = speakers[0].uid if speakers and self.days > SESSION_DAY else None

    def commands(self) -> list[OperatorCommand]:
        """The operator's commands: the early-rise challenge and the sharing session,
        both set up on the first morning (after the owner opened the main group)."""
        first = self.start.date()
        main = self.groups[0].key
        out = [
            OperatorCommand(
                0, 8, "challenge", "create",
                {**CHALLENGE, "start": (first + timedelta(days=1)).isoformat(), "announce_group": main},
                f"demo-{self.seed}-challenge", self.owner.uid,
            )
        ]  # fmt: skip
        if self.speaker is not None:
            at = first + timedelta(days=SESSION_DAY)
            out.append(
                OperatorCommand(
                    0, 8, "sessions", "create",
                    {"speaker": self.speaker, "host": self.owner.uid, "topic": SESSION_TOPIC,
                     "starts_at": f"{at.isoformat()} {SESSION_HOUR:02d}:00", "group": main},
                    f"demo-{self.seed}-session", self.owner.uid,
                )
            )  # fmt: skip
        return out

    @property
    def season_weeks(self) -> int:
        """The ISO weeks the simulated days touch: the fund's season."""
        first = self.start.date()
        last = first + timedelta(days=self.days - 1)
        return ((last - timedelta(days=last.weekday())) - (first - timedelta(days=first.weekday()))).days // 7 + 1

    @property
    def end(self) -> datetime:
        """The moment the simulation ends (local midnight after the last day)."""
        return self.at(self.days * _DAY)

    def at(self, t: float) -> datetime:
        """The local time ``t`` seconds after the start."""
        return (self._start_utc + timedelta(seconds=int(t))).astimezone(self.tz)

    # ------------------------------------------------------------ the config

    def config_yaml(self, locale: str = "zh-CN", *, digest_dir: str | None = None) -> str:
        """The demo community's configuration: a 30-day learning camp.

        The playbooks run in the built-ins' working order
        (:data:`qunyun.playbooks.BUILTINS`): moderation first (spam never
        reaches the others), then the entry gate (a quiz after the join: its
        answers are not seen by the playbooks after it), the rules, referrals,
        the deposit challenge and the fund, the welcome, profile cards,
        activation, open hours (the reading club only), the quarrel guard, the
        sharing session, check-in, FAQ, the microphone, Q&A, essence, the
        weekly digest (written to ``digest_dir`` if given), titles, medals
        (which read the counters of those before), levels, the duty roster
        and weekly elimination of the silent.
        """
        waitlist = self.waitlist
        groups: list[dict[str, Any]] = []
        for g in self.groups:
            spec: dict[str, Any] = {"id": g.key, "platform": self.platform, "name": g.name[locale]}
            overrides: dict[str, Any] = {}
            if g.key == self.hours_group:
                overrides["hours"] = {
                    "enabled": True,
                    "windows": {"daily": [f"{a:02d}:00-{b:02d}:00" for a, b in OPEN_HOURS]},
                    "strikes": True,
                    "max_strikes": 3,
                    "strike_action": "notify_admins",
                }
            if waitlist.get(g.key):
                overrides["elimination"] = {"waitlist": waitlist[g.key]}
            if overrides:
                spec["playbooks"] = overrides
            groups.append(spec)
        roles: dict[str, list[str]] = {"owner": [self.owner.uid]}
        if self.admins:
            roles["admin"] = list(self.admins)
        doc: dict[str, Any] = {
            "communities": [
                {
                    "id": self.community_id,
                    "name": "晨光成长营" if locale == "zh-CN" else "Morning Light Learning Camp",
                    "timezone": self.timezone,
                    "locale": locale,
                    "roles": roles,
                    "groups": groups,
                    "playbooks": {
                        "moderation": {"links": {"allow_domains": [SHARE_DOMAIN]}},
                        "gate": {
                            "mode": "quiz",
                            "after_join": True,
                            "quiz": QUIZ,
                            "quiz_count": 2,
                            "max_attempts": 3,
                            "deadline_hours": 24,
                            "remind_before_hours": 6,
                        },
                        "rules": {
                            "ack_hours": 48,
                            "reminder_hours": 24,
                            "consequence": "notify_admins",
                        },
                        "welcome": {},
                        "profile": {},
                        "activation": {"hours": 24, "activation_days": 7},
                        # open hours only where a group overrides this
                        "hours": {"enabled": False},
                        "microphone": {"experts": 2, "daily_cap": 10},
                        "checkin": {},
                        "faq": {"entries": FAQ_ENTRIES},
                        "qa": {},
                        "sessions": {},
                        # votes are 🔥 and ⭐ (👍 is for answers); staff mark by replying 精华
                        "essence": {"vote_emojis": ["🔥", "⭐"]},
                        "fund": {
                            "season_start": self.start.date().isoformat(),
                            "season_weeks": self.season_weeks,
                            "exclude_roles": ["owner", "admin"],
                            "admin_dues_share": 20,
                        },
                        "challenge": {},
                        "levels": {},
                        "guard": {},
                        "elimination": {
                            "period": "0 10 * * 1",
                            "kpi": "messages + checkins >= 1",
                            "window_days": 10,
                            "grace_days": 10,
                            "deadline_days": 3,
                        },
                        "referrals": {},
                        "duty": {"per_week": 1, "pay_per_week": 3000},
                        "digest": {
                            "daily": None,
                            # before the duty rotation at 09:00, so the closing week counts it
                            "weekly": "30 8 * * 1",
                            "out_dir": digest_dir,
                        },
                        "titles": {},
                        "medals": {"medals": MEDALS},
                    },
                }
            ]
        }
        from qunyun.playbooks import BUILTINS

        community = doc["communities"][0]
        community["playbooks"] = dict(
            sorted(community["playbooks"].items(), key=lambda item: BUILTINS.index(item[0]))
        )
        head = (
            f"# The qunyun demo community (sim adapter, seed {self.seed}).\n"
            "# Replay its events with:  qunyun replay events.jsonl --config qunyun.yaml\n"
        )
        return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)

    # ------------------------------------------------------------- the clock

    def hours(self) -> Iterator[Hour]:
        """Every remaining hour, generated lazily: observe between two ``next`` calls."""
        while self._hour < self.days * 24:
            yield self.step()

    def step(self) -> Hour:
        """Generate the next simulated hour."""
        if self._hour >= self.days * 24:
            raise RuntimeError(f"the simulation is over: all {self.days} days were generated")
        day, hod = divmod(self._hour, 24)
        t0 = self._hour * _HOUR
        t1 = t0 + _HOUR
        if hod == 0:
            self._start_day(day)
        self._spontaneous(day, hod, t0)
        heap = self._heap
        self._out = []
        while heap and heap[0][0] < t1:
            t, _, kind, uid, group, data = heapq.heappop(heap)
            self._t = t
            self._do(kind, t, uid, group, data)
        self._hour += 1
        self._t = t1
        return Hour(day, hod, self.at(t0), self.at(t1), self._out)

    def run_day(self, day: int) -> list[Event]:
        """Every event of ``day`` (the next day to simulate), without observing in between."""
        if self._hour != day * 24:
            raise ValueError(f"day {day} is not next: the simulation is at hour {self._hour}")
        out: list[Event] = []
        for _ in range(24):
            out.extend(self.step().events)
        return out

    def events(self) -> list[Event]:
        """Every remaining event, as if no bot were watching."""
        return [e for hour in self.hours() for e in hour.events]

    # -------------------------------------------------------- the bot's doing

    def observe(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """Let members react to what the bot did (action dicts, as in the outbox)."""
        base = self._t
        for action in actions:
            atype = action.get("type")
            group = str(action.get("group", ""))
            if group not in self._state:
                continue
            if atype == "remove":
                self._removed(str(action.get("member", "")), group, base)
                continue
            if atype == "invite":
                self._invited(str(action.get("member", "")), group, base)
                continue
            if atype not in ("send", "direct"):
                continue
            playbook = str(action.get("playbook", ""))
            if playbook == "challenge" and atype == "send" and not self._challenge_seen:
                self._challenge_seen = True  # the announcement: who puts a deposit down
                self._challenge_announced(group, base)
            elif playbook == "duty" and atype == "direct":
                self._duty_direct(str(action.get("member", "")), base)
                continue
            elif playbook == "fund" and atype == "send" and action.get("mentions"):
                self._award_seen(group, [str(u) for u in action["mentions"]], base)
            targets = [str(u) for u in action.get("mentions") or ()]
            if atype == "direct" and action.get("member"):
                targets.append(str(action["member"]))
            reply_to = action.get("reply_to")
            if reply_to:
                author = self._authors.get(str(reply_to))
                if author is not None and author[1] == group and author[0] not in targets:
                    targets.append(author[0])
            for uid in targets:
                self._addressed(uid, group, str(action.get("playbook", "")), action, base)

    def _addressed(
        self, uid: str, group: str, playbook: str, action: Mapping[str, Any], base: float
    ) -> None:
        m = self._by_uid.get(uid)
        if m is None or m.status.get(group) != "in":
            return
        self._count("bot_addressed")
        rng = self.rng
        if playbook == "welcome":
            m.boost += 1.5
            if not m.welcomed.get(group):
                m.welcomed[group] = True
                if not m.introduced.get(group) and rng.random() < m.traits.intro_welcomed:
                    m.introduced[group] = True
                    self._push(self._later(base, 35), "intro", uid, group)
        elif playbook == "checkin":
            if action.get("reply_to") is None:  # the evening reminder
                m.boost += 0.2
                day = int(base // _DAY)
                when = base + rng.uniform(2, 40) * _MIN
                if m.checked_day != day and when < (day + 1) * _DAY and rng.random() < 0.6:
                    self._push(when, "checkin", uid, group, {"reminded": True})
            else:
                m.boost += 0.05
        elif playbook == "moderation":
            m.warnings += 1
            if m.persona != "spammer":
                m.boost = 0.0  # told off: quiet for a while
        elif playbook == "levels":
            m.boost += 0.5
            if rng.random() < 0.35:
                self._push(self._later(base, 20), "thanks", uid, group, {"levels": True})
        elif playbook == "faq":
            m.boost += 0.3
            if rng.random() < 0.3:
                self._push(self._later(base, 10), "thanks", uid, group, None)
        elif playbook == "gate":
            self._gate(m, group, str(action.get("text") or ""), base)
        elif playbook == "rules":
            if not m.acked:
                first = "rules" not in m.done
                m.done.add("rules")
                if rng.random() < (_ACKS[m.persona] if first else 0.5):
                    m.acked = True
                    self._push(self._later(base, 30 if first else 60), "ack", uid, group)
        elif playbook == "activation":
            m.boost += 1.0
            if "hello" not in m.done and rng.random() < _HELLO[m.persona]:
                m.done.add("hello")
                self._push(self._later(base, 90), "hello", uid, group)
        elif playbook == "profile":
            # a direct message asking for the card's missing expertise
            if action.get("type") == "direct" and "card" not in m.done:
                m.done.add("card")
                if rng.random() < 0.5:
                    self._push(self._later(base, 120), "card", uid, group)
        elif playbook == "hours":
            m.boost = 0.0
            if rng.random() < 0.8:  # most keep quiet until the group opens again
                m.hushed[group] = self._next_opening(base)
        elif playbook == "microphone":
            if uid in (action.get("mentions") or ()) and action.get("reply_to"):
                m.boost += 0.3
                asker = self._authors.get(str(action["reply_to"]))
                if asker is not None and rng.random() < _EXPERT_ANSWERS[m.persona]:
                    self._count("expert_answer")
                    self._push(
                        self._later(base, 30),
                        "answer",
                        uid,
                        group,
                        {"q": str(action["reply_to"]), "asker": asker[0]},
                    )
        elif playbook in ("qa", "essence", "fund", "medals", "titles"):
            m.boost += 0.15  # a confirmation, a best answer, an award, a medal: a little lift
        elif playbook in ("challenge", "sessions", "digest"):
            pass  # routine confirmations and notices
        elif playbook == "elimination":
            # warned in the group and by direct message: react once, to the latter
            key = f"alive:{group}"
            if action.get("type") == "direct" and key not in m.done:
                m.done.add(key)
                m.vigor = max(m.vigor, 0.6)
                if rng.random() < _STILL_HERE[m.persona]:
                    self._push(self._later(base, 240), "still_here", uid, group)
        else:
            m.boost += 0.5
        m.boost = min(m.boost, 3.0)

    def _challenge_announced(self, group: str, base: float) -> None:
        """The challenge was announced: some members of that group pay the deposit that evening."""
        rng = self.rng
        day = int(base // _DAY)
        for m in self.members:
            # check-ins count in any group: members who join today, anywhere, may take part
            if m.waiting or m.persona == "spammer" or m.joins[m.home] != day:
                continue
            early, other = _JOINS_CHALLENGE[m.persona]
            if rng.random() < (early if m.traits.checkin_hour < 9.5 else other):
                self.challengers.append(m.uid)
                when = day * _DAY + rng.uniform(22.6, 23.9) * _HOUR
                memo = rng.choice((f"{CHALLENGE['challenge']}挑战押金", CHALLENGE["challenge"], f"报名{CHALLENGE['challenge']}"))
                self._push(when, "pay", m.uid, m.home, {"amount": CHALLENGE["deposit"], "memo": memo})

    def _duty_direct(self, uid: str, base: float) -> None:
        """The duty roster's checklist or reminder: tick some open items during the week."""
        m = self._by_uid.get(uid)
        if m is None or m.status.get(m.home) != "in":
            return
        rng = self.rng
        week = int(base // (7 * _DAY))  # the simulation starts on a Monday
        end = (week + 1) * 7 * _DAY - 2 * _HOUR
        if base >= end:
            return
        for n in range(1, 5):
            key = f"tick:{week}:{n}"
            if key in m.done or rng.random() >= 0.6:
                continue
            m.done.add(key)
            when = self._later(base + rng.uniform(1, max(1.0, (end - base) / _HOUR - 1)) * _HOUR, 10)
            if when < end:
                self._push(when, "say_text", uid, m.home, {"text": f"完成 {n}", "kind": "command"})

    def _award_seen(self, group: str, winners: list[str], base: float) -> None:
        """The weekly award mentions its winners: the owner confers a title on the first."""
        owner = self.owner
        winner = self._by_uid.get(winners[0])
        if winner is None or owner.status.get(group) != "in":
            return
        self._push(
            self._later(base, 40),
            "say_text",
            owner.uid,
            group,
            {"text": f"册封 @{winner.name} {AWARD_TITLE}", "kind": "command", "mentions": [winner.uid]},
        )

    def _review(self, t: float) -> None:
        """In the evening, staff pick the best answer of qa questions answered during the day,
        or the asker accepts one."""
        rng = self.rng
        for q in self._qa.values():
            if q["done"]:
                continue
            if t - q["t"] > 3 * _DAY:
                q["done"] = True
                continue
            answers = [a for a in q["answers"] if t - a[2] > 2 * _HOUR and a[1] != q["asker"]]
            if not answers or t - q["t"] < 6 * _HOUR:
                continue
            best = max(answers, key=lambda a: (self._votes.get(a[0], 0), -a[2]))
            group = q["group"]
            pickers = [
                u for u in self.staff if u != best[1] and self._by_uid[u].status.get(group) == "in"
            ]
            asker = self._by_uid[q["asker"]]
            q["done"] = True  # looked at once: picked, accepted, or left as it is
            if pickers and rng.random() < 0.55:
                self._push(t + rng.uniform(1, 40) * _MIN, "pick", pickers[0], group,
                           {"reply_to": best[0], "text": rng.choice(("最佳", "最佳", "best"))})  # fmt: skip
            elif asker.status.get(group) == "in" and rng.random() < 0.3:
                self._push(t + rng.uniform(1, 60) * _MIN, "pick", asker.uid, group,
                           {"reply_to": best[0], "text": "采纳"})  # fmt: skip
        if len(self._qa) > 500:  # keep the open ones only
            self._qa = {k: v for k, v in self._qa.items() if not v["done"]}
        # the day's most liked share in each group: a staff member marks it as essence
        today = [(msg, sh) for msg, sh in self._shares.items() if t - sh[2] < _DAY]
        for g in self.groups:
            liked = [(self._votes.get(msg, 0), -sh[2], msg, sh) for msg, sh in today if sh[0] == g.key]
            if not liked:
                continue
            votes, _, msg, sh = max(liked)
            markers = [u for u in self.staff if u != sh[1] and self._by_uid[u].status.get(g.key) == "in"]
            if votes >= 2 and markers and rng.random() < 0.6:
                self._push(t + rng.uniform(5, 50) * _MIN, "pick", markers[0], g.key,
                           {"reply_to": msg, "text": "精华"})  # fmt: skip
        self._shares = {msg: sh for msg, sh in self._shares.items() if t - sh[2] < _DAY}

    def _gate(self, m: SimMember, group: str, text: str, base: float) -> None:
        """The gate's quiz (its questions found in the text), or a reminder of it."""
        rng = self.rng
        if m.persona == "spammer":
            return  # they came to post ads, not to take a quiz
        found = sorted(
            (pos, i)
            for i, q in enumerate(QUIZ)
            for pos in [max(text.find(q["question"]["zh-CN"]), text.find(q["question"]["en"]))]
            if pos >= 0
        )
        if found:
            m.quiz[group] = [QUIZ[i]["answers"][0] for _, i in found]
            m.answered[group] = False
            first = f"quiz:{group}" not in m.done
            m.done.add(f"quiz:{group}")
            # a new set after a failed attempt is answered by all who tried once
            if not first or rng.random() < _ANSWERS_QUIZ[m.persona]:
                m.answered[group] = True
                self._push(self._later(base, 25 if first else 10), "quiz", m.uid, group)
        elif m.quiz.get(group) and not m.answered.get(group) and rng.random() < 0.4:
            # the reminder before the deadline: some answer now
            m.answered[group] = True
            self._push(self._later(base, 30), "quiz", m.uid, group)

    def _next_opening(self, t: float) -> float:
        """When the hours group next opens after ``t`` (simulated seconds)."""
        day, rest = divmod(t, _DAY)
        hod = rest / _HOUR
        for a, _ in OPEN_HOURS:
            if a > hod:
                return day * _DAY + a * _HOUR
        return (day + 1) * _DAY + OPEN_HOURS[0][0] * _HOUR

    def _invited(self, uid: str, group: str, base: float) -> None:
        """The bot invited someone waiting for a place: they accept within hours."""
        m = self._by_uid.get(uid)
        if m is None or m.status.get(group) != "pending" or m.persona == "spammer":
            return
        self._count("invited")
        when = base + self.rng.uniform(0.5, 8) * _HOUR
        self._push(when, "join", uid, group, {"invited": True})

    def _removed(self, uid: str, group: str, base: float) -> None:
        m = self._by_uid.get(uid)
        if m is None or m.status.get(group) != "in":
            return
        m.status[group] = "removed"
        self._state[group].remove(uid)
        self._push(base + self.rng.uniform(1, 20), "kicked", uid, group)

    # ------------------------------------------------------------ scheduling

    def _push(
        self, t: float, kind: str, uid: str, group: str, data: dict[str, Any] | None = None
    ) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, uid, group, data))

    def _later(self, t: float, mean_minutes: float) -> float:
        """A moment after ``t``, about ``mean_minutes`` later; nobody answers at 3 a.m."""
        when = t + 60 + self.rng.expovariate(1 / (mean_minutes * _MIN))
        hod = (when % _DAY) / _HOUR
        if hod < 7:
            when = when - (when % _DAY) + 7 * _HOUR + self.rng.uniform(0, 2 * _HOUR)
        return when

    def _count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def _start_day(self, day: int) -> None:
        rng = self.rng
        d0 = day * _DAY
        weekday = (self.start.weekday() + day) % 7
        for m in self.members:
            if any(s == "in" for s in m.status.values()):
                m.boost *= 0.7
                m.vigor = max(0.15, m.vigor * m.traits.decay)
        # arrivals
        for m, group in self._joins_by_day.get(day, ()):
            self._push(d0 + self._join_second(m, day, group), "join", m.uid, group)
        self._quarrels(day)
        self._contribution_day(day)
        for m in self.members:
            for group, status in m.status.items():
                if status != "in":
                    continue
                # departures: mostly lurkers, at some daytime moment
                if m.traits.leave and rng.random() < m.traits.leave:
                    self._push(d0 + rng.uniform(8, 23.5) * _HOUR, "leave", m.uid, group)
                    continue
                if m.persona == "spammer":
                    for _ in range(rng.randint(2, 4)):
                        self._push(d0 + rng.uniform(8.5, 23.5) * _HOUR, "spam", m.uid, group)
                    continue
                # the daily check-in, in the home group
                if group == m.home and m.traits.checkin > 0:
                    p = m.traits.checkin
                    if p < 0.9:
                        p *= (0.55 + 0.45 * min(1.0, m.vigor)) * (1 + 0.5 * min(1.0, m.boost))
                    if weekday >= 5:
                        p *= 0.92
                    if rng.random() < min(0.99, p):
                        hour = m.traits.checkin_hour + rng.gauss(0, 0.4)
                        hour = min(23.9, max(5.5, hour))
                        if group == self.hours_group and not _open_at(hour) and rng.random() < 0.85:
                            # they know the group's hours: most check in while it is open
                            a, b = rng.choice(OPEN_HOURS)
                            hour = rng.uniform(a, b - 0.1)
                        self._push(d0 + hour * _HOUR, "checkin", m.uid, group)

    def _contribution_day(self, day: int) -> None:
        """What the camp's contribution plan brings today: the owner's gift to the fund,
        sign-ups for duty, early risers, the sharing session, the evening's best answers."""
        rng = self.rng
        d0 = day * _DAY
        main = self.groups[0].key
        if day == 0:
            self._push(d0 + 8.5 * _HOUR, "pay", self.owner.uid, main,
                       {"amount": SEED_DONATION, "memo": "捐赠群基金"})  # fmt: skip
        if day == 1:
            for uid in self.duty_volunteers:
                m = self._by_uid[uid]
                self._push(d0 + rng.uniform(20, 22) * _HOUR, "say_text", uid, m.home,
                           {"text": "报名值班", "kind": "command"})  # fmt: skip
        if 1 <= day <= CHALLENGE["days"]:
            for uid in self.challengers:
                m = self._by_uid[uid]
                p = _RISES[m.persona] * (0.8 + 0.2 * min(1.0, m.vigor))
                r = rng.random()
                if r < p:
                    self._push(d0 + rng.uniform(5.2, 6.95) * _HOUR, "rise", uid, m.home)
                elif r < p + 0.05:  # overslept, and checks in anyway
                    self._push(d0 + rng.uniform(7.05, 8.5) * _HOUR, "rise", uid, m.home)
        if self.speaker is not None:
            self._session_day(day, d0, main)
        self._push(d0 + 21.5 * _HOUR, "review", self.owner.uid, main)

    def _session_day(self, day: int, d0: float, main: str) -> None:
        """Questions for the speaker in the two days before; the talk itself on the night."""
        rng = self.rng
        assert self.speaker is not None
        if day in (SESSION_DAY - 2, SESSION_DAY - 1):
            pool = [
                u for u in self._state[main].present
                if self._by_uid[u].persona in ("regular", "lurker") and self._by_uid[u].traits.talk > 0
            ]  # fmt: skip
            for uid in rng.sample(pool, min(len(pool), rng.randint(2, 4))):
                text = "#问 " + P.question_text(rng, faq=False)
                self._push(d0 + rng.uniform(12, 22.5) * _HOUR, "say_text", uid, main,
                           {"text": text, "kind": "chat"})  # fmt: skip
        elif day == SESSION_DAY:
            when = d0 + (SESSION_HOUR - 0.1) * _HOUR
            for i in range(6):
                self._push(when, "talk", self.speaker, main, {"part": i})
                when += rng.uniform(7, 11) * _MIN

    def _quarrels(self, day: int) -> None:
        for g in self.groups:
            if self.rng.random() < QUARREL_P:
                self._quarrel(day * _DAY, g.key)

    def _join_second(self, m: SimMember, day: int, group: str) -> float:
        rng = self.rng
        if m is self.owner and group == m.home:
            return 8 * _HOUR + rng.uniform(0, 10 * _MIN)
        if day == 0 and group == m.home:
            if m.persona == "big_name":
                return 8.25 * _HOUR + rng.uniform(0, _HOUR)
            if rng.random() < 0.7:
                return rng.uniform(9, 12) * _HOUR
            return rng.uniform(19, 22.5) * _HOUR
        if group != m.home:
            return rng.uniform(10, 22) * _HOUR
        if day in WAVE_DAYS:
            # an article or poster went out: a lunch-time trickle, an evening rush
            if rng.random() < 0.3:
                return rng.uniform(12, 14) * _HOUR
            return rng.uniform(19.5, 23.5) * _HOUR
        return rng.uniform(8, 23) * _HOUR

    def _spontaneous(self, day: int, hod: int, t0: float) -> None:
        rng = self.rng
        weekday = (self.start.weekday() + day) % 7
        shape = P.RHYTHM[hod] * P.WEEKDAY[weekday]
        for g in self.groups:
            state = self._state[g.key]
            base = shape * g.factor
            if g.key == self.hours_group and not _open_at(hod):
                base *= 0.2  # the group rests: most people wait for it to open
            for uid in list(state.present):
                m = self._by_uid[uid]
                talk = m.traits.talk
                if talk <= 0 or m.hushed.get(g.key, 0.0) > t0:
                    continue
                rate = (
                    talk * m.vigor * (1 + m.boost * m.traits.responsive) * base * m.share_of(g.key)
                )
                n = _poisson(rng, rate)
                for _ in range(n):
                    self._push(t0 + rng.uniform(0, _HOUR), "say", uid, g.key)

    # --------------------------------------------------------------- doings

    def _do(self, kind: str, t: float, uid: str, group: str, data: dict[str, Any] | None) -> None:
        if kind == "review":
            self._review(t)
            return
        m = self._by_uid[uid]
        status = m.status.get(group)
        if kind == "join":
            if status == "pending":
                self._join(t, m, group, invited=bool(data and data.get("invited")))
            return
        if kind == "kicked":
            self._emit(t, m, group, "member_left", {"by": BOT_ID})
            self._count("removed")
            return
        if status != "in":
            return  # gone since this was planned
        if kind == "say":
            self._say(t, m, group)
        elif kind == "checkin":
            self._checkin(t, m, group, data)
        elif kind == "intro":
            self._intro(t, m, group)
        elif kind == "answer":
            assert data is not None
            self._answer(t, m, group, data["q"], data["asker"])
        elif kind == "react":
            assert data is not None
            self._emit(t, m, group, "reaction", {"target": data["target"], "emoji": data["emoji"]})
            self._count("reaction")
            if data["target"] in self._answer_of or data["target"] in self._shares:
                self._votes[data["target"]] = self._votes.get(data["target"], 0) + 1
        elif kind == "pay":
            assert data is not None
            self._emit(t, m, group, "payment",
                       {"amount": data["amount"], "currency": CURRENCY, "memo": data["memo"]})  # fmt: skip
            self._count("payment")
        elif kind == "say_text":
            assert data is not None
            self._message(t, m, group, data["text"], kind=data.get("kind", "chat"),
                          mentions=data.get("mentions", ()))  # fmt: skip
        elif kind == "pick":
            assert data is not None
            self._message(t, m, group, data["text"], kind="pick", reply_to=data["reply_to"])
            self._count("best_pick")
        elif kind == "rise":
            self._message(t, m, group, P.rise_text(self.rng, f"#{CHALLENGE['challenge']}"), kind="rise")
            self._count("rise")
        elif kind == "talk":
            assert data is not None
            self._message(t, m, group, P.talk_text(self.rng, data["part"], SESSION_TOPIC), kind="share")
        elif kind == "mention_reply":
            assert data is not None
            who = self._by_uid[data["from"]]
            self._message(
                t,
                m,
                group,
                P.reply_text(self.rng) if self.rng.random() < 0.6 else P.thanks_text(self.rng),
                kind="reply",
                reply_to=data["msg"],
                mentions=[who.uid],
                prefix=f"@{who.name} ",
            )
        elif kind == "greet":
            assert data is not None
            who = self._by_uid[data["newcomer"]]
            self._message(
                t,
                m,
                group,
                P.greet_text(self.rng, who.name),
                kind="greet",
                reply_to=data["msg"],
                mentions=[who.uid],
            )
        elif kind == "thanks":
            text = (
                P.level_thanks_text(self.rng)
                if data and data.get("levels")
                else P.thanks_text(self.rng)
            )
            self._message(t, m, group, text, kind="thanks")
        elif kind == "spam":
            self._spam(t, m, group)
        elif kind == "spam_repeat":
            assert data is not None
            self._message(t, m, group, data["text"], kind="spam")
        elif kind == "quiz":
            self._quiz_answer(t, m, group)
        elif kind == "ack":
            self._message(t, m, group, P.ack_text(self.rng), kind="ack")
        elif kind == "hello":
            if not m.introduced.get(group) and self.rng.random() < 0.4:
                m.introduced[group] = True
                self._intro(t, m, group)
            else:
                self._message(t, m, group, P.hello_text(self.rng), kind="chat")
        elif kind == "card":
            self._message(t, m, group, P.expertise_line(self.rng, m.expertise), kind="card")
        elif kind == "still_here":
            self._message(t, m, group, P.still_here_text(self.rng), kind="chat")
            m.boost = min(3.0, m.boost + 1.0)
        elif kind == "barb":
            assert data is not None
            who = self._by_uid[data["to"]]
            if who.status.get(group) == "in":
                self._message(
                    t, m, group, data["text"], kind="barb", mentions=[who.uid], prefix=f"@{who.name} "
                )
        elif kind == "leave":
            m.status[group] = "left"
            self._state[group].remove(m.uid)
            self._emit(t, m, group, "member_left", {"by": None})
            self._count("leave")

    def _join(self, t: float, m: SimMember, group: str, *, invited: bool = False) -> None:
        rng = self.rng
        m.status[group] = "in"
        self._state[group].add(m.uid)
        day = int(t // _DAY)
        if m.waiting:
            m.joins[group] = day
        if m is self.owner:
            fields: dict[str, Any] = {"via": "unknown", "inviter": None}
        elif invited:
            fields = {"via": "invite", "inviter": None}  # the bot's invitation
        elif day == 0 and group == m.home and m.persona != "big_name":
            # the seed members bring in their friends
            inviter = self._pick(group, exclude=m.uid, personas=("big_name",))
            fields = {"via": "invite", "inviter": inviter or self.owner.uid}
        elif day == 0 or group != m.home:
            fields = {"via": "invite", "inviter": self.owner.uid}
        elif day in WAVE_DAYS:
            fields = {"via": rng.choice(("qr", "qr", "link")), "inviter": None}
        else:
            inviter = self._pick(group, exclude=m.uid, personas=("big_name", "regular"))
            fields = (
                {"via": "invite", "inviter": inviter}
                if inviter
                else {"via": "link", "inviter": None}
            )
        self._emit(t, m, group, "member_joined", fields)
        self._count("join")
        if m.persona == "spammer":
            self._push(t + rng.uniform(10, 90) * _MIN, "spam", m.uid, group)
            return
        if not m.introduced.get(group) and rng.random() < m.traits.intro_unprompted:
            m.introduced[group] = True
            self._push(self._later(t, 60), "intro", m.uid, group)
        # keen newcomers check in on their first day already
        if group == m.home and rng.random() < m.traits.checkin * 0.6:
            when = max(t + rng.uniform(20, 90) * _MIN, day * _DAY + m.traits.checkin_hour * _HOUR)
            if when < (day + 1) * _DAY - 10 * _MIN:
                self._push(when, "checkin", m.uid, group)

    def _say(self, t: float, m: SimMember, group: str) -> None:
        rng = self.rng
        persona = P.PERSONAS[m.persona]
        kinds = list(persona.kinds)
        kind = rng.choices(kinds, weights=[persona.kinds[k] for k in kinds])[0]
        state = self._state[group]
        if kind == "answer":
            open_q = [
                q for q in state.questions if q[1] != m.uid and q[3] < 2 and t - q[2] < 12 * _HOUR
            ]
            if open_q:
                q = open_q[-1]
                self._answer(t, m, group, q[0], q[1])
                return
            kind = "share" if m.persona == "big_name" and rng.random() < 0.25 else "chat"
        if kind in ("reply", "mention"):
            recent = [r for r in list(state.recent)[-20:] if r[1] != m.uid]
            if not recent:
                kind = "chat"
            elif kind == "reply":
                target = rng.choice(recent)
                self._message(t, m, group, P.reply_text(rng), kind="reply", reply_to=target[0])
                return
            else:
                target = rng.choice(recent)
                who = self._by_uid[target[1]]
                self._message(
                    t, m, group, P.mention_text(rng, who.name), kind="mention", mentions=[who.uid]
                )
                return
        if kind == "share":
            self._message(t, m, group, P.share_text(rng), kind="share", content_type="link")
        elif kind == "question":
            newcomer = t - m.joins[group] * _DAY < 3 * _DAY
            faq = rng.random() < (0.55 if newcomer else 0.2)
            self._question(t, m, group, faq)
        elif kind == "sticker":
            self._message(t, m, group, P.sticker_text(rng), kind="sticker", content_type="sticker")
        else:
            self._message(t, m, group, P.chat_text(rng, m.traits.topic), kind="chat")

    def _question(self, t: float, m: SimMember, group: str, faq: bool) -> None:
        rng = self.rng
        text = P.question_text(rng, faq=faq)
        qa = not faq and rng.random() < QA_FORMAT_P
        if qa:
            text = rng.choice(("提问：", "提问：", "问：")) + text
        msg = self._message(t, m, group, text, kind="question")
        self._count("faq_question" if faq else "qa_question" if qa else "question")
        if qa:
            self._qa[msg] = {"group": group, "asker": m.uid, "t": t, "answers": [], "done": False}
        self._state[group].questions.append([msg, m.uid, t, 0])
        # Somebody who knows usually answers; the FAQ ones are left to the bot.
        chances = (0.15, 0.0) if faq else (0.75, 0.35)
        for i, chance in enumerate(chances):
            if rng.random() < chance:
                who = self._pick(
                    group, exclude=m.uid, personas=("big_name", "regular"), favour_big=True
                )
                if who is not None:
                    self._push(
                        self._later(t, 20 if i == 0 else 60),
                        "answer",
                        who,
                        group,
                        {"q": msg, "asker": m.uid},
                    )

    def _answer(self, t: float, m: SimMember, group: str, q: str, asker: str) -> None:
        who = self._by_uid[asker]
        msg = self._message(
            t,
            m,
            group,
            P.answer_text(self.rng, who.name),
            kind="answer",
            reply_to=q,
            mentions=[asker],
        )
        asked = self._qa.get(q)
        if asked is not None and not asked["done"]:
            asked["answers"].append((msg, m.uid, t))
            self._answer_of[msg] = q
        for entry in self._state[group].questions:
            if entry[0] == q:
                entry[3] += 1

    def _checkin(self, t: float, m: SimMember, group: str, data: dict[str, Any] | None) -> None:
        day = int(t // _DAY)
        if m.checked_day == day:
            return
        m.checked_day = day
        m.checkins += 1
        self._message(
            t, m, group, P.checkin_text(self.rng, m.traits.topic, m.checkins), kind="checkin"
        )
        self._count("checkin_after_reminder" if data and data.get("reminded") else "checkin")

    def _intro(self, t: float, m: SimMember, group: str) -> None:
        rng = self.rng
        msg = self._message(t, m, group, P.intro_text(rng, m.name, m.expertise), kind="intro")
        self._count("intro")
        for chance in (0.7, 0.3):
            if rng.random() < chance:
                who = self._pick(group, exclude=m.uid, personas=("big_name", "regular"))
                if who is not None:
                    self._push(
                        self._later(t, 15), "greet", who, group, {"newcomer": m.uid, "msg": msg}
                    )

    def _quiz_answer(self, t: float, m: SimMember, group: str) -> None:
        rng = self.rng
        right = m.quiz.get(group) or []
        letters = []
        for letter in right:
            if rng.random() >= _RIGHT[m.persona]:
                letter = rng.choice([c for c in "ABC" if c != letter])
            letters.append(letter)
        if rng.random() < 0.7:
            text = " ".join(f"{n} {c}" for n, c in enumerate(letters, 1))
        else:
            text = "\n".join(f"{n}. {c.lower() if rng.random() < 0.3 else c}" for n, c in enumerate(letters, 1))
        self._message(t, m, group, text, kind="quiz")
        self._count("quiz_answer")
        # the camp's dues: most pay soon after they answered the quiz
        if "dues" not in m.done and rng.random() < _PAYS_DUES[m.persona]:
            m.done.add("dues")
            month = self.at(t).month
            memo = rng.choice((f"{month}月会费", "会费", "成长营会费", "dues"))
            self._push(t + rng.uniform(0.3, 8) * _HOUR, "pay", m.uid, group, {"amount": DUES, "memo": memo})

    def _quarrel(self, d0: float, group: str) -> None:
        """Two members start trading barbs: fast, alternating, @-mentioning each other."""
        rng = self.rng
        staff = {self.owner.uid, *self.admins}
        pool = [
            u
            for u in self._state[group].present
            if u not in staff and self._by_uid[u].persona in ("regular", "lurker")
            and self._by_uid[u].traits.talk > 0
        ]
        if len(pool) < 2:
            return
        a, b = rng.sample(pool, 2)
        when = d0 + rng.uniform(10, 22) * _HOUR
        lines = P.argument_lines(rng, rng.randint(6, 8))
        for i, text in enumerate(lines):
            speaker, other = (a, b) if i % 2 == 0 else (b, a)
            self._push(when, "barb", speaker, group, {"to": other, "text": text})
            when += rng.uniform(25, 75)
        self._count("quarrel")

    def _spam(self, t: float, m: SimMember, group: str) -> None:
        rng = self.rng
        kind = rng.choice(("contact", "link", "qr", "flood"))
        text, content_type, extra = P.spam_text(rng, kind)
        self._message(t, m, group, text, kind="spam", content_type=content_type, extra=extra)
        self._count("spam")
        if kind == "flood":
            when = t
            for _ in range(rng.randint(3, 5)):
                when += rng.uniform(5, 15)
                self._push(when, "spam_repeat", m.uid, group, {"text": text})

    # ------------------------------------------------------------- emitting

    def _pick(
        self,
        group: str,
        *,
        exclude: str,
        personas: tuple[str, ...],
        favour_big: bool = False,
    ) -> str | None:
        """A present member of one of ``personas`` (big names four times as likely if favoured)."""
        pool = [
            u
            for u in self._state[group].present
            if u != exclude and self._by_uid[u].persona in personas
        ]
        if not pool:
            return None
        if favour_big:
            weights = [4.0 if self._by_uid[u].persona == "big_name" else 1.0 for u in pool]
            return self.rng.choices(pool, weights=weights)[0]
        return self.rng.choice(pool)

    def _message(
        self,
        t: float,
        m: SimMember,
        group: str,
        text: str,
        *,
        kind: str,
        content_type: str = "text",
        mentions: Sequence[str] = (),
        reply_to: str | None = None,
        prefix: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        rng = self.rng
        self._msg_n += 1
        msg_id = f"m-{self._msg_n}"
        fields: dict[str, Any] = {
            "msg_id": msg_id,
            "text": prefix + text,
            "content_type": content_type,
            "mentions": list(mentions),
            "reply_to": reply_to,
            **(extra or {}),
        }
        self._emit(t, m, group, "message", fields)
        m.messages += 1
        self._count(f"message:{kind}")
        self._authors[msg_id] = (m.uid, group)
        if kind == "spam":
            return msg_id
        state = self._state[group]
        state.recent.append((msg_id, m.uid, t, kind))
        # mentioned members notice, and often answer
        for uid in mentions:
            target = self._by_uid.get(uid)
            if target is None or target.status.get(group) != "in" or uid == m.uid:
                continue
            target.boost = min(3.0, target.boost + 0.15)
            chance = 0.55 if target.traits.talk > 0 else 0.15
            if kind in ("mention", "answer", "greet") and rng.random() < chance:
                nxt = "thanks" if kind != "mention" else "mention_reply"
                self._push(self._later(t, 45), nxt, uid, group, {"from": m.uid, "msg": msg_id})
        # good messages get a thumbs-up or three
        n = _poisson(rng, _REACTIONS.get(kind, 0.0))
        emojis = _SHARE_EMOJI if kind == "share" else _EMOJI
        if kind == "share":
            self._shares[msg_id] = (group, m.uid, t)
        for _ in range(n):
            who = self._pick_any(group, exclude=m.uid)
            if who is not None:
                self._push(
                    self._later(t, 40),
                    "react",
                    who,
                    group,
                    {"target": msg_id, "emoji": rng.choice(emojis)},
                )
        return msg_id

    def _pick_any(self, group: str, *, exclude: str) -> str | None:
        present = self._state[group].present
        for _ in range(3):
            if not present:
                return None
            uid = self.rng.choice(present)
            if uid != exclude and self._by_uid[uid].persona != "spammer":
                return uid
        return None

    def _emit(
        self, t: float, m: SimMember, group: str, etype: str, fields: Mapping[str, Any]
    ) -> None:
        self._event_n += 1
        data: dict[str, Any] = {
            "v": 1,
            "id": f"sim-{self._event_n}",
            "ts": self.at(t),
            "platform": self.platform,
            "group": group,
            "type": etype,
            "actor": {"id": m.uid, "name": m.name},
            **fields,
        }
        self._out.append(parse_event(data))


def _open_at(hour: float) -> bool:
    """Whether the hours group is open at this local hour of the day."""
    return any(a <= hour < b for a, b in OPEN_HOURS)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth); means here are small."""
    if mean <= 0:
        return 0
    limit = math.exp(-mean)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


#: The demo community's FAQ: what newcomers ask in their first days.
FAQ_ENTRIES: list[dict[str, Any]] = [
    {
        "id": "checkin",
        "keywords": ["怎么打卡", "如何打卡", "打卡规则", "how to check in"],
        "answer": {
            "zh-CN": "每天发一条以「打卡」开头的消息，写上今天学了什么，就算打卡成功；"
            "连续打卡有额外积分，晚上 9 点会提醒还没打卡的同学。",
            "en": "Post a message starting with 打卡 (check-in) and a line about what you did today. "
            "Streaks earn bonus points; at 9 pm the bot reminds whoever has not checked in yet.",
        },
    },
    {
        "id": "rules",
        "keywords": ["群规", "group rules"],
        "answer": {
            "zh-CN": "群规三条：围绕学习交流；不发广告、二维码和推广链接；友善提问、互相尊重。"
            "违规会被提醒，三次后请出群。",
            "en": "Three rules: keep it about learning; no ads, QR codes or promo links; be kind. "
            "Breaking them earns a warning, and three warnings mean removal.",
        },
    },
    {
        "id": "materials",
        "keywords": ["资料", "课件", "回放"],
        "answer": {
            "zh-CN": "学习资料和分享回放都整理在群公告的资料库里，每周二、周四更新。",
            "en": "Materials and recordings of the shares are in the library linked from the group "
            "notice, updated every Tuesday and Thursday.",
        },
    },
    {
        "id": "points",
        "keywords": ["积分", "等级"],
        "answer": {
            "zh-CN": "打卡就能攒积分，连续 7 天、30 天还有奖励；积分够了自动升级。"
            "发「我的等级」查看自己的等级，发「打卡榜」看今天的排行。",
            "en": "Check-ins earn points, with bonuses at 7 and 30 days in a row; enough points and "
            "you level up. Send 我的等级 for your level and 打卡榜 for today's board.",
        },
    },
    {
        "id": "sharing",
        "keywords": ["分享会", "直播"],
        "answer": {
            "zh-CN": "每周三晚 8 点有一场主题分享，前一天会在群里预告；想当分享嘉宾的私信群主。",
            "en": "A themed share runs every Wednesday at 8 pm, announced the day before; "
            "message the owner if you would like to give one.",
        },
    },
]
