"""launch (建群节奏): a dated launch checklist for a new group, with reminders.

A new group gets a plan of tasks, each due a number of days after the
group's start (``starts_on``, else the day qunyun first sets the group up):
seed members (3-5) ready on day 0, the rules within the first 3 days, an
opening-week event, interactive activities in the first month and a daily
review — or the operator's own list. When the plan is created the admins get
the whole checklist with dates. Every day at ``remind_time`` (local time)
each task due that day is reminded to its owner (a role → the admins' group,
or a private message with ``remind_by: direct``; a user id → a private
message), and tasks that are overdue are reported once, in one message.

An owner or admin marks a task done by typing ``完成 <task-id>`` /
``done <task-id>`` (optionally followed by a group id) in any group that runs
the playbook, or with the ``done`` command; a done task is not reminded nor
reported again. ``建群计划`` / ``launch plan`` (or the ``plan`` command) shows
the status. A repeating task (``repeat_days``) is due every day of its run;
``done`` marks today's occurrence.

State: ``g:<group>`` → ``{"start": date, "done": {task or task@date: at},
"last_run": date, "finished": bool}`` (no member data).
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.playbooks.welcome import LocalText, _check_text, localized

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ROLES = ("owner", "admin", "assistant", "guest")
_ROLE_NAMES = {
    "zh-CN": {"owner": "群主", "admin": "管理员", "assistant": "助理", "guest": "嘉宾"},
    "en": {"owner": "owner", "admin": "admins", "assistant": "assistants", "guest": "guests"},
}


class LaunchTask(BaseModel):
    """One task of the launch plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Short id typed in `done <id>` (letters, digits, - _ .).")
    title: LocalText = Field(description="What to do: one text, or one per locale.")
    day: int = Field(ge=0, le=366, description="Due this many days after the start (0 = the start day).")
    owner: str = Field(default="admin", description="A role (owner, admin, assistant, guest) or a user id.")
    reminder: bool = Field(default=True, description="Remind the owner on the due day.")
    repeat_days: int = Field(
        default=0, ge=0, le=366, description="Due every day for this many days from `day` (0: once)."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"task id {value!r}: use 1-64 letters, digits, '-', '_' or '.'")
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: LocalText) -> LocalText:
        checked = _check_text(value)
        assert checked is not None
        return checked

    def last_day(self) -> int:
        return self.day + max(self.repeat_days, 1) - 1


def _default_tasks() -> list[LaunchTask]:
    return [
        LaunchTask(id="seed", day=0, owner="owner",
                   title={"zh-CN": "种子成员就位（3-5 位活跃的老朋友先进群）",
                          "en": "Seed members ready (3-5 active people in the group first)"}),
        LaunchTask(id="rules", day=2,
                   title={"zh-CN": "发布群规（前 3 天内）", "en": "Post the group rules (within the first 3 days)"}),
        LaunchTask(id="opening", day=6,
                   title={"zh-CN": "开群周活动（第一周内办一场）", "en": "Opening-week event (one in the first week)"}),
        LaunchTask(id="activity-1", day=12,
                   title={"zh-CN": "第一场互动活动（接龙、话题讨论、小分享）",
                          "en": "First interactive activity (a chain, a topic, a short talk)"}),
        LaunchTask(id="activity-2", day=24,
                   title={"zh-CN": "第二场互动活动", "en": "Second interactive activity"}),
        LaunchTask(id="review", day=0, repeat_days=30,
                   title={"zh-CN": "每日复盘：今天谁在说话、谁需要被照顾",
                          "en": "Daily review: who spoke today, who needs a hand"}),
    ]


