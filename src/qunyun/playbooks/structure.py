"""structure (成员结构): the community's member mix against a target, with a drift warning.

Everyone in the community has a **role**: owner, admin, assistant,
guest (KOL), interaction account (小号: the operator's own accounts that
keep the conversation going, listed in ``interaction_accounts``) or member.
The staff (owner, admin, assistant) and interaction accounts run the
community; the others make up its **mix** of three activity tiers:

- **big** (大咖): guests (with ``guests_are_big``) and members whose activity
  score over the last ``window_days`` complete local days reaches
  ``big_at``;
- **mid** (中坚): members whose score reaches ``mid_at``;
- **ordinary** (普通): everyone else, the silent included.

The activity score is a weighted sum (``score_weights``) of the engine's
rollup counters (messages, replies, reactions received…) over the window,
community-wide. The population is every member with an active membership in
one of the community's groups, plus anyone seen in the rollups of the
window (groups that existed before qunyun did); erased members are not
counted. It is read from the engine's tables through ``ctx.db``, read-only.

Once a week (``check``, a cron in the community's time zone) the mix is
compared with ``target`` (default 5 % big, 20 % mid, 75 % ordinary): when
any tier is more than ``threshold`` percentage points away from its target,
the admins are warned, with the numbers. With fewer than ``min_members``
in the mix nothing is said (a handful of people is not a structure). The
``mix`` command, and an owner or admin typing ``成员结构`` / ``member mix``,
show the current mix at once.

The job runs in one group: the admins' group if it runs the playbook, else
the first group that does. The playbook keeps nothing about anyone: each
check is logged as a ``check`` record of counts only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator
from sqlalchemy import case, func, or_, select

from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron
from qunyun.store import models as m

TIERS = ("big", "mid", "ordinary")
STAFF = ("owner", "admin", "assistant")
_JOB = "check"
_MAX_TEXT = 64


class StructureConfig(PlaybookConfig):
    target: dict[str, int] = Field(
        default_factory=lambda: {"big": 5, "mid": 20, "ordinary": 75},
        description="The target mix in percent: {big, mid, ordinary}, summing to 100.",
    )
    threshold: int = Field(
        default=10, ge=1, le=100, description="Warn when a tier is more than this many percentage points off target."
    )
    window_days: int = Field(default=30, ge=1, le=365, description="Activity is measured over this many complete days.")
    score_weights: dict[str, int] = Field(
        default_factory=lambda: {"messages": 1, "replies": 1, "reactions_received": 1, "mentions_received": 1},
        description="Activity score = Σ weight × rollup counter over the window.",
    )
    big_at: int = Field(default=100, ge=1, description="A member with at least this activity score is a big name.")
    mid_at: int = Field(default=10, ge=1, description="A member with at least this activity score is mid-tier.")
    guests_are_big: bool = Field(default=True, description="Guests (KOLs) count as big names whatever their activity.")
    interaction_accounts: list[str] = Field(
        default_factory=list, description="User ids of the operator's interaction accounts (小号): not in the mix."
    )
    min_members: int = Field(default=20, ge=1, description="No warning while fewer than this many are in the mix.")
    check: str = Field(default="0 10 * * 1", description="Cron (community time zone) of the weekly check.")
    mix_keywords: list[str] = Field(
        default_factory=lambda: ["成员结构", "member mix"],
        description="An owner or admin posting exactly one of these gets the current mix.",
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: dict[str, int]) -> dict[str, int]:
        if set(value) != set(TIERS):
            raise ValueError(f"target needs exactly big, mid and ordinary; got {', '.join(value) or 'nothing'}")
        if any(v < 0 for v in value.values()) or sum(value.values()) != 100:
            raise ValueError(f"target percentages must be 0 or more and sum to 100; they sum to {sum(value.values())}")
        return value

    @field_validator("score_weights")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        for counter, weight in value.items():
            if counter not in m.ROLLUP_COUNTERS:
                raise ValueError(f"unknown counter {counter!r}; known: {', '.join(m.ROLLUP_COUNTERS)}")
            if weight < 0:
                raise ValueError(f"weight of {counter} must be 0 or more")
        if not any(value.values()):
            raise ValueError("at least one counter needs a positive weight, e.g. {messages: 1}")
        return value

    @field_validator("check")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("mix_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            k = kw.strip().casefold()
            if not k or len(k) > _MAX_TEXT:
                raise ValueError(f"keywords must be 1 to {_MAX_TEXT} characters; got {kw!r}")
            out.append(k)
        return out

    @model_validator(mode="after")
    def _tiers(self) -> StructureConfig:
        if self.mid_at >= self.big_at:
            raise ValueError(f"mid_at ({self.mid_at}) must be below big_at ({self.big_at})")
        return self


def _home(ctx: Context, pid: str) -> bool:
    groups = list(ctx.community.groups.values())
    admins = [g for g in groups if g.admin and pid in g.playbooks]
    home = admins[0] if admins else next((g for g in groups if pid in g.playbooks), None)
    return home is not None and (home.platform, home.key) == (ctx.group.platform, ctx.group.key)


def _pct(n: int, total: int) -> float:
    return round(100 * n / total, 1) if total else 0.0


class Structure(Playbook):
    id = "structure"
    version = "1"
    config_model = StructureConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "mix": "The current roles and member mix against the target.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "成员结构：按角色与活跃度统计大咖、中坚、普通成员的比例，偏离目标时提醒管理员。",
        "en": "Member mix: roles and big / mid / ordinary tiers by activity, with a warning to the admins "
        "when the mix drifts from its target.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "mix": {
            "zh-CN": "👥 成员结构（近 {days} 天）：大咖 {big}（{big_pct}%），中坚 {mid}（{mid_pct}%），"
            "普通 {ordinary}（{ordinary_pct}%）；目标 {target}。\n运营团队：群主 {owner}，管理员 {admin}，"
            "助理 {assistant}，小号 {interaction}；嘉宾 {guest}。",
            "en": "👥 Member mix (last {days} days): big {big} ({big_pct}%), mid {mid} ({mid_pct}%), "
            "ordinary {ordinary} ({ordinary_pct}%); target {target}.\nTeam: owner {owner}, admins {admin}, "
            "assistants {assistant}, interaction accounts {interaction}; guests {guest}.",
        },
        "target": {
            "zh-CN": "{big}/{mid}/{ordinary}",
            "en": "{big}/{mid}/{ordinary}",
        },
        "drift": {
            "zh-CN": "⚠️ 成员结构偏离目标超过 {threshold} 个百分点：{tiers}\n{mix}",
            "en": "⚠️ The member mix is more than {threshold} points off target: {tiers}\n{mix}",
        },
        "drift_tier": {
            "zh-CN": "{tier} {actual}%（目标 {target}%）",
            "en": "{tier} {actual}% (target {target}%)",
        },
        "tier_big": {"zh-CN": "大咖", "en": "big"},
        "tier_mid": {"zh-CN": "中坚", "en": "mid"},
        "tier_ordinary": {"zh-CN": "普通", "en": "ordinary"},
    }

    def setup(self, ctx: Context) -> None:
        cfg: StructureConfig = ctx.config
        if _home(ctx, self.id):
            ctx.schedule(_JOB, cron=cfg.check)
        else:
            ctx.cancel(_JOB)

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: StructureConfig = ctx.config
        text = (event.text or "").strip()
        if not text or len(text) > _MAX_TEXT or text.casefold() not in cfg.mix_keywords:
            return
        if ctx.role(event.actor.id) not in ("owner", "admin"):
            return
        ctx.send(self._mix_text(ctx, self.mix(ctx)), reply_to=event.msg_id)

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != _JOB:
            return
        cfg: StructureConfig = ctx.config
        mix = self.mix(ctx)
        ctx.record(
            "check", None, tiers=mix["tiers"], roles=mix["roles"], drifted=mix["drifted"], population=mix["population"]
        )
        if mix["population"] < cfg.min_members or not mix["drifted"]:
            return
        sep = "、" if ctx.locale == "zh-CN" else ", "
        tiers = sep.join(
            ctx.render(
                "drift_tier", tier=ctx.render(f"tier_{t}"), actual=mix["shares"][t], target=cfg.target[t]
            )
            for t in mix["drifted"]
        )
        ctx.notify_admins(ctx.render("drift", threshold=cfg.threshold, tiers=tiers, mix=self._mix_text(ctx, mix)))

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        if command.name == "mix":
            return self.mix(ctx)
        return super().on_command(ctx, command)

    # ------------------------------------------------------------------ mix

    def mix(self, ctx: Context) -> dict[str, Any]:
        """Roles, tiers, shares and drift of the community now."""
        cfg: StructureConfig = ctx.config
        scores = self._population(ctx)
        roles = dict.fromkeys(("owner", "admin", "assistant", "guest", "interaction", "member"), 0)
        tiers = dict.fromkeys(TIERS, 0)
        interaction = set(cfg.interaction_accounts)
        for uid, score in scores.items():
            role = "interaction" if uid in interaction else ctx.role(uid)
            roles[role] += 1
            if role in STAFF or role == "interaction":
                continue
            if (role == "guest" and cfg.guests_are_big) or score >= cfg.big_at:
                tiers["big"] += 1
            elif score >= cfg.mid_at:
                tiers["mid"] += 1
            else:
                tiers["ordinary"] += 1
        total = sum(tiers.values())
        # integer test of |100·n/total − target| > threshold
        drifted = [
            t for t in TIERS if total and abs(100 * tiers[t] - cfg.target[t] * total) > cfg.threshold * total
        ]
        return {
            "as_of": (ctx.today - timedelta(days=1)).isoformat(),
            "window_days": cfg.window_days,
            "roles": roles,
            "tiers": tiers,
            "population": total,
            "shares": {t: _pct(tiers[t], total) for t in TIERS},
            "target": dict(cfg.target),
            "threshold": cfg.threshold,
            "drifted": drifted,
        }

    def _population(self, ctx: Context) -> dict[str, int]:
        """user id → activity score, for everyone in the community now."""
        cfg: StructureConfig = ctx.config
        cid = ctx.community.id
        conn = ctx.db
        gt, ms, mt, rt = m.table(m.Group), m.table(m.Membership), m.table(m.Member), m.table(m.Rollup)
        last = ctx.today - timedelta(days=1)
        first = last - timedelta(days=cfg.window_days - 1)
        people: dict[int, str] = {
            int(mid): uid
            for mid, uid in conn.execute(
                select(mt.c.id, mt.c.user_id)
                .select_from(ms.join(gt, gt.c.id == ms.c.group_id).join(mt, mt.c.id == ms.c.member_id))
                .where(gt.c.community_id == cid, ms.c.status == "active", mt.c.erased.is_(False))
                .distinct()
            )
        }
        weights = {c: w for c, w in cfg.score_weights.items() if w}
        terms = [func.coalesce(func.sum(rt.c[c]), 0) * w for c, w in weights.items()]
        score_expr = terms[0]
        for term in terms[1:]:
            score_expr = score_expr + term
        seen = or_(rt.c.messages > 0, rt.c.reactions_given > 0, rt.c.checkins > 0)
        scores: dict[int, int] = {}
        for mid, uid, score, acted in conn.execute(
            select(
                rt.c.member_id,
                mt.c.user_id,
                score_expr,
                func.max(case((seen, 1), else_=0)),
            )
            .select_from(rt.join(mt, mt.c.id == rt.c.member_id))
            .where(rt.c.community_id == cid, rt.c.day >= first, rt.c.day <= last, mt.c.erased.is_(False))
            .group_by(rt.c.member_id, mt.c.user_id)
        ):
            scores[int(mid)] = int(score or 0)
            if acted:
                people.setdefault(int(mid), uid)
        out: dict[str, int] = {}
        for mid, uid in people.items():
            out[uid] = max(out.get(uid, 0), scores.get(mid, 0))
        return out

    def _mix_text(self, ctx: Context, mix: dict[str, Any]) -> str:
        tiers, shares, roles, target = mix["tiers"], mix["shares"], mix["roles"], mix["target"]
        return ctx.render(
            "mix",
            days=mix["window_days"],
            big=tiers["big"], big_pct=shares["big"],
            mid=tiers["mid"], mid_pct=shares["mid"],
            ordinary=tiers["ordinary"], ordinary_pct=shares["ordinary"],
            target=ctx.render("target", **target),
            owner=roles["owner"], admin=roles["admin"], assistant=roles["assistant"],
            interaction=roles["interaction"], guest=roles["guest"],
        )
