"""levels (打怪升级): named levels over each member's points balance.

A level is a threshold on the member's balance in the points ledger
("学徒 0 → 新秀 50 → 达人 200 …"). Levels go up the moment the balance
reaches the next threshold, with a congratulation in the group; they come
down only at period boundaries (monthly by default), so that a penalty or a
spend does not make someone's level flicker (the Orbit model). At each
boundary every member whose balance has fallen below their held level's
threshold is moved to the level their balance now earns.

The playbook watches the ledger (``watches_ledger``): it makes no postings of
its own, it reacts to the postings other playbooks (check-in, Q&A, awards…)
make. Members ask "我的等级" / "my level" to see where they stand.

State (community-scoped, like the ledger): ``m:<uid>`` → ``{"level": index,
"since": iso}`` for every member who has ever held a level above the first.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig, Posting
from qunyun.engine.scheduler import validate_cron

Locale = Literal["zh-CN", "en"]
LocalText = str | dict[Locale, str]

_JOB = "period"
#: Messages longer than this cannot be a level query; skip them before any work.
_QUERY_MAX = 64


class Level(BaseModel):
    """One rung: its name and the balance that reaches it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: LocalText = Field(
        description="The level's name, or one per locale: {zh-CN: 达人, en: Regular}."
    )
    min_points: int = Field(ge=0, description="Points balance needed to hold this level.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: LocalText) -> LocalText:
        texts = [value] if isinstance(value, str) else list(value.values())
        if not texts or any(not t.strip() for t in texts):
            raise ValueError("a level needs a non-empty name")
        return value

    def title(self, locale: str) -> str:
        if isinstance(self.name, str):
            return self.name
        names = cast(dict[str, str], self.name)
        return names.get(locale) or names.get("en") or next(iter(names.values()))


def _default_levels() -> list[Level]:
    # At about 10 points a check-in plus streak bonuses: Rookie after five
    # check-ins, Regular after about three weeks, Core after about six, Mentor
    # after about three months of daily check-ins.
    return [
        Level(name={"zh-CN": "学徒", "en": "Apprentice"}, min_points=0),
        Level(name={"zh-CN": "新秀", "en": "Rookie"}, min_points=50),
        Level(name={"zh-CN": "达人", "en": "Regular"}, min_points=200),
        Level(name={"zh-CN": "骨干", "en": "Core"}, min_points=600),
        Level(name={"zh-CN": "导师", "en": "Mentor"}, min_points=1500),
    ]


class LevelsConfig(PlaybookConfig):
    levels: list[Level] = Field(
        default_factory=_default_levels,
        description="The ladder, lowest first: [{name, min_points}]; the first at 0, then strictly increasing.",
    )
    currency: str = Field(
        default="POINTS",
        min_length=1,
        max_length=16,
        description="The ledger currency levels are computed on.",
    )
    announce: bool = Field(
        default=True, description="Congratulate a member in the group when they level up."
    )
    announce_down: bool = Field(
        default=False,
        description="Tell a member by direct message when a period boundary lowers their level.",
    )
    period: str = Field(
        default="0 0 1 * *",
        description="Cron (community time zone) of the period boundaries where levels may go down.",
    )
    query_keywords: list[str] = Field(
        default_factory=lambda: ["我的等级", "my level"],
        description="A message that is exactly one of these (case-insensitive) gets the member's level.",
    )

    @field_validator("levels")
    @classmethod
    def _ladder(cls, value: list[Level]) -> list[Level]:
        if not value:
            raise ValueError("at least one level is needed, e.g. [{name: 学徒, min_points: 0}]")
        if value[0].min_points != 0:
            raise ValueError(
                f"the first level ({value[0].title('zh-CN')}) must have min_points 0, "
                f"not {value[0].min_points}: everybody starts somewhere"
            )
        for lower, upper in pairwise(value):
            if upper.min_points <= lower.min_points:
                raise ValueError(
                    "min_points must strictly increase down the list: "
                    f"{upper.title('zh-CN')} ({upper.min_points}) is not above "
                    f"{lower.title('zh-CN')} ({lower.min_points})"
                )
        return value

    @field_validator("period")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("query_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            k = kw.strip().casefold()
            if not k or len(k) > _QUERY_MAX:
                raise ValueError(f"query keywords must be 1 to {_QUERY_MAX} characters; got {kw!r}")
            out.append(k)
        return out


class Levels(Playbook):
    id = "levels"
    config_model = LevelsConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "direct"})
    watches_ledger = True
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "积分等级：积分达标立即升级并祝贺，降级只在周期结算时发生。",
        "en": "Named levels over points: up at once with a cheer, down only at period boundaries.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "up": {
            "zh-CN": "🎖️ 恭喜 @{name} 升到「{level}」！现有 {points} 积分{next}",
            "en": "🎖️ Congratulations @{name}, you are now {level}! {points} points{next}",
        },
        "status": {
            "zh-CN": "{name}：等级「{level}」，{points} 积分{next}",
            "en": "{name}: level {level}, {points} points{next}",
        },
        "down": {
            "zh-CN": "新周期开始啦：你现在有 {points} 积分，等级调整为「{level}」{next}",
            "en": "A new period has started: with {points} points your level is now {level}{next}",
        },
        "next": {
            "zh-CN": "，再得 {gap} 分升「{next_level}」。",
            "en": ". {gap} more to reach {next_level}.",
        },
        "top": {
            "zh-CN": "，已是最高等级 🏆",
            "en": ". That is the top level 🏆",
        },
    }

    def setup(self, ctx: Context) -> None:
        cfg: LevelsConfig = ctx.config
        ctx.schedule(_JOB, cron=cfg.period)

    # ---------------------------------------------------------------- ledger

    def on_postings(self, ctx: Context, postings: list[Posting]) -> None:
        cfg: LevelsConfig = ctx.config
        seen: dict[str, None] = {}
        for p in postings:
            # Only this currency's member accounts on this group's platform
            # (the same user id may exist on another platform of the community).
            if p.member is not None and p.account == ctx.ledger.member_account(
                p.member, cfg.currency
            ):
                seen[p.member] = None
        for uid in seen:
            self._raise(ctx, uid, ctx.ledger.points(uid, cfg.currency))

    def _raise(self, ctx: Context, uid: str, points: int) -> int:
        """Lift ``uid`` to the level ``points`` earns, if higher; return the held level."""
        cfg: LevelsConfig = ctx.config
        held = self._held(ctx, uid)
        earned = _level_for(cfg, points)
        if earned <= held:
            return held
        ctx.state.put(f"m:{uid}", {"level": earned, "since": ctx.now.isoformat()})
        ctx.record("level_up", member=uid, level=earned, previous=held, points=points)
        if cfg.announce:
            ctx.send(
                ctx.render(
                    "up",
                    name=ctx.name(uid),
                    level=cfg.levels[earned].title(ctx.locale),
                    points=points,
                    next=self._next(ctx, earned, points),
                ),
                mentions=[uid],
            )
        return earned

    @staticmethod
    def _held(ctx: Context, uid: str) -> int:
        cfg: LevelsConfig = ctx.config
        st = ctx.state.get(f"m:{uid}")
        if not st:
            return 0
        # The ladder may have been shortened since: clamp to its top.
        return min(int(st.get("level", 0)), len(cfg.levels) - 1)

    @staticmethod
    def _next(ctx: Context, held: int, points: int) -> str:
        cfg: LevelsConfig = ctx.config
        if held + 1 >= len(cfg.levels):
            return ctx.render("top")
        upper = cfg.levels[held + 1]
        return ctx.render(
            "next", gap=max(upper.min_points - points, 0), next_level=upper.title(ctx.locale)
        )

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        text: str = event.text
        if not text or len(text) > _QUERY_MAX:
            return
        cfg: LevelsConfig = ctx.config
        if text.strip().casefold() not in cfg.query_keywords:
            return
        uid = event.actor.id
        points = ctx.ledger.points(uid, cfg.currency)
        # Points earned before levels was switched on still count: lift first.
        held = self._raise(ctx, uid, points)
        ctx.send(
            ctx.render(
                "status",
                name=ctx.name(uid),
                level=cfg.levels[held].title(ctx.locale),
                points=points,
                next=self._next(ctx, held, points),
            ),
            mentions=[uid],
            reply_to=event.msg_id,
        )

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != _JOB:
            return
        cfg: LevelsConfig = ctx.config
        stamp = ctx.now.isoformat()
        for key, st in list(ctx.state.scan("m:")):
            uid = key[2:]
            held = min(int(st.get("level", 0)), len(cfg.levels) - 1)
            points = ctx.ledger.points(uid, cfg.currency)
            if points >= cfg.levels[held].min_points:
                continue
            lowered = _level_for(cfg, points)
            ctx.state.put(key, {"level": lowered, "since": stamp})
            ctx.record("level_down", member=uid, level=lowered, previous=held, points=points)
            if cfg.announce_down:
                ctx.direct(
                    uid,
                    ctx.render(
                        "down",
                        level=cfg.levels[lowered].title(ctx.locale),
                        points=points,
                        next=self._next(ctx, lowered, points),
                    ),
                )

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        # Exact key, not the base class's prefix scan ("m:u1" would match "m:u10").
        st = ctx.state.get(f"m:{member}")
        return {} if st is None else {f"m:{member}": st}

    def erase_member(self, ctx: Context, member: str) -> None:
        ctx.state.delete(f"m:{member}")

    def merge_member(self, ctx: Context, source: str, target: str) -> list[str]:
        """Two ids of one person: the higher level held, lifted (quietly) to what the
        merged points earn (the ledger accounts are merged before this runs)."""
        cfg: LevelsConfig = ctx.config
        mine, theirs = ctx.state.get(f"m:{target}"), ctx.state.get(f"m:{source}")
        held = max(self._held(ctx, source), self._held(ctx, target))
        ctx.state.delete(f"m:{source}")
        earned = max(held, _level_for(cfg, ctx.ledger.points(target, cfg.currency)))
        if mine is not None and int(mine.get("level", 0)) == earned:
            return []
        if earned or mine is not None or theirs is not None:
            since = theirs.get("since") if theirs is not None and int(theirs.get("level", 0)) == earned else None
            ctx.state.put(f"m:{target}", {"level": earned, "since": since or ctx.now.isoformat()})
        return []


def _level_for(cfg: LevelsConfig, points: int) -> int:
    """Index of the highest level whose threshold ``points`` reaches (0 if none)."""
    return max(bisect_right([lv.min_points for lv in cfg.levels], points) - 1, 0)
