"""What every importer shares: the item types it yields and the reading helpers.

An importer reads one exported chat history and yields, in file order:

- events (:mod:`qunyun.core.events` objects, validated like any event at the edge),
- :class:`BadRow` for a row it cannot use (file, line, what is wrong) — the
  row is skipped, the import goes on,
- :class:`IdentityChange` when a person's name changes in a way the export
  records (IRC ``=== a is now known as b``); this is a note for the report,
  not an engine event: the importer already applied it to the events it yields.

Every event id is deterministic (derived from the chat and the export's own
message id, or from the line's content where the format has no ids), so
importing the same file twice produces the same ids and the engine skips the
second copy.
"""

from __future__ import annotations

import codecs
import heapq
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from qunyun.core.errors import EventError
from qunyun.core.events import Actor, BaseEvent, MemberJoined, MemberLeft, Message

#: ``progress(n)`` is told that ``n`` more bytes of the file were read.
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row (line, record, JSON element) that could not become an event."""

    file: str
    line: int
    error: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.error}"


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A nick change the importer followed: ``new`` is the same person as ``old``."""

    file: str
    line: int
    old: str
    new: str
    person: str


Item = BaseEvent | BadRow | IdentityChange


def describe(exc: Exception) -> str:
    """A one-line reason for a row that failed validation or conversion."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
        return "; ".join(parts)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EventError(
            f"unknown time zone {name!r}; use an IANA name like Asia/Shanghai or UTC"
        ) from None


_SAFE_ID = re.compile(r"[\x00-\x1f\x7f]")


def clean_id(value: str) -> str:
    """An id as the event contract accepts it: printable, 1–256 characters."""
    value = _SAFE_ID.sub("_", value.strip())
    return value[:256]


class Importer:
    """One export format. Subclasses implement :meth:`_read`.

    ``group`` forces every event into that group key; otherwise the format
    picks one (the chat id the export carries, else a name from the file).
    ``timezone`` is the zone of times written without one (WeChat's
    ``StrTime``, IRC's ``HH:MM``, Gitter's timestamps); ``encoding`` forces a
    text encoding instead of detecting it.
    """

    #: The name used on the command line (``qunyun import <format>``).
    format: ClassVar[str] = ""
    #: The ``platform`` of the events.
    platform: ClassVar[str] = ""
    #: Time zone of local times in this format when none is given.
    default_timezone: ClassVar[str] = "UTC"
    #: One line of help.
    summary: ClassVar[str] = ""

    def __init__(
        self,
        *,
        group: str | None = None,
        timezone: str | None = None,
        encoding: str | None = None,
    ) -> None:
        self.group = clean_id(group) if group else None
        self.timezone = timezone or self.default_timezone
        self.tz = zone(self.timezone)
        self.encoding = encoding
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise EventError(f"unknown text encoding {encoding!r}; try utf-8 or gb18030") from None
        #: What was read, by kind: messages, joins, leaves, renames, skipped notices…
        self.counts: Counter[str] = Counter()
        # Validated once per (id, name); frozen, so events can share them.
        self._actors: dict[tuple[str, str | None], Actor] = {}

    def actor(self, uid: str, name: str | None) -> Actor:
        key = (uid, name)
        found = self._actors.get(key)
        if found is None:
            if len(self._actors) >= 100_000:
                self._actors.clear()
            found = self._actors[key] = Actor(id=uid, name=name)
        return found

    # ------------------------------------------------------------- interface

    def read(self, path: str | Path, progress: Progress | None = None) -> Iterator[Item]:
        """Yield the events of one file (and its bad rows), in file order."""
        path = Path(path)
        if not path.is_file():
            raise EventError(f"{path}: no such file")
        yield from self._read(path, progress)

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        raise NotImplementedError

    def group_for(self, path: Path, chat_id: Any = None) -> str:
        """The group key: ``--group``, else the export's chat id, else the file's name."""
        if self.group:
            return self.group
        if chat_id not in (None, ""):
            return clean_id(str(chat_id))
        return clean_id(path.stem) or "imported"

    # --------------------------------------------------------------- builders

    def message(
        self,
        *,
        id: str,
        ts: datetime,
        group: str,
        actor: str,
        name: str | None,
        text: str,
        content_type: str = "text",
        mentions: list[str] | None = None,
        reply_to: str | None = None,
        msg_id: str | None = None,
    ) -> Message:
        self.counts["messages"] += 1
        return _validate_message(  # type: ignore[no-any-return]
            {
                "type": "message",
                "id": id,
                "ts": ts,
                "platform": self.platform,
                "group": group,
                "actor": self.actor(actor, name),
                "msg_id": msg_id or id,
                "text": text,
                "content_type": content_type,
                "mentions": mentions or [],
                "reply_to": reply_to,
            }
        )

    def joined(
        self, *, id: str, ts: datetime, group: str, actor: str, name: str | None,
        inviter: str | None = None, via: str = "unknown",
    ) -> MemberJoined:
        self.counts["joins"] += 1
        return MemberJoined.model_validate(
            {
                "type": "member_joined", "id": id, "ts": ts, "platform": self.platform,
                "group": group, "actor": self.actor(actor, name), "inviter": inviter, "via": via,
            }
        )

    def left(
        self, *, id: str, ts: datetime, group: str, actor: str, name: str | None, by: str | None = None
    ) -> MemberLeft:
        self.counts["leaves"] += 1
        return MemberLeft.model_validate(
            {
                "type": "member_left", "id": id, "ts": ts, "platform": self.platform,
                "group": group, "actor": self.actor(actor, name), "by": by,
            }
        )


# ---------------------------------------------------------------- reading text

#: ``Message.model_validate`` without the wrapper (the importers' hot path).
_validate_message = Message.__pydantic_validator__.validate_python

#: Bytes looked at to decide a text file's encoding.
SNIFF_BYTES = 1 << 20


def detect_encoding(head: bytes) -> str:
    """``utf-8-sig`` if ``head`` decodes as UTF-8 (a cut last character allowed), else ``gb18030``.

    GBK/GB2312 text (what Excel on a Chinese Windows saves) is a subset of
    GB18030, and Chinese text in GBK almost never happens to be valid UTF-8.

    A UTF-8 byte order mark decides alone, and so does a head that is UTF-8
    but for a few damaged bytes (at most one bad sequence per 100 non-ASCII
    bytes): one corrupt byte must not turn a UTF-8 export into GB18030
    mojibake (and its header into unknown columns). Text really in GBK fails
    as UTF-8 on nearly every Chinese character.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        decoded = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
        bad = decoded.count("\ufffd")
        non_ascii = sum(1 for b in head if b >= 0x80)
        return "utf-8-sig" if bad * 100 <= non_ascii else "gb18030"
    return "utf-8-sig"


