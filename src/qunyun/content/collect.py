"""Periods, and what goes into a digest, a book and a talent archive.

**What counts as essence** (精华), community-wide:

- every ``e:<msg_id>`` entry of the ``essence`` playbook (messages admins
  marked or members voted for), on the local day of the message;
- when the ``qa`` playbook runs in any group of the community: each question's
  best answer (``q:<qid>`` with ``best`` set), as kind ``answer``, on the local
  day the answer was written; its text is read from the engine's ``messages``
  table (the ``qa`` state keeps the message id only);
- when the ``sessions`` playbook runs in any group: each session (``s:<sid>``)
  that took place (status ``done``: not planned, live, cancelled, nor one
  whose speaker never showed), as kind ``share``, on the local day it
  started, credited to its speaker; its text is the session's ``summary`` if
  it has one, else its topic. These are exactly the sessions ``sessions``
  credits as shares (its ``week:<W>`` and ``shared`` records).

A message that is both a best answer and marked as essence appears once (as
the essence entry). Entries are read when a digest is made, so a best answer
chosen late still makes the next book.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from qunyun.content.messages import find_messages, records_of
from qunyun.core.errors import Msg
from qunyun.engine import Context

KINDS = ("message", "answer", "share")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
#: The one ``sessions`` status of a session that took place (``scheduled``, ``live``,
#: ``no_show`` and ``cancelled`` are the others).
_HELD = "done"


class PeriodError(ValueError):
    """A period that cannot be read or written. ``message`` is a :class:`Msg`: pass it on as it is
    (``Msg("…: {error}", error=exc.message)``) and the operator reads it in zh-CN or en."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    """A local day (``2026-11-02``) or an ISO week (``2026-W45``), inclusive."""

    label: str
    kind: str
    start: date
    end: date

    @classmethod
    def of(cls, kind: str, day: date) -> Period:
        """The day, or the ISO week, that contains ``day``."""
        if kind == "day":
            return cls(day.isoformat(), "day", day, day)
        if kind == "week":
            year, week, weekday = day.isocalendar()
            start = day - timedelta(days=weekday - 1)
            label = f"{year}-W{week:02d}"
            try:
                return cls(label, "week", start, start + timedelta(days=6))
            except OverflowError:  # the last week of 9999 ends in year 10000
                raise PeriodError(Msg("{text!r} ends after 9999-12-31, the last day that can be written",
                                      text=label)) from None
        raise PeriodError(Msg("a period is a day or a week, not {kind!r}", kind=kind))

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-11-02`` (a day) or ``2026-W45`` (an ISO week); else :class:`PeriodError`."""
        text = text.strip()
        found = _WEEK.match(text)
        if found:
            try:
                monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
            except ValueError:
                raise PeriodError(Msg("{text!r} is not an ISO week (weeks run 01-52 or 53)",
                                      text=text)) from None
            return cls.of("week", monday)
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise PeriodError(Msg("{text!r} is neither a day (2026-11-02) nor a week (2026-W45)",
                                  text=text)) from None
        return cls.of("day", day)

    def previous(self) -> Period:
        return Period.of(self.kind, self.start - timedelta(days=1))

    def contains(self, day: date | str) -> bool:
        if isinstance(day, str):
            try:
                day = date.fromisoformat(day)
            except ValueError:
                return False
        return self.start <= day <= self.end


@dataclass(slots=True)
class Entry:
    """One piece of essence, whatever it came from."""

    id: str
    kind: str
    by: str
    text: str
    ts: str
    day: str
    group: str | None = None
    marked_by: str | None = None
    question: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def month(self) -> str:
        return self.day[:7]


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def runs_anywhere(ctx: Context, playbook: str) -> bool:
    """Whether ``playbook`` runs in any group of the community."""
    return any(playbook in g.playbooks for g in ctx.community.groups.values())


def collect(ctx: Context, period: Period | None, kinds: Iterable[str] = KINDS) -> list[Entry]:
    """Every entry of ``period`` (all of them when ``period`` is None), oldest first."""
    wanted = set(kinds)
    entries: list[Entry] = []
    seen: set[str] = set()
    for key, e in ctx.state_of("essence").scan("e:"):
        if not isinstance(e, dict) or not e.get("by") or not e.get("text"):
            continue
        msg_id = key[2:]
        seen.add(msg_id)  # never listed twice, even when its kind is not wanted
        kind = e.get("kind") if e.get("kind") in KINDS else "message"
        day = str(e.get("day") or "")
        if kind not in wanted or (period is not None and not period.contains(day)):
            continue
        entries.append(
            Entry(msg_id, kind, str(e["by"]), str(e["text"]), str(e.get("ts") or ""), day,
                  group=e.get("group"), marked_by=e.get("marked_by"))
        )
    if "answer" in wanted and runs_anywhere(ctx, "qa"):
        entries.extend(_best_answers(ctx, period, seen))
    if "share" in wanted and runs_anywhere(ctx, "sessions"):
        entries.extend(_shares(ctx, period))
    entries.sort(key=lambda x: (x.ts, x.id))
    return entries


