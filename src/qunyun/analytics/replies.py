"""Questions, answers and reply links: answer rate and time to first answer.

Who answered whom is rarely written down. Where the platform says so
(``reply_to``) we take it; otherwise an ``@mention`` (or, in an IRC log, a
line that starts with someone's nick) points at that person's latest
message; otherwise we guess with one documented rule (see
:func:`link_replies`). The same pure function runs on the database and on
the human-annotated ``#ubuntu`` logs, which is how its agreement with people
is measured (``scripts/validate_replies.py``, ``docs/analytics-validation.md``).

This is the one analytics module that reads raw ``messages``: it is a batch
computation for reports, always bounded to a period, never a dashboard path.
Links from the ``qa`` playbook (when it exists) are not used yet.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from qunyun.store import models as m

#: How far back a mention or a guessed reply may reach for its parent.
LINK_WINDOW = timedelta(minutes=30)
#: The "nearby" rule: a message from someone who spoke within this much time
#: continues their own thread (see :func:`link_replies`).
CONTINUE_WINDOW = timedelta(minutes=3)
#: How many recent messages per person the ``mention`` rule looks through.
HISTORY = 20
#: An answer must come within this long after the question to count.
ANSWER_WINDOW = timedelta(hours=24)

#: The linking rules, from the most to the least certain (see :func:`link_replies`).
RULES = ("reply", "mention", "back", "continue")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message as the linker sees it (from the database or from a log file)."""

    key: str
    ts: datetime
    author: str
    text: str
    reply_to: str | None = None
    #: Author ids this message addresses (``@`` mentions, or a leading nick in IRC).
    mentions: tuple[str, ...] = ()
    #: The group it was posted in (links never cross groups).
    group: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """``child`` replies to ``parent``; ``how`` is the rule that found it (:data:`RULES`)."""

    child: str
    parent: str
    how: str


@dataclass(frozen=True, slots=True)
class AnswerStats:
    questions: int
    answered: int
    rate: float | None
    median_first_answer_minutes: float | None


@dataclass(frozen=True, slots=True)
class Question:
    """One question and its first answer (by someone else), if any."""

    key: str
    author: str
    ts: datetime
    first_answer: str | None = None
    first_answer_ts: datetime | None = None
    answerers: tuple[str, ...] = field(default=())

    @property
    def minutes_to_answer(self) -> float | None:
        if self.first_answer_ts is None:
            return None
        return (self.first_answer_ts - self.ts).total_seconds() / 60


# --------------------------------------------------------------- questions

_QUESTION_START_EN = re.compile(
    r"^(how|what|why|where|when|who|which|whats|what's|can|could|would|should|does|do|did|is|are|"
    r"has|have|will|anyone|any ?one|anybody|somebody|someone|is there|are there)\b",
    re.IGNORECASE,
)
_QUESTION_ZH = re.compile(r"(怎么|怎样|如何|为什么|为啥|请问|哪里|哪儿|哪个|哪些|什么|有没有|能不能|可不可以|是不是|多少|几点)")
_QUESTION_END_ZH = re.compile(r"(吗|呢|么|嘛)[\s。.!！~～]*$")
_ADDRESS = re.compile(r"^\s*@?[^\s:,，：]{1,40}[:,，：]\s+")


def is_question(text: str) -> bool:
    """Whether a message asks something: a question mark, or a question word up front.

    A leading address (``nick: …``) is skipped first. Chinese questions are
    recognised by question words (怎么, 如何, 请问…) or a final 吗/呢.
    """
    body = _ADDRESS.sub("", text or "", count=1).strip()
    if len(body) < 3:
        return False
    if "?" in body or "？" in body:
        return True
    if _QUESTION_ZH.search(body) or _QUESTION_END_ZH.search(body):
        return True
    return bool(_QUESTION_START_EN.match(body)) and len(body.split()) >= 3


# ----------------------------------------------------------------- linking


