"""Running an import through the engine: the same path as live events and replays.

The events of the export go through :meth:`Engine.handle_many` on event time
(a fake clock set to each event's time), in batches, so everything the engine
keeps — members, memberships, messages, the rollups analytics read — is
built exactly as if the chat had happened under qunyun. Playbooks are off
unless asked for: an import is history, and history should not be welcomed,
rewarded or moderated again. Event ids are deterministic, so a second import
of the same file finds every event already stored and changes nothing.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine as SAEngine

from qunyun.config.model import CommunitySettings, Settings, auto_group, settings_from_text
from qunyun.core.clock import FakeClock, monotonic
from qunyun.core.events import BaseEvent
from qunyun.engine.engine import Engine, Outcome
from qunyun.importers.base import BadRow, IdentityChange, Importer, Item, in_time_order


@dataclass
class ImportReport:
    files: list[str] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    renames: list[IdentityChange] = field(default_factory=list)
    #: events read, by type (message, member_joined, member_left)
    events: Counter[str] = field(default_factory=Counter)
    #: what the importer noticed besides events (skipped notices, chats…)
    notes: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[Outcome] = field(default_factory=list)
    problem_count: int = 0
    groups: set[str] = field(default_factory=set)
    speakers: int = 0
    first: datetime | None = None
    last: datetime | None = None
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.events.values())

    @property
    def ok(self) -> bool:
        return self.bad_count == 0 and self.problem_count == 0

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def default_settings(importer: Importer, community: str = "imported") -> Settings:
    """Without a configuration: one community (``imported``) that takes every group."""
    locale = "zh-CN" if importer.platform == "wechat" else "en"
    text = (
        "communities:\n"
        f"  - id: {json.dumps(community)}\n"
        f"    name: {json.dumps(community)}\n"
        f"    timezone: {importer.timezone}\n"
        f"    locale: {locale}\n"
        "    catch_all: true\n"
    )
    return settings_from_text(text, "<import defaults>")


def without_playbooks(settings: Settings) -> Settings:
    """The same communities and groups, with no playbook enabled anywhere."""
    communities: dict[str, CommunitySettings] = {}
    for cid, community in settings.communities.items():
        bare = replace(community, playbook_specs={}, groups={})
        for key, group in community.groups.items():
            bare.groups[key] = replace(group, community=bare, playbooks={})
        communities[cid] = bare
    return replace(settings, communities=communities)


def read_all(
    importer: Importer, paths: Sequence[str | Path], progress: Callable[[int], None] | None = None
) -> Iterator[Item]:
    for path in paths:
        yield from importer.read(path, progress)


def import_files(
    importer: Importer,
    paths: Sequence[str | Path],
    *,
    db: SAEngine | None,
    settings: Settings | None = None,
    community: str | None = None,
    playbooks: bool = False,
    batch_size: int = 1000,
    window: int = 1000,
    progress: Callable[[int], None] | None = None,
    keep: int = 50,
) -> ImportReport:
    """Read ``paths`` with ``importer`` and handle their events (``db=None``: validate only).

    ``settings`` default to :func:`default_settings`; without ``playbooks``
    they are stripped of every playbook. A group the configuration does not
    list joins ``community`` (default: the only one, or the catch-all one).
    """
    report = ImportReport(files=[str(p) for p in paths], dry_run=db is None)
    speakers: set[tuple[str, str]] = set()
    engine: Engine | None = None
    target: CommunitySettings | None = None
    clock = FakeClock()
    if db is not None:
        if settings is None:
            settings = default_settings(importer, community or "imported")
        if not playbooks:
            settings = without_playbooks(settings)
        if community is not None:
            target = settings.communities[community]
        elif len(settings.communities) == 1:
            target = next(iter(settings.communities.values()))
        engine = Engine(db, settings, clock=clock, batch_size=batch_size)

    chunk: list[BaseEvent] = []

    def flush() -> None:
        assert engine is not None
        for outcome in engine.handle_many(chunk):
            report.outcomes[outcome.status] += 1
            if outcome.status in ("rejected", "failed", "late"):
                report.problem_count += outcome.status != "late"
                if len(report.problems) < keep:
                    report.problems.append(outcome)
        chunk.clear()

    old_threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    started = monotonic()
    try:
        for item in in_time_order(read_all(importer, paths, progress), window):
            if isinstance(item, BadRow):
                report.bad_count += 1
                if len(report.bad) < keep:
                    report.bad.append(item)
                continue
            if isinstance(item, IdentityChange):
                if len(report.renames) < keep:
                    report.renames.append(item)
                continue
            etype: str = item.type  # type: ignore[attr-defined]
            report.events[etype] += 1
            if etype == "message":
                speakers.add((item.group, item.actor.id))
            if item.group not in report.groups:
                report.groups.add(item.group)
                if engine is not None and target is not None and engine.settings.group(item.platform, item.group) is None:
                    auto_group(target, item.platform, item.group, engine.registry)
            if report.first is None or item.ts < report.first:
                report.first = item.ts
            if report.last is None or item.ts > report.last:
                report.last = item.ts
            if engine is None:
                continue
            if len(chunk) == 0 and report.total == 1:
                clock.set(item.ts)
            chunk.append(item)
            if len(chunk) >= batch_size:
                flush()
        if chunk:
            flush()
    finally:
        report.seconds = monotonic() - started
        gc.set_threshold(*old_threshold)
        gc.unfreeze()
    report.speakers = len({actor for _group, actor in speakers})
    report.notes.update(
        {k: v for k, v in importer.counts.items() if k not in ("messages", "joins", "leaves")}
    )
    return report
