"""duty (群管轮值): a weekly duty roster with a checklist, a KPI and duty pay.

Members sign up (``报名值班`` / ``duty signup``) and join the queue in
sign-up order; ``退出值班`` / ``duty quit`` takes them off it. At each
rotation (a cron in the community's time zone, Monday 09:00 by default) the
next ``per_week`` members of the queue, in sign-up order and wrapping
around, go on duty for the ISO week of that moment. Each of them gets the
week's checklist by private message (collect this week's questions, find
answerers through the member directory, warm up the Q&A, compile the digest
— or the operator's own items), and is reminded of the items still open at
``remind_time`` on each of ``remind_days``. An on-duty member (or an owner
or admin) ticks an item off by typing ``完成 1`` / ``done 1`` (its number or
its id) in any group that runs the playbook, or with the ``tick`` command.

At the next rotation the outgoing week is closed: its KPI is computed and
kept (distinct answerers, votes on answers and questions resolved from the
``qa`` playbook's ``week:<W>``; whether a digest was published that week
from the ``digest`` playbook's ``published:<W>`` or ``published:<day>``;
checklist items done), the outgoing members are paid from the admin dues
(below), and a handover notice goes to the admins: outgoing → incoming, with
last week's KPI. A KPI source whose playbook runs nowhere in the community
is shown as "—" (``None`` in the state), not as zero.

Duty pay: ``pay_per_week`` minor units per member per full week, moved from
``community:dues:<currency>`` to the member's account in one balanced
transaction. Pay is **pro rata by days served**: a member who served ``d``
of the 7 days earns ``pay_per_week * d // 7`` (floor; the remainder stays in
the dues). The dues account is never drawn below zero: when it holds less
than what is owed, what it holds is split in proportion to what each member
earned, by largest remainder (ties to the lower user id), and the admins are
told about the shortfall; the shortfall is not carried over.

A duty member who quits (or, with ``leave_on_exit``, leaves a group that
runs the playbook) mid-week is taken off the duty at once. The next member
in the queue who is not on duty steps in for the rest of the week: they get
the checklist and a private message asking them to cover, and the admins are
told. Stepping in does not use up the stand-in's own turn. Days served are
counted from the day one goes on duty to the day one leaves it (a member who
leaves on the day they started served 0 days).

The rotation, the reminders and the pay run in one group only, so the
community has one roster: the admins' group if it runs the playbook, else
the first group that does. The roster is community-wide.

State (community-scoped; the contract other playbooks read):

- ``queue`` → ``[uid, ...]`` in sign-up order; ``next`` → index in the queue
  of the next member to go on duty.
- ``current`` → ``[uid, ...]`` on duty now (``guard`` reads it);
  ``current_week`` → ``YYYY-Www``.
- ``week:<YYYY-Www>`` → ``{"members": [uid, ...], "served": {uid: {"from":
  day, "to": day | null}}, "done": {item_id: {"by": uid, "ts": iso}}}``.
- ``kpi:<YYYY-Www>`` → ``{"week", "answerers", "votes", "resolved", "asked",
  "digest", "checklist_done", "checklist_total", "members", "final",
  "pay": {uid: paid}, "owed": {uid: earned}, "paid_total", "owed_total"}``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron
from qunyun.playbooks.welcome import LocalText, _check_text, localized

Role = Literal["owner", "admin", "assistant", "guest", "member"]
_ALL_ROLES: tuple[Role, ...] = ("owner", "admin", "assistant", "guest", "member")

_ROTATE = "rotation"
_REMIND = "reminder"
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
#: Messages longer than this are never a duty command.
_MAX_TEXT = 200
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week(day: date) -> str:
    """``YYYY-Www`` of a local day."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_days(week: str) -> list[date]:
    """The seven local days of ISO week ``YYYY-Www``."""
    found = _WEEK.match(week)
    if found is None:
        raise ValueError(f"not an ISO week: {week!r}")
    year, num = int(found.group(1)), int(found.group(2))
    return [date.fromisocalendar(year, num, d) for d in range(1, 8)]


def runs_anywhere(ctx: Context, pid: str) -> bool:
    """Whether playbook ``pid`` runs in any group of this community."""
    return any(pid in g.playbooks for g in ctx.community.groups.values())


def is_home(ctx: Context, pid: str) -> bool:
    """Whether this group is where a community-wide playbook runs its jobs:
    the admins' group if it runs ``pid``, else the first group that does."""
    groups = list(ctx.community.groups.values())
    admins = [g for g in groups if g.admin and pid in g.playbooks]
    home = admins[0] if admins else next((g for g in groups if pid in g.playbooks), None)
    return home is not None and (home.platform, home.key) == (ctx.group.platform, ctx.group.key)


