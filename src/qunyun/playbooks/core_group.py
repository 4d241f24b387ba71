"""core_group (核心小群): each period, the top contributors are invited to the core group.

Once per period (``period``, a cron in the community's time zone: the 1st of
each month at 10:00 by default) the playbook scores every member over the
complete local days since the previous run (the first time: the last
``window_days`` days; never more than a year) and takes the ``top`` members
by score (ties: lower user id first). Each of them who is not in the core group
yet (an active membership there) and has never been invited by this
playbook gets an ``invite`` into the group ``core_group`` and a private
message saying why; the admins get one summary. Members with a
``protected_roles`` role (staff, who are usually in the core group already)
and the ``exempt`` user ids (interaction accounts, bots) are left out of the
ranking altogether. A member is invited at most once: someone who declined
or left is not asked again (an operator can still invite by hand).

The score is a weighted sum (``weights``) of:

- ``points``: points earned in the window — the sum of the positive ledger
  postings to the member's ``member:<platform>:<uid>:POINTS`` account (the
  ledger is read through ``ctx.db``, read-only);
- ``qa``: the member's answerer score in the ``qa`` playbook's
  ``week:<W>`` of each ISO week whose Sunday falls in the window;
- ``essence``: the number of the member's messages the ``essence`` playbook
  kept (``e:<msg_id>``) with a day in the window;
- ``shares``: the member's shares in the ``sessions`` playbook's
  ``week:<W>``, weeks counted as for ``qa``.

By default only points count (``{points: 1}``). A source whose playbook
does not run contributes nothing.

The job runs in one group: the admins' group if it runs the playbook, else
the first group that does. Without ``core_group`` it does nothing.

When an invited member joins the core group, the time is noted
(``joined``), so the operator can see how many invitations are accepted.

State: ``m:<uid>`` → ``{"invited": iso, "score": n, "window": [first, last],
"joined": iso}``; ``last`` → the last day the previous run measured.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from sqlalchemy import func, select

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron
from qunyun.store import models as m

Role = Literal["owner", "admin", "assistant", "guest", "member"]
_STAFF: tuple[Role, ...] = ("owner", "admin", "assistant")
SOURCES = ("points", "qa", "essence", "shares")
_JOB = "period"


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class CoreGroupConfig(PlaybookConfig):
    core_group: str | None = Field(
        default=None, description="The core group's id (a group of this community, same platform); unset: off."
    )
    period: str = Field(default="0 10 1 * *", description="Cron (community time zone) of each period's invitations.")
    window_days: int = Field(
        default=30, ge=1, le=366,
        description="The first period measured: this many complete local days (later: every day since the last run).",
    )
    top: int = Field(default=5, ge=1, le=100, description="How many top contributors are invited each period.")
    weights: dict[str, int] = Field(
        default_factory=lambda: {"points": 1},
        description="Score = Σ weight × source; sources: points, qa, essence, shares.",
    )
    min_score: int = Field(default=1, ge=1, description="A member needs at least this score to be invited.")
    protected_roles: list[Role] = Field(
        default_factory=lambda: list(_STAFF),
        description="Members with these roles are never ranked nor invited (staff).",
    )
    exempt: list[str] = Field(
        default_factory=list, description="User ids never ranked nor invited (interaction accounts, bots)."
    )

    @field_validator("period")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        for source, weight in value.items():
            if source not in SOURCES:
                raise ValueError(f"unknown score source {source!r}; use: {', '.join(SOURCES)}")
            if weight < 0:
                raise ValueError(f"weight of {source} must be 0 or more, not {weight}")
        if not any(value.values()):
            raise ValueError("at least one source needs a positive weight, e.g. {points: 1}")
        return value

    @field_validator("core_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a group id, or null to switch the invitations off")
        return value


def _home(ctx: Context, pid: str) -> bool:
    groups = list(ctx.community.groups.values())
    admins = [g for g in groups if g.admin and pid in g.playbooks]
    home = admins[0] if admins else next((g for g in groups if pid in g.playbooks), None)
    return home is not None and (home.platform, home.key) == (ctx.group.platform, ctx.group.key)


class CoreGroup(Playbook):
    id = "core_group"
    version = "1"
    config_model = CoreGroupConfig
    handles = frozenset({"member_joined"})
    emits = frozenset({"invite", "direct", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "preview": "The ranking of the period ending today and who would be invited (changes nothing).",
        "run": "Invite this period's top contributors now.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "核心小群：每个周期把贡献最多的成员邀请进核心群。",
        "en": "Core group: each period, the top contributors are invited into the core group.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "invited": {
            "zh-CN": "🌟 恭喜！{first} 至 {last} 你是社群里贡献最多的成员之一（贡献分 {score}），"
            "特邀你加入核心群「{group}」，邀请已经发出，期待你的加入！",
            "en": "🌟 Congratulations! From {first} to {last} you were one of the community's top "
            "contributors (score {score}). You are invited to the core group {group}: the invitation is on its way.",
        },
        "summary": {
            "zh-CN": "🌟 核心群「{group}」本期（{first} 至 {last}）邀请：{names}",
            "en": "🌟 Core group {group}, period {first} to {last}: invited {names}",
        },
        "missing": {
            "zh-CN": "⚠️ 找不到核心群「{group}」（或它不在同一平台上），本期没有发出邀请。请检查 core_group 的配置。",
            "en": "⚠️ The core group {group} was not found on this platform, so nobody was invited. "
            "Please check the core_group setting.",
        },
    }

    def setup(self, ctx: Context) -> None:
        cfg: CoreGroupConfig = ctx.config
        if cfg.core_group and _home(ctx, self.id):
            ctx.schedule(_JOB, cron=cfg.period)
        else:
            ctx.cancel(_JOB)

    def on_event(self, ctx: Context, event: Any) -> None:
        """An invited member joining the core group: note when (how many accept is worth knowing)."""
        cfg: CoreGroupConfig = ctx.config
        if event.group != cfg.core_group:
            return
        uid = event.actor.id
        st = ctx.state.get(f"m:{uid}")
        if isinstance(st, dict) and "joined" not in st:
            ctx.state.put(f"m:{uid}", {**st, "joined": event.ts.isoformat()})
            ctx.record("joined", uid, invited=st.get("invited"))

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == _JOB:
            self._run(ctx, dry=False)

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: CoreGroupConfig = ctx.config
        if command.name not in ("preview", "run"):
            return super().on_command(ctx, command)
        if not cfg.core_group:
            raise CommandError(Msg("no core group is configured"),
                               hint=Msg("set core_group: <group id> under core_group"))
        return self._run(ctx, dry=command.name == "preview")

    # ----------------------------------------------------------------- work

    def _run(self, ctx: Context, *, dry: bool) -> dict[str, Any]:
        cfg: CoreGroupConfig = ctx.config
        key = cfg.core_group
        assert key is not None
        last = ctx.today - timedelta(days=1)
        first = last - timedelta(days=cfg.window_days - 1)
        previous = ctx.state.get("last")
        if isinstance(previous, str):
            # the period is everything since the last run's window, so no day is missed or counted twice
            first = max(date.fromisoformat(previous) + timedelta(days=1), last - timedelta(days=365))
        target = next(
            (g for g in ctx.community.groups.values() if g.key == key and g.platform == ctx.group.platform), None
        )
        if target is None:
            if not dry:
                ctx.notify_admins(ctx.render("missing", group=key))
            return {"error": f"core group {key!r} not found on {ctx.group.platform}"}
        scores = self._scores(ctx, first, last)
        ranking = sorted(
            ((s, uid) for uid, s in scores.items() if s >= cfg.min_score and self._rankable(ctx, uid)),
            key=lambda r: (-r[0], r[1]),
        )[: cfg.top]
        inside = self._inside(ctx, target.platform, key)
        invite: list[tuple[str, int]] = []
        for score, uid in ranking:
            if uid in inside or ctx.state.get(f"m:{uid}") is not None:
                continue
            invite.append((uid, score))
        result = {
            "window": [first.isoformat(), last.isoformat()],
            "top": [{"member": uid, "score": s, "in_core_group": uid in inside} for s, uid in ranking],
            "invite": [uid for uid, _ in invite],
        }
        if dry:
            return result
        if first <= last:
            ctx.state.put("last", last.isoformat())
        if not invite:
            ctx.record("period", None, window=result["window"], invited=[])
            return result
        name = target.name
        for uid, score in invite:
            ctx.invite(uid, group=key)
            ctx.direct(
                uid,
                ctx.render("invited", first=first.isoformat(), last=last.isoformat(), score=score, group=name),
            )
            ctx.state.put(f"m:{uid}", {"invited": ctx.now.isoformat(), "score": score,
                                       "window": result["window"]})
            ctx.record("invited", uid, score=score, window=result["window"])
        sep = "、" if ctx.locale == "zh-CN" else ", "
        ctx.notify_admins(
            ctx.render(
                "summary", group=name, first=first.isoformat(), last=last.isoformat(),
                names=sep.join(f"{ctx.name(uid)}（{s}）" if ctx.locale == "zh-CN" else f"{ctx.name(uid)} ({s})"
                               for uid, s in invite),
            )
        )
        ctx.record("period", None, window=result["window"], invited=result["invite"])
        return result

    def _rankable(self, ctx: Context, uid: str) -> bool:
        cfg: CoreGroupConfig = ctx.config
        return ctx.role(uid) not in cfg.protected_roles and uid not in cfg.exempt

    def _inside(self, ctx: Context, platform: str, key: str) -> set[str]:
        """User ids with an active membership in the core group."""
        gt, ms, mt = m.table(m.Group), m.table(m.Membership), m.table(m.Member)
        rows = ctx.db.execute(
            select(mt.c.user_id)
            .select_from(ms.join(gt, gt.c.id == ms.c.group_id).join(mt, mt.c.id == ms.c.member_id))
            .where(gt.c.platform == platform, gt.c.key == key, ms.c.status == "active")
        )
        return {r[0] for r in rows}

    # --------------------------------------------------------------- scores

    def _scores(self, ctx: Context, first: date, last: date) -> dict[str, int]:
        cfg: CoreGroupConfig = ctx.config
        total: dict[str, int] = {}

        def add(part: dict[str, int], weight: int) -> None:
            for uid, n in part.items():
                total[uid] = total.get(uid, 0) + weight * n

        w = cfg.weights
        if w.get("points"):
            add(self._points(ctx, first, last), w["points"])
        weeks = self._weeks(first, last)
        if w.get("qa") and any("qa" in g.playbooks for g in ctx.community.groups.values()):
            qa = ctx.state_of("qa")
            for week in weeks:
                st = qa.get(f"week:{week}")
                answerers = st.get("answerers") if isinstance(st, dict) else None
                if isinstance(answerers, dict):
                    add({u: v for u, v in answerers.items() if _is_int(v)}, w["qa"])
        if w.get("shares") and any("sessions" in g.playbooks for g in ctx.community.groups.values()):
            sessions = ctx.state_of("sessions")
            for week in weeks:
                st = sessions.get(f"week:{week}")
                shares = st.get("shares") if isinstance(st, dict) else None
                if isinstance(shares, dict):
                    add({u: v for u, v in shares.items() if _is_int(v)}, w["shares"])
        if w.get("essence") and any("essence" in g.playbooks for g in ctx.community.groups.values()):
            counts: dict[str, int] = {}
            lo, hi = first.isoformat(), last.isoformat()
            for _, e in ctx.state_of("essence").scan("e:"):
                if isinstance(e, dict) and isinstance(e.get("by"), str) and lo <= str(e.get("day", "")) <= hi:
                    counts[e["by"]] = counts.get(e["by"], 0) + 1
            add(counts, w["essence"])
        return total

    @staticmethod
    def _weeks(first: date, last: date) -> list[str]:
        """ISO weeks whose Sunday falls in [first, last]."""
        out = []
        day = first + timedelta(days=(7 - first.isoweekday()) % 7)  # the first Sunday on or after first
        while day <= last:
            out.append(_iso_week(day))
            day += timedelta(days=7)
        return out

    def _points(self, ctx: Context, first: date, last: date) -> dict[str, int]:
        """Points earned (positive postings) per member in the local days [first, last]."""
        tz = ctx.community.tz
        start = datetime.combine(first, time(0), tz)
        end = datetime.combine(last + timedelta(days=1), time(0), tz)
        at, pt, tt, mt = m.table(m.Account), m.table(m.Posting), m.table(m.LedgerTransaction), m.table(m.Member)
        platform = ctx.group.platform
        rows = ctx.db.execute(
            select(mt.c.user_id, at.c.code, func.sum(pt.c.amount))
            .select_from(
                pt.join(at, at.c.id == pt.c.account_id)
                .join(tt, tt.c.id == pt.c.transaction_id)
                .join(mt, mt.c.id == at.c.member_id)
            )
            .where(
                at.c.community_id == ctx.community.id,
                at.c.currency == "POINTS",
                mt.c.platform == platform,
                pt.c.amount > 0,
                tt.c.ts >= start,
                tt.c.ts < end,
            )
            .group_by(mt.c.user_id, at.c.code)
        )
        return {
            uid: int(n)
            for uid, code, n in rows
            if code == f"member:{platform}:{uid}:POINTS" and n
        }

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        st = ctx.state.get(f"m:{member}")
        return {} if st is None else {f"m:{member}": st}

    def erase_member(self, ctx: Context, member: str) -> None:
        ctx.state.delete(f"m:{member}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
