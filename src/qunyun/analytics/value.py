"""Member value: an engagement score that decays, levels that only drop at period ends, archetypes.

**Score.** Each local day a member earns activity points from their rollup
counters (:data:`POINTS`: a message 1, a reply or a link 1 more, a check-in
1, a reaction received or a mention received 0.5, …), at most
:data:`DAILY_CAP` a day so a flood buys nothing. The score on a day is the
sum of all earlier days' points, each halved every :data:`HALF_LIFE_DAYS`
(14) days: ``s(d) = s(d-1) · 2^(-1/14) + points(d)``. Days more than
:data:`LOOKBACK_DAYS` back weigh less than 0.3% and are not read.

**Levels.** :data:`LEVELS` thresholds on the score (core ≥ 100 ≈ five
points a day kept up; active ≥ 20 ≈ one a day; casual ≥ 3; dormant below).
A level rises on the day the score reaches it but only falls at a period
boundary (the first day of a calendar month by default): the level shown on
a day is the highest level the score reached since the current period began.
A member who goes quiet mid-month keeps their level until the 1st.

**Archetypes** (seed 003 §8), judged on the last :data:`ARCHETYPE_DAYS`
(28) days, first rule that matches:

1. ``admin`` — holds the owner, admin or assistant role in a group;
2. ``lurker`` — fewer than :data:`LURKER_MAX_MESSAGES` (3) messages;
3. ``big_name`` — in the top 5% of the community by attention received
   (reactions + mentions received), with at least
   :data:`BIG_NAME_MIN_ATTENTION` (20) and ≥ 1 attention per message;
4. ``answerer`` — answered ≥ 3 questions of others, and more than they asked;
5. ``sharer`` — ≥ 3 links or media, at least 20% of their messages;
6. ``asker`` — asked ≥ 2 questions, more than they answered;
7. ``member`` — everyone else who talks.

Questions and answers come from :mod:`qunyun.analytics.replies` (a batch
read of the period's messages); everything else from rollups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from sqlalchemy import Connection, bindparam, select, text

from qunyun.analytics import replies
from qunyun.store import member_months as mmk
from qunyun.store import models as m
from qunyun.store.member_months import (  # shared with the engine
    DAILY_CAP,
    HALF_LIFE_DAYS,
    LEVELS,
    POINTS,
)

LOOKBACK_DAYS = 120
#: A peak this close under a threshold reaches it: ``2 + 2·2^(-14/14)`` is
#: exactly 3 (casual), but float rounding may leave it a hair short.
TIE = 1e-9
Period = Literal["month", "week"]
PERIOD: Period = "month"

ARCHETYPE_DAYS = 28
LURKER_MAX_MESSAGES = 3
BIG_NAME_TOP_SHARE = 0.05
BIG_NAME_MIN_ATTENTION = 20
ANSWERER_MIN = 3
SHARER_MIN = 3
SHARER_SHARE = 0.2
ASKER_MIN = 2
ADMIN_ROLES = frozenset({"owner", "admin", "assistant"})

LEVEL_LABELS: dict[str, dict[str, str]] = {
    "core": {"zh-CN": "核心", "en": "core"},
    "active": {"zh-CN": "活跃", "en": "active"},
    "casual": {"zh-CN": "偶尔参与", "en": "casual"},
    "dormant": {"zh-CN": "沉寂", "en": "dormant"},
}

#: Archetype → label and what they get from the community (seed 003 §8, our words).
ARCHETYPES: dict[str, dict[str, dict[str, str]]] = {
    "admin": {
        "label": {"zh-CN": "管理员", "en": "admin"},
        "gets": {
            "zh-CN": "锻炼组织能力，获得运营津贴，也能第一时间看到好点子",
            "en": "practice in running a group, an allowance, and first sight of good ideas",
        },
    },
    "big_name": {
        "label": {"zh-CN": "大咖", "en": "big name"},
        "gets": {
            "zh-CN": "影响力和关注者，真实问题带来的研究方向，也能发现人才和项目",
            "en": "reach and followers, real problems to study, people and projects to discover",
        },
    },
    "answerer": {
        "label": {"zh-CN": "答疑者", "en": "answerer"},
        "gets": {
            "zh-CN": "被认可、被感谢，最佳回答奖励，以及检验自己方法的机会",
            "en": "recognition and thanks, best-answer rewards, a test bed for their methods",
        },
    },
    "sharer": {
        "label": {"zh-CN": "分享者", "en": "sharer"},
        "gets": {
            "zh-CN": "展示自己的舞台、打赏与奖励，可能的合作机会",
            "en": "a stage to show their work, tips and rewards, possible collaborations",
        },
    },
    "asker": {
        "label": {"zh-CN": "提问者", "en": "asker"},
        "gets": {
            "zh-CN": "实际问题得到解决，认识能帮上忙的人",
            "en": "their actual problems solved, and people who can help",
        },
    },
    "lurker": {
        "label": {"zh-CN": "潜水者", "en": "lurker"},
        "gets": {
            "zh-CN": "旁观别人的好想法一起成长，需要时能找到高手",
            "en": "growing by watching good ideas go by, experts within reach when needed",
        },
    },
    "member": {
        "label": {"zh-CN": "普通成员", "en": "member"},
        "gets": {
            "zh-CN": "同伴、交流和日常的学习节奏",
            "en": "company, conversation and a daily rhythm of learning",
        },
    },
}


@dataclass(frozen=True, slots=True)
class MemberValue:
    #: ``members.id`` (the key of rollups).
    member_id: int
    name: str
    score: float
    level: str
    archetype: str


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a member did in the archetype window."""

    messages: int = 0
    links_media: int = 0
    attention: int = 0
    questions: int = 0
    answers: int = 0
    role: str = "member"


