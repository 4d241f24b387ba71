"""capacity (活码): one community join link that fills groups in turn.

Each group has a capacity. The community's join link (or QR code) lives in
one group, the *entry group*; when a newcomer arrives there — a
``join_request``, or a ``member_joined`` through the link or the QR code —
they are routed to the first group in routing order that still has room
(``capacity`` × ``full_at`` places, minus its members and the places held
for newcomers already invited there), preferring groups whose tag or city
rule matches the newcomer's profile. The result is an ``invite`` action
addressed to that group. Operators can route someone by hand with the
``route`` command, and ``status`` (what ``qunyun link`` prints) shows the
routing table.

When every group is full, the playbook asks for a new group from the
configured template (one ``create_group`` action, not one per newcomer) and
keeps the newcomers on a waiting list. The request stands until a new group
appears in the configuration — then the waiting newcomers are invited there —
or until it times out: then the admins are told and the next full house may
ask again. A member leaving a routed group frees a place: the first waiting
newcomer gets it.

Members are counted from the engine's ``memberships`` table (active
memberships, so a leave is counted the moment it happens), plus the
``members_before`` an operator declares for a group whose members joined
before qunyun saw it, minus those of them seen leaving since.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, func, select

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig

#: Newcomers kept on the waiting list at most (the rest are told the groups are full).
MAX_WAITING = 1000


class RouteRule(BaseModel):
    """One group in routing order, with optional matching rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(min_length=1, max_length=256, description="The group's key (its `id` under `groups`).")
    capacity: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Places in this group; unset: the group's `capacity`."
    )
    members_before: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Members already in the group before qunyun saw their joins (counted until seen leaving).",
    )
    tags: list[str] = Field(
        default_factory=list, description="Prefer newcomers with any of these profile tags (case-insensitive)."
    )
    city: str | None = Field(default=None, description="Prefer newcomers from this city (profile tag `city:<city>`).")
    exclusive: bool = Field(
        default=False, description="Only newcomers matching `tags`/`city` go here (otherwise they are a preference)."
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [t.strip().casefold() for t in value]
        if any(not t for t in tags):
            raise ValueError("tags must not be empty")
        return tags

    @field_validator("city")
    @classmethod
    def _city(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("city must not be empty (leave it out for no city rule)")
        return value.strip() if value is not None else None

    @property
    def conditional(self) -> bool:
        return bool(self.tags or self.city)

    def matches(self, tags: set[str]) -> bool:
        if self.city is not None and f"city:{self.city}".casefold() not in tags:
            return False
        return not self.tags or any(t in tags for t in self.tags)


class CapacityConfig(PlaybookConfig):
    entry_group: str | None = Field(
        default=None,
        description="The group holding the community join link: newcomers arriving there are routed. "
        "Unset: routing only through the `route` command.",
    )
    groups: list[RouteRule] = Field(
        default_factory=list,
        description="Groups in routing order, with optional `capacity`, `members_before`, `tags`, `city`, "
        "`exclusive`. Empty: every non-admin group of the community except the entry group, in configuration order.",
    )
    full_at: float = Field(
        default=0.95, gt=0, le=1, description="A group counts as full at this share of its capacity."
    )
    template: str = Field(
        default="default",
        min_length=1,
        max_length=256,
        description="Group template for the `create_group` action when every group is full.",
    )
    request_timeout_hours: int = Field(
        default=72,
        ge=1,
        le=24 * 60,
        description="If no new group appears in the configuration this long after asking for one, tell the admins.",
    )
    hold_hours: int = Field(
        default=48,
        ge=1,
        le=24 * 30,
        description="A place stays held for an invited newcomer this long, or until they join.",
    )
    retry_minutes: int = Field(
        default=60, ge=5, le=24 * 60, description="How often waiting newcomers are tried again."
    )
    tell_member: bool = Field(
        default=True, description="Tell a newcomer privately where they were invited, or that they are waiting."
    )

    @field_validator("groups")
    @classmethod
    def _unique(cls, value: list[RouteRule]) -> list[RouteRule]:
        seen: set[str] = set()
        for rule in value:
            if rule.group in seen:
                raise ValueError(f"group {rule.group!r} is listed twice")
            seen.add(rule.group)
        return value


def _tags_of(ctx: Context, uid: str) -> set[str]:
    """The newcomer's profile tags (lower-cased), or an empty set if unknown."""
    try:
        from qunyun.playbooks.profile import tags_of
    except ImportError:
        return set()
    found = tags_of(ctx, uid) or set()
    return {str(t).casefold() for t in found}


class _Slot:
    """One routing target as seen right now."""

    __slots__ = ("capacity", "held", "key", "limit", "members", "name", "problem", "rule")

    def __init__(self, rule: RouteRule, name: str, capacity: int, full_at: float, problem: str | None) -> None:
        self.rule = rule
        self.key = rule.group
        self.name = name
        self.capacity = capacity
        # round first: 500 × 0.95 must be 475 places, not 475.00000000000006 → 476
        self.limit = math.ceil(round(capacity * full_at, 6))
        self.members = 0
        self.held = 0
        self.problem = problem

    @property
    def room(self) -> int:
        return max(0, self.limit - self.members - self.held) if self.problem is None else 0


class Capacity(Playbook):
    id = "capacity"
    version = "1"
    config_model = CapacityConfig
    handles = frozenset({"join_request", "member_joined", "member_left"})
    emits = frozenset({"invite", "direct", "create_group", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "status": "the routing table: each group's members, capacity and room; the next group",
        "route": "route a newcomer now: member=UID (dry_run=true only shows where)",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "活码：一个入群链接按容量把新人依次分到有空位的群（可按标签或城市），全满时申请新群。",
        "en": "Live join link: routes each newcomer to the first group with room (by tag or city), "
        "and asks for a new group when all are full.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "routed": {
            "zh-CN": "欢迎！已为你安排到「{group}」，请留意入群邀请。",
            "en": "Welcome! We have saved you a place in \"{group}\"; look out for the invitation.",
        },
        "waiting": {
            "zh-CN": "欢迎！现在所有群都满了，我们正在开新群，有空位时会第一时间邀请你。",
            "en": "Welcome! Every group is full right now. We are opening a new one and will invite you "
            "as soon as there is a place.",
        },
        "request_timeout": {
            "zh-CN": "⚠️ {hours} 小时前申请的新群（模板「{group_template}」）还没有出现在配置里，{waiting} 位新人仍在等待。"
            "请建群并把它加入配置。",
            "en": "⚠️ The new group requested {hours} hours ago (template \"{group_template}\") has not appeared in the "
            "configuration; {waiting} newcomers are still waiting. Please create it and add it to the configuration.",
        },
    }

    # ------------------------------------------------------------- the table

    @staticmethod
    def _entry_config(ctx: Context) -> CapacityConfig:
        """Routing follows the entry group's settings, wherever it is triggered from."""
        cfg: CapacityConfig = ctx.config
        if cfg.entry_group:
            for g in ctx.community.groups.values():
                if g.key == cfg.entry_group and g.platform == ctx.group.platform:
                    found = g.playbooks.get("capacity")
                    if isinstance(found, CapacityConfig):
                        return found
        return cfg

    def _rules(self, ctx: Context, cfg: CapacityConfig) -> list[RouteRule]:
        if cfg.groups:
            return list(cfg.groups)
        return [
            RouteRule(group=g.key)
            for g in ctx.community.groups.values()
            if not g.admin and g.key != cfg.entry_group and g.platform == ctx.group.platform
        ]

    def _table(self, ctx: Context, cfg: CapacityConfig) -> list[_Slot]:
        """Every routing target with its members and held places, now."""
        by_key = {g.key: g for g in ctx.community.groups.values() if g.platform == ctx.group.platform}
        others = {g.key for g in ctx.community.groups.values()} - set(by_key)
        slots: list[_Slot] = []
        for rule in self._rules(ctx, cfg):
            group = by_key.get(rule.group)
            problem = None
            if group is None:
                problem = "other platform" if rule.group in others else "not in the configuration"
            capacity = rule.capacity or (group.capacity if group is not None else 0)
            slots.append(_Slot(rule, group.name if group is not None else rule.group, capacity, cfg.full_at, problem))
        counts = self._counts(ctx, [s.key for s in slots if s.problem is None])
        holds = self._holds(ctx)
        for slot in slots:
            members, before_left = counts.get(slot.key, (0, 0))
            slot.members = members + max(0, slot.rule.members_before - before_left)
            slot.held = sum(1 for h in holds.values() if h.get("group") == slot.key)
        return slots

    @staticmethod
    def _counts(ctx: Context, keys: list[str]) -> dict[str, tuple[int, int]]:
        """Per group key: (active members, members seen leaving without a join seen)."""
        if not keys:
            return {}
        from qunyun.store import models as m

        ms = m.table(m.Membership)
        gt = m.table(m.Group)
        q = (
            select(
                gt.c.key,
                func.count().filter(ms.c.status == "active"),
                func.count().filter(and_(ms.c.status != "active", ms.c.joined_at.is_(None))),
            )
            .select_from(ms.join(gt, gt.c.id == ms.c.group_id))
            .where(gt.c.community_id == ctx.community.id, gt.c.platform == ctx.group.platform, gt.c.key.in_(keys))
            .group_by(gt.c.key)
        )
        return {key: (int(a or 0), int(b or 0)) for key, a, b in ctx.db.execute(q)}

    def _holds(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """Places held for invited newcomers, expired ones dropped."""
        now = ctx.now
        return {
            uid: h
            for uid, h in (ctx.state.get("holds") or {}).items()
            if isinstance(h, dict) and datetime.fromisoformat(h["until"]) > now
        }

    @staticmethod
    def _choose(slots: list[_Slot], tags: set[str]) -> _Slot | None:
        """Matching groups first (in order), then every group open to this newcomer."""
        if tags:
            for slot in slots:
                if slot.rule.conditional and slot.rule.matches(tags) and slot.room > 0:
                    return slot
        for slot in slots:
            if slot.rule.exclusive and not (tags and slot.rule.matches(tags)):
                continue
            if slot.room > 0:
                return slot
        return None

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg = self._entry_config(ctx)
        uid = event.actor.id
        if event.type == "member_left":
            if any(r.group == ctx.group.key for r in self._rules(ctx, cfg)):
                self._drain(ctx, cfg)  # a place was freed
            return
        if event.type == "member_joined":
            self._arrived(ctx, cfg, uid)
            routed = event.via in ("link", "qr")
        else:
            routed = True
        if routed and cfg.entry_group == ctx.group.key and ctx.role(uid) in ("member", "guest"):
            self._route(ctx, cfg, uid, how=event.type)

    def _arrived(self, ctx: Context, cfg: CapacityConfig, uid: str) -> None:
        """A join anywhere we route to: their held place is now a membership."""
        if ctx.group.key == cfg.entry_group and not any(r.group == ctx.group.key for r in self._rules(ctx, cfg)):
            return
        holds = dict(ctx.state.get("holds") or {})
        if uid in holds:
            del holds[uid]
            ctx.state.put("holds", holds)
        waiting = list(ctx.state.get("waiting") or [])
        if any(w[0] == uid for w in waiting):
            ctx.state.put("waiting", [w for w in waiting if w[0] != uid])

    def _route(self, ctx: Context, cfg: CapacityConfig, uid: str, *, how: str) -> dict[str, Any]:
        """Route one newcomer: invite to a group with room, or wait for a new group."""
        self._drain(ctx, cfg)  # those already waiting go first
        holds = self._holds(ctx)
        if uid in holds:
            return {"member": uid, "group": holds[uid]["group"], "status": "already invited"}
        waiting = list(ctx.state.get("waiting") or [])
        if any(w[0] == uid for w in waiting):
            return {"member": uid, "group": None, "status": "waiting"}
        slots = self._table(ctx, cfg)
        if self._placed(ctx, uid, [s.key for s in slots if s.problem is None]):
            return {"member": uid, "group": None, "status": "already a member"}
        slot = self._choose(slots, _tags_of(ctx, uid))
        if slot is not None:
            self._invite(ctx, cfg, uid, slot, how)
            return {"member": uid, "group": slot.key, "status": "invited"}
        if len(waiting) < MAX_WAITING:
            ctx.state.put("waiting", [*waiting, [uid, ctx.now.isoformat()]])
            ctx.record("waiting", uid, how=how)
            ctx.schedule("retry", at=ctx.now + timedelta(minutes=cfg.retry_minutes))
        if cfg.tell_member:
            ctx.direct(uid, ctx.render("waiting"))
        self._request_group(ctx, cfg, slots)
        return {"member": uid, "group": None, "status": "waiting"}

    @staticmethod
    def _placed(ctx: Context, uid: str, keys: list[str]) -> bool:
        """Is ``uid`` an active member of one of these groups already?"""
        if not keys:
            return False
        from qunyun.store import models as m

        ms = m.table(m.Membership)
        gt = m.table(m.Group)
        mt = m.table(m.Member)
        q = (
            select(func.count())
            .select_from(ms.join(gt, gt.c.id == ms.c.group_id).join(mt, mt.c.id == ms.c.member_id))
            .where(gt.c.community_id == ctx.community.id, gt.c.platform == ctx.group.platform)
            .where(gt.c.key.in_(keys), mt.c.user_id == uid, ms.c.status == "active")
        )
        return bool(ctx.db.execute(q).scalar())

    def _invite(self, ctx: Context, cfg: CapacityConfig, uid: str, slot: _Slot, how: str) -> None:
        holds = self._holds(ctx)
        holds[uid] = {"group": slot.key, "until": (ctx.now + timedelta(hours=cfg.hold_hours)).isoformat()}
        ctx.state.put("holds", holds)
        slot.held += 1
        ctx.state.put(f"m:{uid}", {"group": slot.key, "at": ctx.now.isoformat(), "how": how})
        ctx.invite(uid, group=slot.key)
        ctx.record("routed", uid, group=slot.key, how=how)
        if cfg.tell_member:
            ctx.direct(uid, ctx.render("routed", group=slot.name))

    def _drain(self, ctx: Context, cfg: CapacityConfig) -> None:
        """Give freed or new places to waiting newcomers, first come first served."""
        self._settle_request(ctx, cfg)
        waiting = list(ctx.state.get("waiting") or [])
        if not waiting:
            return
        slots = self._table(ctx, cfg)
        left: list[list[str]] = []
        for entry in waiting:
            uid = entry[0]
            slot = self._choose(slots, _tags_of(ctx, uid))
            if slot is None:
                left.append(entry)
            else:
                self._invite(ctx, cfg, uid, slot, "waiting")
        if len(left) != len(waiting):
            ctx.state.put("waiting", left)
        if left:
            ctx.schedule("retry", at=ctx.now + timedelta(minutes=cfg.retry_minutes))

    # ------------------------------------------------------ new group request

    def _request_group(self, ctx: Context, cfg: CapacityConfig, slots: list[_Slot]) -> None:
        if ctx.state.get("request") is not None:
            return  # asked already: once, not per newcomer
        until = ctx.now + timedelta(hours=cfg.request_timeout_hours)
        keys = [s.key for s in slots]
        ctx.state.put(
            "request",
            {"at": ctx.now.isoformat(), "until": until.isoformat(), "groups": keys, "template": cfg.template},
        )
        ctx.create_group(cfg.template)
        ctx.record("create_group", None, template=cfg.template, groups=keys)
        ctx.schedule("request_timeout", at=until, payload={"at": ctx.now.isoformat()})

    def _settle_request(self, ctx: Context, cfg: CapacityConfig) -> None:
        """A group that was not there when we asked has appeared: the request is done."""
        request = ctx.state.get("request")
        if not isinstance(request, dict):
            return
        current = {r.group for r in self._rules(ctx, cfg)}
        configured = {g.key for g in ctx.community.groups.values()}
        new = sorted((current & configured) - set(request.get("groups") or []))
        if new:
            ctx.state.delete("request")
            ctx.record("group_ready", None, groups=new, template=request.get("template"))

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        cfg = self._entry_config(ctx)
        if job.name == "retry":
            self._drain(ctx, cfg)
        elif job.name == "request_timeout":
            self._settle_request(ctx, cfg)
            request = ctx.state.get("request")
            if not isinstance(request, dict) or request.get("at") != job.payload.get("at"):
                return  # settled, or a later request: nothing to say
            ctx.state.delete("request")
            waiting = len(ctx.state.get("waiting") or [])
            ctx.record("request_timeout", None, template=request.get("template"), waiting=waiting)
            ctx.notify_admins(
                ctx.render(
                    "request_timeout",
                    hours=cfg.request_timeout_hours,
                    group_template=request.get("template", cfg.template),
                    waiting=waiting,
                )
            )

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg = self._entry_config(ctx)
        if command.name == "status":
            return self.status(ctx, cfg)
        if command.name == "route":
            member = command.args.get("member")
            if not isinstance(member, str) or not member.strip():
                raise CommandError(Msg("route needs member=UID"), hint=Msg("e.g. member=u-17"))
            if command.args.get("dry_run"):
                slot = self._choose(self._table(ctx, cfg), _tags_of(ctx, member))
                return {"member": member, "group": slot.key if slot else None, "status": "dry run"}
            return self._route(ctx, cfg, member, how="command")
        return super().on_command(ctx, command)

    def status(self, ctx: Context, cfg: CapacityConfig) -> dict[str, Any]:
        """The routing table, as ``qunyun link`` shows it."""
        self._settle_request(ctx, cfg)
        slots = self._table(ctx, cfg)
        nxt = self._choose(slots, set())
        request = ctx.state.get("request")
        return {
            "entry_group": cfg.entry_group,
            "platform": ctx.group.platform,
            "full_at": cfg.full_at,
            "next": nxt.key if nxt else None,
            "groups": [
                {
                    "group": s.key,
                    "name": s.name,
                    "capacity": s.capacity,
                    "limit": s.limit,
                    "members": s.members,
                    "held": s.held,
                    "room": s.room,
                    "full": s.problem is None and s.room == 0,
                    "tags": list(s.rule.tags),
                    "city": s.rule.city,
                    "exclusive": s.rule.exclusive,
                    "problem": s.problem,
                }
                for s in slots
            ],
            "request": dict(request) if isinstance(request, dict) else None,
            "waiting": len(ctx.state.get("waiting") or []),
        }

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        hold = (ctx.state.get("holds") or {}).get(member)
        if hold is not None:
            found["holds"] = {member: hold}
        waiting = [w for w in ctx.state.get("waiting") or [] if w[0] == member]
        if waiting:
            found["waiting"] = waiting
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        # not super(): it deletes every key export_member names, and "holds" and
        # "waiting" are shared lists of which only this member's entry goes
        for key, _ in ctx.state.scan(f"m:{member}:"):
            ctx.state.delete(key)
        ctx.state.delete(f"m:{member}")
        holds = dict(ctx.state.get("holds") or {})
        if member in holds:
            del holds[member]
            ctx.state.put("holds", holds)
        waiting = list(ctx.state.get("waiting") or [])
        if any(w[0] == member for w in waiting):
            ctx.state.put("waiting", [w for w in waiting if w[0] != member])
