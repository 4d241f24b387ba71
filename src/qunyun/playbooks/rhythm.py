"""rhythm (节奏): a weekly template of posts and reminders.

A community adopts a weekly rhythm: each slot — weekdays, a local time, a
kind (``post`` or ``reminder``), a text or a named template, and who it is
for (``group``, ``admins``, ``askers`` or a user id) — becomes a cron job in
the community's time zone. The built-in template ``weekly`` is the rhythm of
a learning community: material shares on Tuesday and Thursday evenings, the
weekly Q&A on Wednesday 11:00-12:00 opened by 3-5 pre-arranged askers (told
the evening before, then @-mentioned), the Wednesday-to-Friday open
discussion, and the weekend benefit drop on Saturday morning. Custom slots
are added after the template's. With no template and no slots nothing is
sent.

The askers come from the configuration (in turn, week after week) or are
rotated among the members who spoke in the group recently, least recently
asked first. State: ``m:<uid>`` → ``{"seen": {group: day}, "asked": week}``,
``askers:<group>:<YYYY-Www>`` → the week's askers, ``rota:<group>`` → the
position in the configured list, ``slots:<group>`` → how many slots are
scheduled (so removed slots are cancelled).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qunyun.core.text import clip
from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.templates import render

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAYS: dict[str, int] = {
    "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7,
    "周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5, "周六": 6, "周日": 7, "周天": 7,
}
_CONTROLS = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")

#: Template names a slot may use (``template: share``); operators may override their words.
SLOT_TEMPLATES = ("share", "qa_askers", "qa_open", "qa_close", "discussion", "benefit")


def _iso_week(day: Any) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class Slot(BaseModel):
    """One recurring post or reminder of the week."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekdays: list[int | str] = Field(
        description="Days of the week: 1-7 (Monday is 1), mon..sun or 周一..周日."
    )
    time: str = Field(description="Local time HH:MM in the community's time zone.")
    kind: Literal["post", "reminder"] = Field(default="post", description="A post, or a reminder for someone.")
    text: str | dict[str, str] | None = Field(
        default=None,
        description="The words: one text, or {zh-CN: ..., en: ...}. Placeholders: {week}, {askers}, {group}.",
    )
    template: str | None = Field(
        default=None, description="Or a built-in template: " + ", ".join(SLOT_TEMPLATES) + "."
    )
    to: str | None = Field(
        default=None,
        description="group, admins, askers (each of the week's askers, directly) or a user id; "
        "default: group for a post, admins for a reminder.",
    )
    askers: bool = Field(default=False, description="@-mention the week's pre-arranged askers in this post.")

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[int | str]) -> list[int | str]:
        if not value:
            raise ValueError("a slot needs at least one weekday")
        out: list[int | str] = []
        for day in value:
            n = _DAYS.get(day.strip().lower()) if isinstance(day, str) else day
            if not isinstance(n, int) or not 1 <= n <= 7:
                raise ValueError(f"{day!r} is not a weekday (1-7, mon..sun, 周一..周日)")
            out.append(n)
        return sorted(set(out))

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"{value!r} is not a local time HH:MM")
        return value.strip()

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or _CONTROLS.search(value)):
            raise ValueError("to is group, admins, askers or a user id")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _words(self) -> Slot:
        if (self.text is None) == (self.template is None):
            raise ValueError("a slot needs exactly one of text and template")
        if self.template is not None and self.template not in SLOT_TEMPLATES:
            raise ValueError(f"unknown template {self.template!r}; one of: {', '.join(SLOT_TEMPLATES)}")
        if isinstance(self.text, dict):
            if not self.text or set(self.text) - {"zh-CN", "en"} or not all(v.strip() for v in self.text.values()):
                raise ValueError("text as a mapping is {zh-CN: ..., en: ...} with non-empty texts")
        elif self.text is not None and not self.text.strip():
            raise ValueError("text must not be empty")
        return self

    def target(self) -> str:
        return self.to or ("group" if self.kind == "post" else "admins")

    def cron(self) -> str:
        hh, mm = self.time.split(":")
        days = ",".join(str(int(d) % 7) for d in self.weekdays)  # cron: Sunday is 0
        return f"{int(mm)} {int(hh)} * * {days}"