def link_replies(
    messages: Iterable[ChatMessage],
    *,
    window: timedelta = LINK_WINDOW,
    continue_window: timedelta = CONTINUE_WINDOW,
    rules: Sequence[str] = RULES,
) -> list[Link]:
    """Reply links between ``messages`` (in time order), at most one parent each.

    For every message, the first of ``rules`` that applies:

    1. ``reply`` — it quotes a message (``reply_to``) we have: that one.
    2. ``mention`` — it addresses someone else (``@`` mention, or a leading
       nick in IRC) who spoke within ``window``: their latest message.
    3. ``back`` — since the author last spoke, someone addressed them
       (mention or reply) within ``window``: it answers that message (the
       asker's "thanks, that worked" to whoever helped).
    4. ``continue`` — the author spoke within ``continue_window``: it goes on
       from their own previous message (a second line of the same thought).

    Anything else is left unlinked: it starts a topic, or we cannot tell.
    Links never cross groups.
    """
    use = frozenset(rules)
    unknown = use - set(RULES)
    if unknown:
        raise ValueError(f"unknown linking rules {sorted(unknown)}; use some of {list(RULES)}")
    out: list[Link] = []
    seen: dict[tuple[str, str], ChatMessage] = {}
    #: (group, author) → (arrival, their latest message)
    latest: dict[tuple[str, str], tuple[int, ChatMessage]] = {}
    #: (group, author) → (arrival, the latest message addressed to them)
    addressed: dict[tuple[str, str], tuple[int, ChatMessage]] = {}
    #: (group, author) → their recent messages, with whom each addressed
    history: dict[tuple[str, str], deque[tuple[ChatMessage, tuple[str, ...]]]] = {}
    for n, msg in enumerate(messages):
        g = msg.group
        link: Link | None = None
        targets: list[str] = []
        if msg.reply_to is not None:
            target = seen.get((g, msg.reply_to))
            if target is not None and target.key != msg.key:
                targets.append(target.author)
                if "reply" in use:
                    link = Link(msg.key, target.key, "reply")
        for who in msg.mentions:
            if who == msg.author:
                continue
            targets.append(who)
            if link is None and "mention" in use:
                prev = _addressee_message(history.get((g, who), ()), msg, window)
                if prev is not None:
                    link = Link(msg.key, prev.key, "mention")
        own = latest.get((g, msg.author))
        if link is None and "back" in use:
            to_me = addressed.get((g, msg.author))
            if to_me is not None and msg.ts - to_me[1].ts <= window and (own is None or to_me[0] > own[0]):
                link = Link(msg.key, to_me[1].key, "back")
        if link is None and "continue" in use and own is not None and msg.ts - own[1].ts <= continue_window:
            link = Link(msg.key, own[1].key, "continue")
        if link is not None:
            out.append(link)
        seen[(g, msg.key)] = msg
        latest[(g, msg.author)] = (n, msg)
        history.setdefault((g, msg.author), deque(maxlen=HISTORY)).append((msg, tuple(targets)))
        for who in dict.fromkeys(targets):
            if who != msg.author:
                addressed[(g, who)] = (n, msg)
    return out


def _addressee_message(
    recent: Iterable[tuple[ChatMessage, tuple[str, ...]]], msg: ChatMessage, window: timedelta
) -> ChatMessage | None:
    """Which message of the person ``msg`` addresses it answers.

    Their latest message (within ``window``) that addressed ``msg``'s author;
    failing that, their latest that addressed nobody; failing that, their
    latest. Someone juggling two conversations is answered in the right one.
    """
    fresh = [(c, to) for c, to in recent if msg.ts - c.ts <= window]
    to_me = [c for c, to in fresh if msg.author in to]
    if to_me:
        return to_me[-1]
    to_nobody = [c for c, to in fresh if not to]
    if to_nobody:
        return to_nobody[-1]
    return fresh[-1][0] if fresh else None


def find_questions(
    messages: Sequence[ChatMessage],
    links: Iterable[Link] | None = None,
    *,
    answer_window: timedelta = ANSWER_WINDOW,
) -> list[Question]:
    """Every question in ``messages`` (one group's) with its first answer from another person.

    An answer is a later message, by someone other than the asker, linked to
    the question (by :func:`link_replies` unless ``links`` are given), within
    ``answer_window``.
    """
    if links is None:
        links = link_replies(messages)
    by_key = {msg.key: msg for msg in messages}
    children: dict[str, list[ChatMessage]] = {}
    for link in links:
        child = by_key.get(link.child)
        if child is not None:
            children.setdefault(link.parent, []).append(child)
    out = []
    for msg in messages:
        if not is_question(msg.text):
            continue
        answers = sorted(
            (
                c
                for c in children.get(msg.key, ())
                if c.author != msg.author and timedelta(0) <= c.ts - msg.ts <= answer_window
            ),
            key=lambda c: c.ts,
        )
        first = answers[0] if answers else None
        out.append(
            Question(
                key=msg.key,
                author=msg.author,
                ts=msg.ts,
                first_answer=None if first is None else first.key,
                first_answer_ts=None if first is None else first.ts,
                answerers=tuple(dict.fromkeys(a.author for a in answers)),
            )
        )
    return out