# ------------------------------------------------------------ pure functions


def daily_points(counters: Mapping[str, int]) -> float:
    """Activity points of one member-day from its rollup counters, capped at :data:`DAILY_CAP`."""
    return min(DAILY_CAP, sum(POINTS[k] * max(0, int(counters.get(k, 0) or 0)) for k in POINTS))


def scores_by_day(
    points: Mapping[date, float], start: date, end: date, *, half_life: float = HALF_LIFE_DAYS
) -> dict[date, float]:
    """The decayed score on every day from ``start`` to ``end`` (points before ``start`` count too)."""
    if end < start:
        return {}
    keep = 2 ** (-1.0 / half_life)
    days = sorted(d for d in points if d <= end)
    out: dict[date, float] = {}
    score = 0.0
    i = 0
    d = min([*days, start])
    while d <= end:
        score *= keep
        while i < len(days) and days[i] == d:
            score += points[d]
            i += 1
        if d >= start:
            out[d] = score
        d += timedelta(days=1)
    return out


def level_of(score: float) -> str:
    for name, low in LEVELS:
        if score >= low:
            return name
    return LEVELS[-1][0]


def period_start(day: date, period: Period = PERIOD) -> date:
    """The first day of the period ``day`` is in (the 1st of its month, or its Monday)."""
    if period == "month":
        return day.replace(day=1)
    if period == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"unknown period {period!r}: use 'month' or 'week'")


def held_level(points: Mapping[date, float], as_of: date, period: Period = PERIOD) -> tuple[float, str]:
    """The score on ``as_of`` and the level held then: the highest reached since the period began."""
    start = period_start(as_of, period)
    daily = scores_by_day(points, start, as_of)
    rank = {name: i for i, (name, _) in enumerate(LEVELS)}
    best = min((level_of(s) for s in daily.values()), key=lambda n: rank[n], default=LEVELS[-1][0])
    return daily.get(as_of, 0.0), best


def archetype(b: Behaviour, big_name_cut: float) -> str:
    """The archetype of a member with behaviour ``b`` (rules in the module docstring)."""
    return _archetype(b.role, b.messages, b.links_media, b.attention, b.questions, b.answers, big_name_cut)


def _archetype(
    role: str, messages: int, links_media: int, attention: int, questions: int, answers: int, big_name_cut: float
) -> str:
    """:func:`archetype` on the behaviour's fields (no object per member)."""
    if role in ADMIN_ROLES:
        return "admin"
    if messages < LURKER_MAX_MESSAGES:
        return "lurker"
    if attention >= max(BIG_NAME_MIN_ATTENTION, big_name_cut) and attention >= messages:
        return "big_name"
    if answers >= ANSWERER_MIN and answers > questions:
        return "answerer"
    if links_media >= SHARER_MIN and links_media >= SHARER_SHARE * messages:
        return "sharer"
    if questions >= ASKER_MIN and questions > answers:
        return "asker"
    return "member"


