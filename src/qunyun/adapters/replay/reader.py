"""Reading events from a JSON Lines file, safely and in order.

Each line is validated at the edge. A bad line becomes a :class:`BadLine`
naming the file, the line number, the field and the event id; it never stops
the other lines. Events are re-ordered by time within a bounded window, so a
file whose lines are slightly out of order is handled in time order; an event
later than the window is still handled (the engine marks it ``late``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from qunyun.core.errors import EventError
from qunyun.core.events import MAX_LINE_BYTES, BaseEvent, parse_event


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a valid event."""

    line: int
    error: str


def read_events(
    path: str | Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> Iterator[BaseEvent | BadLine]:
    """Yield each line's event (or :class:`BadLine`), in file order.

    ``progress`` is called with the bytes consumed since the last call.
    """
    name = str(path)
    with open(path, "rb") as fh:
        yield from _read(fh, name, progress)


def _read(
    fh: IO[bytes], name: str, progress: Callable[[int], None] | None
) -> Iterator[BaseEvent | BadLine]:
    lineno = 0
    pending = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 2)
        if not raw:
            break
        lineno += 1
        pending += len(raw)
        if progress is not None and pending >= 1 << 20:
            progress(pending)
            pending = 0
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            # skip the rest of an oversized line
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(1 << 20)
                pending += len(raw)
            yield BadLine(
                lineno, f"{name}:{lineno}: line longer than {MAX_LINE_BYTES:,} bytes; skipped"
            )
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            yield parse_event(stripped, where=f"{name}:{lineno}")
        except EventError as exc:
            yield BadLine(lineno, str(exc))
    if progress is not None and pending:
        progress(pending)


def reorder(items: Iterable[BaseEvent | BadLine], window: int) -> Iterator[BaseEvent | BadLine]:
    """Sort events by time within a sliding window of ``window`` events.

    Bad lines pass straight through. Ties keep file order. ``window=0``
    keeps file order entirely.
    """
    if window <= 0:
        yield from items
        return
    heap: list[tuple[object, int, BaseEvent]] = []
    seq = 0
    for item in items:
        if isinstance(item, BadLine):
            yield item
            continue
        heapq.heappush(heap, (item.ts, seq, item))
        seq += 1
        if len(heap) > window:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]