def money(amount: int, currency: str) -> str:
    """Minor units as ``12.34 CNY`` (no floats)."""
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}{amount // 100}.{amount % 100:02d} {currency}"


def split_capped(owed: dict[str, int], available: int) -> dict[str, int]:
    """Pay ``owed`` in full if ``available`` covers it, else share ``available``
    in proportion to ``owed`` by largest remainder (ties: lower user id first).

    Never pays more than anyone is owed, never more than ``available`` in all.
    """
    total = sum(owed.values())
    if total <= 0 or available <= 0:
        return dict.fromkeys(owed, 0)
    if available >= total:
        return dict(owed)
    shares = {uid: amount * available // total for uid, amount in owed.items()}
    left = available - sum(shares.values())
    order = sorted(owed, key=lambda uid: (-(owed[uid] * available % total), uid))
    for uid in order[:left]:
        shares[uid] += 1
    return shares


class ChecklistItem(BaseModel):
    """One item of the on-duty checklist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Short id, also accepted in `完成 <id>` (letters, digits, - _ .).")
    title: LocalText = Field(description="What to do: one text, or one per locale.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"item id {value!r}: use 1-32 letters, digits, '-', '_' or '.'")
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: LocalText) -> LocalText:
        checked = _check_text(value)
        assert checked is not None
        return checked


def _default_checklist() -> list[ChecklistItem]:
    return [
        ChecklistItem(id="questions", title={"zh-CN": "收集本周的问题", "en": "Collect this week's questions"}),
        ChecklistItem(
            id="answerers",
            title={"zh-CN": "通过成员名录为每个问题找到答疑人", "en": "Find an answerer for each question in the directory"},
        ),
        ChecklistItem(id="warmup", title={"zh-CN": "为本周问答预热", "en": "Warm up this week's Q&A"}),
        ChecklistItem(id="digest", title={"zh-CN": "整理并发布本周精华", "en": "Compile and publish the digest"}),
    ]


class DutyConfig(PlaybookConfig):
    per_week: int = Field(default=1, ge=1, le=10, description="How many members are on duty each week.")
    rotation: str = Field(
        default="0 9 * * 1",
        description="Cron (community time zone) of the weekly rotation; it should fire at the start of the week.",
    )
    checklist: list[ChecklistItem] = Field(
        default_factory=_default_checklist,
        description="The on-duty checklist: [{id, title}]. Default: questions, answerers, warm-up, digest.",
    )
    remind_days: list[int] = Field(
        default_factory=lambda: [3, 5],
        description="ISO weekdays (1 = Monday … 7 = Sunday) on which open checklist items are reminded.",
    )
    remind_time: str = Field(default="10:00", description="Local time (HH:MM) of the checklist reminders.")
    signup_keywords: list[str] = Field(
        default_factory=lambda: ["报名值班", "duty signup"],
        description="A message that is exactly one of these puts the sender in the duty queue.",
    )
    quit_keywords: list[str] = Field(
        default_factory=lambda: ["退出值班", "duty quit"],
        description="A message that is exactly one of these takes the sender off the queue (and off duty).",
    )
    roster_keywords: list[str] = Field(
        default_factory=lambda: ["值班表", "duty roster"],
        description="A message that is exactly one of these shows who is on duty, the checklist and the queue.",
    )
    done_keywords: list[str] = Field(
        default_factory=lambda: ["完成", "done"],
        description="`<keyword> <number or id>` by an on-duty member, owner or admin ticks a checklist item.",
    )
    eligible_roles: list[Role] = Field(
        default_factory=lambda: list(_ALL_ROLES),
        description="Roles that may sign up for duty.",
    )
    pay_per_week: int = Field(
        default=0, ge=0, description="Duty pay per member per full week, in minor units (fen); 0 = no pay."
    )
    currency: str = Field(default="CNY", description="Currency of the dues account and the pay.")
    leave_on_exit: bool = Field(
        default=True, description="A member who leaves a group that runs the playbook is taken off the roster."
    )

    @field_validator("rotation")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("remind_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"remind_time must be HH:MM (24-hour), e.g. 10:00, not {value!r}")
        return value.strip()

    @field_validator("remind_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        for d in value:
            if not 1 <= d <= 7:
                raise ValueError(f"remind_days are ISO weekdays 1 (Monday) to 7 (Sunday); got {d}")
        return sorted(set(value))

    @field_validator("checklist")
    @classmethod
    def _unique(cls, value: list[ChecklistItem]) -> list[ChecklistItem]:
        seen: set[str] = set()
        for item in value:
            if item.id.casefold() in seen:
                raise ValueError(f"checklist item id {item.id!r} appears twice")
            seen.add(item.id.casefold())
        return value

    @field_validator("signup_keywords", "quit_keywords", "roster_keywords", "done_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            k = kw.strip().casefold()
            if not k or len(k) > 64:
                raise ValueError(f"keywords must be 1 to 64 characters; got {kw!r}")
            out.append(k)
        return out

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError(f"currency must be a code like CNY or USD, not {value!r}")
        return value

    @property
    def remind_cron(self) -> str:
        hour, minute = self.remind_time.split(":")
        return f"{int(minute)} {int(hour)} * * *"


class Duty(Playbook):
    id = "duty"
    version = "1"
    config_model = DutyConfig
    handles = frozenset({"message", "member_left"})
    emits = frozenset({"send", "direct", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "roster": "Who is on duty, the checklist and the queue.",
        "signup": "Put a member in the duty queue. Args: member.",
        "quit": "Take a member off the queue (and off duty, with a stand-in). Args: member.",
        "rotate": "Rotate now (closes the current week: KPI, pay, handover). Refused if already rotated this week.",
        "tick": "Tick a checklist item of this week. Args: item (number or id).",
        "kpi": "A duty week's KPI. Args: week (YYYY-Www; default: the current week).",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "群管轮值：报名排队、每周按顺序轮值、值班清单与提醒、值班 KPI，并从管理费中发放值班津贴。",
        "en": "Duty roster: sign up, weekly rotation in sign-up order, a checklist with reminders, "
        "a KPI per week and duty pay from the admin dues.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "signed_up": {
            "zh-CN": "📝 {name} 已报名值班，排在第 {pos} 位（共 {total} 人）。轮到你时会私信值班清单。",
            "en": "📝 {name} joined the duty roster: number {pos} of {total}. You will get the checklist "
            "privately when your week comes.",
        },
        "already": {
            "zh-CN": "{name} 已经在值班名单里了（第 {pos} 位）。",
            "en": "{name}, you are already on the duty roster (number {pos}).",
        },
        "not_eligible": {
            "zh-CN": "{name}，目前还不能报名值班，有意向请联系管理员。",
            "en": "{name}, you cannot sign up for duty yet. Please talk to an admin if you would like to help.",
        },
        "quit": {
            "zh-CN": "{name} 已退出值班名单，感谢付出！",
            "en": "{name} has left the duty roster. Thank you for your help!",
        },
        "not_in_queue": {
            "zh-CN": "{name} 不在值班名单里。",
            "en": "{name}, you are not on the duty roster.",
        },
        "roster": {
            "zh-CN": "🗓️ 本周（{week}）值班：{current}\n值班清单：\n{items}\n轮值顺序：{queue}",
            "en": "🗓️ On duty this week ({week}): {current}\nChecklist:\n{items}\nRotation order: {queue}",
        },
        "roster_empty": {
            "zh-CN": "还没有人报名值班。发送「报名值班」加入轮值吧！",
            "en": "Nobody has signed up for duty yet. Send \"duty signup\" to join the rotation!",
        },
        "nobody": {"zh-CN": "（暂无）", "en": "(nobody)"},
        "item_line": {"zh-CN": "{mark} {n}. {title}", "en": "{mark} {n}. {title}"},
        "checklist": {
            "zh-CN": "🧭 {week} 轮到你值班啦！本周清单：\n{items}\n完成一项就在群里回复「完成 序号」，例如「完成 1」。",
            "en": "🧭 You are on duty for {week}! This week's checklist:\n{items}\n"
            "When an item is done, reply \"done <number>\" in the group, e.g. \"done 1\".",
        },
        "step_in": {
            "zh-CN": "🙏 {name} 退出了本周值班，请你接班到本周结束（{week}）。清单：\n{items}\n"
            "完成一项就在群里回复「完成 序号」。",
            "en": "🙏 {name} has left this week's duty. Could you cover until the end of {week}? Checklist:\n"
            "{items}\nReply \"done <number>\" in the group as each item is done.",
        },
        "reminder": {
            "zh-CN": "⏰ 本周（{week}）值班清单还有 {open} 项没完成：\n{items}\n完成后在群里回复「完成 序号」。",
            "en": "⏰ {open} checklist items are still open this week ({week}):\n{items}\n"
            "Reply \"done <number>\" in the group when finished.",
        },
        "ticked": {
            "zh-CN": "✅ 已完成「{title}」（{done}/{total}）",
            "en": "✅ Done: {title} ({done}/{total})",
        },
        "already_ticked": {
            "zh-CN": "「{title}」之前已经完成了（{done}/{total}）",
            "en": "{title} was already done ({done}/{total})",
        },
        "unknown_item": {
            "zh-CN": "清单里没有「{item}」。本周清单：\n{items}",
            "en": "There is no checklist item {item}. This week's checklist:\n{items}",
        },
        "no_duty": {
            "zh-CN": "本周还没有人值班，清单暂不能勾选。",
            "en": "Nobody is on duty this week yet, so there is no checklist to tick.",
        },
        "handover": {
            "zh-CN": "🔁 值班交接（{week}）：{outgoing} → {incoming}\n上周（{last_week}）值班成绩：{kpi}{pay}",
            "en": "🔁 Duty handover ({week}): {outgoing} → {incoming}\nLast week ({last_week}): {kpi}{pay}",
        },
        "handover_first": {
            "zh-CN": "🔁 {week} 值班开始：{incoming}",
            "en": "🔁 Duty for {week} starts: {incoming}",
        },
        "handover_nobody": {
            "zh-CN": "⚠️ {week} 没有人值班：值班名单是空的，请大家发送「报名值班」。",
            "en": "⚠️ Nobody is on duty for {week}: the roster is empty. Send \"duty signup\" to volunteer.",
        },
        "kpi": {
            "zh-CN": "答疑 {answerers} 人，回答得票 {votes}，解决问题 {resolved} 个，精华{digest}，清单完成 {done}/{total}",
            "en": "{answerers} answerers, {votes} votes on answers, {resolved} questions resolved, "
            "digest {digest}, checklist {done}/{total}",
        },
        "digest_yes": {"zh-CN": "已发布", "en": "published"},
        "digest_no": {"zh-CN": "未发布", "en": "not published"},
        "unknown": {"zh-CN": "—", "en": "—"},
        "pay": {
            "zh-CN": "\n值班津贴：{lines}",
            "en": "\nDuty pay: {lines}",
        },
        "pay_short": {
            "zh-CN": "\n⚠️ 管理费余额不足：应发 {owed}，实发 {paid}。",
            "en": "\n⚠️ Not enough in the admin dues: {owed} earned, {paid} paid.",
        },
        "left": {
            "zh-CN": "👋 {name} 退出了本周（{week}）值班。{stand_in}",
            "en": "👋 {name} has left this week's duty ({week}). {stand_in}",
        },
        "stand_in": {"zh-CN": "已请 {name} 接班。", "en": "{name} has been asked to step in."},
        "no_stand_in": {
            "zh-CN": "名单里没有人可以接班，请安排一下。",
            "en": "Nobody on the roster can step in; please arrange cover.",
        },
    }

    # ----------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: DutyConfig = ctx.config
        if is_home(ctx, self.id):
            ctx.schedule(_ROTATE, cron=cfg.rotation)
            if cfg.remind_days and cfg.checklist:
                ctx.schedule(_REMIND, cron=cfg.remind_cron)
            else:
                ctx.cancel(_REMIND)
        else:
            ctx.cancel(_ROTATE)
            ctx.cancel(_REMIND)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: DutyConfig = ctx.config
        uid = event.actor.id
        if event.type == "member_left":
            if cfg.leave_on_exit and (uid in self._queue(ctx) or uid in self._current(ctx)):
                self._drop(ctx, uid, reply_to=None)
            return
        text = (event.text or "").strip()
        if not text or len(text) > _MAX_TEXT:
            return
        low = text.casefold()
        name = ctx.name(uid)
        if low in cfg.signup_keywords:
            if ctx.role(uid) not in cfg.eligible_roles:
                ctx.send(ctx.render("not_eligible", name=name), mentions=[uid], reply_to=event.msg_id)
                return
            added, pos, total = self._signup(ctx, uid)
            template = "signed_up" if added else "already"
            ctx.send(ctx.render(template, name=name, pos=pos, total=total), mentions=[uid], reply_to=event.msg_id)
            return
        if low in cfg.quit_keywords:
            if uid not in self._queue(ctx) and uid not in self._current(ctx):
                ctx.send(ctx.render("not_in_queue", name=name), mentions=[uid], reply_to=event.msg_id)
                return
            self._drop(ctx, uid, reply_to=event.msg_id)
            return
        if low in cfg.roster_keywords:
            ctx.send(self._roster_text(ctx), reply_to=event.msg_id)
            return
        words = text.split()
        if len(words) != 2 or words[0].casefold() not in cfg.done_keywords:
            return
        if uid not in self._current(ctx) and ctx.role(uid) not in ("owner", "admin"):
            return  # "完成 1" from anyone else is ordinary chat
        if self._launch_says(ctx, words[0], words[1]):
            return  # the launch playbook's "完成 <task-id>": not ours to answer
        self._tick_reply(ctx, words[1], uid, event.msg_id)

    def _launch_says(self, ctx: Context, keyword: str, ref: str) -> bool:
        """Whether ``<keyword> <ref>`` is for the ``launch`` playbook running in this group.

        Both playbooks listen to ``完成 <x>`` by default. When ``launch`` runs here and
        shares the keyword, a ``ref`` that names one of its tasks is left to it, and so is
        a ``ref`` that is no checklist item of ours (``launch`` answers an unknown task
        itself; two "unknown" replies to one message would only confuse).
        """
        launch = ctx.group.playbooks.get("launch") if ctx.enabled("launch") else None
        if launch is None:
            return False
        words = {str(w).strip().casefold() for w in getattr(launch, "done_keywords", ())}
        if keyword.casefold() not in words:
            return False
        tasks = {str(getattr(t, "id", "")).casefold() for t in getattr(launch, "tasks", ())}
        return ref.strip().casefold() in tasks or self._item(ctx.config, ref) is None

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == _ROTATE:
            self._rotate(ctx, cause="schedule")
        elif job.name == _REMIND:
            self._remind(ctx)

    # ------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: DutyConfig = ctx.config
        args = command.args
        if command.name == "roster":
            return self._roster(ctx)
        if command.name in ("signup", "quit"):
            member = args.get("member")
            if not isinstance(member, str) or not member.strip():
                raise CommandError(Msg("{command} needs member (a user id)", command=command.name))
            if command.name == "signup":
                if ctx.role(member) not in cfg.eligible_roles:
                    raise CommandError(
                        Msg("{member} has role {role!r}, which may not sign up", member=member, role=ctx.role(member)),
                        hint=Msg("eligible_roles: {roles}", roles=", ".join(cfg.eligible_roles)),
                    )
                added, pos, total = self._signup(ctx, member)
                return {"member": member, "added": added, "position": pos, "queue": total}
            if member not in self._queue(ctx) and member not in self._current(ctx):
                raise CommandError(Msg("{member} is not on the duty roster", member=member))
            return {"member": member, **self._drop(ctx, member, reply_to=None)}
        if command.name == "rotate":
            current_week = ctx.state.get("current_week")
            if current_week == iso_week(ctx.today):
                raise CommandError(
                    Msg("duty has already rotated for {week}", week=current_week),
                    hint=Msg("the next rotation closes this week; use quit to replace someone mid-week"),
                )
            return self._rotate(ctx, cause=f"command:{command.actor}")
        if command.name == "tick":
            item = args.get("item")
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                raise CommandError(Msg("tick needs item (its number or id)"))
            week = self._live_week(ctx)
            if week is None:
                raise CommandError(Msg("nobody is on duty this week"), hint=Msg("rotate first, or wait for the rotation"))
            found = self._item(cfg, str(item))
            if found is None:
                raise CommandError(
                    Msg("no checklist item {item!r}", item=item),
                    hint=Msg("items: {items}", items=", ".join(f"{i + 1} {it.id}" for i, it in enumerate(cfg.checklist))),
                )
            fresh = self._tick(ctx, week, found, command.actor)
            return {"week": week, "item": found.id, "ticked": fresh, "kpi": self._kpi(ctx, week)}
        if command.name == "kpi":
            week = args.get("week") or ctx.state.get("current_week")
            if not isinstance(week, str) or not _WEEK.match(week):
                raise CommandError(Msg("week must be YYYY-Www, e.g. 2026-W45"),
                                   hint=Msg("no duty week yet if none is current"))
            kept = ctx.state.get(f"kpi:{week}")
            if kept is not None and kept.get("final"):
                return dict(kept)
            return self._kpi(ctx, week)
        return super().on_command(ctx, command)

    # ------------------------------------------------------------ the queue

    @staticmethod
    def _queue(ctx: Context) -> list[str]:
        queue = ctx.state.get("queue")
        return [u for u in queue if isinstance(u, str)] if isinstance(queue, list) else []

    @staticmethod
    def _current(ctx: Context) -> list[str]:
        current = ctx.state.get("current")
        return [u for u in current if isinstance(u, str)] if isinstance(current, list) else []

    def _signup(self, ctx: Context, uid: str) -> tuple[bool, int, int]:
        queue = self._queue(ctx)
        if uid in queue:
            return False, queue.index(uid) + 1, len(queue)
        queue.append(uid)
        ctx.state.put("queue", queue)
        ctx.record("signup", uid, position=len(queue))
        return True, len(queue), len(queue)

    def _drop(self, ctx: Context, uid: str, *, reply_to: str | None) -> dict[str, Any]:
        """Take ``uid`` off the queue and, mid-week, off duty with a stand-in."""
        queue = self._queue(ctx)
        nxt = int(ctx.state.get("next") or 0)
        if uid in queue:
            idx = queue.index(uid)
            queue.pop(idx)
            if idx < nxt:
                nxt -= 1
            nxt = nxt % len(queue) if queue else 0
            ctx.state.put("queue", queue)
            ctx.state.put("next", nxt)
        ctx.record("quit", uid)
        name = ctx.name(uid)
        if reply_to is not None:
            ctx.send(ctx.render("quit", name=name), mentions=[uid], reply_to=reply_to)
        current = self._current(ctx)
        week = ctx.state.get("current_week")
        if uid not in current or not isinstance(week, str):
            if uid in current:
                ctx.state.put("current", [u for u in current if u != uid])
            return {"was_on_duty": False, "stand_in": None}
        current.remove(uid)
        today = ctx.today.isoformat()
        wk = self._week_state(ctx, week)
        served = wk["served"]
        if uid in served and served[uid].get("to") is None:
            served[uid]["to"] = today
        # the next member in line who is not on duty covers the rest of the week
        stand_in = next(
            (queue[(nxt + i) % len(queue)] for i in range(len(queue)) if queue[(nxt + i) % len(queue)] not in current),
            None,
        )
        if stand_in is not None:
            current.append(stand_in)
            if stand_in not in wk["members"]:
                wk["members"].append(stand_in)
            served[stand_in] = {"from": today, "to": None}
            ctx.direct(
                stand_in, ctx.render("step_in", name=name, week=week, items=self._items_text(ctx, wk))
            )
            ctx.record("step_in", stand_in, week=week, replaces=uid)
        ctx.state.put("current", current)
        ctx.state.put(f"week:{week}", wk)
        note = (
            ctx.render("stand_in", name=ctx.name(stand_in)) if stand_in is not None else ctx.render("no_stand_in")
        )
        ctx.notify_admins(ctx.render("left", name=name, week=week, stand_in=note))
        return {"was_on_duty": True, "stand_in": stand_in}

    # ------------------------------------------------------------- rotation

    def _rotate(self, ctx: Context, *, cause: str) -> dict[str, Any]:
        cfg: DutyConfig = ctx.config
        today = ctx.today
        week = iso_week(today)
        old_week = ctx.state.get("current_week")
        outgoing = self._current(ctx)
        if old_week == week:
            return {"week": week, "rotated": False}  # a second run in the same week changes nothing
        queue = self._queue(ctx)
        if not queue and not outgoing and not isinstance(old_week, str):
            return {"week": week, "rotated": False}  # no roster at all: stay quiet
        result: dict[str, Any] = {"week": week, "rotated": True, "outgoing": outgoing}
        kpi: dict[str, Any] | None = None
        if isinstance(old_week, str) and _WEEK.match(old_week):
            kpi = self._close(ctx, old_week, today)
            result["closed"] = kpi
        # next members in sign-up order, wrapping around
        nxt = int(ctx.state.get("next") or 0) % len(queue) if queue else 0
        incoming: list[str] = []
        for i in range(min(cfg.per_week, len(queue))):
            incoming.append(queue[(nxt + i) % len(queue)])
        if queue:
            ctx.state.put("next", (nxt + len(incoming)) % len(queue))
        ctx.state.put("current", incoming)
        ctx.state.put("current_week", week)
        wk = {
            "members": list(incoming),
            "served": {u: {"from": today.isoformat(), "to": None} for u in incoming},
            "done": {},
        }
        ctx.state.put(f"week:{week}", wk)
        ctx.record("rotation", None, week=week, outgoing=outgoing, incoming=incoming, cause=cause)
        result["incoming"] = incoming
        names_in = self._names(ctx, incoming)
        if not incoming:
            ctx.notify_admins(ctx.render("handover_nobody", week=week))
        elif kpi is None:
            ctx.notify_admins(ctx.render("handover_first", week=week, incoming=names_in))
        else:
            ctx.notify_admins(
                ctx.render(
                    "handover",
                    week=week,
                    outgoing=self._names(ctx, outgoing) if outgoing else ctx.render("nobody"),
                    incoming=names_in,
                    last_week=kpi["week"],
                    kpi=self._kpi_text(ctx, kpi),
                    pay=self._pay_text(ctx, kpi),
                )
            )
        items = self._items_text(ctx, wk)
        for uid in incoming:
            ctx.direct(uid, ctx.render("checklist", week=week, items=items))
        return result

    def _close(self, ctx: Context, week: str, today: date) -> dict[str, Any]:
        """Close duty week ``week``: freeze its KPI and pay its members from the dues."""
        cfg: DutyConfig = ctx.config
        wk = self._week_state(ctx, week)
        for span in wk["served"].values():
            if span.get("to") is None:
                span["to"] = today.isoformat()
        ctx.state.put(f"week:{week}", wk)
        kpi = self._kpi(ctx, week)
        kpi["final"] = True
        owed: dict[str, int] = {}
        if cfg.pay_per_week:
            for uid, span in sorted(wk["served"].items()):
                days = (date.fromisoformat(span["to"]) - date.fromisoformat(span["from"])).days
                earned = cfg.pay_per_week * max(0, min(days, 7)) // 7
                if earned > 0:
                    owed[uid] = earned
        dues = f"community:dues:{cfg.currency}"
        available = ctx.ledger.balance(dues) if owed else 0
        paid = split_capped(owed, available)
        legs = [(ctx.ledger.member_account(uid, cfg.currency), amount) for uid, amount in paid.items() if amount > 0]
        total = sum(amount for _, amount in legs)
        if total > 0:
            ctx.ledger.post([(dues, -total), *legs], cfg.currency, f"duty pay {week}")
            for uid, amount in paid.items():
                if amount > 0:
                    ctx.record("duty_pay", uid, week=week, amount=amount, currency=cfg.currency)
        kpi.update(
            pay={u: a for u, a in paid.items() if a > 0},
            owed=owed,
            paid_total=total,
            owed_total=sum(owed.values()),
            currency=cfg.currency,
        )
        ctx.state.put(f"kpi:{week}", kpi)
        ctx.record("kpi", None, **{k: v for k, v in kpi.items() if k not in ("pay", "owed", "members")})
        return kpi

    # -------------------------------------------------------------- the KPI

    def _kpi(self, ctx: Context, week: str) -> dict[str, Any]:
        """The KPI of duty week ``week`` as it stands now (stored under ``kpi:<week>``)."""
        cfg: DutyConfig = ctx.config
        wk = self._week_state(ctx, week)
        kpi: dict[str, Any] = {
            "week": week,
            "members": list(wk["members"]),
            "answerers": None,
            "votes": None,
            "resolved": None,
            "asked": None,
            "digest": None,
            "checklist_done": sum(1 for it in cfg.checklist if it.id in wk["done"]),
            "checklist_total": len(cfg.checklist),
            "final": False,
        }
        if runs_anywhere(ctx, "qa"):
            qa = ctx.state_of("qa").get(f"week:{week}")
            qa = qa if isinstance(qa, dict) else {}
            answerers = qa.get("answerers")
            kpi["answerers"] = len(answerers) if isinstance(answerers, dict) else 0
            for field in ("votes", "resolved", "asked"):
                value = qa.get(field)
                kpi[field] = value if isinstance(value, int) and not isinstance(value, bool) else 0
        if runs_anywhere(ctx, "digest"):
            digest = ctx.state_of("digest")
            periods = [week, *(d.isoformat() for d in week_days(week))]
            kpi["digest"] = any(digest.get(f"published:{p}") for p in periods)
        return kpi

    def _kpi_text(self, ctx: Context, kpi: dict[str, Any]) -> str:
        unknown = ctx.render("unknown")

        def show(value: Any) -> Any:
            return unknown if value is None else value

        digest = kpi.get("digest")
        return ctx.render(
            "kpi",
            answerers=show(kpi.get("answerers")),
            votes=show(kpi.get("votes")),
            resolved=show(kpi.get("resolved")),
            digest=unknown if digest is None else ctx.render("digest_yes" if digest else "digest_no"),
            done=kpi.get("checklist_done", 0),
            total=kpi.get("checklist_total", 0),
        )

    def _pay_text(self, ctx: Context, kpi: dict[str, Any]) -> str:
        owed: dict[str, int] = kpi.get("owed") or {}
        if not owed:
            return ""
        cur = kpi.get("currency", "CNY")
        paid: dict[str, int] = kpi.get("pay") or {}
        sep = "、" if ctx.locale == "zh-CN" else ", "
        lines = sep.join(f"{ctx.name(u)} {money(paid.get(u, 0), cur)}" for u in sorted(owed))
        text = ctx.render("pay", lines=lines)
        if kpi.get("paid_total", 0) < kpi.get("owed_total", 0):
            text += ctx.render("pay_short", owed=money(kpi["owed_total"], cur), paid=money(kpi["paid_total"], cur))
        return text

    # ----------------------------------------------------------- checklist

    @staticmethod
    def _week_state(ctx: Context, week: str) -> dict[str, Any]:
        raw = ctx.state.get(f"week:{week}")
        raw = raw if isinstance(raw, dict) else {}
        return {
            "members": list(raw.get("members") or []),
            "served": {u: dict(s) for u, s in (raw.get("served") or {}).items()},
            "done": dict(raw.get("done") or {}),
        }

    def _live_week(self, ctx: Context) -> str | None:
        """The duty week whose checklist can be ticked now: the current one, if it is this week."""
        week = ctx.state.get("current_week")
        if not isinstance(week, str) or week != iso_week(ctx.today) or not self._current(ctx):
            return None
        return week

    @staticmethod
    def _item(cfg: DutyConfig, ref: str) -> ChecklistItem | None:
        ref = ref.strip().casefold()
        if ref.isdecimal() and len(ref) <= 3:
            n = int(ref)
            return cfg.checklist[n - 1] if 1 <= n <= len(cfg.checklist) else None
        return next((it for it in cfg.checklist if it.id.casefold() == ref), None)

    def _tick(self, ctx: Context, week: str, item: ChecklistItem, by: str) -> bool:
        wk = self._week_state(ctx, week)
        if item.id in wk["done"]:
            return False
        wk["done"][item.id] = {"by": by, "ts": ctx.now.isoformat()}
        ctx.state.put(f"week:{week}", wk)
        ctx.state.put(f"kpi:{week}", self._kpi(ctx, week))
        ctx.record("ticked", by, week=week, item=item.id)
        return True

    def _tick_reply(self, ctx: Context, ref: str, uid: str, msg_id: str) -> None:
        cfg: DutyConfig = ctx.config
        week = self._live_week(ctx)
        if week is None:
            ctx.send(ctx.render("no_duty"), reply_to=msg_id)
            return
        item = self._item(cfg, ref)
        if item is None:
            wk = self._week_state(ctx, week)
            ctx.send(ctx.render("unknown_item", item=clip(ref, 32), items=self._items_text(ctx, wk)), reply_to=msg_id)
            return
        fresh = self._tick(ctx, week, item, uid)
        wk = self._week_state(ctx, week)
        done = sum(1 for it in cfg.checklist if it.id in wk["done"])
        ctx.send(
            ctx.render(
                "ticked" if fresh else "already_ticked",
                title=localized(item.title, ctx.locale),
                done=done,
                total=len(cfg.checklist),
            ),
            reply_to=msg_id,
        )

    def _items_text(self, ctx: Context, wk: dict[str, Any], *, open_only: bool = False) -> str:
        cfg: DutyConfig = ctx.config
        lines = []
        for i, item in enumerate(cfg.checklist):
            done = item.id in wk["done"]
            if open_only and done:
                continue
            lines.append(
                ctx.render("item_line", mark="✅" if done else "⬜", n=i + 1, title=localized(item.title, ctx.locale))
            )
        return "\n".join(lines)

    def _remind(self, ctx: Context) -> None:
        cfg: DutyConfig = ctx.config
        if ctx.today.isoweekday() not in cfg.remind_days:
            return
        week = self._live_week(ctx)
        if week is None:
            return
        wk = self._week_state(ctx, week)
        open_items = [it for it in cfg.checklist if it.id not in wk["done"]]
        if not open_items:
            return  # all done: nothing to nag about
        items = self._items_text(ctx, wk, open_only=True)
        for uid in self._current(ctx):
            ctx.direct(uid, ctx.render("reminder", week=week, open=len(open_items), items=items))
        ctx.record("reminded", None, week=week, open=[it.id for it in open_items])

    # --------------------------------------------------------------- roster

    def _roster(self, ctx: Context) -> dict[str, Any]:
        week = ctx.state.get("current_week")
        wk = self._week_state(ctx, week) if isinstance(week, str) else None
        return {
            "week": week,
            "current": self._current(ctx),
            "queue": self._queue(ctx),
            "next": int(ctx.state.get("next") or 0),
            "done": sorted(wk["done"]) if wk else [],
            "kpi": self._kpi(ctx, week) if isinstance(week, str) and _WEEK.match(week) else None,
        }

    def _roster_text(self, ctx: Context) -> str:
        queue = self._queue(ctx)
        current = self._current(ctx)
        if not queue and not current:
            return ctx.render("roster_empty")
        week = ctx.state.get("current_week")
        wk = self._week_state(ctx, week) if isinstance(week, str) else {"done": {}}
        return ctx.render(
            "roster",
            week=week if isinstance(week, str) else iso_week(ctx.today),
            current=self._names(ctx, current) if current else ctx.render("nobody"),
            items=self._items_text(ctx, wk),
            queue=" → ".join(ctx.name(u) for u in queue) if queue else ctx.render("nobody"),
        )

    @staticmethod
    def _names(ctx: Context, uids: list[str]) -> str:
        sep = "、" if ctx.locale == "zh-CN" else ", "
        return sep.join(f"@{ctx.name(u)}" for u in uids)

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        queue = self._queue(ctx)
        if member in queue:
            out["queue_position"] = queue.index(member) + 1
        if member in self._current(ctx):
            out["on_duty"] = ctx.state.get("current_week")
        weeks: dict[str, Any] = {}
        for key, wk in ctx.state.scan("week:"):
            if not isinstance(wk, dict):
                continue
            mine: dict[str, Any] = {}
            if member in (wk.get("served") or {}):
                mine["served"] = wk["served"][member]
            ticked = sorted(i for i, d in (wk.get("done") or {}).items() if isinstance(d, dict) and d.get("by") == member)
            if ticked:
                mine["ticked"] = ticked
            if mine:
                weeks[key[5:]] = mine
        for key, kpi in ctx.state.scan("kpi:"):
            if isinstance(kpi, dict) and member in (kpi.get("owed") or {}):
                weeks.setdefault(key[4:], {})["pay"] = {
                    "earned": kpi["owed"][member],
                    "paid": (kpi.get("pay") or {}).get(member, 0),
                    "currency": kpi.get("currency"),
                }
        if weeks:
            out["weeks"] = weeks
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        if member in self._queue(ctx):
            queue = self._queue(ctx)
            idx = queue.index(member)
            queue.pop(idx)
            nxt = int(ctx.state.get("next") or 0)
            if idx < nxt:
                nxt -= 1
            ctx.state.put("queue", queue)
            ctx.state.put("next", nxt % len(queue) if queue else 0)
        current = self._current(ctx)
        if member in current:
            ctx.state.put("current", [u for u in current if u != member])
        for key, wk in list(ctx.state.scan("week:")):
            if not isinstance(wk, dict):
                continue
            members = [u for u in wk.get("members") or [] if u != member]
            served = {u: s for u, s in (wk.get("served") or {}).items() if u != member}
            done = {
                i: ({**d, "by": None} if isinstance(d, dict) and d.get("by") == member else d)
                for i, d in (wk.get("done") or {}).items()
            }
            new = {**wk, "members": members, "served": served, "done": done}
            if new != wk:
                ctx.state.put(key, new)
        for key, kpi in list(ctx.state.scan("kpi:")):
            if not isinstance(kpi, dict):
                continue
            new = dict(kpi)
            new["members"] = [u for u in kpi.get("members") or [] if u != member]
            new["pay"] = {u: a for u, a in (kpi.get("pay") or {}).items() if u != member}
            new["owed"] = {u: a for u, a in (kpi.get("owed") or {}).items() if u != member}
            if new != kpi:
                ctx.state.put(key, new)  # the totals stay: anonymous aggregates