def summarize(questions: Sequence[Question]) -> AnswerStats:
    """Answer rate and median minutes to the first answer of these questions."""
    answered = [q for q in questions if q.first_answer is not None]
    minutes = [q.minutes_to_answer for q in answered if q.minutes_to_answer is not None]
    return AnswerStats(
        questions=len(questions),
        answered=len(answered),
        rate=(len(answered) / len(questions)) if questions else None,
        median_first_answer_minutes=statistics.median(minutes) if minutes else None,
    )


# ---------------------------------------------------------------- database


def load_messages(
    conn: Connection,
    community: str,
    since: date,
    until: date,
    group_key: str | None = None,
    *,
    extra: timedelta = ANSWER_WINDOW,
    groups: Iterable[str] | None = None,
) -> list[ChatMessage]:
    """Visible messages of ``community`` from local ``since`` to ``until`` (inclusive) + ``extra``.

    A message's key is its ``msg_id``, its group the group key, its author
    the platform user id. Ordered by group, then time. ``groups`` (keys)
    keeps only those groups' messages.
    """
    start, end = _bounds(conn, community, since, until)
    msg = m.table(m.MessageRow)
    grp = m.table(m.Group)
    mem = m.table(m.Member)
    q = (
        select(
            grp.c.key, msg.c.msg_id, msg.c.ts, mem.c.user_id, msg.c.text, msg.c.reply_to, msg.c.mentions
        )
        .select_from(msg.join(grp, grp.c.id == msg.c.group_id).join(mem, mem.c.id == msg.c.member_id))
        .where(
            grp.c.community_id == community,
            msg.c.ts >= start,
            msg.c.ts < end + extra,
            msg.c.status == "visible",
        )
        .order_by(grp.c.key, msg.c.ts, msg.c.id)
    )
    if group_key is not None:
        q = q.where(grp.c.key == group_key)
    if groups is not None:
        q = q.where(grp.c.key.in_(sorted(groups)))
    return [
        ChatMessage(
            key=r[1], ts=r[2], author=r[3], text=r[4] or "", reply_to=r[5],
            mentions=tuple(str(x) for x in (r[6] or ())), group=r[0],
        )
        for r in conn.execute(q)
    ]


def questions_in_period(
    conn: Connection, community: str, since: date, until: date, group_key: str | None = None
) -> list[Question]:
    """Questions asked from local day ``since`` to ``until``, each with its first answer.

    Only groups with a question in the period are linked: their messages are
    read in full; in the others only the texts of the period are read, once.
    """
    start, end = _bounds(conn, community, since, until)
    asking = _groups_with_questions(conn, community, start, end, group_key)
    if not asking:
        return []
    messages = load_messages(conn, community, since, until, group_key, groups=asking)
    out: list[Question] = []
    # load_messages orders by group: one slice per group, not a pass over all messages per group
    for _group, mine in itertools.groupby(messages, key=lambda msg: msg.group):
        out.extend(q for q in find_questions(list(mine)) if start <= q.ts < end)
    return out


def _groups_with_questions(
    conn: Connection, community: str, start: datetime, end: datetime, group_key: str | None
) -> set[str]:
    """Keys of the groups with a visible message in [start, end) that :func:`is_question` accepts.

    A group without one has no question for :func:`find_questions` to report
    (links never cross groups), so its messages need not be linked at all.
    """
    msg = m.table(m.MessageRow)
    grp = m.table(m.Group)
    q = (
        select(grp.c.key, msg.c.text)
        .distinct()
        .select_from(msg.join(grp, grp.c.id == msg.c.group_id))
        .where(grp.c.community_id == community, msg.c.ts >= start, msg.c.ts < end, msg.c.status == "visible")
    )
    if group_key is not None:
        q = q.where(grp.c.key == group_key)
    found: set[str] = set()
    judged: dict[str, bool] = {}  # the same text is judged once
    for key, body in conn.execute(q):
        if key in found:
            continue
        body = body or ""
        asks = judged.get(body)
        if asks is None:
            asks = judged[body] = is_question(body)
        if asks:
            found.add(key)
    return found


def answer_stats(
    conn: Connection, community: str, since: date, until: date, group_key: str | None = None
) -> AnswerStats:
    """Question answer rate and median time to first answer, local days ``since``..``until``.

    Answers are looked for up to :data:`ANSWER_WINDOW` after ``until`` so a
    question asked late on the last day is not counted unanswered for lack
    of time. A batch computation over raw messages: for reports, not
    dashboards.
    """
    return summarize(questions_in_period(conn, community, since, until, group_key))