class LaunchConfig(PlaybookConfig):
    starts_on: date | None = Field(
        default=None, description="Day 0 of the plan (local date); unset: the day qunyun first sets the group up."
    )
    tasks: list[LaunchTask] = Field(
        default_factory=_default_tasks,
        description="The checklist: {id, title, day, owner, reminder, repeat_days} each. Default: the standard launch.",
    )
    remind_time: str = Field(default="09:00", description="Local time (HH:MM) of the daily reminders and report.")
    remind_by: Literal["notify_admins", "direct"] = Field(
        default="notify_admins",
        description="Tasks owned by a role: remind in the admins' group, or privately to each holder of the role.",
    )
    overdue_days: int = Field(
        default=7, ge=0, le=90, description="Report an unfinished task as overdue for at most this many days."
    )
    done_keywords: list[str] = Field(
        default_factory=lambda: ["完成", "done"], description="`<keyword> <task-id>` by an admin marks a task done."
    )
    plan_keywords: list[str] = Field(
        default_factory=lambda: ["建群计划", "launch plan"],
        description="A message that is exactly one of these (by an admin) shows the plan's status.",
    )

    @field_validator("remind_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"remind_time must be HH:MM (24-hour), e.g. 09:00, not {value!r}")
        return value.strip()

    @field_validator("tasks")
    @classmethod
    def _unique(cls, value: list[LaunchTask]) -> list[LaunchTask]:
        seen: set[str] = set()
        for task in value:
            if task.id in seen:
                raise ValueError(f"task id {task.id!r} appears twice")
            seen.add(task.id)
        return value

    @property
    def cron(self) -> str:
        hour, minute = self.remind_time.split(":")
        return f"{int(minute)} {int(hour)} * * *"


class Launch(Playbook):
    id = "launch"
    version = "1"
    config_model = LaunchConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "direct", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "plan": "The launch plan and each task's status. Args: group.",
        "done": "Mark a task done (a repeating task: today's). Args: task, group.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "建群节奏：新群的带日期的任务清单，到期提醒负责人，逾期每日汇报。",
        "en": "A dated launch checklist for a new group: reminders on due days, overdue tasks reported daily.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "kickoff": {
            "zh-CN": "🚀「{group}」的建群计划（{start} 开始）：\n{lines}\n完成一项就回复「完成 任务id」。",
            "en": "🚀 Launch plan for {group} (starting {start}):\n{lines}\nReply \"done <task-id>\" as each one is finished.",
        },
        "line": {
            "zh-CN": "{mark} {due} {title}（{owner}）[{id}]",
            "en": "{mark} {due} {title} ({owner}) [{id}]",
        },
        "due_today": {
            "zh-CN": "📌「{group}」今天要完成：\n{lines}\n完成后回复「完成 任务id」。",
            "en": "📌 Due today in {group}:\n{lines}\nReply \"done <task-id>\" when finished.",
        },
        "overdue": {
            "zh-CN": "⚠️「{group}」还有逾期未完成的任务：\n{lines}",
            "en": "⚠️ Overdue in {group}:\n{lines}",
        },
        "status": {
            "zh-CN": "📋「{group}」建群计划（{start} 开始）：\n{lines}",
            "en": "📋 Launch plan for {group} (started {start}):\n{lines}",
        },
        "marked_done": {
            "zh-CN": "✅ 已完成：{title}",
            "en": "✅ Done: {title}",
        },
        "unknown_task": {
            "zh-CN": "没有任务「{task}」。可用的任务：{ids}",
            "en": "There is no task {task}. Tasks: {ids}",
        },
    }

    # ----------------------------------------------------------------- setup

    def setup(self, ctx: Context) -> None:
        cfg: LaunchConfig = ctx.config
        key = _key(ctx.group.key)
        st = dict(ctx.state.get(key) or {})
        if "start" not in st:
            st["start"] = (cfg.starts_on or ctx.today).isoformat()
            st["done"] = {}
            ctx.state.put(key, st)
            ctx.schedule("kickoff", at=ctx.now, key="kickoff")
        if st.get("finished"):
            ctx.cancel("daily")
        else:
            ctx.schedule("daily", cron=cfg.cron)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: LaunchConfig = ctx.config
        text = (event.text or "").strip()
        if not text or len(text) > 200:
            return
        low = text.casefold()
        uid = event.actor.id
        is_admin = ctx.role(uid) in ("owner", "admin")
        if low in {k.casefold() for k in cfg.plan_keywords}:
            if is_admin:
                ctx.send(self._status_text(ctx, ctx.group.key), reply_to=event.msg_id)
            return
        words = text.split()
        if len(words) not in (2, 3) or words[0].casefold() not in {k.casefold() for k in cfg.done_keywords}:
            return
        gkey = words[2] if len(words) == 3 else ctx.group.key
        try:
            gcfg = _config_of(ctx, gkey)
        except CommandError:
            return
        task = next((t for t in gcfg.tasks if t.id == words[1]), None)
        if not is_admin and not (task is not None and task.owner == uid):
            return
        if task is None:
            if ctx.enabled("duty") and words[1].isdigit():
                return  # "完成 2" ticks the duty checklist's item 2: not ours to answer
            ids = ", ".join(t.id for t in gcfg.tasks)
            ctx.send(ctx.render("unknown_task", task=words[1], ids=ids), reply_to=event.msg_id)
            return
        self._mark(ctx, gkey, task, uid)
        ctx.send(ctx.render("marked_done", title=localized(task.title, ctx.locale)), reply_to=event.msg_id)

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        key = _key(ctx.group.key)
        st = dict(ctx.state.get(key) or {})
        if "start" not in st or st.get("finished"):
            return
        if job.name == "kickoff":
            ctx.notify_admins(
                ctx.render("kickoff", group=ctx.group.name, start=st["start"], lines=self._lines(ctx, ctx.group.key))
            )
            if ctx.local_now.time() >= _time_of(ctx.config.remind_time):
                self._day(ctx, st)  # today's reminders: the daily time has passed already
        elif job.name == "daily":
            self._day(ctx, st)

    def _day(self, ctx: Context, st: dict[str, Any]) -> None:
        cfg: LaunchConfig = ctx.config
        today = ctx.today
        if st.get("last_run") == today.isoformat():
            return
        st["last_run"] = today.isoformat()
        start = date.fromisoformat(st["start"])
        done: dict[str, str] = st.get("done") or {}
        d = (today - start).days
        due: list[LaunchTask] = []
        overdue: list[tuple[LaunchTask, date]] = []
        for task in cfg.tasks:
            if task.repeat_days:
                if task.day <= d < task.day + task.repeat_days and f"{task.id}@{today}" not in done:
                    due.append(task)
                yesterday = today - timedelta(days=1)
                y = d - 1
                if task.day <= y < task.day + task.repeat_days and f"{task.id}@{yesterday}" not in done:
                    overdue.append((task, yesterday))
            elif task.id not in done:
                due_day = start + timedelta(days=task.day)
                if due_day == today:
                    due.append(task)
                elif due_day < today <= due_day + timedelta(days=cfg.overdue_days):
                    overdue.append((task, due_day))
        group = ctx.group.name
        self._remind(ctx, [t for t in due if t.reminder], start)
        if overdue:
            lines = "\n".join(self._line(ctx, t, day, "⚠️") for t, day in overdue)
            ctx.notify_admins(ctx.render("overdue", group=group, lines=lines))
            for task, day in overdue:
                ctx.record("overdue", task=task.id, due=day.isoformat())
        # the last day anything can still be said: a missed repeat is reported the day after
        last = max((t.last_day() + (1 if t.repeat_days else cfg.overdue_days) for t in cfg.tasks), default=0)
        if d >= last:
            st["finished"] = True
            ctx.cancel("daily")
        ctx.state.put(_key(ctx.group.key), st)

    def _remind(self, ctx: Context, tasks: list[LaunchTask], start: date) -> None:
        """Remind each owner of their tasks due today: roles in the admins' group or privately."""
        if not tasks:
            return
        cfg: LaunchConfig = ctx.config
        group = ctx.group.name
        today = ctx.today
        admins: list[LaunchTask] = []
        private: dict[str, list[LaunchTask]] = {}
        for task in tasks:
            if task.owner in _ROLES:
                if cfg.remind_by == "direct":
                    holders = sorted(u for u, r in ctx.community.roles.items() if r == task.owner)
                    for uid in holders:
                        private.setdefault(uid, []).append(task)
                    if holders:
                        continue
                admins.append(task)
            else:
                private.setdefault(task.owner, []).append(task)
        if admins:
            lines = "\n".join(self._line(ctx, t, today, "📌") for t in admins)
            ctx.notify_admins(ctx.render("due_today", group=group, lines=lines))
        for uid, mine in private.items():
            lines = "\n".join(self._line(ctx, t, today, "📌") for t in mine)
            ctx.direct(uid, ctx.render("due_today", group=group, lines=lines))
        for task in tasks:
            ctx.record("reminded", task=task.id, due=today.isoformat())

    # -------------------------------------------------------------- status

    def _line(self, ctx: Context, task: LaunchTask, due: date, mark: str) -> str:
        owner = task.owner
        shown = _ROLE_NAMES.get(ctx.locale, _ROLE_NAMES["en"]).get(owner) if owner in _ROLES else ctx.name(owner)
        return ctx.render(
            "line", mark=mark, due=due.strftime("%m-%d"), title=localized(task.title, ctx.locale),
            owner=shown, id=task.id,
        )

    def _rows(self, ctx: Context, gkey: str) -> tuple[str, list[dict[str, Any]]]:
        cfg = _config_of(ctx, gkey)
        st = ctx.state.get(_key(gkey)) or {}
        start = date.fromisoformat(st["start"]) if "start" in st else (cfg.starts_on or ctx.today)
        done: dict[str, str] = st.get("done") or {}
        today = ctx.today
        rows = []
        for task in cfg.tasks:
            due = start + timedelta(days=task.day)
            row: dict[str, Any] = {"id": task.id, "title": localized(task.title, ctx.locale), "owner": task.owner,
                                   "due": due.isoformat()}
            if task.repeat_days:
                days = [start + timedelta(days=task.day + i) for i in range(task.repeat_days)]
                row["until"] = days[-1].isoformat()
                row["days_done"] = sum(1 for x in days if f"{task.id}@{x}" in done)
                row["status"] = (
                    "upcoming" if today < days[0] else "done" if today > days[-1] or f"{task.id}@{today}" in done
                    else "due"
                )
            else:
                row["status"] = (
                    "done" if task.id in done else "due" if due == today else "overdue" if due < today else "upcoming"
                )
                if task.id in done:
                    row["done_at"] = done[task.id]
            rows.append(row)
        return start.isoformat(), rows

    def _lines(self, ctx: Context, gkey: str) -> str:
        _, rows = self._rows(ctx, gkey)
        cfg = _config_of(ctx, gkey)
        marks = {"done": "✅", "due": "📌", "overdue": "⚠️", "upcoming": "⬜"}
        by_id = {t.id: t for t in cfg.tasks}
        return "\n".join(
            self._line(ctx, by_id[r["id"]], date.fromisoformat(r["due"]), marks[r["status"]]) for r in rows
        )

    def _status_text(self, ctx: Context, gkey: str) -> str:
        start, _ = self._rows(ctx, gkey)
        return ctx.render("status", group=_group_name(ctx, gkey), start=start, lines=self._lines(ctx, gkey))

    def _mark(self, ctx: Context, gkey: str, task: LaunchTask, by: str) -> str:
        key = _key(gkey)
        st = dict(ctx.state.get(key) or {})
        if "start" not in st:
            cfg = _config_of(ctx, gkey)
            st["start"] = (cfg.starts_on or ctx.today).isoformat()
        slot = f"{task.id}@{ctx.today}" if task.repeat_days else task.id
        done = dict(st.get("done") or {})
        done.setdefault(slot, ctx.now.isoformat())
        st["done"] = done
        ctx.state.put(key, st)
        ctx.record("done", task=slot, by=by, group=gkey)
        return slot

    # ------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        gkey = command.args.get("group") or ctx.group.key
        if not isinstance(gkey, str):
            raise CommandError(Msg("group must be a group id"))
        cfg = _config_of(ctx, gkey)
        if command.name == "plan":
            start, rows = self._rows(ctx, gkey)
            return {"group": gkey, "start": start, "tasks": rows}
        if command.name == "done":
            tid = command.args.get("task")
            task = next((t for t in cfg.tasks if t.id == tid), None)
            if task is None:
                raise CommandError(
                    Msg("no task {task!r} in the launch plan of {group!r}", task=tid, group=gkey),
                    hint=Msg("tasks: {tasks}", tasks=", ".join(t.id for t in cfg.tasks)),
                )
            return {"group": gkey, "done": self._mark(ctx, gkey, task, command.actor)}
        return super().on_command(ctx, command)


def _key(gkey: str) -> str:
    return f"g:{gkey}"


def _time_of(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def _config_of(ctx: Context, gkey: str) -> LaunchConfig:
    for g in ctx.community.groups.values():
        if g.key == gkey:
            cfg = g.playbooks.get("launch")
            if cfg is None:
                raise CommandError(Msg("launch does not run in group {group!r}", group=gkey))
            return cfg  # type: ignore[no-any-return]
    raise CommandError(Msg("community {community!r} has no group {group!r}", community=ctx.community.id, group=gkey))


def _group_name(ctx: Context, gkey: str) -> str:
    return next((g.name for g in ctx.community.groups.values() if g.key == gkey), gkey)

