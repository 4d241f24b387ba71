"""A small streaming reader for one big JSON document (Telegram, Discord exports).

Exports put every message in one array inside one object, so the whole file
is one JSON value: ``json.load`` would hold all of it (a 2 GB export needs
several times that in Python objects). No streaming JSON parser is among our
dependencies (``ijson`` is not), and we only need a little: walk the few
levels of objects and arrays around the messages key by key, and decode each
message on its own.

So this reader keeps a sliding text buffer over the file (1 MB reads) and
uses the standard library's C scanner (``JSONDecoder.scan_once``, what
``raw_decode`` uses) to decode one value at a given position. When a value
runs past the end of the buffer, more is read and it is decoded again; a
value is never allowed to grow the buffer past ``limit`` characters, so a
broken file cannot make memory grow without bound. Memory is the buffer plus
one message. Line numbers are counted as the buffer moves, so a bad message
is reported with the line it starts on.

A syntax error cannot be skipped (after it, nothing says where the next
message begins): :class:`JsonBroken` ends the walk, with the line, after
everything before it was read.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from qunyun.importers.base import Progress

_WS = re.compile(r"[ \t\n\r]*")

#: Largest single message (characters) before the file is declared broken.
MESSAGE_LIMIT = 16 * 1024 * 1024
#: Largest value that is skipped whole (an export's contact list, its "about").
SKIP_LIMIT = 256 * 1024 * 1024


_MISSING = object()


class JsonBroken(Exception):
    """The document cannot be read on from here (syntax error or truncation)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class JsonStream:
    CHUNK = 1 << 20

    def __init__(self, fh: IO[bytes], progress: Progress | None = None) -> None:
        self.fh = fh
        self.progress = progress
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self.buf = ""
        self.pos = 0
        self.eof = False
        # line numbering: ``line`` is the line of buffer position ``line_pos``
        self.line = 1
        self.line_pos = 0
        #: characters dropped from the front of the buffer so far
        self.base = 0
        self._scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

    # ----------------------------------------------------------------- buffer

    def _fill(self) -> bool:
        """Read one more chunk; ``False`` at the end of the file."""
        if self.eof:
            return False
        raw = self.fh.read(self.CHUNK)
        if self.progress is not None and raw:
            self.progress(len(raw))
        if not raw:
            self.eof = True
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self._append(tail)
            return bool(tail)
        self._append(self.decoder.decode(raw))
        return True

    def _append(self, text: str) -> None:
        pos = self.pos
        if pos > self.CHUNK:
            # drop what was consumed, keeping the line count right
            self.line += self.buf.count("\n", self.line_pos, pos)
            self.buf = self.buf[pos:]
            self.base += pos
            self.pos = 0
            self.line_pos = 0
        self.buf += text

    def line_at(self, offset: int) -> int:
        """The line of an absolute character ``offset`` not yet dropped from the buffer."""
        rel = offset - self.base
        if rel < self.line_pos:
            return self.line
        return self.line + self.buf.count("\n", self.line_pos, rel)

    def where(self) -> int:
        """The line of the current position."""
        pos = self.pos
        if pos > self.line_pos:
            self.line += self.buf.count("\n", self.line_pos, pos)
            self.line_pos = pos
        return self.line

    def skip_ws(self) -> str:
        """Skip white space; the next character ('' at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str, what: str) -> str:
        c = self.skip_ws()
        if c == "":
            raise JsonBroken(self.where(), f"the file ends where {what} should be (truncated?)")
        if c not in chars:
            raise JsonBroken(self.where(), f"expected {what}, found {c!r}")
        self.pos += 1
        return c

    # ----------------------------------------------------------------- values

    def value(self, limit: int = MESSAGE_LIMIT) -> Any:
        """Decode the value at the current position and move past it."""
        if self.skip_ws() == "":
            raise JsonBroken(self.where(), "the file ends where a value should be (truncated?)")
        while True:
            error = ""
            try:
                obj, end = self._scan(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return obj
                # the value touches the end of the buffer: a number may go on
            except StopIteration:
                error = f"expected a JSON value, found {self.buf[self.pos:self.pos + 20]!r}"
            except json.JSONDecodeError as exc:
                error = exc.msg
            if self.eof or len(self.buf) - self.pos > limit:
                line = self.where()
                if self.eof:
                    raise JsonBroken(line, f"the file ends inside a value starting here (truncated?): {error}")
                raise JsonBroken(line, f"a value starting here is not valid JSON within {limit:,} characters: {error}")
            self._fill()

    def skip(self) -> None:
        self.value(SKIP_LIMIT)

    def peek(self) -> str:
        return self.skip_ws()

    def fields(self) -> Iterator[str]:
        """Walk an object: yields each key; the caller must consume its value before the next."""
        self.expect("{", "'{'")
        if self.skip_ws() == "}":
            self.pos += 1
            return
        while True:
            if self.skip_ws() != '"':
                self.expect('"', "a key")
            key = self.value()
            self.expect(":", "':'")
            yield key
            if self.expect(",}", "',' or '}'") == "}":
                return

    def items(self) -> Iterator[int]:
        """Walk an array: yields the line each element starts on; the caller consumes it."""
        self.expect("[", "'['")
        if self.skip_ws() == "]":
            self.pos += 1
            return
        while True:
            self.skip_ws()
            yield self.where()
            if self.expect(",]", "',' or ']'") == "]":
                return

    def elements(self) -> Iterator[tuple[int, Any]]:
        """Walk an array, decoding each element: yields ``(offset, value)``.

        ``offset`` is where the element starts (:meth:`line_at` turns it into
        a line when one is needed for a report).

        Fast path for pretty-printed exports: once one element has shown how
        elements end (a line holding only the closing brace, at a fixed
        indentation — a JSON string cannot contain a raw line break, so such
        a line can only be structure), the next element is cut at the next
        such line and decoded by orjson. If the cut is not valid JSON, the
        element is decoded the general way.
        """
        self.expect("[", "'['")
        if self.skip_ws() == "]":
            self.pos += 1
            return
        close: str | None = None
        loads = orjson.loads
        match_ws = _WS.match
        while True:
            buf = self.buf
            pos = self.pos
            offset = self.base + pos
            obj: Any = _MISSING
            if close is not None and buf.startswith("{", pos):
                end = buf.find(close, pos)
                if end != -1:
                    end += len(close)
                    try:
                        obj = loads(buf[pos:end])
                        self.pos = end
                    except orjson.JSONDecodeError:
                        obj = _MISSING
            if obj is _MISSING:
                opens = buf.startswith("{", pos)
                obj = self.value()
                if opens and close is None:
                    nl = self.buf.rfind("\n", 0, self.pos)
                    if nl != -1 and self.buf[nl + 1:self.pos - 1].strip(" \t") == "":
                        close = self.buf[nl:self.pos]
            yield offset, obj
            buf = self.buf
            pos = match_ws(buf, self.pos).end()  # type: ignore[union-attr]
            if pos < len(buf) and buf[pos] == ",":
                nxt = match_ws(buf, pos + 1).end()  # type: ignore[union-attr]
                self.pos = nxt
                if nxt >= len(buf):
                    self.skip_ws()
                continue
            self.pos = pos
            if self.expect(",]", "',' or ']'") == "]":
                return
            self.skip_ws()