def big_name_cut(attention: list[int]) -> float:
    """The attention a member needs to be in the community's top :data:`BIG_NAME_TOP_SHARE`."""
    ranked = sorted((a for a in attention if a > 0), reverse=True)
    if not ranked:
        return math.inf
    k = max(1, math.ceil(BIG_NAME_TOP_SHARE * len(attention)))
    return float(ranked[min(k, len(ranked)) - 1])


# ------------------------------------------------------------------ database


def _weights(as_of: date, period: Period) -> list[tuple[date, float, float, float, float, int]]:
    """One row per day :func:`member_values` reads: ``(day, now, before, up, down, recent)``.

    With ``n`` the day's distance in days from the period's first day
    (negative before it) and ``h`` the half-life: ``now`` = ``2^(-(as_of−day)/h)``
    weighs the day's points in the score on ``as_of``; ``before`` =
    ``2^(n/h)`` for days before the period (their weight in the score on its
    first day), else 0; ``up`` = ``2^(n/h)`` and ``down`` = ``2^(-n/h)`` for
    days in the period, else 0; ``recent`` is 1 in the archetype window.
    Each weight is one power of 2, so a distance of 0 weighs exactly 1.
    """
    start = period_start(as_of, period)
    window = as_of - timedelta(days=ARCHETYPE_DAYS - 1)
    h = HALF_LIFE_DAYS
    out = []
    for k in range(LOOKBACK_DAYS, -1, -1):
        d = as_of - timedelta(days=k)
        n = (d - start).days
        out.append((
            d,
            2.0 ** (-k / h),
            2.0 ** (n / h) if n < 0 else 0.0,
            2.0 ** (n / h) if n >= 0 else 0.0,
            2.0 ** (-n / h) if n >= 0 else 0.0,
            int(d >= window),
        ))
    return out


