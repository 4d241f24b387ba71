"""Reading the CSV exports (WeChatMsg, PyWxDump): by header name, streamed, line-numbered.

Columns are found by their header names (case and spacing ignored), so a
file whose columns were re-ordered (by a spreadsheet, by a newer exporter)
reads the same. A file without a header row is read in the exporter's
documented column order when its first row has one of the known widths.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from qunyun.core.errors import EventError
from qunyun.importers.base import BadRow, Progress, open_text

# A message may be long (a pasted article); the csv module's default limit is 128 KiB.
csv.field_size_limit(min(sys.maxsize, 16 * 1024 * 1024))


def _norm(cell: str) -> str:
    return cell.strip().lstrip("\ufeff").replace("_", "").replace(" ", "").lower()


class CsvSource:
    """Rows of one CSV export. After the header is read, ``index[column]`` is a column's position."""

    def __init__(
        self,
        path: Path,
        *,
        columns: Mapping[str, Sequence[str]],
        required: Sequence[str],
        orders: Mapping[int, Sequence[str]],
        encoding: str | None,
        progress: Progress | None,
    ) -> None:
        self.path = path
        self.name = str(path)
        self.columns = columns
        self.required = required
        self.orders = orders
        self.encoding_given = encoding
        self.progress = progress
        self.index: dict[str, int] = {}
        self.width = 0
        self.encoding = ""
        self.headerless = False

    def _header(self, first: list[str]) -> bool:
        """Map the header row; ``False`` if ``first`` is a data row of a known width."""
        aliases = {_norm(a): canon for canon, names in self.columns.items() for a in (canon, *names)}
        found = {}
        for i, cell in enumerate(first):
            canon = aliases.get(_norm(cell))
            if canon is not None and canon not in found:
                found[canon] = i
        if found:
            missing = [c for c in self.required if c not in found]
            if missing:
                raise EventError(
                    f"{self.name}:1: the header has no column {', '.join(missing)} "
                    f"(found: {', '.join(c.strip() for c in first)})"
                )
            self.index = found
            self.width = len(first)
            return True
        order = self.orders.get(len(first))
        if order is None:
            raise EventError(
                f"{self.name}:1: this is not a header row this importer knows "
                f"(expected columns like {', '.join(self.required)})",
            )
        self.index = {c: i for i, c in enumerate(order)}
        self.width = len(first)
        self.headerless = True
        return False

    def rows(self) -> Iterator[tuple[int, list[str]] | BadRow]:
        """``(line, row)`` for each data row; :class:`BadRow` for a row of the wrong width."""
        text, counting, self.encoding = open_text(self.path, self.encoding_given, self.progress)
        with text:
            reader = csv.reader(text)
            last = 0
            first = True
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    line = reader.line_num
                    yield BadRow(self.name, line, f"unreadable CSV row ({exc}); skipped")
                    last = line
                    continue
                line = last + 1
                last = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if first:
                    first = False
                    if self._header(row):
                        continue
                if len(row) != self.width:
                    yield BadRow(
                        self.name,
                        line,
                        f"row has {len(row)} fields, the header has {self.width} "
                        "(a truncated file, or an unquoted comma?); skipped",
                    )
                    continue
                yield line, row
            counting.flush_progress()
        if first:
            raise EventError(f"{self.name}: the file is empty")
