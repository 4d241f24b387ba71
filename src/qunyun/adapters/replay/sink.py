"""Delivering actions to a JSON Lines file, exactly once per action id.

The file is the replay adapter's "platform". On open it reads the ids
already in the file; delivering an action whose id is there is a no-op. So
the at-least-once outbox plus this sink give each action exactly one line,
even if the process was killed between writing a line and marking the
action delivered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


class ActionFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ids: set[str] = set()
        if self.path.exists():
            self._load()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def _load(self) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read()
        good_end = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a torn last line from a crash: drop it, it will be rewritten
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                break
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                self.ids.add(obj["id"])
            good_end += len(line)
        if good_end != len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def deliver(self, actions: Iterable[dict[str, Any]]) -> list[str]:
        """Append each new action (a contract-shaped dict); return the ids written or already there."""
        done: list[str] = []
        chunks: list[bytes] = []
        for action in actions:
            aid = action["id"]
            done.append(aid)
            if aid in self.ids:
                continue
            self.ids.add(aid)
            chunks.append(orjson.dumps(action) + b"\n")
        if chunks:
            self._fh.write(b"".join(chunks))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return done

    def close(self) -> None:
        self._fh.close()
