"""sessions (分享): sharing sessions with a pipeline, warm-ups, questions and a floor.

An operator creates a session (``create``: speaker, host, topic, start time,
duration, group). The session gets a pipeline of stages — invite, interview,
design, collect questions, warm-up, host, floor control, promotion, summary —
each with an owner (``speaker``, ``host``, ``admins`` or a user id) and a due
day (an offset from the start day, configurable). On a stage's due day the
owner is reminded (direct message, or the admins for ``admins``); a stage
still open the day after is reported to the admins once.

Before the session the bot posts the warm-ups on schedule (3 days, 1 day and
1 hour before by default) and collects questions: a message in the group
starting with ``#问`` or ``Q:`` during the collection window is stored as a
question for the speaker. While the session runs the group is in "floor
mode": the speaker, the host (and the exempt roles) speak freely; anyone
else's message is collected as a question and its author gets one gentle
notice per session — the message is deleted only if the operator asks for it,
and nobody is ever removed or muted. A speaker who says nothing within N
minutes of the start is a no-show: the host and the admins are told and the
floor opens again. After the end the speaker is credited (a ``shared``
record, the week's aggregate) and a summary draft — topic, speaker, the
questions and the speaker's replies to them — goes to the admins.

State (read by other playbooks, see the issue's shared contracts):
``s:<sid>`` the session; ``s:<sid>:q:<msg_id>`` its questions;
``s:<sid>:n:<uid>`` who got the floor notice; ``active:<group>`` the sessions
a group's messages are checked against; ``week:<YYYY-Www>`` →
``{"shares": {speaker: n}}``; ``m:<uid>`` → ``{"shares": n}``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$", re.I)
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_STAGE_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CONTROLS = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")

Role = Literal["owner", "admin", "assistant", "guest", "member"]

#: Statuses in which a session still matters to messages in its group.
_OPEN = ("scheduled", "live")
#: how far ahead a session may be planned (beyond, its stages' dates could leave the calendar)
MAX_AHEAD = timedelta(days=36525)


def parse_duration(value: str) -> timedelta:
    """``"3d"``, ``"1h"``, ``"30m"``, ``"1d12h"`` → a positive timedelta."""
    match = _DURATION.match(value or "")
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration like 3d, 1h, 30m or 1d12h")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes)
    if delta <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than zero")
    return delta


def clean_text(text: str, limit: int) -> str:
    """Member- or operator-typed text made safe to repeat: no controls or bidi marks, bounded."""
    return clip(_CONTROLS.sub("", text or "").strip(), limit)


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class StageSpec(BaseModel):
    """One stage of the pipeline: who owns it and when it is due."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stage id (lower-case letters, digits, underscores).")
    offset_days: int = Field(
        ge=-365, le=365, description="Due day relative to the session's local start day (negative: before)."
    )
    owner: str = Field(
        default="host", description="Who does it: speaker, host, admins, or a platform user id."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _STAGE_ID.match(value):
            raise ValueError(f"stage id {value!r} must be lower-case letters, digits and underscores")
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a stage needs an owner: speaker, host, admins or a user id")
        return value


DEFAULT_STAGES: tuple[tuple[str, int, str], ...] = (
    ("invite", -14, "admins"),
    ("interview", -10, "host"),
    ("design", -7, "admins"),
    ("questions", -3, "host"),
    ("warmup", -3, "admins"),
    ("host", -1, "host"),
    ("floor", 0, "host"),
    ("promotion", 1, "admins"),
    ("summary", 2, "host"),
)


class SessionsConfig(PlaybookConfig):
    stages: list[StageSpec] = Field(
        default_factory=lambda: [StageSpec(id=i, offset_days=d, owner=o) for i, d, o in DEFAULT_STAGES],
        description="The pipeline: each stage's id, due day (offset_days from the start day) and owner.",
    )
    reminder_time: str = Field(
        default="10:00", description="Local time (HH:MM) on a stage's due day when its owner is reminded."
    )
    report_overdue: bool = Field(
        default=True, description="Tell the admins once when a stage is still open the day after it was due."
    )
    default_duration: int = Field(default=60, ge=5, le=24 * 60, description="Minutes a session lasts unless given.")
    warmups: list[str] = Field(
        default_factory=lambda: ["3d", "1d", "1h"],
        description="When the warm-up posts go out, before the start (durations like 3d, 1h, 30m).",
    )
    question_keywords: list[str] = Field(
        default_factory=lambda: ["#问", "#提问", "Q:", "Q：", "#Q"],
        description="A message starting with one of these (case-insensitive) is a question for the speaker.",
    )
    questions_open: str = Field(
        default="3d", description="How long before the start questions are collected (a duration)."
    )
    ack_questions: bool = Field(
        default=True, description="Confirm a question collected before the session with a short reply."
    )
    max_questions: int = Field(default=200, ge=1, le=2000, description="Questions kept per session at most.")
    max_questions_per_member: int = Field(
        default=5, ge=1, le=100, description="Questions one member may leave per session."
    )
    floor: bool = Field(
        default=True,
        description="Floor mode while the session runs: only the speaker and the host (and exempt roles) speak.",
    )
    floor_exempt_roles: list[Role] = Field(
        default_factory=lambda: list[Role](["owner", "admin"]),
        description="Roles that may speak freely during floor mode besides the speaker and the host.",
    )
    floor_notice: Literal["direct", "group"] = Field(
        default="direct",
        description="How the one gentle notice per member and session is given: a direct message or a reply.",
    )
    floor_delete: bool = Field(
        default=False,
        description="Also delete others' messages during floor mode (they are still collected as questions).",
    )
    no_show_minutes: int = Field(
        default=10, ge=1, le=240,
        description="A speaker with no message from this many minutes before to this many after the start is a no-show.",
    )
    summary_delay: int = Field(
        default=30, ge=0, le=24 * 60,
        description="Minutes after the end when the summary draft goes to the admins (time for replies).",
    )
    speaker_points: int = Field(default=0, ge=0, description="Points the speaker earns for a session held.")

    @field_validator("reminder_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value.strip()):
            raise ValueError(f"{value!r} is not a local time HH:MM")
        return value.strip()

    @field_validator("warmups")
    @classmethod
    def _warmups(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_duration(item)
        return value

    @field_validator("questions_open")
    @classmethod
    def _open(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("question_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if k.strip()]
        if len(cleaned) != len(value):
            raise ValueError("question keywords must not be empty")
        return cleaned

    @field_validator("stages")
    @classmethod
    def _unique(cls, value: list[StageSpec]) -> list[StageSpec]:
        ids = [s.id for s in value]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"stage ids must be unique; repeated: {', '.join(dup)}")
        return value


_STAGE_LABELS: dict[str, dict[str, str]] = {
    "stage_invite": {"zh-CN": "邀请讲者", "en": "invite the speaker"},
    "stage_interview": {"zh-CN": "讲前访谈", "en": "interview the speaker"},
    "stage_design": {"zh-CN": "海报设计", "en": "poster and design"},
    "stage_questions": {"zh-CN": "征集问题", "en": "collect questions"},
    "stage_warmup": {"zh-CN": "预热宣传", "en": "warm-up announcements"},
    "stage_host": {"zh-CN": "主持准备", "en": "host preparation"},
    "stage_floor": {"zh-CN": "控场", "en": "control the floor"},
    "stage_promotion": {"zh-CN": "会后推广", "en": "post-session promotion"},
    "stage_summary": {"zh-CN": "会后总结", "en": "post-session summary"},
}


class Sessions(Playbook):
    id = "sessions"
    version = "1"
    config_model = SessionsConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "direct", "notify_admins", "delete"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "分享会：流程分工与截止提醒、预热、征集问题、控场、缺席处理与会后总结草稿。",
        "en": "Sharing sessions: a staged pipeline with reminders, warm-ups, questions, a floor and a summary draft.",
    }
    commands: ClassVar[dict[str, str]] = {
        "create": "Plan a session. Args: speaker, topic, starts_at (local or with offset), host, duration "
        "(minutes), group, stages ({stage: {owner, due}}).",
        "list": "Sessions, newest first. Args: status (optional).",
        "show": "One session with its stages and questions. Args: session.",
        "stage": "Update a stage. Args: session, stage, done (true/false), owner, due (YYYY-MM-DD).",
        "cancel": "Call a session off; the group is told if warm-ups went out. Args: session, reason.",
        "summary": "(Re)build the summary draft, store it and send it to the admins. Args: session.",
        "questions": "The questions collected for a session. Args: session.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        **_STAGE_LABELS,
        "stage_reminder": {
            "zh-CN": "⏰ 分享会 #{sid}「{topic}」（{time}）：今天是「{stage}」的截止日，由你负责，完成后请告诉管理员标记完成。",
            "en": "⏰ Session #{sid} \"{topic}\" ({time}): \"{stage}\" is due today and it is yours. "
            "Tell an admin when it is done.",
        },
        "stage_reminder_admins": {
            "zh-CN": "⏰ 分享会 #{sid}「{topic}」（{time}）：今天是「{stage}」的截止日，负责人：{owner}。",
            "en": "⏰ Session #{sid} \"{topic}\" ({time}): \"{stage}\" is due today; owner: {owner}.",
        },
        "stage_overdue": {
            "zh-CN": "⚠️ 分享会 #{sid}「{topic}」：「{stage}」已过截止日（{due}）仍未完成，负责人：{owner}。",
            "en": "⚠️ Session #{sid} \"{topic}\": \"{stage}\" was due {due} and is still open; owner: {owner}.",
        },
        "owner_admins": {"zh-CN": "管理员", "en": "the admins"},
        "nobody": {"zh-CN": "（待定）", "en": "(to be named)"},
        "erased": {"zh-CN": "（已删除）", "en": "(erased)"},
        "warmup": {
            "zh-CN": "📣 {left}分享预告：「{topic}」\n讲者：{speaker}　主持：{host}\n时间：{time}（约 {minutes} 分钟）\n"
            "有问题想问讲者？在群里发「#问 你的问题」提前提交～",
            "en": "📣 Sharing session {left}: \"{topic}\"\nSpeaker: {speaker} · Host: {host}\n"
            "When: {time} (about {minutes} minutes)\nA question for the speaker? Post \"Q: your question\" here.",
        },
        "left_days": {"zh-CN": "{n} 天后", "en": "in {n} days"},
        "left_day": {"zh-CN": "明天", "en": "tomorrow"},
        "left_hours": {"zh-CN": "{n} 小时后", "en": "in {n} hours"},
        "left_minutes": {"zh-CN": "{n} 分钟后", "en": "in {n} minutes"},
        "question_ack": {
            "zh-CN": "收到 {name} 的问题（第 {n} 个），会转给讲者 {speaker}。",
            "en": "Got your question, {name} (no. {n}); it goes to the speaker, {speaker}.",
        },
        "start": {
            "zh-CN": "🎙️ 分享开始：「{topic}」，讲者 {speaker}，主持 {host}。\n分享期间请由讲者和主持发言，"
            "大家的消息会自动收集为问题，稍后统一解答，谢谢配合！",
            "en": "🎙️ We are starting: \"{topic}\" with {speaker}, hosted by {host}.\n"
            "While the session runs only the speaker and the host speak; anything else you post is kept "
            "as a question for later. Thank you!",
        },
        "start_open": {
            "zh-CN": "🎙️ 分享开始：「{topic}」，讲者 {speaker}，主持 {host}。欢迎大家边听边提问！",
            "en": "🎙️ We are starting: \"{topic}\" with {speaker}, hosted by {host}. Questions welcome as we go!",
        },
        "floor_notice": {
            "zh-CN": "{name}，现在是「{topic}」的分享时间，群里暂时只请讲者和主持发言。你的消息已记为问题，"
            "结束后会统一解答，感谢理解～",
            "en": "{name}, \"{topic}\" is on right now and only the speaker and the host speak until it ends. "
            "Your message is kept as a question for the speaker. Thanks for understanding!",
        },
        "end": {
            "zh-CN": "🙏 分享结束，感谢 {speaker} 的精彩分享！共收到 {count} 个问题，发言恢复自由。",
            "en": "🙏 That's a wrap. Thank you, {speaker}! {count} questions came in; the floor is open again.",
        },
        "no_show_group": {
            "zh-CN": "「{topic}」的讲者暂时未到场，分享推迟，群里恢复自由发言，后续安排请留意通知。",
            "en": "The speaker for \"{topic}\" has not arrived; the session is postponed and the floor is open "
            "again. We will announce what happens next.",
        },
        "no_show_admins": {
            "zh-CN": "⚠️ 分享会 #{sid}「{topic}」开始 {minutes} 分钟后讲者 {speaker} 仍未发言，已标记为缺席并结束控场。"
            "请联系讲者并重新安排。",
            "en": "⚠️ Session #{sid} \"{topic}\": the speaker, {speaker}, has not spoken {minutes} minutes after "
            "the start. Marked as a no-show and the floor is open again; please reach out and reschedule.",
        },
        "cancelled": {
            "zh-CN": "📢 原定 {time} 的分享「{topic}」取消了，抱歉！{reason}",
            "en": "📢 The session \"{topic}\" planned for {time} is cancelled, sorry! {reason}",
        },
        "summary": {
            "zh-CN": "📝 分享总结草稿 #{sid}\n主题：{topic}\n讲者：{speaker}　主持：{host}\n时间：{time}（{minutes} 分钟）\n"
            "收到问题 {count} 个，讲者已回复 {answered} 个：\n{lines}",
            "en": "📝 Summary draft, session #{sid}\nTopic: {topic}\nSpeaker: {speaker} · Host: {host}\n"
            "When: {time} ({minutes} minutes)\n{count} questions, {answered} answered by the speaker:\n{lines}",
        },
        "summary_line": {"zh-CN": "{n}. {asker}：{question}", "en": "{n}. {asker}: {question}"},
        "summary_answer": {"zh-CN": "   ↳ 讲者回复：{answer}", "en": "   ↳ speaker's reply: {answer}"},
        "summary_none": {"zh-CN": "（没有收到问题）", "en": "(no questions)"},
    }

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _cfg(ctx: Context, group: str) -> SessionsConfig:
        """The configuration of the session's group (jobs may fire in another group)."""
        for g in ctx.community.groups.values():
            if g.key == group and "sessions" in g.playbooks:
                cfg: SessionsConfig = g.playbooks["sessions"]
                return cfg
        own: SessionsConfig = ctx.config
        return own

    def _time(self, ctx: Context, iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(ctx.community.tz).strftime("%Y-%m-%d %H:%M")

    def _who(self, ctx: Context, uid: str | None, missing: str = "nobody") -> str:
        return ctx.name(uid) if uid else ctx.render(missing)

    def _stage_label(self, ctx: Context, stage: str) -> str:
        name = f"stage_{stage}"
        return ctx.render(name) if name in self.templates else stage

    def _owner_label(self, ctx: Context, s: dict[str, Any], owner: str) -> str:
        uid = self._owner_uid(s, owner)
        return self._who(ctx, uid) if uid else ctx.render("owner_admins")

    @staticmethod
    def _owner_uid(s: dict[str, Any], owner: str) -> str | None:
        """The user who owns a stage, or None for the admins."""
        if owner == "admins":
            return None
        if owner == "speaker":
            return s.get("speaker")
        if owner == "host":
            return s.get("host")
        return owner

    def _values(self, ctx: Context, s: dict[str, Any]) -> dict[str, Any]:
        return {
            "sid": s["id"],
            "topic": s["topic"],
            "speaker": self._who(ctx, s.get("speaker")),
            "host": self._who(ctx, s.get("host")),
            "time": self._time(ctx, s["starts_at"]),
            "minutes": s["duration"],
        }

    def _send(self, ctx: Context, s: dict[str, Any], text: str, **kw: Any) -> None:
        ctx.send(text, group=s["group"], **kw)

    def _get(self, ctx: Context, sid: Any) -> dict[str, Any]:
        sid = str(sid or "").strip().lstrip("#")
        s = ctx.state.get(f"s:{sid}") if sid else None
        if s is None:
            raise CommandError(Msg("no session {session!r}", session=sid),
                               hint=Msg("list them with the `list` command"))
        return dict(s)

    def _activate(self, ctx: Context, group: str, sid: str, on: bool) -> None:
        key = f"active:{group}"
        active = [x for x in ctx.state.get(key) or [] if x != sid]
        if on:
            active.append(sid)
        if active:
            ctx.state.put(key, active)
        else:
            ctx.state.delete(key)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        active = ctx.state.get(f"active:{ctx.group.key}")
        if not active:
            return
        uid = event.actor.id
        for sid in active:
            s = ctx.state.get(f"s:{sid}")
            if s is None:
                continue
            if self._on_message(ctx, event, uid, dict(s)):
                return

    def _on_message(self, ctx: Context, event: Any, uid: str, s: dict[str, Any]) -> bool:
        """Handle one message for one session; True when the message was taken."""
        cfg = self._cfg(ctx, s["group"])
        start = datetime.fromisoformat(s["starts_at"])
        status = s["status"]
        text: str = event.text or ""
        if uid == s.get("speaker"):
            changed = False
            if status in _OPEN and not s.get("speaker_seen") and event.ts >= start - timedelta(
                minutes=cfg.no_show_minutes
            ):
                s["speaker_seen"] = event.ts.isoformat()
                changed = True
            if event.reply_to and status in ("live", "done"):
                qkey = f"s:{s['id']}:q:{event.reply_to}"
                q = ctx.state.get(qkey)
                if q is not None and not q.get("answer"):
                    ctx.state.put(
                        qkey, {**q, "answer": {"msg": event.msg_id, "ts": event.ts.isoformat(),
                                               "text": clean_text(text, 300)}}
                    )
                    s["answered"] = int(s.get("answered", 0)) + 1
                    changed = True
            if changed:
                ctx.state.put(f"s:{s['id']}", s)
            return False
        if status == "live" and cfg.floor and uid != s.get("host") and ctx.role(uid) not in cfg.floor_exempt_roles:
            if event.content_type == "system":
                return False
            self._collect(ctx, s, event, uid, clean_text(text, 500), during=True, cfg=cfg)
            nkey = f"s:{s['id']}:n:{uid}"
            if not ctx.state.get(nkey):
                ctx.state.put(nkey, 1)
                notice = ctx.render("floor_notice", name=ctx.name(uid), topic=s["topic"])
                if cfg.floor_notice == "direct":
                    ctx.direct(uid, notice)
                else:
                    ctx.send(notice, mentions=[uid], reply_to=event.msg_id)
            if cfg.floor_delete:
                ctx.delete(event.msg_id)
            return True
        if status not in _OPEN or not text:
            return False
        head = text.lstrip()
        low = head[:32].casefold()
        for kw in cfg.question_keywords:
            if low.startswith(kw.casefold()):
                break
        else:
            return False
        opens = start - parse_duration(cfg.questions_open)
        if event.ts < opens:
            return False
        question = clean_text(head[len(kw):].lstrip(" \t:：,，-—"), 500)
        if not question:
            return False
        n = self._collect(ctx, s, event, uid, question, during=status == "live", cfg=cfg)
        if n and cfg.ack_questions and status == "scheduled":
            ctx.send(
                ctx.render("question_ack", name=ctx.name(uid), n=n, speaker=self._who(ctx, s.get("speaker"))),
                mentions=[uid], reply_to=event.msg_id,
            )
        return True

    def _collect(self, ctx: Context, s: dict[str, Any], event: Any, uid: str, text: str, *, during: bool,
                 cfg: SessionsConfig) -> int:
        """Store a question; returns its number, or 0 when it was not kept (empty, over a limit)."""
        if not text or int(s.get("questions", 0)) >= cfg.max_questions:
            return 0
        per = dict(s.get("per_member") or {})
        if per.get(uid, 0) >= cfg.max_questions_per_member:
            return 0
        per[uid] = per.get(uid, 0) + 1
        n = int(s.get("questions", 0)) + 1
        s["questions"] = n
        s["per_member"] = per
        ctx.state.put(
            f"s:{s['id']}:q:{event.msg_id}",
            {"n": n, "by": uid, "text": text, "ts": event.ts.isoformat(), "during": during, "answer": None},
        )
        ctx.state.put(f"s:{s['id']}", s)
        return n

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        p = job.payload
        s = ctx.state.get(f"s:{p.get('sid')}")
        if s is None:
            return
        s = dict(s)
        if p.get("start") != s["starts_at"]:
            return  # scheduled for a session that has since changed
        handler = {
            "stage": self._job_stage,
            "overdue": self._job_overdue,
            "warmup": self._job_warmup,
            "start": self._job_start,
            "noshow": self._job_noshow,
            "end": self._job_end,
            "summary": self._job_summary,
        }.get(job.name)
        if handler is not None:
            handler(ctx, s, p)

    def _stage_of(self, s: dict[str, Any], stage: str) -> dict[str, Any] | None:
        return next((st for st in s["stages"] if st["id"] == stage), None)

    def _job_stage(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        st = self._stage_of(s, p["stage"])
        if st is None or st["done"] or st["due"] != p["due"] or st.get("reminded") or s["status"] in (
            "cancelled", "no_show"
        ):
            return
        st["reminded"] = True
        ctx.state.put(f"s:{s['id']}", s)
        values = {**self._values(ctx, s), "stage": self._stage_label(ctx, st["id"])}
        uid = self._owner_uid(s, st["owner"])
        if uid:
            ctx.direct(uid, ctx.render("stage_reminder", **values))
        else:
            ctx.notify_admins(ctx.render("stage_reminder_admins", owner=ctx.render("owner_admins"), **values))

    def _job_overdue(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        st = self._stage_of(s, p["stage"])
        if st is None or st["done"] or st["due"] != p["due"] or st.get("overdue") or s["status"] in (
            "cancelled", "no_show"
        ):
            return
        st["overdue"] = True
        ctx.state.put(f"s:{s['id']}", s)
        ctx.notify_admins(
            ctx.render(
                "stage_overdue", stage=self._stage_label(ctx, st["id"]), due=st["due"],
                owner=self._owner_label(ctx, s, st["owner"]), **self._values(ctx, s),
            )
        )

    def _job_warmup(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        i = int(p["i"])
        if s["status"] != "scheduled" or i in s.get("warmups_sent", []):
            return
        s["warmups_sent"] = [*s.get("warmups_sent", []), i]
        ctx.state.put(f"s:{s['id']}", s)
        left = datetime.fromisoformat(s["starts_at"]) - ctx.now
        self._send(ctx, s, ctx.render("warmup", left=self._left(ctx, left), **self._values(ctx, s)))

    def _left(self, ctx: Context, left: timedelta) -> str:
        minutes = max(1, round(left.total_seconds() / 60))
        if minutes >= 36 * 60:
            return ctx.render("left_days", n=round(minutes / 1440))
        if minutes >= 20 * 60:
            return ctx.render("left_day")
        if minutes >= 60:
            return ctx.render("left_hours", n=round(minutes / 60))
        return ctx.render("left_minutes", n=minutes)

    def _job_start(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        if s["status"] != "scheduled":
            return
        cfg = self._cfg(ctx, s["group"])
        s["status"] = "live"
        ctx.state.put(f"s:{s['id']}", s)
        self._send(ctx, s, ctx.render("start" if cfg.floor else "start_open", **self._values(ctx, s)))

    def _job_noshow(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        if s["status"] != "live" or s.get("speaker_seen"):
            return
        cfg = self._cfg(ctx, s["group"])
        s["status"] = "no_show"
        ctx.state.put(f"s:{s['id']}", s)
        self._activate(ctx, s["group"], s["id"], False)
        values = self._values(ctx, s)
        text = ctx.render("no_show_admins", **{**values, "minutes": cfg.no_show_minutes})
        ctx.notify_admins(text)
        if s.get("host"):
            ctx.direct(s["host"], text)
        self._send(ctx, s, ctx.render("no_show_group", **values))
        ctx.record("no_show", s.get("speaker"), session=s["id"])

    def _job_end(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        if s["status"] != "live":
            return
        cfg = self._cfg(ctx, s["group"])
        s["status"] = "done"
        ctx.state.put(f"s:{s['id']}", s)
        self._send(ctx, s, ctx.render("end", count=s.get("questions", 0), **self._values(ctx, s)))
        speaker = s.get("speaker")
        if not speaker:
            return
        week = _iso_week(datetime.fromisoformat(s["starts_at"]).astimezone(ctx.community.tz).date())
        wk = dict(ctx.state.get(f"week:{week}") or {})
        shares = dict(wk.get("shares") or {})
        shares[speaker] = int(shares.get(speaker, 0)) + 1
        wk["shares"] = shares
        ctx.state.put(f"week:{week}", wk)
        mine = dict(ctx.state.get(f"m:{speaker}") or {})
        mine["shares"] = int(mine.get("shares", 0)) + 1
        ctx.state.put(f"m:{speaker}", mine)
        ctx.record("shared", speaker, session=s["id"], topic=s["topic"], week=week)
        if cfg.speaker_points:
            ctx.ledger.award_points(speaker, cfg.speaker_points, f"sessions:shared:{s['id']}")

    def _job_summary(self, ctx: Context, s: dict[str, Any], p: dict[str, Any]) -> None:
        if s["status"] != "done" or s.get("summary"):
            return
        self._publish_summary(ctx, s)
        self._activate(ctx, s["group"], s["id"], False)

    # --------------------------------------------------------------- summary

    def _questions(self, ctx: Context, sid: str) -> list[tuple[str, dict[str, Any]]]:
        rows = list(ctx.state.scan(f"s:{sid}:q:"))
        rows.sort(key=lambda kv: (int(kv[1].get("n", 0)), kv[0]))
        return rows

    def draft(self, ctx: Context, s: dict[str, Any]) -> str:
        """The summary draft: who spoke about what, the questions and the speaker's replies."""
        qs = self._questions(ctx, s["id"])
        lines: list[str] = []
        answered = 0
        for i, (_, q) in enumerate(qs, 1):
            lines.append(ctx.render("summary_line", n=i, asker=self._who(ctx, q.get("by"), "erased"),
                                    question=clip(q["text"], 200) or ctx.render("erased")))
            if q.get("answer"):
                answered += 1
                lines.append(ctx.render("summary_answer", answer=clip(q["answer"]["text"], 200)))
        body = "\n".join(lines) if lines else ctx.render("summary_none")
        return ctx.render("summary", count=len(qs), answered=answered, lines=body, **self._values(ctx, s))

    def _publish_summary(self, ctx: Context, s: dict[str, Any]) -> str:
        text = self.draft(ctx, s)
        s["summary"] = text
        s["summary_ts"] = ctx.now.isoformat()
        ctx.state.put(f"s:{s['id']}", s)
        ctx.notify_admins(text)
        return text

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        name = command.name
        if name == "create":
            return self._create(ctx, args, command.actor)
        if name == "list":
            status = args.get("status")
            rows = [self._brief(ctx, v) for k, v in ctx.state.scan("s:") if k.count(":") == 1]
            if status:
                rows = [r for r in rows if r["status"] == status]
            rows.sort(key=lambda r: (r["starts_at"], int(r["id"])), reverse=True)
            return {"sessions": rows}
        if name == "show":
            s = self._get(ctx, args.get("session"))
            return {**self._brief(ctx, s), "stages": self._stages_out(ctx, s),
                    "asked": self._questions_out(ctx, s), "summary": s.get("summary")}
        if name == "questions":
            s = self._get(ctx, args.get("session"))
            return {"session": s["id"], "questions": self._questions_out(ctx, s)}
        if name == "stage":
            return self._stage_command(ctx, args, command.actor)
        if name == "cancel":
            return self._cancel(ctx, args, command.actor)
        if name == "summary":
            s = self._get(ctx, args.get("session"))
            if s["status"] != "done":
                raise CommandError(
                    Msg("session {session} has not been held (status: {status})", session=s["id"],
                        status=s["status"]),
                    hint=Msg("a summary is drafted after the session ends"),
                )
            return {"session": s["id"], "summary": self._publish_summary(ctx, s)}
        raise CommandError(
            Msg("sessions has no command {command!r}", command=name),
            hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))),
        )

    def _brief(self, ctx: Context, s: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": s["id"],
            "group": s["group"],
            "topic": s["topic"],
            "speaker": s.get("speaker"),
            "speaker_name": self._who(ctx, s.get("speaker")),
            "host": s.get("host"),
            "host_name": self._who(ctx, s.get("host")),
            "starts_at": s["starts_at"],
            "ends_at": s["ends_at"],
            "local": self._time(ctx, s["starts_at"]),
            "duration": s["duration"],
            "status": s["status"],
            "questions": int(s.get("questions", 0)),
            "answered": int(s.get("answered", 0)),
        }

    def _stages_out(self, ctx: Context, s: dict[str, Any]) -> list[dict[str, Any]]:
        today = ctx.today.isoformat()
        return [
            {
                "stage": st["id"],
                "label": self._stage_label(ctx, st["id"]),
                "owner": st["owner"],
                "owner_name": self._owner_label(ctx, s, st["owner"]),
                "due": st["due"],
                "done": st["done"],
                "done_by": st.get("done_by"),
                "late": not st["done"] and st["due"] < today,
            }
            for st in s["stages"]
        ]

    def _questions_out(self, ctx: Context, s: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"n": q["n"], "msg": key.split(":q:", 1)[1], "by": q.get("by"), "name": self._who(ctx, q.get("by")),
             "text": q["text"], "ts": q["ts"], "during": q.get("during", False),
             "answer": (q.get("answer") or {}).get("text")}
            for key, q in self._questions(ctx, s["id"])
        ]

    def _parse_start(self, ctx: Context, raw: Any) -> datetime:
        if not isinstance(raw, str) or not raw.strip():
            raise CommandError(Msg("a session needs starts_at"),
                               hint=Msg('e.g. "2026-11-20 20:00" (community time)'))
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise CommandError(
                Msg("starts_at {value!r} is not a date and time", value=clip(raw, 40)),
                hint=Msg('write it as "2026-11-20 20:00" (community time) or with an offset'),
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=ctx.community.tz)
        return when

    def _session_group(self, ctx: Context, raw: Any) -> str:
        groups = [g for g in ctx.community.groups.values() if "sessions" in g.playbooks]
        if raw:
            found = next((g for g in groups if g.key == raw), None)
            if found is None:
                raise CommandError(
                    Msg("group {group!r} does not run sessions", group=clip(str(raw), 60)),
                    hint=Msg("one of: {groups}", groups=", ".join(g.key for g in groups)),
                )
            return found.key
        if not ctx.group.admin:
            return ctx.group.key
        found = next((g for g in groups if not g.admin), None)
        return found.key if found else ctx.group.key

    @staticmethod
    def _uid(raw: Any, what: str, *, required: bool) -> str | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                raise CommandError(Msg("a session needs a {role}", role=what),
                                   hint=Msg("give the {role}'s platform user id", role=what))
            return None
        if not isinstance(raw, str) or len(raw) > 200 or _CONTROLS.search(raw):
            raise CommandError(Msg("{role} must be a platform user id", role=what),
                               hint=Msg("as it appears in events"))
        return raw.strip()

    def _create(self, ctx: Context, args: dict[str, Any], actor: str) -> dict[str, Any]:
        speaker = self._uid(args.get("speaker"), "speaker", required=True)
        host = self._uid(args.get("host"), "host", required=False)
        topic = clean_text(str(args.get("topic") or ""), 120)
        if not topic:
            raise CommandError(Msg("a session needs a topic"), hint=Msg("what the speaker will talk about"))
        group = self._session_group(ctx, args.get("group"))
        cfg = self._cfg(ctx, group)
        start = self._parse_start(ctx, args.get("starts_at"))
        if start <= ctx.now:
            raise CommandError(
                Msg("starts_at {start} is not in the future", start=start.isoformat()),
                hint=Msg("plan a session ahead of time"),
            )
        if start - ctx.now > MAX_AHEAD:
            raise CommandError(
                Msg("starts_at {start} is more than {days} days ahead", start=start.isoformat(), days=MAX_AHEAD.days),
                hint=Msg("plan sessions within the next hundred years"),
            )
        duration = args.get("duration", cfg.default_duration)
        if type(duration) is not int or not 5 <= duration <= 24 * 60:
            raise CommandError(Msg("duration is whole minutes between 5 and 1440"), hint=Msg("e.g. 60"))
        overrides = args.get("stages") or {}
        if not isinstance(overrides, dict):
            raise CommandError(Msg("stages must be {shape}", shape="{stage: {owner, due}}"))
        known = {st.id for st in cfg.stages}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise CommandError(Msg("unknown stage {stage!r}", stage=clip(unknown[0], 40)),
                               hint=Msg("one of: {stages}", stages=", ".join(sorted(known))))
        seq = int(ctx.state.get("seq", 0)) + 1
        sid = str(seq)
        local = start.astimezone(ctx.community.tz)
        s: dict[str, Any] = {
            "id": sid,
            "group": group,
            "speaker": speaker,
            "host": host,
            "topic": topic,
            "starts_at": local.isoformat(),
            "ends_at": (local + timedelta(minutes=duration)).astimezone(ctx.community.tz).isoformat(),
            "duration": duration,
            "status": "scheduled",
            "created_by": actor,
            "created": ctx.now.isoformat(),
            "stages": [],
            "warmups_sent": [],
            "speaker_seen": None,
            "questions": 0,
            "answered": 0,
            "summary": None,
        }
        for spec in cfg.stages:
            over = overrides.get(spec.id) or {}
            if not isinstance(over, dict):
                raise CommandError(Msg("stage {stage}: give {{owner, due}}", stage=spec.id))
            owner = self._owner_arg(over.get("owner")) or spec.owner
            due = self._due_arg(over.get("due")) or (local.date() + timedelta(days=spec.offset_days)).isoformat()
            s["stages"].append({"id": spec.id, "owner": owner, "due": due, "done": None, "done_by": None,
                                "reminded": False, "overdue": False})
        ctx.state.put("seq", seq)
        ctx.state.put(f"s:{sid}", s)
        self._activate(ctx, group, sid, True)
        self._schedule(ctx, s, cfg)
        ctx.record("created", None, session=sid, group=group)
        return self._brief(ctx, s)

    @staticmethod
    def _owner_arg(raw: Any) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str) or not raw.strip() or len(raw) > 200 or _CONTROLS.search(raw):
            raise CommandError(Msg("owner is speaker, host, admins or a platform user id"))
        return raw.strip()

    @staticmethod
    def _due_arg(raw: Any) -> str | None:
        if raw is None:
            return None
        try:
            day = date.fromisoformat(str(raw))
        except ValueError:
            raise CommandError(Msg("due {value!r} is not a day", value=clip(str(raw), 40)),
                               hint=Msg("write YYYY-MM-DD")) from None
        if day.year > 9998:  # its reminder and overdue check would fall off the calendar
            raise CommandError(Msg("due {day} is too far ahead", day=day.isoformat()),
                               hint=Msg("give a day before 9999"))
        return day.isoformat()

    def _schedule(self, ctx: Context, s: dict[str, Any], cfg: SessionsConfig) -> None:
        sid = s["id"]
        start = datetime.fromisoformat(s["starts_at"])
        base = {"sid": sid, "start": s["starts_at"]}
        for st in s["stages"]:
            self._schedule_stage(ctx, s, st, cfg)
        for i, spec in enumerate(cfg.warmups):
            at = start - parse_duration(spec)
            if at > ctx.now:
                ctx.schedule("warmup", at=at, payload={**base, "i": i}, key=f"{sid}:warmup:{i}")
        ctx.schedule("start", at=start, payload=base, key=f"{sid}:start")
        ctx.schedule("noshow", at=start + timedelta(minutes=cfg.no_show_minutes), payload=base, key=f"{sid}:noshow")
        end = datetime.fromisoformat(s["ends_at"])
        ctx.schedule("end", at=end, payload=base, key=f"{sid}:end")
        ctx.schedule("summary", at=end + timedelta(minutes=cfg.summary_delay), payload=base, key=f"{sid}:summary")

    def _schedule_stage(self, ctx: Context, s: dict[str, Any], st: dict[str, Any], cfg: SessionsConfig) -> None:
        """The reminder on the due day at the reminder time, the overdue check a day later."""
        due = date.fromisoformat(st["due"])
        if due < ctx.today:
            return  # already past when planned: shown as late, not reminded
        hh, mm = (int(x) for x in cfg.reminder_time.split(":"))
        tz = ctx.community.tz
        remind = datetime.combine(due, time(hh, mm), tz)
        payload = {"sid": s["id"], "start": s["starts_at"], "stage": st["id"], "due": st["due"]}
        ctx.schedule("stage", at=max(remind, ctx.now), payload=payload, key=f"{s['id']}:stage:{st['id']}")
        if cfg.report_overdue:
            late = datetime.combine(due + timedelta(days=1), time(hh, mm), tz)
            ctx.schedule("overdue", at=late, payload=payload, key=f"{s['id']}:overdue:{st['id']}")

    def _stage_command(self, ctx: Context, args: dict[str, Any], actor: str) -> dict[str, Any]:
        s = self._get(ctx, args.get("session"))
        st = self._stage_of(s, str(args.get("stage") or ""))
        if st is None:
            raise CommandError(
                Msg("session {session} has no stage {stage!r}", session=s["id"], stage=clip(str(args.get("stage")), 40)),
                hint=Msg("one of: {stages}", stages=", ".join(x["id"] for x in s["stages"])),
            )
        if s["status"] == "cancelled":
            raise CommandError(Msg("session {session} is cancelled", session=s["id"]))
        done = args.get("done")
        owner = self._owner_arg(args.get("owner"))
        due = self._due_arg(args.get("due"))
        if done is None and owner is None and due is None:
            raise CommandError(Msg("nothing to change"), hint=Msg("give done, owner or due"))
        if done is not None:
            if not isinstance(done, bool):
                raise CommandError(Msg("done is true or false"))
            st["done"] = ctx.now.isoformat() if done else None
            st["done_by"] = actor if done else None
        if owner is not None:
            st["owner"] = owner
        if due is not None and due != st["due"]:
            st["due"] = due
            st["reminded"] = False
            st["overdue"] = False
            self._schedule_stage(ctx, s, st, self._cfg(ctx, s["group"]))
        ctx.state.put(f"s:{s['id']}", s)
        return {"session": s["id"], "stages": self._stages_out(ctx, s)}

    def _cancel(self, ctx: Context, args: dict[str, Any], actor: str) -> dict[str, Any]:
        s = self._get(ctx, args.get("session"))
        if s["status"] not in _OPEN:
            raise CommandError(Msg("session {session} is {status}; only a planned or running one can be cancelled",
                                   session=s["id"], status=s["status"]))
        reason = clean_text(str(args.get("reason") or ""), 200)
        announced = bool(s.get("warmups_sent")) or s["status"] == "live"
        s["status"] = "cancelled"
        s["cancelled_by"] = actor
        ctx.state.put(f"s:{s['id']}", s)
        self._activate(ctx, s["group"], s["id"], False)
        for key in ("start", "noshow", "end", "summary"):
            ctx.cancel(f"{s['id']}:{key}")
        if announced:
            self._send(ctx, s, ctx.render("cancelled", reason=reason, **self._values(ctx, s)).rstrip())
        return {**self._brief(ctx, s), "announced": announced}

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, value in ctx.state.scan("s:"):
            parts = key.split(":", 3)
            if len(parts) == 2:
                roles = [r for r in ("speaker", "host") if value.get(r) == member]
                stages = [st["id"] for st in value.get("stages", []) if st.get("owner") == member]
                asked = (value.get("per_member") or {}).get(member)
                if roles or stages or asked:
                    found[key] = {"session": value["id"], "topic": value["topic"], "starts_at": value["starts_at"],
                                  "roles": roles, "stages": stages, "questions": asked or 0}
            elif len(parts) >= 4 and (
                (parts[2] == "q" and value.get("by") == member) or (parts[2] == "n" and parts[3] == member)
            ):
                found[key] = value
        for key, value in ctx.state.scan("week:"):
            if member in (value.get("shares") or {}):
                found[key] = {"shares": {member: value["shares"][member]}}
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        # not super(): our export also lists session keys, which are edited here, not deleted
        for key in [*dict(ctx.state.scan(f"m:{member}:")), f"m:{member}"]:
            ctx.state.delete(key)
        touched: set[str] = set()
        for key, value in list(ctx.state.scan("s:")):
            parts = key.split(":", 3)
            if len(parts) >= 4 and parts[2] == "q":
                if value.get("by") == member:
                    ctx.state.put(key, {**value, "by": None, "text": "", "answer": None})
                    touched.add(parts[1])
            elif len(parts) == 4 and parts[2] == "n" and parts[3] == member:
                ctx.state.delete(key)
        for key, value in list(ctx.state.scan("s:")):
            parts = key.split(":", 3)
            if len(parts) != 2:
                continue
            s = dict(value)
            changed = parts[1] in touched
            for field in ("speaker", "host", "created_by", "cancelled_by"):
                if s.get(field) == member:
                    s[field] = None
                    changed = True
            if member in (s.get("per_member") or {}):
                s["per_member"] = {k: v for k, v in s["per_member"].items() if k != member}
                changed = True
            for st in s.get("stages", []):
                if st.get("owner") == member:
                    st["owner"] = "admins"
                    changed = True
                if st.get("done_by") == member:
                    st["done_by"] = None
                    changed = True
            if changed:
                if s.get("speaker") is None:
                    # the speaker's answers were theirs too
                    for qkey, q in list(ctx.state.scan(f"s:{s['id']}:q:")):
                        if q.get("answer"):
                            ctx.state.put(qkey, {**q, "answer": None})
                    s["answered"] = 0
                if s.get("summary"):
                    s["summary"] = self.draft(ctx, s)
                ctx.state.put(key, s)
        for key, value in list(ctx.state.scan("week:")):
            shares = dict(value.get("shares") or {})
            if member in shares:
                del shares[member]
                ctx.state.put(key, {**value, "shares": shares})
