"""Gitter room logs, one message per line: ``[YYYY-MM-DD HH:MM:SS] <user> text``.

A message of several lines goes on on lines without the prefix; they are
joined to it with newlines. Times are read in the import's time zone (UTC
by default, as the LiveChat data set writes them).

- id: ``<group>:<hash>`` — the format has no message ids, so the id is a
  hash of (group, time, user, text) plus how many identical messages came
  before it in the same second: the same line always gets the same id,
  wherever it sits in the file (an export extended at its end re-imports
  without duplicates);
- group: ``--group``, else the file name without extension;
- ``@user`` in the text → a mention of that user; a message containing a
  link (or the data set's ``[<-LINK->]`` placeholder) is a ``link``.

Mentions: the exported logs often lose the space after a mention
(``@alicethanks``, ``@bobI agree``), so a mention's characters do not say
where the name ends. The file is read once beforehand for the names it
knows: every author, and every ``@name`` that ends cleanly (at a space, the
end of the text, or punctuation). A mention is then the known name it
equals, else the longest known name (3+ characters) it starts with; else it
is dropped. A cleanly ended mention that starts with another known name
(``@bobthanks`` where ``bob`` wrote or was mentioned) is not a name of its own. ``@all``/``@channel``/``@here``/``@everyone`` and ``@`` inside
links and addresses are not people.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from qunyun.importers.base import BadRow, Importer, Item, Progress, describe, open_text

_LINE = re.compile(r"\[(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\] <([^<>\s]+)> ?(.*)\Z", re.S)
_PREFIX = re.compile(r"\[\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?\]")
_MENTION = re.compile(r"(?<![\w@/.])@([A-Za-z0-9][A-Za-z0-9_-]{0,38})")
#: A mention that ends here ends cleanly: the end, a space, or punctuation (``@name,`` ``@name:``).
_CLEAN_END = re.compile(r"(?:\Z|[\s,.;:!?)\]'\"])")
#: Room-wide mentions, not people.
_NOT_PEOPLE = frozenset({"all", "channel", "here", "everyone", "room"})
_MIN_PREFIX = 3
_LINK = re.compile(r"\[<-LINK->\]|https?://")


def known_names(lines: Iterator[str]) -> set[str]:
    """Authors, and names mentioned with a clean end, in a Gitter log (see the module docstring)."""
    authors: set[str] = set()
    clean: set[str] = set()
    for line in lines:
        found = _LINE.match(line.rstrip("\r\n"))
        text = line
        if found is not None:
            authors.add(found.group(7))
            text = found.group(8)
        for m in _MENTION.finditer(text):
            if _CLEAN_END.match(text, m.end()):
                clean.add(m.group(1))
    # a cleanly ended "@bobthanks" is still bob glued to a word when bob is known: keep only
    # the mentioned names that do not start with an author's or another mentioned name
    heads = _by_prefix(authors | clean)
    others = {
        c for c in clean - authors
        if not any(len(h) < len(c) and c.startswith(h) for h in heads.get(c[:_MIN_PREFIX], ()))
    }
    return {k for k in authors | others if k.lower() not in _NOT_PEOPLE}


def resolve_mentions(text: str, known: set[str], prefixes: dict[str, list[str]]) -> list[str]:
    """The people ``text`` mentions: each ``@token`` as a known name, or the longest known name it starts with."""
    out: list[str] = []
    for token in _MENTION.findall(text):
        if token in known:
            out.append(token)
            continue
        for name in prefixes.get(token[:_MIN_PREFIX], ()):  # longest first
            if len(name) < len(token) and token.startswith(name):
                out.append(name)
                break
    return list(dict.fromkeys(out))


def _by_prefix(known: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in known:
        if len(name) >= _MIN_PREFIX:
            out.setdefault(name[:_MIN_PREFIX], []).append(name)
    for names in out.values():
        names.sort(key=len, reverse=True)
    return out


def line_id(group: str, ts: datetime, user: str, text: str, nth: int) -> str:
    digest = hashlib.blake2b(
        f"{group}\0{ts.isoformat()}\0{user}\0{text}\0{nth}".encode(), digest_size=10
    ).hexdigest()
    return f"{group}:{digest}"


class GitterImporter(Importer):
    format = "gitter"
    platform = "gitter"
    default_timezone = "UTC"
    summary = "Gitter room log lines: [YYYY-MM-DD HH:MM:SS] <user> text"

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        name = str(path)
        group = self.group_for(path)
        tz = self.tz
        # a first pass for the names the file knows (authors, cleanly ended mentions)
        first, _, _ = open_text(path, self.encoding, None)
        with first:
            known = known_names(first)
        prefixes = _by_prefix(known)
        text_file, counting, _encoding = open_text(path, self.encoding, progress)
        pending: tuple[int, datetime, str, list[str]] | None = None
        same_second: dict[str, int] = {}
        second: datetime | None = None

        def emit(item: tuple[int, datetime, str, list[str]]) -> Iterator[Item]:
            nonlocal second
            line, ts, user, parts = item
            text = "\n".join(parts)
            if ts != second:
                second = ts
                same_second.clear()
            key = f"{user}\0{text}"
            nth = same_second.get(key, 0)
            same_second[key] = nth + 1
            try:
                yield self.message(
                    id=line_id(group, ts, user, text, nth),
                    ts=ts,
                    group=group,
                    actor=user,
                    name=user,
                    text=text,
                    content_type="link" if _LINK.search(text) else "text",
                    mentions=resolve_mentions(text, known, prefixes),
                )
            except ValueError as exc:
                yield BadRow(name, line, describe(exc) + "; skipped")

        with text_file:
            for lineno, raw in enumerate(text_file, 1):
                line = raw.rstrip("\r\n")
                found = _LINE.match(line)
                if found is None:
                    if _PREFIX.match(line):
                        yield BadRow(name, lineno, "a message line without a <user>; skipped")
                        continue
                    if pending is None:
                        if line.strip():
                            yield BadRow(name, lineno, "a continuation line before any message; skipped")
                        continue
                    pending[3].append(line)
                    continue
                y, mo, d, h, mi, s, user, text = found.groups()
                try:
                    ts = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz)
                except ValueError as exc:
                    yield BadRow(name, lineno, f"bad time: {exc}; skipped")
                    continue
                if pending is not None:
                    yield from emit(pending)
                pending = (lineno, ts, user, [text])
            if pending is not None:
                yield from emit(pending)
            counting.flush_progress()