def _scores_sql(dialect: str, as_of: date, period: Period) -> str:
    """The query behind :func:`member_values`: one row per member seen in the lookback window.

    Columns: member id, score on ``as_of``, highest score since the period
    began, then messages, links + media and attention in the archetype
    window. Bind parameters: ``community``, ``first``, ``start``, ``as_of``.

    With ``p(d)`` a member's points on day ``d`` (capped per rollup row, as
    :func:`daily_points` does), ``h`` the half-life and ``start`` the period's
    first day:

    * ``A = Σ_{d<start} p(d)·2^(-(start−d)/h)`` — the score on ``start`` from
      the days before it: one weighted sum per member (``before``);
    * on a day ``t ≥ start`` with points, ``s(t) = p(t) + 2^(-(t−start)/h) ·
      (A + Σ_{start≤d<t} p(d)·2^((d−start)/h))`` — a running sum (a window
      function) over the period's member-days, where ``A`` rides along as a
      first row of the member's partition; ``p(t)`` is added outside the
      product, so a day with nothing before it gives exactly ``p(t)``;
    * between days with points the score only decays, so the highest score
      since ``start`` is ``A`` or some ``s(t)``: the level held (it rises at
      once, falls only at a period boundary) is the level of that maximum;
    * the score on ``as_of`` is ``Σ p(d)·2^(-(as_of−d)/h)``, the ``A`` row
      weighing ``2^(-(as_of−start)/h)``.
    """
    sqlite = dialect == "sqlite"

    def day(d: date) -> str:
        return f"'{d.isoformat()}'" if sqlite else f"DATE '{d.isoformat()}'"

    def num(x: float) -> str:
        # PostgreSQL reads 0.5 as numeric, whose arithmetic is several times slower
        return repr(x) if sqlite else f"CAST({x!r} AS DOUBLE PRECISION)"

    start = period_start(as_of, period)
    weights = ",\n                ".join(
        f"({day(d)}, {num(now)}, {num(before)}, {num(up)}, {num(down)}, {recent})"
        for d, now, before, up, down, recent in _weights(as_of, period)
    )
    bigger, smaller = ("max", "min") if sqlite else ("GREATEST", "LEAST")
    raw = " + ".join(f"{num(POINTS[k])} * {bigger}(r.{k}, 0)" for k in POINTS)
    capped = f"{smaller}({num(DAILY_CAP)}, {raw})"
    attention = "r.reactions_received + r.mentions_received"
    return f"""
        WITH w (day, now_w, before_w, up_w, down_w, recent) AS (
            VALUES {weights}
        ),
        before_period AS (
            SELECT r.member_id AS member_id, sum({capped} * w.before_w) AS p,
                   sum(w.recent * r.messages) AS messages,
                   sum(w.recent * (r.links + r.media)) AS links_media,
                   sum(w.recent * ({attention})) AS attention
            FROM rollups r JOIN w ON w.day = r.day
            WHERE r.community_id = :community AND r.day >= :first AND r.day < :start
            GROUP BY r.member_id
        ),
        period_days AS (
            SELECT r.member_id AS member_id, r.day AS day, sum({capped}) AS p,
                   sum(r.messages) AS messages, sum(r.links + r.media) AS links_media,
                   sum({attention}) AS attention
            FROM rollups r
            WHERE r.community_id = :community AND r.day >= :start AND r.day <= :as_of
            GROUP BY r.member_id, r.day
        ),
        both_parts AS (
            SELECT member_id, {day(start - timedelta(days=1))} AS day, p,
                   {num(2.0 ** (-(as_of - start).days / HALF_LIFE_DAYS))} AS now_w,
                   {num(1.0)} AS up_w, {num(1.0)} AS down_w, messages, links_media, attention
            FROM before_period
            UNION ALL
            SELECT d.member_id, d.day, d.p, w.now_w, w.up_w, w.down_w,
                   w.recent * d.messages, w.recent * d.links_media, w.recent * d.attention
            FROM period_days d JOIN w ON w.day = d.day
        ),
        run AS (
            SELECT member_id, p, now_w, down_w, messages, links_media, attention,
                   coalesce(sum(p * up_w) OVER (
                       PARTITION BY member_id ORDER BY day
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
            FROM both_parts
        )
        SELECT member_id, sum(p * now_w), max(p + down_w * earlier),
               sum(messages), sum(links_media), sum(attention)
        FROM run
        GROUP BY member_id
    """


def member_values(
    conn: Connection, community: str, as_of: date, *, period: Period = PERIOD, kept: bool | None = None
) -> list[MemberValue]:
    """Every (non-erased) member of ``community`` seen in the last :data:`LOOKBACK_DAYS` days.

    Sorted by score, highest first. The database computes the score and the
    held level's peak (see :func:`_scores_sql`) and returns one row per
    member; the result equals the day-by-day walk of :func:`held_level`,
    except that a peak within :data:`TIE` under a threshold counts as
    reaching it (the walk's rounding can fall either side of an exact tie).

    With monthly periods and ``as_of`` on or after the community's last day
    with data, the scores, levels and archetype counters come from the
    ``member_months`` rows the engine keeps (a few per member, see
    :func:`_kept`) and the rollups of at most a few boundary days; otherwise,
    or with ``kept=False``, from the rollups (:func:`_scores_sql`). Both
    give the same values.
    """
    found = _found(conn, community, as_of, period, kept)
    people: dict[int, tuple[str, str | None]] = {}
    ids = sorted(found)
    # names of the members found only (not every member the community ever had), in chunks of ids
    for i in range(0, len(ids), 10_000):
        chunk = ", ".join(str(int(x)) for x in ids[i : i + 10_000])
        for mid, uid, name, erased in conn.execute(
            text(f"SELECT id, user_id, name, erased FROM members WHERE community_id = :c AND id IN ({chunk})"),
            {"c": community},
        ):
            if not erased:
                people[int(mid)] = (uid, name)
    by_uid = {uid: mid for mid, (uid, _) in people.items()}
    out = []
    for mid, score, level, kind in _judge(conn, community, as_of, found, people, by_uid):
        uid, name = people[mid]
        out.append(MemberValue(mid, name or uid, round(score, 2), level, kind))
    out.sort(key=lambda v: (-v.score, v.member_id))
    return out


