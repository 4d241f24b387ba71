"""Replaying a JSON Lines event file through the engine on event time.

Used by ``qunyun replay`` and by the benchmark. The clock is the events'
time: before an event at ``t`` is handled, every job due by ``t`` fires.
Actions go to the outbox and from there, when an actions file is given, to
that file — once per action id, even across a crash and a second run.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SAEngine

from qunyun.adapters.replay import ActionFile, BadLine, read_events, reorder
from qunyun.config.model import Settings
from qunyun.core.clock import FakeClock, monotonic
from qunyun.core.events import BaseEvent
from qunyun.engine import outbox
from qunyun.engine.engine import Engine, Outcome

#: Fault injection for crash tests: "kill-after-commit:N" or "kill-after-deliver:N"
#: kills this process with SIGKILL right after the N-th batch commit (before its
#: actions reach the file) or right after the N-th delivery (before it is marked).
FAULT_ENV = "QUNYUN_FAULT"


@dataclass
class ReplayReport:
    lines_bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[Outcome] = field(default_factory=list)
    problem_count: int = 0
    actions_written: int = 0
    jobs_fired: int = 0
    playbook_failures: int = 0
    seconds: float = 0.0
    events: int = 0

    @property
    def ok(self) -> bool:
        return self.bad_count == 0 and self.problem_count == 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _Fault:
    def __init__(self) -> None:
        spec = os.environ.get(FAULT_ENV, "")
        self.point, _, n = spec.partition(":")
        self.n = int(n) if n.isdigit() else 0
        self.count: dict[str, int] = {}

    def hit(self, point: str) -> None:
        if self.point != point:
            return
        self.count[point] = self.count.get(point, 0) + 1
        if self.count[point] >= self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def replay_file(
    path: str | Path,
    settings: Settings,
    db: SAEngine,
    *,
    actions: str | Path | None = None,
    batch_size: int = 1000,
    window: int = 1000,
    progress: Callable[[int], None] | None = None,
    keep_bad: int = 50,
) -> ReplayReport:
    """Run every event in ``path`` through a fresh engine on event time."""
    report = ReplayReport()
    clock = FakeClock()
    engine = Engine(db, settings, clock=clock, batch_size=batch_size)
    sink = ActionFile(actions) if actions is not None else None
    fault = _Fault()

    def deliver(rows: list[dict[str, Any]]) -> None:
        fault.hit("kill-after-commit")
        if sink is None:
            return
        done = sink.deliver(r["payload"] for r in rows)
        report.actions_written += len(done)
        fault.hit("kill-after-deliver")
        outbox.mark_delivered(db, done, clock.now())

    # First deliver what an earlier, interrupted run committed but did not deliver.
    if sink is not None:
        while True:
            rows = outbox.pending(db, limit=5000)
            if not rows:
                break
            done = sink.deliver(r["payload"] for r in rows)
            outbox.mark_delivered(db, done, clock.now())
    engine.on_commit = deliver

    # The engine's caches hold many long-lived objects; the default GC
    # thresholds would rescan them every few hundred allocations.
    old_threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    started = monotonic()
    first = True
    chunk: list[BaseEvent] = []

    def flush_chunk() -> None:
        for outcome in engine.handle_many(chunk):
            report.outcomes[outcome.status] = report.outcomes.get(outcome.status, 0) + 1
            if outcome.status in ("rejected", "failed", "late"):
                report.problem_count += outcome.status != "late"
                if len(report.problems) < keep_bad:
                    report.problems.append(outcome)
        report.events += len(chunk)
        chunk.clear()

    stream: Iterator[BaseEvent | BadLine] = reorder(read_events(path, progress=progress), window)
    for item in stream:
        if isinstance(item, BadLine):
            report.bad_count += 1
            if len(report.lines_bad) < keep_bad:
                report.lines_bad.append(item)
            continue
        if first:
            clock.set(item.ts)
            first = False
        chunk.append(item)
        if len(chunk) >= batch_size:
            flush_chunk()
    if chunk:
        flush_chunk()
    report.seconds = monotonic() - started
    gc.set_threshold(*old_threshold)
    gc.unfreeze()
    report.jobs_fired = engine.stats["jobs"]
    report.playbook_failures = engine.stats["playbook_failures"]
    if sink is not None:
        sink.close()
    return report