WEEKLY: tuple[Slot, ...] = (
    Slot(weekdays=[2, 4], time="20:00", kind="post", template="share"),
    Slot(weekdays=[2], time="21:00", kind="reminder", template="qa_askers", to="askers"),
    Slot(weekdays=[3], time="11:00", kind="post", template="qa_open", askers=True),
    Slot(weekdays=[3], time="12:00", kind="post", template="qa_close"),
    Slot(weekdays=[3], time="14:00", kind="post", template="discussion"),
    Slot(weekdays=[6], time="10:00", kind="post", template="benefit"),
)
TEMPLATES: dict[str, tuple[Slot, ...]] = {"weekly": WEEKLY}


class RhythmConfig(PlaybookConfig):
    template: Literal["weekly"] | None = Field(
        default="weekly", description="A built-in weekly template (weekly), or null for only your own slots."
    )
    slots: list[Slot] = Field(default_factory=list, description="Your own slots, added after the template's.")
    askers: list[str] = Field(
        default_factory=list,
        description="Pre-arranged askers for the weekly Q&A (user ids), taken in turn; empty: rotate among "
        "members who spoke recently.",
    )
    askers_count: int = Field(default=3, ge=1, le=10, description="How many askers each week (3-5 is usual).")
    active_days: int = Field(
        default=14, ge=1, le=365, description="Rotated askers are members who spoke in the group within this many days."
    )
    skip_admin_group: bool = Field(default=True, description="Post nothing in the admins' group.")

    @field_validator("askers")
    @classmethod
    def _askers(cls, value: list[str]) -> list[str]:
        cleaned = [a.strip() for a in value]
        if any(not a or _CONTROLS.search(a) for a in cleaned):
            raise ValueError("askers are platform user ids")
        return list(dict.fromkeys(cleaned))

    def all_slots(self) -> list[Slot]:
        return [*(TEMPLATES[self.template] if self.template else ()), *self.slots]


