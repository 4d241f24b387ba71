"""elimination (淘汰机制): inactive members are warned, then removed; freed places go to the waiting list.

Once per period (a cron in the community's time zone, monthly by default) the
playbook measures every current member of the group against a KPI — an
expression over the engine's rollup counters of the last ``window_days``
local days, such as ``messages + checkins >= 1``. Members below it are warned
(an @-mention in the group and/or a private message) with a deadline. At the
deadline the KPI is measured again: whoever is still below it and still in
the group is removed, and for every removed member the next person on the
waiting list gets an ``invite``. Protected roles (owner, admin, assistant,
guest by default) and exempt members are never warned nor removed; members
first seen in the group less than ``grace_days`` ago are in a grace period.

The KPI reads the engine's own tables (``rollups``, ``members``,
``memberships``, ``groups``) through ``ctx.db``, read-only. It looks at the
member's whole history in the group, so leaving and coming back neither
resets the window nor starts a new grace period; a warning is kept per
member, so a warned member who leaves and rejoins before the deadline is
still warned.

With ``require_approval`` nothing is said or done to a member without an
admin: the period job (and the deadline) only prepare a *batch* and notify
the admins; the ``approve`` command carries it out after measuring again.
The ``preview`` command is the dry run: who would be warned or removed now,
and why, without acting.

State (community-scoped; group keys in the values or keys):

- ``m:<uid>`` → ``{"warned": {<group>: {"at", "deadline", "batch"?}}, "removed": {<group>: at}}``
- ``g:<group>:warned`` → uids with an open warning in the group
- ``g:<group>:waitlist`` → ``{"queue": [uid, ...], "done": [uid, ...]}``
- ``batch:<id>`` → ``{"id", "group", "kind": warn|remove, "status", "created", "members": [...]}``
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from sqlalchemy import and_, func, or_, select

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron
from qunyun.store import models as m
from qunyun.store.models import ROLLUP_COUNTERS

Role = Literal["owner", "admin", "assistant", "guest", "member"]
_PROTECTED: tuple[Role, ...] = ("owner", "admin", "assistant", "guest")

# ------------------------------------------------------------------ the KPI

_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ARITH = (ast.Add, ast.Sub, ast.Mult)
#: Bounds keep a hostile expression from computing huge numbers.
_MAX_LEN = 500
_MAX_INT = 10**9


def _what(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "function calls are not allowed"
    if isinstance(node, ast.Attribute):
        return "attribute access is not allowed"
    if isinstance(node, ast.Subscript):
        return "indexing is not allowed"
    if isinstance(node, ast.Constant):
        return "only whole numbers are allowed as constants"
    if isinstance(node, ast.BinOp):
        return "only +, - and * are allowed"
    return f"{type(node).__name__} is not allowed"


def _check_kpi(expr: str, node: ast.AST, boolean: bool) -> None:
    """Raise ValueError unless ``node`` uses only the whitelisted constructs."""
    logical = isinstance(node, (ast.BoolOp, ast.Compare)) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    )
    if logical and not boolean:
        raise ValueError(f"KPI {expr!r}: a comparison cannot be used as a number")
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_kpi(expr, value, True)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_kpi(expr, node.operand, True)
        return
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(op, _COMPARE):
                raise ValueError(f"KPI {expr!r}: only ==, !=, <, <=, >, >= compare numbers")
        for operand in (node.left, *node.comparators):
            _check_kpi(expr, operand, False)
        return
    if boolean and isinstance(node, (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp)):
        raise ValueError(
            f"KPI {expr!r}: each part must be a comparison such as `messages >= 1`, "
            "joined with and / or / not"
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITH):
        _check_kpi(expr, node.left, False)
        _check_kpi(expr, node.right, False)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_kpi(expr, node.operand, False)
        return
    if isinstance(node, ast.Name):
        if node.id not in ROLLUP_COUNTERS:
            raise ValueError(
                f"KPI {expr!r}: unknown counter {node.id!r}; known: {', '.join(ROLLUP_COUNTERS)}"
            )
        return
    if isinstance(node, ast.Constant) and type(node.value) is int:
        if abs(node.value) > _MAX_INT:
            raise ValueError(f"KPI {expr!r}: {node.value} is too large (at most {_MAX_INT})")
        return
    part = ast.get_source_segment(expr, node) or type(node).__name__
    raise ValueError(f"KPI {expr!r}: `{part}`: {_what(node)}")


@functools.lru_cache(maxsize=64)
def parse_kpi(expr: str) -> ast.Expression:
    """Parse and check a KPI expression; ValueError with a clear message if it is not allowed.

    Allowed: rollup counter names, whole numbers, ``+ - *``, comparisons,
    ``and``/``or``/``not``. It is evaluated by :func:`kpi_met` over the tree,
    never with ``eval``.
    """
    text = expr.strip()
    if not text:
        raise ValueError("the KPI is empty; write e.g. `messages + checkins >= 1`")
    if len(text) > _MAX_LEN:
        raise ValueError(f"the KPI is longer than {_MAX_LEN} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot read the KPI {text!r}: {exc.msg}") from None
    _check_kpi(text, tree.body, True)
    return tree


def _value(node: ast.AST, counts: dict[str, int]) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_value(v, counts) for v in node.values)
        return any(_value(v, counts) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        inner = _value(node.operand, counts)
        return (not inner) if isinstance(node.op, ast.Not) else -inner
    if isinstance(node, ast.Compare):
        left = _value(node.left, counts)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _value(comparator, counts)
            ok = {
                ast.Eq: left == right,
                ast.NotEq: left != right,
                ast.Lt: left < right,
                ast.LtE: left <= right,
                ast.Gt: left > right,
                ast.GtE: left >= right,
            }[type(op)]
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left, counts), _value(node.right, counts)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        return a * b
    if isinstance(node, ast.Name):
        return counts.get(node.id, 0)
    assert isinstance(node, ast.Constant)
    return node.value


def kpi_met(expr: str, counts: dict[str, int]) -> bool:
    """Whether ``counts`` (rollup counter → total over the window) meet the KPI."""
    return bool(_value(parse_kpi(expr).body, counts))


def kpi_counters(expr: str) -> list[str]:
    """The counters a KPI uses, in order of first appearance (for the "why")."""
    seen: dict[str, None] = {}
    for node in ast.walk(parse_kpi(expr)):
        if isinstance(node, ast.Name):
            seen[node.id] = None
    return [n for n in ROLLUP_COUNTERS if n in seen]


# ------------------------------------------------------------ configuration


class EliminationConfig(PlaybookConfig):
    period: str = Field(
        default="0 10 1 * *",
        description="Cron (community time zone) of the period job that measures everyone: monthly by default.",
    )
    kpi: str = Field(
        default="messages + checkins >= 1",
        description=(
            "What an active member does in `window_days`: an expression over rollup counters "
            "(messages, checkins, replies, reactions_given, …), whole numbers, + - *, comparisons, "
            "and/or/not. Example: `messages >= 3 or checkins >= 5`."
        ),
    )
    window_days: int = Field(default=30, ge=1, le=366, description="The KPI counts the last N local days.")
    grace_days: int = Field(
        default=30, ge=0, le=366,
        description="Members first seen in the group fewer than N days ago are not measured yet.",
    )
    deadline_days: int = Field(
        default=7, ge=1, le=90, description="Days between the warning and the removal."
    )
    protected_roles: list[Role] = Field(
        default_factory=lambda: list(_PROTECTED),
        description="Roles that are never warned nor removed.",
    )
    exempt: list[str] = Field(default_factory=list, description="User ids that are never warned nor removed.")
    scope: Literal["group", "community"] = Field(
        default="group",
        description="Count activity in this group only, or in every group of the community.",
    )
    warn_in_group: bool = Field(default=True, description="Warn with one message in the group that @-mentions them.")
    warn_directly: bool = Field(default=True, description="Also warn each member with a private message.")
    mention_limit: int = Field(
        default=20, ge=1, le=200, description="At most this many @-mentions per warning message (more make more messages)."
    )
    require_approval: bool = Field(
        default=False,
        description="Only prepare batches and notify the admins; the `approve` command carries them out.",
    )
    waitlist: list[str] = Field(
        default_factory=list,
        description="User ids waiting for a place, in order; each removal invites the next one.",
    )

    @field_validator("period")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("kpi")
    @classmethod
    def _kpi(cls, value: str) -> str:
        parse_kpi(value)
        return value.strip()


# ------------------------------------------------------------- assessment


@dataclass
class Verdict:
    """One current member of a group, measured."""

    member: str
    #: active (KPI met), below, grace, protected, exempt
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    first_day: date | None = None


def _group_id(ctx: Context, platform: str, key: str) -> int | None:
    gt = m.table(m.Group)
    row = ctx.db.execute(select(gt.c.id).where(gt.c.platform == platform, gt.c.key == key)).first()
    return None if row is None else int(row[0])


_OWN = ("joins", "messages", "reactions_given", "checkins")


def assess(ctx: Context, platform: str, key: str, cfg: EliminationConfig, as_of: date) -> list[Verdict]:
    """Every current member of group ``key`` measured against the KPI on local day ``as_of``.

    Current members: an active membership, or seen acting in the group (a
    message, reaction or check-in) without any join or leave on record —
    the group existed before qunyun did. Members we removed whose leaving
    has not arrived yet are not current.
    """
    gid = _group_id(ctx, platform, key)
    if gid is None:
        return []
    conn = ctx.db
    mem, ms, rt = m.table(m.Member), m.table(m.Membership), m.table(m.Rollup)
    current: dict[int, tuple[str, datetime | None]] = {}
    for mid, uid, joined in conn.execute(
        select(mem.c.id, mem.c.user_id, ms.c.joined_at)
        .select_from(ms.join(mem, mem.c.id == ms.c.member_id))
        .where(ms.c.group_id == gid, ms.c.status == "active", mem.c.erased.is_(False))
    ):
        current[int(mid)] = (uid, joined)
    own = or_(*(rt.c[c] > 0 for c in _OWN))
    for mid, uid in conn.execute(
        select(mem.c.id, mem.c.user_id)
        .select_from(
            rt.join(mem, mem.c.id == rt.c.member_id).outerjoin(
                ms, and_(ms.c.group_id == rt.c.group_id, ms.c.member_id == rt.c.member_id)
            )
        )
        .where(rt.c.group_id == gid, ms.c.id.is_(None), mem.c.erased.is_(False), own)
        .distinct()
    ):
        current.setdefault(int(mid), (uid, None))
    if not current:
        return []
    first: dict[int, date] = {
        int(mid): day
        for mid, day in conn.execute(
            select(rt.c.member_id, func.min(rt.c.day)).where(rt.c.group_id == gid, own).group_by(rt.c.member_id)
        )
    }
    since = as_of - timedelta(days=cfg.window_days)
    where = [rt.c.day > since, rt.c.day <= as_of]
    where.append(rt.c.group_id == gid if cfg.scope == "group" else rt.c.community_id == ctx.community.id)
    totals: dict[int, dict[str, int]] = {}
    for row in conn.execute(
        select(rt.c.member_id, *(func.sum(rt.c[c]) for c in ROLLUP_COUNTERS)).where(*where).group_by(rt.c.member_id)
    ):
        totals[int(row[0])] = {c: int(v or 0) for c, v in zip(ROLLUP_COUNTERS, row[1:], strict=True)}
    removed_at: dict[str, str] = {}
    for skey, mine in ctx.state.scan("m:"):
        when = (mine.get("removed") or {}).get(key) if isinstance(mine, dict) else None
        if when is not None:
            removed_at[skey[2:]] = when
    used = kpi_counters(cfg.kpi)
    grace_from = as_of - timedelta(days=cfg.grace_days)
    out: list[Verdict] = []
    for mid, (uid, joined) in current.items():
        removed = removed_at.get(uid)
        if removed is not None and (joined is None or joined <= datetime.fromisoformat(removed)):
            continue  # we removed them; the platform has not told us they are gone yet
        counts = totals.get(mid, {})
        shown = {c: counts.get(c, 0) for c in used}
        day = first.get(mid)
        if day is None and joined is not None:
            day = ctx.local_day(joined)
        if ctx.role(uid) in cfg.protected_roles:
            status = "protected"
        elif uid in cfg.exempt:
            status = "exempt"
        elif kpi_met(cfg.kpi, counts):
            status = "active"
        elif day is not None and day > grace_from:
            status = "grace"
        else:
            status = "below"
        out.append(Verdict(uid, status, shown, day))
    out.sort(key=lambda v: v.member)
    return out


# ---------------------------------------------------------------- playbook


class Elimination(Playbook):
    id = "elimination"
    version = "1"
    config_model = EliminationConfig
    handles = frozenset({"member_joined"})
    emits = frozenset({"send", "direct", "remove", "invite", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "preview": "Who would be warned or removed now, and why (changes nothing). Args: as_of (date), group.",
        "approve": "Carry out a prepared batch. Args: batch (id), exclude (user ids to leave out).",
        "discard": "Drop a prepared batch without acting. Args: batch (id).",
        "waitlist_add": "Put someone on a group's waiting list. Args: member, group.",
        "waitlist": "Show a group's waiting list. Args: group.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "淘汰机制：定期提醒不活跃成员，到期仍不活跃则移出，空出的位置邀请候补。",
        "en": "Warns inactive members each period, removes them at the deadline and invites the waiting list.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "warn_group": {
            "zh-CN": "⏰ {names}：最近 {days} 天没见到你们的发言或打卡啦。请在 {deadline} 前来群里说句话，"
            "否则会把位置让给正在排队的朋友。",
            "en": "⏰ {names}: we have not heard from you in {days} days. Say something here before "
            "{deadline}, or your place goes to someone on the waiting list.",
        },
        "warn_direct": {
            "zh-CN": "你好 {name}，「{group}」最近 {days} 天没有看到你的动态。{deadline} 前在群里发个言或打个卡，"
            "就能继续留在群里；到时仍不活跃，位置会留给排队的朋友。",
            "en": "Hi {name}, we have missed you in {group} for {days} days. Post or check in there before "
            "{deadline} to keep your place; otherwise it goes to someone who is waiting.",
        },
        "remove_reason": {
            "zh-CN": "最近 {days} 天未达到活跃要求（{kpi}），提醒后到期仍未达到",
            "en": "below the activity requirement ({kpi}) for {days} days, still below it at the deadline",
        },
        "removed_admins": {
            "zh-CN": "🧹「{group}」本轮移出 {count} 位不活跃成员：{names}。邀请候补 {invited} 人。",
            "en": "🧹 {group}: {count} inactive members removed this round: {names}. {invited} invited from the waiting list.",
        },
        "batch_warn": {
            "zh-CN": "📝「{group}」有 {count} 位成员低于活跃要求，待批准后发出提醒：{names}\n"
            "批准：qunyun elimination approve {batch}",
            "en": "📝 {group}: {count} members are below the activity requirement and will be warned once "
            "approved: {names}\nApprove: qunyun elimination approve {batch}",
        },
        "batch_remove": {
            "zh-CN": "📝「{group}」有 {count} 位成员提醒到期仍不活跃，待批准后移出：{names}\n"
            "批准：qunyun elimination approve {batch}",
            "en": "📝 {group}: {count} warned members are still inactive at the deadline and will be removed "
            "once approved: {names}\nApprove: qunyun elimination approve {batch}",
        },
    }

    # ---------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: EliminationConfig = ctx.config
        ctx.schedule("period", cron=cfg.period)

    # --------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        """A waitlisted person who joins has their place: off the list."""
        uid = event.actor.id
        key = _waitlist_key(ctx.group.key)
        wl = ctx.state.get(key)
        cfg: EliminationConfig = ctx.config
        if (wl and uid in wl.get("queue", ())) or (uid in cfg.waitlist and uid not in (wl or {}).get("done", ())):
            wl = _waitlist(ctx, ctx.group.key)
            wl["queue"] = [u for u in wl["queue"] if u != uid]
            if uid not in wl["done"]:
                wl["done"].append(uid)
            ctx.state.put(key, wl)

    # ----------------------------------------------------------------- jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == "period":
            self._period(ctx)
        elif job.name == "deadline":
            self._deadline(ctx)

    def _period(self, ctx: Context) -> None:
        cfg: EliminationConfig = ctx.config
        gkey = ctx.group.key
        warned = set(ctx.state.get(_warned_key(gkey)) or [])
        below = [
            v for v in assess(ctx, ctx.group.platform, gkey, cfg, ctx.today)
            if v.status == "below" and v.member not in warned
        ]
        if not below:
            return
        if cfg.require_approval:
            self._prepare(ctx, "warn", below)
        else:
            self._warn(ctx, below, batch=None)

    def _deadline(self, ctx: Context) -> None:
        cfg: EliminationConfig = ctx.config
        gkey = ctx.group.key
        due = []
        for uid in ctx.state.get(_warned_key(gkey)) or []:
            entry = _warning(ctx, uid, gkey)
            if entry and "batch" not in entry and datetime.fromisoformat(entry["deadline"]) <= ctx.now:
                due.append(uid)
        if not due:
            return
        judged = {v.member: v for v in assess(ctx, ctx.group.platform, gkey, cfg, ctx.today)}
        out = []
        for uid in due:
            verdict = judged.get(uid)
            if verdict is not None and verdict.status == "below":
                out.append(verdict)
            else:
                self._close(ctx, uid, "spared" if verdict is not None else "gone", verdict)
        if out:
            if cfg.require_approval:
                self._prepare(ctx, "remove", out)
            else:
                self._remove(ctx, out, batch=None)
        self._schedule_next_deadline(ctx)

    # -------------------------------------------------------------- acting

    def _warn(self, ctx: Context, verdicts: list[Verdict], batch: str | None) -> list[str]:
        cfg: EliminationConfig = ctx.config
        gkey = ctx.group.key
        deadline = ctx.now + timedelta(days=cfg.deadline_days)
        shown = _local_time(ctx, deadline)
        uids = [v.member for v in verdicts]
        for v in verdicts:
            mine = dict(ctx.state.get(f"m:{v.member}") or {})
            warned = dict(mine.get("warned") or {})
            warned[gkey] = {"at": ctx.now.isoformat(), "deadline": deadline.isoformat()}
            mine["warned"] = warned
            ctx.state.put(f"m:{v.member}", mine)
            ctx.record("warned", member=v.member, group=gkey, deadline=deadline.isoformat(), counts=v.counts, batch=batch)
        listed = list(ctx.state.get(_warned_key(gkey)) or [])
        ctx.state.put(_warned_key(gkey), listed + [u for u in uids if u not in listed])
        if cfg.warn_in_group:
            for start in range(0, len(uids), cfg.mention_limit):
                chunk = uids[start : start + cfg.mention_limit]
                names = _names(ctx, chunk, at=True)
                ctx.send(ctx.render("warn_group", names=names, days=cfg.window_days, deadline=shown), mentions=chunk)
        if cfg.warn_directly:
            for uid in uids:
                ctx.direct(
                    uid,
                    ctx.render("warn_direct", name=ctx.name(uid), group=ctx.group.name, days=cfg.window_days, deadline=shown),
                )
        self._schedule_next_deadline(ctx)
        return uids

    def _remove(self, ctx: Context, verdicts: list[Verdict], batch: str | None) -> tuple[list[str], list[str]]:
        cfg: EliminationConfig = ctx.config
        reason = ctx.render("remove_reason", days=cfg.window_days, kpi=cfg.kpi)
        uids = [v.member for v in verdicts]
        for v in verdicts:
            ctx.remove(v.member, reason)
            self._close(ctx, v.member, "removed", v, batch=batch)
        invited = self._invite_next(ctx, len(uids))
        ctx.notify_admins(
            ctx.render(
                "removed_admins", group=ctx.group.name, count=len(uids), names=_names(ctx, uids), invited=len(invited)
            )
        )
        return uids, invited

    def _close(self, ctx: Context, uid: str, outcome: str, verdict: Verdict | None, batch: str | None = None) -> None:
        """End ``uid``'s warning in this group: spared, gone (left) or removed."""
        gkey = ctx.group.key
        mine = dict(ctx.state.get(f"m:{uid}") or {})
        warned = dict(mine.get("warned") or {})
        warned.pop(gkey, None)
        mine["warned"] = warned
        if outcome == "removed":
            mine["removed"] = {**(mine.get("removed") or {}), gkey: ctx.now.isoformat()}
        if not mine["warned"]:
            del mine["warned"]
        if mine:
            ctx.state.put(f"m:{uid}", mine)
        else:
            ctx.state.delete(f"m:{uid}")
        listed = [u for u in ctx.state.get(_warned_key(gkey)) or [] if u != uid]
        if listed:
            ctx.state.put(_warned_key(gkey), listed)
        else:
            ctx.state.delete(_warned_key(gkey))
        ctx.record(outcome, member=uid, group=gkey, counts=verdict.counts if verdict else {}, batch=batch)

    def _invite_next(self, ctx: Context, places: int) -> list[str]:
        if places <= 0:
            return []
        cfg: EliminationConfig = ctx.config
        gkey = ctx.group.key
        wl = _waitlist(ctx, gkey)
        members = {v.member for v in assess(ctx, ctx.group.platform, gkey, cfg, ctx.today)}
        invited: list[str] = []
        for uid in [*cfg.waitlist, *wl["queue"]]:
            if len(invited) == places:
                break
            if uid in wl["done"] or uid in invited or uid in members:
                continue
            ctx.invite(uid)
            ctx.record("invited", member=uid, group=gkey)
            invited.append(uid)
        if invited:
            wl["queue"] = [u for u in wl["queue"] if u not in invited]
            wl["done"] = [*wl["done"], *invited]
            ctx.state.put(_waitlist_key(gkey), wl)
        return invited

    def _prepare(self, ctx: Context, kind: str, verdicts: list[Verdict]) -> str:
        """require_approval: keep the list as a batch and tell the admins."""
        gkey = ctx.group.key
        batch = f"{kind}-{ctx.today:%Y%m%d}-{gkey}"
        # a newer batch of the same kind replaces an unapproved older one
        for key, old in list(ctx.state.scan("batch:")):
            if old["group"] == gkey and old["kind"] == kind and old["status"] == "pending" and old["id"] != batch:
                ctx.state.put(key, {**old, "status": "superseded"})
                self._unmark(ctx, old)
        existing = ctx.state.get(f"batch:{batch}")
        listed = list(existing["members"]) if existing and existing["status"] == "pending" else []
        known = {e["member"] for e in listed}
        listed += [{"member": v.member, "counts": v.counts} for v in verdicts if v.member not in known]
        ctx.state.put(
            f"batch:{batch}",
            {"id": batch, "group": gkey, "kind": kind, "status": "pending", "created": ctx.now.isoformat(), "members": listed},
        )
        if kind == "remove":
            for v in verdicts:
                mine = dict(ctx.state.get(f"m:{v.member}") or {})
                warned = dict(mine.get("warned") or {})
                if gkey in warned:
                    warned[gkey] = {**warned[gkey], "batch": batch}
                    ctx.state.put(f"m:{v.member}", {**mine, "warned": warned})
        ctx.record("batch", None, batch=batch, batch_kind=kind, count=len(listed))
        uids = [e["member"] for e in listed]
        ctx.notify_admins(
            ctx.render(f"batch_{kind}", group=ctx.group.name, count=len(uids), names=_names(ctx, uids), batch=batch)
        )
        return batch

    def _unmark(self, ctx: Context, batch: dict[str, Any]) -> None:
        """A removal batch that will not be approved: its members' warnings count again."""
        if batch["kind"] != "remove":
            return
        gkey = batch["group"]
        for entry in batch["members"]:
            mine = dict(ctx.state.get(f"m:{entry['member']}") or {})
            warned = dict(mine.get("warned") or {})
            if gkey in warned and warned[gkey].get("batch") == batch["id"]:
                warned[gkey] = {k: v for k, v in warned[gkey].items() if k != "batch"}
                ctx.state.put(f"m:{entry['member']}", {**mine, "warned": warned})

    def _schedule_next_deadline(self, ctx: Context) -> None:
        gkey = ctx.group.key
        pending = []
        for uid in ctx.state.get(_warned_key(gkey)) or []:
            entry = _warning(ctx, uid, gkey)
            if entry and "batch" not in entry:
                pending.append(datetime.fromisoformat(entry["deadline"]))
        future = [d for d in pending if d > ctx.now]
        if future:
            ctx.schedule("deadline", at=min(future), key="deadline")
        elif not pending:
            ctx.cancel("deadline")

    # ------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        if command.name == "preview":
            return self._preview(ctx, args)
        if command.name == "approve":
            return self._approve(ctx, args, command.actor)
        if command.name == "discard":
            batch = self._batch(ctx, args)
            ctx.state.put(f"batch:{batch['id']}", {**batch, "status": "discarded"})
            self._unmark(ctx, batch)
            return {"batch": batch["id"], "status": "discarded"}
        if command.name == "waitlist_add":
            member = _text_arg(args, "member")
            gkey = self._group_arg(ctx, args)
            wl = _waitlist(ctx, gkey)
            if member not in wl["queue"]:
                wl["queue"].append(member)
                wl["done"] = [u for u in wl["done"] if u != member]
                ctx.state.put(_waitlist_key(gkey), wl)
            return {"group": gkey, "member": member, "position": wl["queue"].index(member) + 1}
        if command.name == "waitlist":
            gkey = self._group_arg(ctx, args)
            cfg = self._config_of(ctx, gkey)
            wl = _waitlist(ctx, gkey)
            waiting = [u for u in dict.fromkeys([*cfg.waitlist, *wl["queue"]]) if u not in wl["done"]]
            return {"group": gkey, "waiting": waiting, "invited": wl["done"]}
        return super().on_command(ctx, command)

    def _group_arg(self, ctx: Context, args: dict[str, Any]) -> str:
        gkey = args.get("group") or ctx.group.key
        if not isinstance(gkey, str):
            raise CommandError(Msg("group must be a group id"))
        self._config_of(ctx, gkey)
        return gkey

    def _config_of(self, ctx: Context, gkey: str) -> EliminationConfig:
        for g in ctx.community.groups.values():
            if g.key == gkey:
                cfg = g.playbooks.get(self.id)
                if cfg is None:
                    raise CommandError(Msg("elimination does not run in group {group!r}", group=gkey))
                return cfg  # type: ignore[no-any-return]
        raise CommandError(Msg("community {community!r} has no group {group!r}", community=ctx.community.id, group=gkey))

    def _preview(self, ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        raw = args.get("as_of")
        try:
            as_of = date.fromisoformat(raw) if raw else ctx.today
        except (TypeError, ValueError):
            raise CommandError(Msg("as_of must be a date like 2026-12-01, not {value!r}", value=raw)) from None
        only = args.get("group")
        if only is not None:
            self._config_of(ctx, only)
        groups = []
        for g in ctx.community.groups.values():
            cfg = g.playbooks.get(self.id)
            if cfg is None or (only is not None and g.key != only):
                continue
            verdicts = assess(ctx, g.platform, g.key, cfg, as_of)
            warned = set(ctx.state.get(_warned_key(g.key)) or [])
            warn, remove = [], []
            for v in verdicts:
                row = {"member": v.member, "name": ctx.name(v.member), "counts": v.counts,
                       "first_seen": v.first_day.isoformat() if v.first_day else None}
                if v.member in warned:
                    entry = _warning(ctx, v.member, g.key) or {}
                    if v.status == "below":
                        remove.append({**row, "deadline": entry.get("deadline"), "batch": entry.get("batch")})
                elif v.status == "below":
                    warn.append(row)
            tally: dict[str, int] = {}
            for v in verdicts:
                tally[v.status] = tally.get(v.status, 0) + 1
            groups.append({
                "group": g.key, "name": g.name, "kpi": cfg.kpi, "window_days": cfg.window_days,
                "members": len(verdicts), "by_status": tally, "warn": warn, "remove": remove,
                "pending_batches": [b["id"] for _, b in ctx.state.scan("batch:")
                                    if b["group"] == g.key and b["status"] == "pending"],
            })
        return {"as_of": as_of.isoformat(), "groups": groups}

    def _batch(self, ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        bid = _text_arg(args, "batch")
        batch = ctx.state.get(f"batch:{bid}")
        if batch is None:
            raise CommandError(Msg("no elimination batch {batch!r}", batch=bid),
                               hint=Msg("`qunyun elimination preview` lists pending batches"))
        if batch["status"] != "pending":
            raise CommandError(Msg("batch {batch!r} is {status}, not pending", batch=bid, status=batch["status"]))
        return dict(batch)

    def _approve(self, ctx: Context, args: dict[str, Any], actor: str) -> dict[str, Any]:
        batch = self._batch(ctx, args)
        gkey = batch["group"]
        if gkey != ctx.group.key:
            raise CommandError(
                Msg("batch {batch!r} belongs to group {group!r}", batch=batch["id"], group=gkey),
                hint=Msg("run the command in that group (--group {group})", group=gkey),
            )
        exclude = args.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(u, str) for u in exclude):
            raise CommandError(Msg("exclude must be a list of user ids"))
        cfg: EliminationConfig = ctx.config
        judged = {v.member: v for v in assess(ctx, ctx.group.platform, gkey, cfg, ctx.today)}
        warned = set(ctx.state.get(_warned_key(gkey)) or [])
        go: list[Verdict] = []
        skipped: list[dict[str, str]] = []
        for entry in batch["members"]:
            uid = entry["member"]
            v = judged.get(uid)
            if uid in exclude:
                skipped.append({"member": uid, "why": "excluded"})
                if batch["kind"] == "remove":
                    self._close(ctx, uid, "spared", v, batch=batch["id"])
                    ctx.record("excluded", member=uid, group=gkey, by=actor, batch=batch["id"])
            elif v is None:
                skipped.append({"member": uid, "why": "not a member"})
                if batch["kind"] == "remove" and uid in warned:
                    self._close(ctx, uid, "gone", None, batch=batch["id"])
            elif v.status != "below":
                skipped.append({"member": uid, "why": v.status})
                if batch["kind"] == "remove" and uid in warned:
                    self._close(ctx, uid, "spared", v, batch=batch["id"])
            elif batch["kind"] == "warn" and uid in warned:
                skipped.append({"member": uid, "why": "already warned"})
            else:
                go.append(v)
        result: dict[str, Any] = {"batch": batch["id"], "kind": batch["kind"], "group": gkey, "skipped": skipped}
        if batch["kind"] == "warn":
            result["warned"] = self._warn(ctx, go, batch=batch["id"]) if go else []
        else:
            removed, invited = self._remove(ctx, go, batch=batch["id"]) if go else ([], [])
            result["removed"], result["invited"] = removed, invited
            self._schedule_next_deadline(ctx)
        ctx.state.put(f"batch:{batch['id']}", {**batch, "status": "approved", "approved_by": actor,
                                                "approved_at": ctx.now.isoformat()})
        return result

    # -------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mine = ctx.state.get(f"m:{member}")
        if mine is not None:
            out[f"m:{member}"] = mine
        for key, value in ctx.state.scan("g:"):
            if key.endswith(":warned") and member in value:
                out[key] = True
            elif key.endswith(":waitlist") and (member in value.get("queue", ()) or member in value.get("done", ())):
                out[key] = {"waiting": member in value.get("queue", ()), "invited": member in value.get("done", ())}
        for key, batch in ctx.state.scan("batch:"):
            entries = [e for e in batch.get("members", ()) if e.get("member") == member]
            if entries:
                out[key] = entries
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        ctx.state.delete(f"m:{member}")
        for key, value in list(ctx.state.scan("g:")):
            if key.endswith(":warned") and member in value:
                ctx.state.put(key, [u for u in value if u != member])
            elif key.endswith(":waitlist"):
                queue, done = value.get("queue", []), value.get("done", [])
                if member in queue or member in done:
                    ctx.state.put(key, {"queue": [u for u in queue if u != member],
                                        "done": [u for u in done if u != member]})
        for key, batch in list(ctx.state.scan("batch:")):
            kept = [e for e in batch.get("members", ()) if e.get("member") != member]
            if len(kept) != len(batch.get("members", ())):
                ctx.state.put(key, {**batch, "members": kept})


def _warned_key(gkey: str) -> str:
    return f"g:{gkey}:warned"


def _waitlist_key(gkey: str) -> str:
    return f"g:{gkey}:waitlist"


def _waitlist(ctx: Context, gkey: str) -> dict[str, list[str]]:
    raw = ctx.state.get(_waitlist_key(gkey)) or {}
    return {"queue": list(raw.get("queue", [])), "done": list(raw.get("done", []))}


def _warning(ctx: Context, uid: str, gkey: str) -> dict[str, Any] | None:
    found = ((ctx.state.get(f"m:{uid}") or {}).get("warned") or {}).get(gkey)
    return found if isinstance(found, dict) else None


def _names(ctx: Context, uids: list[str], at: bool = False) -> str:
    sep = "、" if ctx.locale == "zh-CN" else ", "
    return sep.join(("@" if at else "") + ctx.name(u) for u in uids)


def _local_time(ctx: Context, when: datetime) -> str:
    return when.astimezone(ctx.community.tz).strftime("%Y-%m-%d %H:%M")


def _text_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CommandError(Msg("the command needs {name}=<text>", name=name))
    return value.strip()