class CountingReader(io.RawIOBase):
    """A binary file that reports the bytes read to ``progress``, in steps of ~1 MB."""

    def __init__(self, fh: IO[bytes], progress: Progress | None) -> None:
        self.fh = fh
        self.progress = progress
        self.pending = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.fh.readinto(buffer)  # type: ignore[attr-defined]
        if n and self.progress is not None:
            self.pending += n
            if self.pending >= 1 << 20:
                self.progress(self.pending)
                self.pending = 0
        return n or 0

    def close(self) -> None:
        if not self.closed:
            self.fh.close()
        super().close()

    def flush_progress(self) -> None:
        if self.progress is not None and self.pending:
            self.progress(self.pending)
            self.pending = 0


def open_text(
    path: Path, encoding: str | None, progress: Progress | None
) -> tuple[io.TextIOWrapper, CountingReader, str]:
    """Open ``path`` as text: the given encoding, else detected from its first megabyte.

    Undecodable bytes further in become U+FFFD rather than stopping a long
    import; the encoding is decided once, from the head of the file.
    """
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed with the returned wrapper
    if encoding is None:
        encoding = detect_encoding(raw.read(SNIFF_BYTES))
        raw.seek(0)
    counting = CountingReader(raw, progress)
    buffered = io.BufferedReader(counting, buffer_size=1 << 16)
    text = io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline="")
    return text, counting, encoding


# --------------------------------------------------------------- time order


def in_time_order(items: Iterable[Item], window: int) -> Iterator[Item]:
    """Sort events by time within a sliding window of ``window`` events.

    Bad rows and notes pass straight through; ties keep file order.
    """
    if window <= 0:
        yield from items
        return
    heap: list[tuple[datetime, int, BaseEvent]] = []
    seq = 0
    for item in items:
        if not isinstance(item, BaseEvent):
            yield item
            continue
        heapq.heappush(heap, (item.ts, seq, item))
        seq += 1
        if len(heap) > window:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]
