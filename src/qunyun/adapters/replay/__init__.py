"""The ``replay`` adapter: events from JSON Lines files, actions to a JSON Lines file."""

from qunyun.adapters.replay.reader import BadLine, read_events, reorder
from qunyun.adapters.replay.sink import ActionFile

__all__ = ["ActionFile", "BadLine", "read_events", "reorder"]