def value_counts(
    conn: Connection, community: str, as_of: date, *, period: Period = PERIOD, kept: bool | None = None
) -> dict[tuple[str, str], int]:
    """(archetype, level) → members, for the same members as :func:`member_values`.

    The keys come in the order they first appear in :func:`member_values`'
    list (highest score first). No names are read: only the ids of erased
    members (and of other communities' members) are, to leave them out, and
    the ids behind the user ids that asked or answered questions.
    """
    found = _found(conn, community, as_of, period, kept)
    if not found:
        return {}
    lo, hi = min(found), max(found)
    gone = {
        int(mid)
        for (mid,) in conn.execute(
            text("SELECT id FROM members WHERE id >= :lo AND id <= :hi AND (erased OR community_id <> :c)"),
            {"lo": lo, "hi": hi, "c": community},
        )
    }
    alive = found.keys() - gone

    def uid_map(uids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(uids), 5_000):
            for mid, uid in conn.execute(
                text("SELECT id, user_id FROM members WHERE community_id = :c AND user_id IN :u ORDER BY id")
                .bindparams(bindparam("u", expanding=True)),
                {"c": community, "u": uids[i : i + 5_000]},
            ):
                if int(mid) in alive:
                    out[uid] = int(mid)
        return out

    # each key's first place in member_values' order: the highest rounded score, then the lowest id
    first: dict[tuple[str, str], tuple[float, int]] = {}
    counts: dict[tuple[str, str], int] = {}
    for mid, score, level, kind in _judge(conn, community, as_of, found, alive, uid_map):
        k = (kind, level)
        n = counts.get(k)
        if n is None:
            counts[k] = 1
            first[k] = (-round(score, 2), mid)
            continue
        counts[k] = n + 1
        rank = (-round(score, 2), mid)
        if rank < first[k]:
            first[k] = rank
    return {k: counts[k] for k in sorted(counts, key=first.__getitem__)}


def _found(
    conn: Connection, community: str, as_of: date, period: Period, kept: bool | None
) -> dict[int, tuple[float, str, int, int, int]]:
    """member id → (score, level held, messages, links + media, attention) of every member seen."""
    first = as_of - timedelta(days=LOOKBACK_DAYS)
    start = period_start(as_of, period)
    sqlite = conn.dialect.name == "sqlite"

    def bind(d: date) -> object:
        return d.isoformat() if sqlite else d

    found = _kept(conn, community, as_of) if period == "month" and kept is not False else None
    if found is None:
        found = {}
        params = {"community": community, "first": bind(first), "start": bind(start), "as_of": bind(as_of)}
        sql = _scores_sql(conn.dialect.name, as_of, period)
        for mid, score, peak, msgs, lm, att in conn.execute(text(sql), params):
            level = level_of(float(peak or 0.0) + TIE)
            found[int(mid)] = (float(score or 0.0), level, int(msgs or 0), int(lm or 0), int(att or 0))
    return found


def _judge(
    conn: Connection,
    community: str,
    as_of: date,
    found: Mapping[int, tuple[float, str, int, int, int]],
    alive: Collection[int],
    by_uid: Mapping[str, int] | Callable[[list[str]], Mapping[str, int]],
) -> Iterator[tuple[int, float, str, str]]:
    """(member id, score, level, archetype) of the ``found`` members in ``alive``, in ``found``'s order.

    ``by_uid`` maps the user ids of the questions' askers and answerers to
    member ids (or is a function that looks them up).
    """
    ms = m.table(m.Membership)
    g = m.table(m.Group)
    window = as_of - timedelta(days=ARCHETYPE_DAYS - 1)
    roles: dict[int, str] = {}
    for mid, role in conn.execute(
        select(ms.c.member_id, ms.c.role)
        .select_from(ms.join(g, g.c.id == ms.c.group_id))
        .where(g.c.community_id == community, ms.c.status == "active", ms.c.role.in_(sorted(ADMIN_ROLES)))
    ):
        if role in ADMIN_ROLES:
            roles[int(mid)] = role
    qa = replies.member_questions_and_answers(conn, community, window, as_of)
    uids = by_uid(sorted(qa)) if callable(by_uid) else by_uid
    qa_by_id = {uids[u]: v for u, v in qa.items() if u in uids}
    members = [mid for mid in found if mid in alive]
    cut = big_name_cut([found[mid][4] for mid in members])
    none = (0, 0)
    for mid in members:
        score, level, messages, links_media, attention = found[mid]
        asked, answered = qa_by_id.get(mid, none)
        kind = _archetype(roles.get(mid, "member"), messages, links_media, attention, asked, answered, cut)
        yield mid, score, level, kind