def _best_answers(ctx: Context, period: Period | None, seen: set[str]) -> list[Entry]:
    found: list[tuple[str, dict[str, Any], str, datetime, str]] = []
    for key, q in ctx.state_of("qa").scan("q:"):
        if not isinstance(q, dict) or not q.get("best"):
            continue
        best = str(q["best"])
        answer = (q.get("answers") or {}).get(best)
        if not isinstance(answer, dict) or not answer.get("by") or best in seen:
            continue
        when = _iso(answer.get("ts"))
        if when is None:
            continue
        if period is not None and not period.contains(ctx.local_day(when)):
            continue
        found.append((best, q, str(answer["by"]), when, key[2:]))
    texts = find_messages(ctx, [f[0] for f in found])
    out = []
    for best, q, by, when, qid in found:
        stored = texts.get(best)
        if stored is None or not stored.text.strip() or stored.status != "visible":
            continue
        out.append(
            Entry(best, "answer", by, stored.text, when.isoformat(), ctx.local_day(when).isoformat(),
                  group=stored.group, question=str(q.get("text") or ""), extra={"question_id": qid})
        )
    return out


def _shares(ctx: Context, period: Period | None) -> list[Entry]:
    out = []
    for key, s in ctx.state_of("sessions").scan("s:"):
        if key.count(":") != 1 or not isinstance(s, dict) or not s.get("speaker"):
            continue  # s:<sid>:q:<msg> and s:<sid>:n:<uid> are a session's questions and notices
        if s.get("status") != _HELD:
            continue  # planned, live, cancelled, or the speaker never showed: not a share
        starts = _iso(s.get("starts_at"))
        if starts is None or starts > ctx.now:
            continue
        day = ctx.local_day(starts)
        if period is not None and not period.contains(day):
            continue
        topic = str(s.get("topic") or "").strip()
        summary = s.get("summary")
        text = summary.strip() if isinstance(summary, str) and summary.strip() else topic
        if not text:
            continue
        out.append(
            Entry(f"session:{key[2:]}", "share", str(s["speaker"]), text, starts.isoformat(), day.isoformat(),
                  group=s.get("group"), question=topic if text != topic else "",
                  extra={"session": key[2:], "host": s.get("host")})
        )
    return out


def authors(entries: Iterable[Entry]) -> list[tuple[str, int]]:
    """(author, entries) most entries first, then by user id."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.by] = counts.get(e.by, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def archive(ctx: Context, member: str) -> dict[str, Any]:
    """A member's talent archive (人才库): answers, shares, essence, awards, medals.

    Each part is read from its playbook's state (or, for awards, the
    ``fund`` playbook's ``award`` records); a playbook that does not run or
    has nothing about the member gives an empty part.
    """
    essence = [
        {"msg": key[2:], "text": e.get("text", ""), "day": e.get("day"), "group": e.get("group"),
         "kind": e.get("kind", "message"), "marked_by": e.get("marked_by")}
        for key, e in ctx.state_of("essence").scan("e:")
        if isinstance(e, dict) and e.get("by") == member
    ]
    answers: list[dict[str, Any]] = []
    for key, q in ctx.state_of("qa").scan("q:"):
        if not isinstance(q, dict):
            continue
        for msg_id, a in (q.get("answers") or {}).items():
            if isinstance(a, dict) and a.get("by") == member:
                answers.append(
                    {"question_id": key[2:], "question": q.get("text", ""), "answer": msg_id,
                     "best": q.get("best") == msg_id, "votes": int(a.get("votes") or 0), "ts": a.get("ts")}
                )
    texts = find_messages(ctx, [a["answer"] for a in answers])
    for a in answers:
        stored = texts.get(a["answer"])
        a["text"] = stored.text if stored is not None and stored.status == "visible" else ""
    answers.sort(key=lambda a: (not a["best"], str(a["ts"] or "")))
    shares = [
        {"session": key[2:], "topic": s.get("topic", ""), "starts_at": s.get("starts_at"), "status": s.get("status"),
         "role": "speaker" if s.get("speaker") == member else "host"}
        for key, s in ctx.state_of("sessions").scan("s:")
        if key.count(":") == 1 and isinstance(s, dict) and member in (s.get("speaker"), s.get("host"))
    ]
    medals = (ctx.state_of("medals").get(f"m:{member}") or {}).get("medals") or {}
    conferred = ctx.state_of("titles").get(f"m:{member}") or {}
    return {
        "member": member,
        "name": ctx.name(member),
        "title": conferred.get("title") or ctx.title(member),
        "points": ctx.ledger.points(member),
        "essence": essence,
        "answers": answers,
        "shares": shares,
        "awards": records_of(ctx, "fund", "award", member),
        "medals": dict(medals) if isinstance(medals, dict) else {},
        "stats": {
            "essence": ctx.state_of("essence").get(f"m:{member}") or {},
            "qa": ctx.state_of("qa").get(f"m:{member}") or {},
            "sessions": ctx.state_of("sessions").get(f"m:{member}") or {},
            "checkin": ctx.state_of("checkin").get(f"m:{member}") or {},
        },
    }
