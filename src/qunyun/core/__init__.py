"""Pure domain types: events, actions, clock, errors. No I/O here."""

from qunyun.core.actions import ACTION_ADAPTER, Action
from qunyun.core.clock import Clock, FakeClock, SystemClock
from qunyun.core.errors import (
    ClockError,
    ConfigError,
    EventError,
    PlaybookError,
    QunyunError,
    StoreError,
)
from qunyun.core.events import EVENT_ADAPTER, Event, parse_event

__all__ = [
    "ACTION_ADAPTER",
    "EVENT_ADAPTER",
    "Action",
    "Clock",
    "ClockError",
    "ConfigError",
    "Event",
    "EventError",
    "FakeClock",
    "PlaybookError",
    "QunyunError",
    "StoreError",
    "SystemClock",
    "parse_event",
]