def _kept(conn: Connection, community: str, as_of: date) -> dict[int, tuple[float, str, int, int, int]] | None:
    """Scores, held levels (monthly) and archetype counters from ``member_months``, or None if they cannot answer.

    They answer when the community has rows there and ``as_of`` is on or
    after its last day with rollups, which is also the last day of its
    member-month rows (a check that the rows are the engine's and current).
    With ``F`` = ``as_of − LOOKBACK_DAYS``, ``S`` the first of ``as_of``'s
    month and ``h`` the half-life, per member:

    * score = ``Σ weighted_M · 2^(−(as_of−M)/h)`` over the months from ``F``'s,
      corrected by the rollups of the days of ``F``'s month outside
      ``[F, as_of]`` (or, when fewer, those inside: then that month's row is
      left out) — the day-by-day sum of :func:`_scores_sql`, regrouped;
    * ``A`` (the score on ``S`` from the days before it) the same way, with
      weights ``2^(−(S−M)/h)`` over the months before ``S``;
    * the level held is the highest ``T`` with ``A ≥ need_T`` of ``S``'s row
      (``T`` itself when the member has no row for that month), within :data:`TIE`;
    * messages, links + media and attention over the archetype window: month
      sums, corrected at the window's first month the same way.
    """
    sqlite = conn.dialect.name == "sqlite"

    def bind(d: date) -> object:
        return d.isoformat() if sqlite else d

    def lit(d: date) -> str:
        return f"'{d.isoformat()}'" if sqlite else f"DATE '{d.isoformat()}'"

    def num(x: float) -> str:
        return repr(float(x)) if sqlite else f"CAST({float(x)!r} AS DOUBLE PRECISION)"

    last_rollup = conn.execute(
        text("SELECT max(day) FROM rollups WHERE community_id = :c"), {"c": community}
    ).scalar()
    last_kept = conn.execute(
        text("SELECT max(last_day) FROM member_months WHERE community_id = :c"), {"c": community}
    ).scalar()
    if last_rollup is None or last_kept is None:
        return None
    last_r, last_k = mmk._to_date(last_rollup), mmk._to_date(last_kept)
    if last_r != last_k or as_of < last_r:
        return None
    h = HALF_LIFE_DAYS
    first = as_of - timedelta(days=LOOKBACK_DAYS)
    start = period_start(as_of, "month")
    window = as_of - timedelta(days=ARCHETYPE_DAYS - 1)
    f_month, w_month = first.replace(day=1), window.replace(day=1)

    def month_end(mo: date) -> date:
        return date(mo.year + (mo.month == 12), mo.month % 12 + 1, 1) - timedelta(days=1)

    # per boundary: subtract the month's days before the boundary, or use the days from it instead of the row
    f_prefix = (first - f_month).days <= (month_end(f_month) - first).days + 1
    w_prefix = (window - w_month).days <= (min(month_end(w_month), as_of) - window).days + 1
    # the months' weights: score on as_of, A on the period's first day, archetype window
    months = []
    mo = f_month
    while mo <= start:
        skip_f = mo == f_month and not f_prefix
        now_w = 0.0 if skip_f else 2.0 ** (-(as_of - mo).days / h)
        start_w = 0.0 if skip_f or mo >= start else 2.0 ** (-(start - mo).days / h)
        in_w = int(mo > w_month or (mo == w_month and w_prefix))
        months.append(f"({lit(mo)}, {num(now_w)}, {num(start_w)}, {in_w})")
        mo = month_end(mo) + timedelta(days=1)
    # the boundary days read from the rollups, with their sign
    days: dict[date, list[float]] = {}
    if f_prefix:
        rng, sign = (f_month, first - timedelta(days=1)), -1.0
    else:
        rng, sign = (first, month_end(f_month)), 1.0
    d = rng[0]
    while d <= rng[1]:
        days[d] = [sign * 2.0 ** (-(as_of - d).days / h), sign * 2.0 ** (-(start - d).days / h), 0.0]
        d += timedelta(days=1)
    if w_prefix:
        rng, wsign = (w_month, window - timedelta(days=1)), -1.0
    else:
        rng, wsign = (window, min(month_end(w_month), as_of)), 1.0
    d = rng[0]
    while d <= rng[1]:
        days.setdefault(d, [0.0, 0.0, 0.0])[2] = wsign
        d += timedelta(days=1)
    mw = ",\n                ".join(months)
    null_f = "NULL" if sqlite else "CAST(NULL AS DOUBLE PRECISION)"
    null_d = "NULL" if sqlite else "CAST(NULL AS DATE)"
    needs = ", ".join(f"CASE WHEN k.month = {lit(start)} THEN k.{c} END" for c in mmk.NEED_COLUMNS)
    parts = [
        f"""SELECT k.member_id AS member_id, k.weighted * mw.now_w AS s, k.weighted * mw.start_w AS a,
                   k.messages * mw.in_w AS ms, k.links_media * mw.in_w AS lm, k.attention * mw.in_w AS att,
                   k.last_day AS last, {needs}
            FROM member_months k JOIN mw ON mw.month = k.month
            WHERE k.community_id = :community AND k.month >= :f_month"""
    ]
    ctes = [f"mw (month, now_w, start_w, in_w) AS (VALUES {mw})"]
    params = {"community": community, "f_month": bind(f_month), "first": bind(first)}
    if days:
        bigger, smaller = ("max", "min") if sqlite else ("GREATEST", "LEAST")
        raw = " + ".join(f"{num(POINTS[k])} * {bigger}(r.{k}, 0)" for k in POINTS)
        capped = f"{smaller}({num(DAILY_CAP)}, {raw})"
        bw = ",\n                ".join(
            f"({lit(d)}, {num(a)}, {num(b)}, {num(c)})" for d, (a, b, c) in sorted(days.items())
        )
        ctes.append(f"bw (day, now_w, start_w, in_w) AS (VALUES {bw})")
        parts.append(
            f"""SELECT r.member_id, {capped} * bw.now_w, {capped} * bw.start_w, r.messages * bw.in_w,
                       (r.links + r.media) * bw.in_w, (r.reactions_received + r.mentions_received) * bw.in_w,
                       {null_d}, {", ".join(null_f for _ in mmk.NEED_COLUMNS)}
                FROM rollups r JOIN bw ON bw.day = r.day
                WHERE r.community_id = :community AND r.day >= :lo AND r.day <= :hi"""
        )
        params |= {"lo": bind(min(days)), "hi": bind(max(days))}
    # the level held: the highest threshold T with A ≥ need_T (T itself without a row for the period's month)
    tie = num(TIE)
    level = "CASE " + " ".join(
        f"WHEN a + {tie} >= coalesce(n{i}, {num(low)}) THEN {i}" for i, (_, low) in enumerate(LEVELS[:-1])
    ) + f" ELSE {len(LEVELS) - 1} END"
    ncols = ", ".join(f"max({c}) AS n{i}" for i, c in enumerate(mmk.NEED_COLUMNS))
    need_names = ", ".join(mmk.NEED_COLUMNS)
    sql = f"""
        WITH {", ".join(ctes)},
        parts (member_id, s, a, ms, lm, att, last, {need_names}) AS ({" UNION ALL ".join(parts)}),
        agg AS (
            SELECT member_id, sum(s) AS s, sum(a) AS a, sum(ms) AS ms, sum(lm) AS lm, sum(att) AS att, {ncols}
            FROM parts GROUP BY member_id HAVING max(last) >= :first
        )
        SELECT member_id, s, {level}, ms, lm, att FROM agg
    """
    names = [name for name, _ in LEVELS]
    return {
        int(mid): (max(0.0, float(sc or 0.0)), names[int(lv)], round(ms or 0), round(lm or 0), round(att or 0))
        for mid, sc, lv, ms, lm, att in conn.execute(text(sql), params)
    }
