"""The dashboards' memo: one answer per community epoch, and stale answers served while refreshing."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from qunyun.console.charts import memo, peek
from qunyun.core.clock import FakeClock


@dataclass
class FakeState:
    clock: FakeClock
    stale_for: timedelta = timedelta(0)
    epochs: dict[str, int] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)

    def epoch(self, community: str) -> int:
        return self.epochs.get(community, 0)


def test_one_answer_per_epoch() -> None:
    state = FakeState(FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
    calls: list[int] = []

    def build() -> int:
        calls.append(1)
        return len(calls)

    assert memo(state, "c", "x", build) == 1  # type: ignore[arg-type]
    assert memo(state, "c", "x", build) == 1  # type: ignore[arg-type]
    state.epochs["c"] = 1  # another process wrote
    assert peek(state, "c", "x") is None  # type: ignore[arg-type]
    assert memo(state, "c", "x", build) == 2  # type: ignore[arg-type]
    assert memo(state, "other", "x", build) == 3  # type: ignore[arg-type]
    assert len(state.memo) == 2  # one entry per (community, name), old epochs replaced


def test_stale_answer_served_while_a_fresh_one_is_computed() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    state = FakeState(clock, stale_for=timedelta(minutes=5))
    done = threading.Event()
    value = {"n": 1}

    def build() -> int:
        try:
            return value["n"]
        finally:
            done.set()

    assert memo(state, "c", "x", build) == 1  # type: ignore[arg-type]
    done.clear()
    value["n"] = 2
    state.epochs["c"] = 1
    clock.advance(timedelta(minutes=4))
    assert memo(state, "c", "x", build) == 1  # type: ignore[arg-type]  # the stale answer, at once
    assert done.wait(timeout=30), "the background refresh did not run"
    for _ in range(1000):  # the thread stores its answer right after build() returns
        if state.memo[("c", "x")][0] == 1:
            break
        threading.Event().wait(0.01)
    assert memo(state, "c", "x", build) == 2  # type: ignore[arg-type]  # now the fresh one

    # too old to serve: computed while the request waits
    value["n"] = 3
    state.epochs["c"] = 2
    clock.advance(timedelta(minutes=6))
    assert peek(state, "c", "x") is None  # type: ignore[arg-type]
    assert memo(state, "c", "x", build) == 3  # type: ignore[arg-type]