def member_questions_and_answers(
    conn: Connection, community: str, since: date, until: date
) -> dict[str, tuple[int, int]]:
    """user id → (questions asked, questions of others they answered) in the period."""
    counts: dict[str, list[int]] = {}
    for q in questions_in_period(conn, community, since, until):
        counts.setdefault(q.author, [0, 0])[0] += 1
        for who in q.answerers:
            counts.setdefault(who, [0, 0])[1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _bounds(conn: Connection, community: str, since: date, until: date) -> tuple[datetime, datetime]:
    if until < since:
        raise ValueError(f"the period ends ({until}) before it starts ({since})")
    tz = community_zone(conn, community)
    start = datetime.combine(since, time(0), tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def community_zone(conn: Connection, community: str) -> ZoneInfo:
    """The community's time zone (UTC if the community is not in the database)."""
    t = m.table(m.Community)
    name = conn.execute(select(t.c.timezone).where(t.c.id == community)).scalar()
    return ZoneInfo(name or "UTC")


# ---------------------------------------------------------------- IRC logs

_IRC_LINE = re.compile(r"^\[(\d\d):(\d\d)\] <([^>]+)> ?(.*)$")
_IRC_SYSTEM = re.compile(
    r"^=== (\S+ \[.*\]\s+has (joined|left|quit)|\S+ is now known as \S+|mode/|Topic|.* sets mode|.* was kicked)"
)
_IRC_RENAME = re.compile(r"^=== (\S+) is now known as (\S+)")
_IRC_ACTION = re.compile(r"^=== (\S+) (.+)$")
_NICK_CHARS = r"[A-Za-z0-9_\-\[\]\\^{}|`]"


def read_irc(lines: Sequence[str], day: date) -> list[ChatMessage]:
    """Messages of one IRC log (``[HH:MM] <nick> text`` lines) with 0-based line numbers as keys.

    ``/me`` actions (``=== nick does something``) are messages too; joins,
    parts, quits and mode changes are not. A nick change keeps the person:
    messages are attributed to the first nick we saw them under. A line that
    starts with a nick we know (``nick: …``, ``nick, …``, ``nick …``)
    addresses that person and becomes a mention.
    """
    canon: dict[str, str] = {}
    known: dict[str, str] = {}  # lower-case nick → person
    out: list[ChatMessage] = []
    last = datetime.combine(day, time(0))
    for i, raw in enumerate(lines):
        line = raw.rstrip("\n")
        hit = _IRC_LINE.match(line)
        if hit is None:
            rename = _IRC_RENAME.match(line)
            if rename:
                person = canon.get(rename.group(1), rename.group(1))
                canon[rename.group(2)] = person
                known[rename.group(2).lower()] = person
                continue
            if _IRC_SYSTEM.match(line):
                joined = re.match(r"^=== (\S+) \[", line)
                if joined:
                    known.setdefault(joined.group(1).lower(), canon.get(joined.group(1), joined.group(1)))
                continue
            action = _IRC_ACTION.match(line)
            if action and action.group(1).lower() in known:
                person = known[action.group(1).lower()]
                out.append(ChatMessage(str(i), last, person, action.group(2), mentions=()))
            continue
        hh, mm, nick, text = int(hit.group(1)), int(hit.group(2)), hit.group(3), hit.group(4)
        ts = datetime.combine(day, time(hh, mm))
        if ts < last - timedelta(hours=12):  # the log passed midnight
            ts += timedelta(days=1)
            day = day + timedelta(days=1)
        last = ts
        person = canon.setdefault(nick, nick)
        known.setdefault(nick.lower(), person)
        out.append(ChatMessage(str(i), ts, person, text, mentions=_irc_addressed(text, known, person)))
    return out


def _irc_addressed(text: str, known: Mapping[str, str], me: str) -> tuple[str, ...]:
    head = re.match(rf"^\s*({_NICK_CHARS}+)\s*([:,>]|\s|$)", text)
    if head is None:
        return ()
    person = known.get(head.group(1).lower())
    if person is None or person == me:
        return ()
    return (person,)


def read_irc_annotation(lines: Iterable[str]) -> set[tuple[int, int]]:
    """Human reply links of a ``*.annotation.txt`` file as ``(child, parent)`` line pairs.

    The file's lines are ``a b -``; in every file we have, ``a <= b`` and the
    later line ``b`` replies to the earlier ``a`` (``a == b`` starts a
    conversation: no parent). Self-links are left out.
    """
    out: set[tuple[int, int]] = set()
    for raw in lines:
        parts = raw.split()
        if len(parts) < 2:
            continue
        a, b = int(parts[0]), int(parts[1])
        if a != b:
            out.add((max(a, b), min(a, b)))
    return out