class Rhythm(Playbook):
    id = "rhythm"
    version = "1"
    config_model = RhythmConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "direct", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "每周节奏：按模板定时发资料分享、问答（预约提问人）、自由讨论和周末福利等帖子与提醒。",
        "en": "Weekly rhythm: scheduled posts and reminders from a template — shares, a Q&A with "
        "pre-arranged askers, open discussion, a weekend benefit.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "share": {
            "zh-CN": "📚 资料分享时间到！把这几天读到的好文章、好工具、好资料发到群里，附一句推荐理由吧～",
            "en": "📚 Time to share! Post a good article, tool or resource you found lately, with one line on why.",
        },
        "qa_askers": {
            "zh-CN": "你好！明天（周三）11:00-12:00 是本周问答时间，你是预约好的提问人之一，"
            "请准备 1-2 个问题，到时在群里第一个抛出来，谢谢～",
            "en": "Hi! Tomorrow (Wednesday) 11:00-12:00 is this week's Q&A and you are one of the askers "
            "we lined up. Please bring one or two questions to open it. Thank you!",
        },
        "qa_open": {
            "zh-CN": "❓ 本周问答时间开始（11:00-12:00）！{askers} 请先抛出问题，其他小伙伴也欢迎提问和解答。",
            "en": "❓ This week's Q&A is open (11:00-12:00)! {askers}, please start us off; everyone is "
            "welcome to ask and to answer.",
        },
        "qa_close": {
            "zh-CN": "问答时间结束，感谢大家！没答完的问题可以继续在群里讨论。",
            "en": "That's the end of the Q&A, thank you all! Unanswered questions can carry on here.",
        },
        "discussion": {
            "zh-CN": "💬 周三到周五是自由讨论时间：工作中的难题、想法和经验，都可以拿出来聊。",
            "en": "💬 Wednesday to Friday is open discussion: bring the problems, ideas and lessons from your week.",
        },
        "benefit": {
            "zh-CN": "🎁 周末福利来啦！本周的福利已经送达，请留意群公告～",
            "en": "🎁 Weekend treat! This week's benefit is here; see the group notice.",
        },
        "reminder": {"zh-CN": "⏰ 提醒（{group}）：{text}", "en": "⏰ Reminder ({group}): {text}"},
        "no_askers": {"zh-CN": "大家", "en": "everyone"},
    }

    # ---------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: RhythmConfig = ctx.config
        slots = [] if (cfg.skip_admin_group and ctx.group.admin) else cfg.all_slots()
        key = f"slots:{ctx.group.key}"
        before = int(ctx.state.get(key, 0) or 0)
        for i, slot in enumerate(slots):
            ctx.schedule("slot", cron=slot.cron(), payload={"i": i, "sig": slot.model_dump_json()},
                         key=f"slot:{i}")
        for i in range(len(slots), before):
            ctx.cancel(f"slot:{i}")
        if before != len(slots):
            if slots:
                ctx.state.put(key, len(slots))
            else:
                ctx.state.delete(key)

    # --------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        """Remember who speaks where (once a day), for rotating the askers."""
        cfg: RhythmConfig = ctx.config
        if cfg.askers or not any(s.askers or s.target() == "askers" for s in cfg.all_slots()):
            return
        uid = event.actor.id
        day = ctx.local_day(event.ts).isoformat()
        st = ctx.state.get(f"m:{uid}") or {}
        seen = dict(st.get("seen") or {})
        if seen.get(ctx.group.key, "") >= day:
            return
        seen[ctx.group.key] = day
        ctx.state.put(f"m:{uid}", {**st, "seen": seen})

    # ----------------------------------------------------------------- jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "slot":
            return
        cfg: RhythmConfig = ctx.config
        if cfg.skip_admin_group and ctx.group.admin:
            return
        slots = cfg.all_slots()
        i = int(job.payload.get("i", -1))
        if not 0 <= i < len(slots) or slots[i].model_dump_json() != job.payload.get("sig"):
            return  # the configuration changed since this job was scheduled
        slot = slots[i]
        target = slot.target()
        week = _iso_week(ctx.today)
        askers = self._askers(ctx, cfg, week) if slot.askers or target == "askers" else []
        names = ("、" if ctx.locale == "zh-CN" else ", ").join(f"@{ctx.name(u)}" for u in askers)
        text = self._words(ctx, slot, week=week, askers=names or ctx.render("no_askers"), group=ctx.group.name)
        if target == "group":
            ctx.send(text, mentions=askers if slot.askers else ())
        elif target == "admins":
            ctx.notify_admins(text)
        elif target == "askers":
            for uid in askers:
                ctx.direct(uid, text)
        else:
            ctx.direct(target, text)
        ctx.record("posted", None, slot=i, to=target if target in ("group", "admins", "askers") else "member",
                   week=week)

    def _words(self, ctx: Context, slot: Slot, **values: Any) -> str:
        if slot.template is not None:
            text = ctx.render(slot.template, **values)
        else:
            raw = slot.text
            if isinstance(raw, dict):
                raw = raw.get(ctx.locale) or raw.get("en") or next(iter(raw.values()))
            assert raw is not None
            text = render(raw, values)
        text = clip(text, 2000)
        return ctx.render("reminder", group=ctx.group.name, text=text) if slot.kind == "reminder" else text

    def _askers(self, ctx: Context, cfg: RhythmConfig, week: str) -> list[str]:
        """This week's askers in this group: chosen once, then the same for every slot."""
        key = f"askers:{ctx.group.key}:{week}"
        chosen = ctx.state.get(key)
        if chosen is not None:
            return list(chosen)
        if cfg.askers:
            rota = f"rota:{ctx.group.key}"
            start = int(ctx.state.get(rota, 0) or 0) % len(cfg.askers)
            n = min(cfg.askers_count, len(cfg.askers))
            chosen = [cfg.askers[(start + k) % len(cfg.askers)] for k in range(n)]
            ctx.state.put(rota, (start + n) % len(cfg.askers))
        else:
            since = (ctx.today - timedelta(days=cfg.active_days)).isoformat()
            group = ctx.group.key
            pool = [
                (st.get("asked") or "", key_[2:])
                for key_, st in ctx.state.scan("m:")
                if (st.get("seen") or {}).get(group, "") >= since and ctx.role(key_[2:]) not in ("owner", "admin")
            ]
            pool.sort()
            chosen = [uid for _, uid in pool[: cfg.askers_count]]
            for uid in chosen:
                st = ctx.state.get(f"m:{uid}") or {}
                ctx.state.put(f"m:{uid}", {**st, "asked": week})
        ctx.state.put(key, chosen)
        # keep four weeks of choices at most
        for old, _ in list(ctx.state.scan(f"askers:{ctx.group.key}:")):
            if old.rsplit(":", 1)[1] < _iso_week(ctx.today - timedelta(days=28)):
                ctx.state.delete(old)
        return chosen

    # -------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, uids in ctx.state.scan("askers:"):
            if member in uids:
                found[key] = [member]
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        for key in [*dict(ctx.state.scan(f"m:{member}:")), f"m:{member}"]:
            ctx.state.delete(key)
        for key, uids in list(ctx.state.scan("askers:")):
            if member in uids:
                ctx.state.put(key, [u for u in uids if u != member])
