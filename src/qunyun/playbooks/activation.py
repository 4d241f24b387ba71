"""activation (激活): one friendly nudge for newcomers who stay silent.

A member who joins and has neither spoken nor introduced themselves within
``hours`` hours (default 24) gets exactly one private message inviting them
in. Nobody gets it twice, nobody gets it after they spoke, and nobody gets
it after they left.

The operator also sees how newcomers come alive, per **join cohort**: the
local ISO week (in the community's time zone) of a member's first join.
For each cohort the playbook keeps how many joined and how many were
activated, that is spoke within ``activation_days`` days (default 7) of
joining. The ``cohorts`` command returns them.

A member belongs to the cohort of the first join this playbook saw, once:
leaving and joining again (in the same week or later) neither counts them a
second time nor earns a second nudge.

State (community-scoped):

- ``m:<uid>`` → ``{"joined": iso, "cohort": "2026-W45", "group": key,
  "spoke": iso | null, "nudged": iso | null, "in": [group keys]}``
- ``c:<cohort>`` → ``{"joined": n, "activated": n}`` (anonymous counts)
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.playbooks.welcome import LocalText, _check_text, localized


def _roles(value: list[str]) -> list[str]:
    from qunyun.config.model import ROLES

    for role in value:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return value


class ActivationConfig(PlaybookConfig):
    hours: int = Field(
        default=24,
        ge=1,
        le=24 * 30,
        description="Send the nudge this many hours after the join if the newcomer has not spoken.",
    )
    activation_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="A newcomer who speaks within this many days of joining counts as activated.",
    )
    message: LocalText | None = Field(
        default=None,
        description=(
            "The private message, with {name} and {community}; one text or one per locale. "
            "Unset: the `activation.nudge` template."
        ),
    )
    exempt_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin", "assistant", "guest"],
        description="Roles never nudged nor counted in cohorts.",
    )

    @field_validator("message")
    @classmethod
    def _text(cls, value: LocalText | None) -> LocalText | None:
        return _check_text(value)

    @field_validator("exempt_roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        return _roles(value)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class Activation(Playbook):
    id = "activation"
    config_model = ActivationConfig
    handles = frozenset({"member_joined", "member_left", "message"})
    emits = frozenset({"direct"})
    commands: ClassVar[dict[str, str]] = {
        "cohorts": "Joins and activations per join week (args: last = how many weeks, default all).",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "激活新人：入群后一直没说话的新朋友会收到一条友好的私信；按入群周统计激活率。",
        "en": "Activates newcomers: one friendly private message to those still silent; activation rate per join week.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "nudge": {
            "zh-CN": (
                "{name} 你好！欢迎来到「{community}」。还没在群里露面呢——"
                "发一句自我介绍（城市 / 做什么 / 想收获什么）就好，大家都在等你。"
            ),
            "en": (
                "Hi {name}, welcome to {community}! We have not heard from you yet. "
                "A line about yourself (city, what you do, what you hope to find) is all it takes."
            ),
        },
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        uid: str = event.actor.id
        if event.type == "message":
            self._spoke(ctx, uid, event)
            return
        cfg: ActivationConfig = ctx.config
        if ctx.role(uid) in cfg.exempt_roles:
            return
        if event.type == "member_joined":
            self._joined(ctx, cfg, uid, event.ts)
        else:
            self._left(ctx, uid)

    def _joined(self, ctx: Context, cfg: ActivationConfig, uid: str, when: datetime) -> None:
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        inside = [g for g in st.get("in", []) if g != ctx.group.key]
        if st.get("cohort"):
            # a rejoin (or a join in a second group): counted and timed once, at the first join
            st["in"] = [*inside, ctx.group.key]
            if not st.get("spoke") and not st.get("nudged"):
                # the nudge keeps its first deadline; leaving had cancelled it
                due = datetime.fromisoformat(st["joined"]) + timedelta(hours=cfg.hours)
                if due > ctx.now and not (inside and st.get("group") in inside):
                    st["group"] = ctx.group.key
                    ctx.schedule("nudge", at=due, key=f"nudge:{uid}", payload={"member": uid})
            ctx.state.put(key, st)
            return
        cohort = iso_week(ctx.local_day(when))
        ctx.state.put(
            key,
            {"joined": when.isoformat(), "cohort": cohort, "group": ctx.group.key, "spoke": None,
             "nudged": None, "in": [ctx.group.key]},
        )
        counts = dict(ctx.state.get(f"c:{cohort}") or {"joined": 0, "activated": 0})
        counts["joined"] = int(counts.get("joined", 0)) + 1
        ctx.state.put(f"c:{cohort}", counts)
        due = when + timedelta(hours=cfg.hours)
        if due > ctx.now:
            ctx.schedule("nudge", at=due, key=f"nudge:{uid}", payload={"member": uid})

    def _left(self, ctx: Context, uid: str) -> None:
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if not st or ctx.group.key not in st.get("in", []):
            return
        st = dict(st)
        st["in"] = [g for g in st["in"] if g != ctx.group.key]
        ctx.state.put(key, st)
        if not st["in"] and st.get("group") == ctx.group.key:
            ctx.cancel(f"nudge:{uid}")

    def _spoke(self, ctx: Context, uid: str, event: Any) -> None:
        if event.content_type == "system":
            return
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if not st or st.get("spoke"):
            return  # not a newcomer we follow, or already known to speak
        cfg: ActivationConfig = ctx.config
        st = dict(st)
        st["spoke"] = event.ts.isoformat()
        ctx.state.put(key, st)
        joined = datetime.fromisoformat(st["joined"])
        if event.ts - joined <= timedelta(days=cfg.activation_days):
            ckey = f"c:{st['cohort']}"
            counts = dict(ctx.state.get(ckey) or {"joined": 0, "activated": 0})
            counts["activated"] = int(counts.get("activated", 0)) + 1
            ctx.state.put(ckey, counts)
            ctx.record("activated", member=uid, cohort=st["cohort"], nudged=bool(st.get("nudged")))
        if st.get("group") == ctx.group.key and not st.get("nudged"):
            ctx.cancel(f"nudge:{uid}")  # elsewhere, the job finds "spoke" set and stays quiet

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "nudge":
            return
        uid = job.payload.get("member")
        if not isinstance(uid, str):
            return
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if not st or st.get("spoke") or st.get("nudged") or not st.get("in"):
            return
        if _introduced(ctx, uid):
            return
        cfg: ActivationConfig = ctx.config
        values = {"name": ctx.name(uid), "community": ctx.community.name}
        if cfg.message is not None:
            from qunyun.engine.templates import render

            text = render(localized(cfg.message, ctx.locale), values)
        else:
            text = ctx.render("nudge", **values)
        ctx.direct(uid, text)
        ctx.state.put(key, {**st, "nudged": ctx.now.isoformat()})
        ctx.record("nudged", member=uid, cohort=st.get("cohort"))

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        if command.name != "cohorts":
            raise CommandError(
                Msg("activation has no command {command!r}", command=command.name),
                hint=Msg("commands: {commands}", commands=", ".join(self.commands)),
            )
        last = command.args.get("last")
        if last is not None and (type(last) is not int or last < 1):
            raise CommandError(Msg("last must be a positive whole number of weeks, not {last!r}", last=last))
        rows = []
        for key, counts in ctx.state.scan("c:"):
            joined = int(counts.get("joined", 0))
            activated = int(counts.get("activated", 0))
            rows.append(
                {
                    "cohort": key[2:],
                    "joined": joined,
                    "activated": activated,
                    "rate": round(activated / joined, 4) if joined else 0.0,
                }
            )
        if last is not None:
            rows = rows[-last:]
        return {"activation_days": ctx.config.activation_days, "cohorts": rows}


def _introduced(ctx: Context, uid: str) -> bool:
    """Whether the profile playbook already holds an introduction of ``uid``."""
    if not ctx.enabled("profile"):
        return False
    found = ctx.state_of("profile").get(f"m:{uid}")
    return bool(found)
