"""A conversation harness for testing playbooks.

::

    chat = Chat(config={"checkin": {}})
    chat.join("u1", "小王")
    chat.say("u1", "打卡")
    chat.assert_sent("连续 1 天")
    chat.advance(days=1)
    chat.assert_nothing_sent()

Every call makes a real event and runs it through the real engine against a
real database (a temporary SQLite file, or ``db_url``), one transaction per
event, on a fake clock that only moves when you say so.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine as SAEngine
from sqlalchemy import func, select, text

from qunyun.config.model import Settings, settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.events import BaseEvent, parse_event
from qunyun.engine.engine import Engine, Outcome
from qunyun.engine.registry import Registry
from qunyun.store import models as m
from qunyun.store.db import migrate, open_engine

DEFAULT_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # 17:00 in Asia/Shanghai


def community_config(
    playbooks: Mapping[str, Any],
    *,
    groups: Iterable[str] = ("g-main",),
    platform: str = "sim",
    timezone: str = "Asia/Shanghai",
    locale: str = "zh-CN",
    roles: Mapping[str, list[str]] | None = None,
    templates: Mapping[str, Any] | None = None,
    group_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A one-community YAML configuration text with these playbook settings."""
    doc = {
        "communities": [
            {
                "id": "test",
                "name": "测试社群",
                "timezone": timezone,
                "locale": locale,
                "roles": dict(roles or {}),
                "groups": [
                    {
                        "id": g,
                        "platform": platform,
                        **({"playbooks": dict(group_overrides[g])} if group_overrides and g in group_overrides else {}),
                    }
                    for g in groups
                ],
                "playbooks": {k: dict(v or {}) for k, v in playbooks.items()},
                "templates": dict(templates or {}),
            }
        ]
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


class Chat:
    """A group conversation driven by hand, with assertions on what the bot did."""

    def __init__(
        self,
        config: Mapping[str, Any] | str | Settings | None = None,
        *,
        db_url: str | None = None,
        start: datetime = DEFAULT_START,
        group: str = "g-main",
        platform: str = "sim",
        registry: Registry | None = None,
        capabilities: Mapping[str, frozenset[str]] | None = None,
        **config_options: Any,
    ) -> None:
        if isinstance(config, Settings):
            self.settings = config
        elif isinstance(config, str):
            self.settings = settings_from_text(config, "<test config>", registry)
        else:
            text_ = community_config(config or {}, platform=platform, **config_options)
            self.settings = settings_from_text(text_, "<test config>", registry)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if db_url is None:
            db_url = os.environ.get("QUNYUN_HARNESS_DATABASE_URL")
        if db_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="qunyun-chat-")
            db_url = f"sqlite:///{Path(self._tmp.name) / 'chat.db'}"
        self.db: SAEngine = open_engine(db_url)
        migrate(self.db)
        self.clock = FakeClock(start)
        self.engine = Engine(
            self.db, self.settings, clock=self.clock, registry=registry, capabilities=capabilities
        )
        self.group = group
        self.platform = platform
        self._ids = itertools.count(1)
        self._names: dict[str, str] = {}
        self._actions: list[dict[str, Any]] = []
        self._seen = 0
        self.outcomes: list[Outcome] = []
        self.engine.on_commit = self._collect
        self.engine.setup_groups()

    def _collect(self, rows: list[dict[str, Any]]) -> None:
        self._actions.extend(r["payload"] for r in rows)

    def close(self) -> None:
        self.db.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- events

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def event(self, type_: str, user: str, *, name: str | None = None, group: str | None = None,
              ts: datetime | None = None, id: str | None = None, **fields: Any) -> BaseEvent:
        """Make, send and return one event of any type."""
        n = next(self._ids)
        if name is not None:
            self._names[user] = name
        data = {
            "v": 1,
            "id": id or f"evt-{n}",
            "ts": (ts or self.clock.now()).isoformat(),
            "platform": self.platform,
            "group": group or self.group,
            "type": type_,
            "actor": {"id": user, "name": self._names.get(user, user)},
            **fields,
        }
        event = parse_event(data)
        self.send_event(event)
        return event

    def send_event(self, event: BaseEvent) -> Outcome:
        outcome = self.engine.handle(event)
        self.outcomes.append(outcome)
        return outcome

    def join(self, user: str, name: str | None = None, *, inviter: str | None = None,
             via: str = "link", group: str | None = None) -> BaseEvent:
        return self.event("member_joined", user, name=name, group=group, inviter=inviter, via=via)

    def leave(self, user: str, *, by: str | None = None, group: str | None = None) -> BaseEvent:
        return self.event("member_left", user, group=group, by=by)

    def say(self, user: str, text_: str, *, name: str | None = None, mentions: Iterable[str] = (),
            reply_to: str | None = None, content_type: str = "text", group: str | None = None,
            **extra: Any) -> str:
        """Post a message; returns its msg_id."""
        msg_id = f"m-{next(self._ids)}"
        self.event(
            "message", user, name=name, group=group, msg_id=msg_id, text=text_,
            content_type=content_type, mentions=list(mentions), reply_to=reply_to, **extra,
        )
        return msg_id

    def react(self, user: str, target: str, emoji: str = "👍", *, group: str | None = None) -> BaseEvent:
        return self.event("reaction", user, group=group, target=target, emoji=emoji)

    def pay(self, user: str, amount: int, currency: str = "CNY", memo: str = "") -> BaseEvent:
        return self.event("payment", user, amount=amount, currency=currency, memo=memo)

    def command(self, playbook: str, name: str, *, actor: str = "cli", group: str | None = None,
                id: str | None = None, **args: Any) -> dict[str, Any]:
        """An operator's command to ``playbook`` (as the CLI, API or console give it)."""
        community = next(iter(self.settings.communities))
        return self.engine.command(community, playbook, name, args, actor=actor, group=group, id=id)

    def advance(self, **delta: float) -> int:
        """Move the clock forward (``days=1``, ``minutes=10``…); due jobs fire. Returns how many."""
        return self.engine.advance_to(self.clock.now() + timedelta(**delta))

    def advance_to(self, when: datetime) -> int:
        return self.engine.advance_to(when)

    # ------------------------------------------------------------ assertions

    @property
    def actions(self) -> list[dict[str, Any]]:
        """Every action so far, in order, as written to the outbox."""
        return list(self._actions)

    def take(self) -> list[dict[str, Any]]:
        """Actions since the last ``take`` (or ``assert_*``)."""
        new = self._actions[self._seen :]
        self._seen = len(self._actions)
        return new

    def sent(self, contains: str | None = None, *, type: str | None = None,
             playbook: str | None = None) -> list[dict[str, Any]]:
        """New actions matching the filters (does not consume them)."""
        out = []
        for a in self._actions[self._seen :]:
            if type is not None and a["type"] != type:
                continue
            if playbook is not None and a["playbook"] != playbook:
                continue
            if contains is not None and contains not in a.get("text", ""):
                continue
            out.append(a)
        return out

    def assert_sent(self, contains: str | None = None, *, type: str | None = None,
                    playbook: str | None = None, count: int | None = None) -> list[dict[str, Any]]:
        """Assert at least one (or exactly ``count``) new matching action; consume new actions."""
        found = self.sent(contains, type=type, playbook=playbook)
        pending = self._actions[self._seen :]
        self._seen = len(self._actions)
        if count is None and not found:
            raise AssertionError(
                f"expected an action (type={type}, playbook={playbook}, contains={contains!r}); "
                f"new actions were: {_brief(pending)}"
            )
        if count is not None and len(found) != count:
            raise AssertionError(f"expected {count} matching actions, got {len(found)}: {_brief(pending)}")
        return found

    def assert_nothing_sent(self) -> None:
        """Assert the bot did nothing since the last assertion/take."""
        pending = self._actions[self._seen :]
        self._seen = len(self._actions)
        if pending:
            raise AssertionError(f"expected no actions, got {_brief(pending)}")

    # ----------------------------------------------------------------- state

    def state(self, playbook: str, key: str) -> Any:
        t = m.table(m.PlaybookState)
        with self.db.connect() as conn:
            row = conn.execute(
                select(t.c.value).where(t.c.playbook == playbook, t.c.key == key)
            ).first()
        return None if row is None else row[0]

    def points(self, user: str, currency: str = "POINTS") -> int:
        return self.balance(f"member:{self.platform}:{user}:{currency}")

    def balance(self, code: str) -> int:
        t = m.table(m.Account)
        with self.db.connect() as conn:
            row = conn.execute(select(t.c.balance).where(t.c.code == code)).first()
        return 0 if row is None else int(row[0])

    def records(self, playbook: str, kind: str | None = None) -> list[dict[str, Any]]:
        t = m.table(m.Record)
        q = select(t).where(t.c.playbook == playbook).order_by(t.c.id)
        if kind is not None:
            q = q.where(t.c.kind == kind)
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def failures(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            return [dict(r) for r in conn.execute(select(m.table(m.Failure))).mappings()]

    def assert_ledger_balanced(self) -> None:
        """Every transaction sums to zero and every balance equals its postings."""
        check_ledger(self.db)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()


def check_ledger(db: SAEngine) -> None:
    """Raise AssertionError unless the ledger is conserved and consistent."""
    p = m.table(m.Posting)
    a = m.table(m.Account)
    with db.connect() as conn:
        unbalanced = conn.execute(
            select(p.c.transaction_id, func.sum(p.c.amount))
            .group_by(p.c.transaction_id)
            .having(func.sum(p.c.amount) != 0)
        ).all()
        if unbalanced:
            raise AssertionError(f"unbalanced ledger transactions: {unbalanced[:5]}")
        drift = conn.execute(
            select(a.c.code, a.c.balance, func.coalesce(func.sum(p.c.amount), 0))
            .select_from(a.outerjoin(p, p.c.account_id == a.c.id))
            .group_by(a.c.id, a.c.code, a.c.balance)
            .having(a.c.balance != func.coalesce(func.sum(p.c.amount), 0))
        ).all()
        if drift:
            raise AssertionError(f"account balances differ from their postings: {drift[:5]}")
        per_currency = conn.execute(
            select(a.c.currency, func.sum(a.c.balance)).group_by(a.c.currency)
        ).all()
        for currency, total in per_currency:
            if int(total or 0) != 0:
                raise AssertionError(f"{currency}: balances sum to {total}, not 0 (money created or lost)")


def _brief(actions: list[dict[str, Any]]) -> str:
    if not actions:
        return "none"
    return "; ".join(
        f"{a['type']}[{a['playbook']}]" + (f" {a.get('text', '')[:60]!r}" if a.get("text") else "")
        for a in actions[:10]
    )
