"""IRC channel logs (irssi-like, as in the Ubuntu IRC corpus), one file per day.

Lines: ``[HH:MM] <nick> text`` (a message), ``[HH:MM] * nick action`` and
``=== nick does something`` (an action, imported as a message),
``=== nick [user@host]  has joined #chan`` / ``has left`` / ``has quit``,
``=== nick was kicked off #chan by op``, ``=== old is now known as new``.
Topic, mode and net-split notices are counted and skipped.

- date: from the file name, which must start with ``YYYY-MM-DD``; a time
  earlier than the one before by more than 12 hours means midnight passed;
  ``===`` lines carry no time and take the time of the line before them;
- id: ``<group>:<file name>:<line>`` with the line counted from 0, as the
  corpus's reply annotations count them;
- group: ``--group``, else the directory's name when the file is named by
  date (one directory per channel), else the file name;
- who: a *person* id. IRC has no accounts in its logs, only nicks, so the
  importer keeps a nick → person map for the whole import (all files in
  order): a nick seen for the first time is a person of that name; after
  ``=== a is now known as b``, ``b`` is the same person as ``a`` (an
  :class:`IdentityChange` is reported). It is a heuristic — two people can
  use one nick on different days, and a person who reconnects under a new
  nick without a rename line becomes a second person;
- ``nick: text`` or ``nick, text`` addressed to a nick already seen → a mention.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from qunyun.core.errors import EventError
from qunyun.importers.base import (
    BadRow,
    IdentityChange,
    Importer,
    Item,
    Progress,
    clean_id,
    describe,
    open_text,
)

_TIMED = re.compile(r"\[(\d{1,2}):(\d{2})(?::(\d{2}))?\] (?:<([^<>]+)> ?|\* (\S+) ?)(.*)\Z", re.S)
_JOIN = re.compile(r"=== (\S+) \[[^\]]*\]\s+has joined (#\S+)")
_LEAVE = re.compile(r"=== (\S+) (?:\[[^\]]*\]\s+)?has (?:left|quit)\b")
_KICK = re.compile(r"=== (\S+) was kicked off (#\S+) by (\S+)")
_RENAME = re.compile(r"=== (\S+) is now known as (\S+)\s*\Z")
_NOTICE = re.compile(r"=== (?:\.\.\[topic/|mode/|[A-Za-z]+: )")
_EMOTE = re.compile(r"=== (\S+) (.+)\Z", re.S)
_ADDRESS = re.compile(r"([^\s:,]+)[:,](?:\s|\Z)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class IrcImporter(Importer):
    format = "irc"
    platform = "irc"
    default_timezone = "UTC"
    summary = "IRC day logs: [HH:MM] <nick> text, === joins/parts/nick changes"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: casefolded nick → person id, across every file of this import
        self.people: dict[str, str] = {}

    def person(self, nick: str) -> str:
        return self.people.setdefault(nick.casefold(), nick)

    def group_for(self, path: Path, chat_id: Any = None) -> str:
        if self.group:
            return self.group
        if _DATE.match(path.name) and path.parent.name:
            return clean_id(path.parent.name)
        return clean_id(path.stem) or "irc"

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        name = str(path)
        found = _DATE.match(path.name)
        if found is None:
            raise EventError(
                f"{name}: an IRC log's file name must start with its date (YYYY-MM-DD…); "
                "the lines only carry the time of day"
            )
        try:
            day = date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
        except ValueError as exc:
            raise EventError(f"{name}: bad date in the file name ({exc})") from None
        group = self.group_for(path)
        stem = clean_id(path.name.removesuffix(".txt"))
        tz = self.tz
        last: datetime | None = None
        early: list[tuple[int, str]] = []  # untimed lines before the first time of the file

        def handle(line0: int, line: str, ts: datetime) -> Iterator[Item]:
            eid = f"{group}:{stem}:{line0}"
            try:
                timed = _TIMED.match(line)
                if timed is not None:
                    nick = timed.group(4) or timed.group(5)
                    text = timed.group(6)
                    who = self.person(nick)
                    mentions = []
                    addressed = _ADDRESS.match(text)
                    if addressed is not None:
                        target = self.people.get(addressed.group(1).casefold())
                        if target is not None and target != who:
                            mentions.append(target)
                    yield self.message(
                        id=eid, ts=ts, group=group, actor=who, name=nick, text=text, mentions=mentions,
                    )
                    return
                if (m := _RENAME.match(line)) is not None:
                    old, new = m.group(1), m.group(2)
                    who = self.person(old)
                    self.people[new.casefold()] = who
                    self.counts["renames"] += 1
                    yield IdentityChange(name, line0 + 1, old, new, who)
                    return
                if (m := _JOIN.match(line)) is not None:
                    yield self.joined(id=eid, ts=ts, group=group, actor=self.person(m.group(1)), name=m.group(1))
                    return
                if (m := _KICK.match(line)) is not None:
                    yield self.left(
                        id=eid, ts=ts, group=group, actor=self.person(m.group(1)), name=m.group(1),
                        by=self.person(m.group(3)),
                    )
                    return
                if (m := _LEAVE.match(line)) is not None:
                    yield self.left(id=eid, ts=ts, group=group, actor=self.person(m.group(1)), name=m.group(1))
                    return
                if _NOTICE.match(line):
                    self.counts["server notices (skipped)"] += 1
                    return
                if (m := _EMOTE.match(line)) is not None:
                    nick = m.group(1)
                    yield self.message(
                        id=eid, ts=ts, group=group, actor=self.person(nick), name=nick, text=m.group(2),
                    )
                    return
                yield BadRow(name, line0 + 1, "not an IRC log line; skipped")
            except ValueError as exc:
                yield BadRow(name, line0 + 1, describe(exc) + "; skipped")

        text_file, counting, _encoding = open_text(path, self.encoding, progress)
        with text_file:
            for line0, raw in enumerate(text_file):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                if line.startswith("["):
                    timed = _TIMED.match(line)
                    if timed is None:
                        yield BadRow(name, line0 + 1, "a line starting with '[' that is not [HH:MM] <nick> text; skipped")
                        continue
                    hour, minute, sec = int(timed.group(1)), int(timed.group(2)), int(timed.group(3) or 0)
                    if hour > 23 or minute > 59 or sec > 59:
                        yield BadRow(name, line0 + 1, f"bad time {hour:02}:{minute:02}; skipped")
                        continue
                    ts = datetime.combine(day, time(hour, minute, sec), tz)
                    if last is not None and ts < last - timedelta(hours=12):
                        day += timedelta(days=1)
                        ts += timedelta(days=1)
                    last = ts
                    for early_line0, early_line in early:
                        yield from handle(early_line0, early_line, ts)
                    early.clear()
                    yield from handle(line0, line, ts)
                elif line.startswith("==="):
                    if last is None and len(early) < 10_000:
                        early.append((line0, line))
                    elif last is None:
                        yield from handle(line0, line, datetime.combine(day, time(0, 0), tz))
                    else:
                        yield from handle(line0, line, last)
                else:
                    yield BadRow(name, line0 + 1, "not an IRC log line; skipped")
            first_of_day = datetime.combine(day, time(0, 0), tz)
            for early_line0, early_line in early:
                yield from handle(early_line0, early_line, first_of_day)
            counting.flush_progress()
