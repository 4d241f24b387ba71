"""flash (闪群): groups with an end date — intro, countdown, farewell, then dissolve or archive.

A flash group lives for a set time: until ``ends_on``, or ``lasts_days``
after it starts (``starts_on``, else the day qunyun first sets the group
up). At the start the bot posts the introduction format (city, nickname,
resources). On the configured days before the end it posts a countdown; on
the farewell day it invites everyone to leave their contacts and say thanks;
on the last day it dissolves the group (``mode: dissolve``) or posts an
archive notice and asks the admins to archive it (``mode: archive``).

``plan: 3-6-9`` is the planned ending for ordinary groups: a review notice
to the admins when the group is 3 months old, a review notice plus an
announcement to the members at 6 months, and the end (with countdown,
farewell and dissolve/archive) at 9 months.

Every notice goes out once, at ``notice_time`` on its local day in the
community's time zone. A group without an end date or plan is left alone:
nothing is scheduled and nothing is said.

State: ``g:<group>`` → ``{"start": date, "sent": [step, ...], "ended": bool}``
(no member data).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class FlashConfig(PlaybookConfig):
    ends_on: date | None = Field(default=None, description="The local day the group ends (YYYY-MM-DD).")
    lasts_days: int | None = Field(
        default=None, ge=1, le=3660,
        description="Or: the group ends this many days after it starts (used when `ends_on` is unset).",
    )
    starts_on: date | None = Field(
        default=None, description="The local day the group starts; unset: the day qunyun first sets the group up."
    )
    plan: Literal["3-6-9"] | None = Field(
        default=None,
        description="Planned ending for an ordinary group: reviews at 3 and 6 months, the end at 9 months.",
    )
    countdown_days: list[int] = Field(
        default_factory=lambda: [7, 3, 1], description="Post a countdown this many days before the end."
    )
    farewell_days_before: int = Field(
        default=1, ge=0, le=60, description="The farewell ritual goes out this many days before the end (0: on the last day)."
    )
    intro: bool | None = Field(
        default=None,
        description="Post the introduction format when the group starts; unset: yes for a flash group, no under `plan`.",
    )
    mode: Literal["dissolve", "archive"] = Field(
        default="dissolve", description="At the end: dissolve the group, or post an archive notice and tell the admins."
    )
    notice_time: str = Field(default="10:00", description="Local time (HH:MM) at which the notices go out.")
    countdown_keywords: list[str] = Field(
        default_factory=lambda: ["倒计时", "countdown"],
        description="A message that is exactly one of these gets the days left as a reply.",
    )

    @field_validator("notice_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"notice_time must be HH:MM (24-hour), e.g. 10:00, not {value!r}")
        return value.strip()

    @field_validator("countdown_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 1 or d > 366 for d in value):
            raise ValueError("countdown_days are days before the end, each between 1 and 366")
        return sorted(set(value), reverse=True)

    @model_validator(mode="after")
    def _one_end(self) -> FlashConfig:
        if self.ends_on is not None and self.lasts_days is not None:
            raise ValueError("set either ends_on or lasts_days, not both")
        if self.plan is not None and (self.ends_on is not None or self.lasts_days is not None):
            raise ValueError("plan: 3-6-9 sets the end itself; remove ends_on / lasts_days")
        if self.starts_on is not None and self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self

    @property
    def has_end(self) -> bool:
        return self.ends_on is not None or self.lasts_days is not None or self.plan is not None

    @property
    def cron(self) -> str:
        hour, minute = self.notice_time.split(":")
        return f"{int(minute)} {int(hour)} * * *"


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class Flash(Playbook):
    id = "flash"
    version = "1"
    config_model = FlashConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "dissolve_group", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "闪群：有结束日期的群，开场自我介绍、倒计时、告别仪式，到期解散或归档；也可用于普通群的 3-6-9 个月计划。",
        "en": "Flash groups with an end date: intro, countdown, farewell, then dissolve or archive; also the 3-6-9 month plan.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "intro": {
            "zh-CN": "⚡ 欢迎来到「{group}」！这是一个限时群，{end} 结束。\n请按这个格式介绍自己：城市 / 昵称 / 能提供的资源 / 想找的资源",
            "en": "⚡ Welcome to {group}! This group is here for a limited time and ends on {end}.\n"
            "Introduce yourself: city / nickname / what you can offer / what you are looking for",
        },
        "countdown": {
            "zh-CN": "⏳「{group}」还有 {days} 天结束（{end}）。想认识的人、想聊的话题，抓紧哦～",
            "en": "⏳ {days} days left in {group} (it ends on {end}). Now is the time for the conversations you still want to have.",
        },
        "farewell": {
            "zh-CN": "🌅「{group}」马上要说再见了。留下你的联系方式，谢谢这段时间帮到你的人，我们下次见！",
            "en": "🌅 {group} is about to close. Leave your contact details, thank the people who helped you, and see you next time!",
        },
        "last_day": {
            "zh-CN": "👋「{group}」今天结束，群将解散。谢谢每一位的参与！",
            "en": "👋 {group} ends today and will be dissolved. Thank you all for being here!",
        },
        "archived": {
            "zh-CN": "📦「{group}」今天结束，聊天记录将归档保存。谢谢每一位的参与！",
            "en": "📦 {group} ends today; its history will be archived. Thank you all for being here!",
        },
        "archive_admins": {
            "zh-CN": "「{group}」已到结束日期（{end}），请归档聊天记录并关闭此群。",
            "en": "{group} reached its end date ({end}): please archive its history and close it.",
        },
        "review_3": {
            "zh-CN": "📋「{group}」已满 3 个月。请复盘：活跃度、核心成员、是否继续。按 3-6-9 计划，本群将于 {end} 结束。",
            "en": "📋 {group} is 3 months old. Time to review its activity and core members. Under the 3-6-9 plan it ends on {end}.",
        },
        "review_6": {
            "zh-CN": "📋「{group}」已满 6 个月。请第二次复盘，并准备结束或重组。已在群内预告 {end} 结束。",
            "en": "📋 {group} is 6 months old. Second review: prepare the ending or a regrouping. Members were told it ends on {end}.",
        },
        "announce_6": {
            "zh-CN": "📣「{group}」已经走过 6 个月，按计划将于 {end} 结束。接下来的三个月，一起把想做的事做完吧！",
            "en": "📣 {group} is 6 months old and, as planned, will close on {end}. Let's make the most of the three months left!",
        },
        "days_left": {
            "zh-CN": "「{group}」还有 {days} 天结束（{end}）。",
            "en": "{days} days left in {group} (ends on {end}).",
        },
        "ends_today": {
            "zh-CN": "「{group}」今天结束。",
            "en": "{group} ends today.",
        },
    }

    # --------------------------------------------------------------- dates

    def _dates(self, ctx: Context) -> tuple[date, date] | None:
        """(start, end) local days of this group, or None if it has no end."""
        cfg: FlashConfig = ctx.config
        if not cfg.has_end:
            return None
        st = ctx.state.get(_key(ctx)) or {}
        start = cfg.starts_on or (date.fromisoformat(st["start"]) if "start" in st else ctx.today)
        if cfg.ends_on is not None:
            end = cfg.ends_on
        elif cfg.lasts_days is not None:
            end = start + timedelta(days=cfg.lasts_days)
        else:
            end = add_months(start, 9)
        return start, end

    def _at(self, ctx: Context, day: date) -> datetime:
        cfg: FlashConfig = ctx.config
        hour, minute = (int(p) for p in cfg.notice_time.split(":"))
        return datetime.combine(day, time(hour, minute), ctx.community.tz)

    # --------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: FlashConfig = ctx.config
        if not cfg.has_end:
            ctx.cancel("daily")
            ctx.cancel("intro")
            return
        key = _key(ctx)
        st = dict(ctx.state.get(key) or {})
        if "start" not in st:
            st["start"] = (cfg.starts_on or ctx.today).isoformat()
            st["sent"] = []
            ctx.state.put(key, st)
        if st.get("ended"):
            ctx.cancel("daily")
            return
        ctx.schedule("daily", cron=cfg.cron)
        wants_intro = cfg.intro if cfg.intro is not None else cfg.plan is None
        if wants_intro and "intro" not in st.get("sent", []):
            # At the notice time of the start day; at once if that has passed.
            start = cfg.starts_on or date.fromisoformat(st["start"])
            at = self._at(ctx, start) if cfg.starts_on else ctx.now
            ctx.schedule("intro", at=max(at, ctx.now), key="intro")

    # --------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: FlashConfig = ctx.config
        text = (event.text or "").strip().casefold()
        if not text or text not in {k.casefold() for k in cfg.countdown_keywords}:
            return
        dates = self._dates(ctx)
        if dates is None:
            return
        left = (dates[1] - ctx.local_day(event.ts)).days
        if left < 0:
            return
        group = ctx.group.name
        reply = (
            ctx.render("ends_today", group=group)
            if left == 0
            else ctx.render("days_left", group=group, days=left, end=dates[1].isoformat())
        )
        ctx.send(reply, reply_to=event.msg_id)

    # ----------------------------------------------------------------- jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        dates = self._dates(ctx)
        if dates is None:
            return
        key = _key(ctx)
        st = dict(ctx.state.get(key) or {})
        if st.get("ended"):
            return
        sent: list[str] = list(st.get("sent", []))
        start, end = dates
        group, end_text = ctx.group.name, end.isoformat()
        today = ctx.today
        if job.name == "intro":
            if "intro" not in sent and today < end:
                ctx.send(ctx.render("intro", group=group, end=end_text))
                sent.append("intro")
        elif job.name == "daily":
            self._daily(ctx, start, end, today, sent)
            if today >= end:
                st["ended"] = True
                ctx.cancel("daily")
        st["sent"] = sent
        ctx.state.put(key, st)

    def _daily(self, ctx: Context, start: date, end: date, today: date, sent: list[str]) -> None:
        cfg: FlashConfig = ctx.config
        group, end_text = ctx.group.name, end.isoformat()

        def once(step: str) -> bool:
            if step in sent:
                return False
            sent.append(step)
            ctx.record("notice", step=step, ends_on=end_text)
            return True

        if cfg.plan == "3-6-9":
            if today >= add_months(start, 3) and today < add_months(start, 6) and once("review-3"):
                ctx.notify_admins(ctx.render("review_3", group=group, end=end_text))
            if add_months(start, 6) <= today < end and once("review-6"):
                ctx.notify_admins(ctx.render("review_6", group=group, end=end_text))
                ctx.send(ctx.render("announce_6", group=group, end=end_text))
        left = (end - today).days
        if left in cfg.countdown_days and once(f"countdown-{left}"):
            ctx.send(ctx.render("countdown", group=group, days=left, end=end_text))
        if left == cfg.farewell_days_before and left > 0 and once("farewell"):
            ctx.send(ctx.render("farewell", group=group, end=end_text))
        if left <= 0 and once("end"):
            if cfg.farewell_days_before == 0 and "farewell" not in sent:
                sent.append("farewell")
                ctx.send(ctx.render("farewell", group=group, end=end_text))
            if cfg.mode == "dissolve":
                ctx.send(ctx.render("last_day", group=group, end=end_text))
                ctx.dissolve_group()
            else:
                ctx.send(ctx.render("archived", group=group, end=end_text))
                ctx.notify_admins(ctx.render("archive_admins", group=group, end=end_text))


def _key(ctx: Context) -> str:
    return f"g:{ctx.group.platform}:{ctx.group.key}"
