"""``qunyun sessions``: plan sharing sessions and follow their pipeline.

Every subcommand is a ``sessions`` playbook command run with
:meth:`Engine.command` — the same path as the console and the API — so the
CLI can do nothing the playbook would refuse, and everything it does is in
the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qunyun.cli.app import app
from qunyun.cli.common import (
    CommunityOpt,
    ConfigOpt,
    DbOpt,
    JsonOpt,
    run_command,
)
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip

sessions_app = typer.Typer(
    help="Sharing sessions (分享会): plan one, follow its stages, see its questions and summary.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(sessions_app, name="sessions")

SessionArg = Annotated[str, typer.Argument(help="The session's number (as `qunyun sessions list` shows it).")]

_LABELS: dict[str, str] = {
    "Sessions": "分享会",
    "no sessions": "还没有分享会",
    "id": "编号",
    "when": "时间",
    "topic": "主题",
    "speaker": "讲者",
    "host": "主持",
    "group": "群",
    "status": "状态",
    "questions": "问题",
    "answered": "已回复",
    "stage": "环节",
    "owner": "负责人",
    "due": "截止",
    "done": "完成",
    "late": "逾期",
    "asker": "提问人",
    "question": "问题",
    "answer": "讲者回复",
    "scheduled": "待开始",
    "live": "进行中",
    "done_status": "已结束",
    "no_show": "讲者缺席",
    "cancelled": "已取消",
    "Session {id}: {topic}": "分享会 {id}：{topic}",
    "Questions of session {id}": "分享会 {id} 的问题",
    "no questions yet": "还没有问题",
    "created session {id}: {topic} at {when} in {group}": "已创建分享会 {id}：{topic}，{when}，{group}",
    "cancelled session {id}": "已取消分享会 {id}",
    "the group was told": "已在群里通知",
    "session {id}: stage {stage} updated": "分享会 {id}：环节 {stage} 已更新",
    "the summary went to the admins": "总结草稿已发给管理员",
    "{minutes} min": "{minutes} 分钟",
}


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def _status(status: str) -> str:
    if status == "done":
        return _t("done_status") if cli_lang() == "zh-CN" else "done"
    return _t(status)


def _run(config: Path, db: str | None, community: str | None, name: str, args: dict[str, Any],
         group: str | None = None) -> dict[str, Any]:
    return run_command(config, db, community, "sessions", name, args, group=group)


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        stage, sep, value = item.partition("=")
        if not sep or not stage.strip() or not value.strip():
            raise CommandError(Msg("{option} {item!r} is not STAGE=VALUE", option=what, item=item),
                               hint=Msg("e.g. --{option} design=2026-11-06", option=what))
        out[stage.strip()] = value.strip()
    return out


@sessions_app.command("list")
def list_command(
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only these: scheduled, live, done, no_show or cancelled.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The sessions, the latest start first.

    Example: qunyun sessions list --config qunyun.yaml --status scheduled
    """
    args = {"status": status} if status else {}
    rows = _run(config, db, community, "list", args)["sessions"]
    out = Console()
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print(_t("no sessions"))
        return
    table = Table(title=_t("Sessions"))
    for col in ("id", "when", "topic", "speaker", "host", "group", "status", "questions"):
        table.add_column(_t(col), overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["local"], escape(r["topic"]), escape(r["speaker_name"]), escape(r["host_name"]),
                      escape(r["group"]), _status(r["status"]), f"{r['questions']} / {r['answered']}")
    out.print(table)


@sessions_app.command("create")
def create_command(
    config: ConfigOpt,
    speaker: Annotated[str, typer.Option("--speaker", help="The speaker's platform user id.")],
    topic: Annotated[str, typer.Option("--topic", help="What the session is about.")],
    at: Annotated[str, typer.Option("--at", help='Start, community time: "2026-11-20 20:00" (or with an offset).')],
    db: DbOpt = None,
    community: CommunityOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="The host's platform user id.")] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="Minutes (default: the config's).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="The group it happens in (default: the first).")] = None,
    owner: Annotated[
        list[str] | None, typer.Option("--owner", help="STAGE=OWNER (speaker, host, admins or a user id); repeat.")
    ] = None,
    due: Annotated[list[str] | None, typer.Option("--due", help="STAGE=YYYY-MM-DD; repeat.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan a session: its stages, reminders, warm-ups and floor are scheduled.

    Example: qunyun sessions create --speaker u-7 --host u-2 --topic "冷启动" --at "2026-11-20 20:00" -c qunyun.yaml
    """
    args: dict[str, Any] = {"speaker": speaker, "topic": topic, "starts_at": at}
    if host is not None:
        args["host"] = host
    if duration is not None:
        args["duration"] = duration
    if group is not None:
        args["group"] = group
    stages: dict[str, dict[str, str]] = {}
    for stage, value in _pairs(owner, "owner").items():
        stages.setdefault(stage, {})["owner"] = value
    for stage, value in _pairs(due, "due").items():
        stages.setdefault(stage, {})["due"] = value
    if stages:
        args["stages"] = stages
    result = _run(config, db, community, "create", args, group=group)
    out = Console()
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False))
        return
    out.print(escape(_t("created session {id}: {topic} at {when} in {group}", id=result["id"],
                        topic=result["topic"], when=result["local"], group=result["group"])), highlight=False)


@sessions_app.command("show")
def show_command(
    session: SessionArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One session: its people, its stages (owner, due day, done) and its questions.

    Example: qunyun sessions show 3 --config qunyun.yaml
    """
    s = _run(config, db, community, "show", {"session": session})
    out = Console()
    if as_json:
        out.print_json(json.dumps(s, ensure_ascii=False))
        return
    out.print(escape(_t("Session {id}: {topic}", id=s["id"], topic=s["topic"])), highlight=False)
    minutes = _t("{minutes} min", minutes=s["duration"])
    out.print(escape(f"{_t('when')}: {s['local']} ({minutes}) · {_t('group')}: {s['group']} · "
                     f"{_t('status')}: {_status(s['status'])}"), highlight=False)
    out.print(escape(f"{_t('speaker')}: {s['speaker_name']} · {_t('host')}: {s['host_name']}"), highlight=False)
    table = Table()
    for col in ("stage", "owner", "due", "done"):
        table.add_column(_t(col))
    for st in s["stages"]:
        done = (st["done"] or "")[:16] or (_t("late") if st["late"] else "")
        table.add_row(escape(st["label"]), escape(st["owner_name"]), st["due"], escape(done))
    out.print(table)
    _print_questions(out, s["id"], s["asked"])
    if s.get("summary"):
        out.print(escape(s["summary"]), highlight=False)


def _print_questions(out: Console, sid: str, questions: list[dict[str, Any]]) -> None:
    if not questions:
        out.print(_t("no questions yet"))
        return
    table = Table(title=_t("Questions of session {id}", id=sid))
    for col in ("id", "asker", "question", "answer"):
        table.add_column(_t(col), overflow="fold")
    for q in questions:
        table.add_row(str(q["n"]), escape(q["name"]), escape(clip(q["text"], 200)),
                      escape(clip(q.get("answer") or "", 200)))
    out.print(table)


@sessions_app.command("questions")
def questions_command(
    session: SessionArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The questions collected for a session, with the speaker's replies.

    Example: qunyun sessions questions 3 --config qunyun.yaml --json
    """
    result = _run(config, db, community, "questions", {"session": session})
    out = Console()
    if as_json:
        out.print_json(json.dumps(result["questions"], ensure_ascii=False))
        return
    _print_questions(out, result["session"], result["questions"])


@sessions_app.command("stage")
def stage_command(
    session: SessionArg,
    stage: Annotated[str, typer.Argument(help="The stage id: invite, interview, design, questions, warmup, ...")],
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    done: Annotated[bool | None, typer.Option("--done/--not-done", help="Mark the stage done (or open again).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="speaker, host, admins or a user id.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="A new due day, YYYY-MM-DD.")] = None,
) -> None:
    """Mark a stage done, or give it another owner or due day (the reminder follows).

    Example: qunyun sessions stage 3 design --done --config qunyun.yaml
    """
    args: dict[str, Any] = {"session": session, "stage": stage}
    if done is not None:
        args["done"] = done
    if owner is not None:
        args["owner"] = owner
    if due is not None:
        args["due"] = due
    result = _run(config, db, community, "stage", args)
    Console().print(escape(_t("session {id}: stage {stage} updated", id=result["session"], stage=stage)),
                    highlight=False)


@sessions_app.command("cancel")
def cancel_command(
    session: SessionArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Told to the group if warm-ups went out.")] = "",
) -> None:
    """Call a session off: reminders and the floor stop; the group is told if it was announced.

    Example: qunyun sessions cancel 3 --reason "讲者临时出差" --config qunyun.yaml
    """
    result = _run(config, db, community, "cancel", {"session": session, "reason": reason})
    line = _t("cancelled session {id}", id=result["id"])
    if result.get("announced"):
        line += " · " + _t("the group was told")
    Console().print(escape(line), highlight=False)


@sessions_app.command("summary")
def summary_command(
    session: SessionArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
) -> None:
    """Rebuild a held session's summary draft (questions and replies), store it, send it to the admins.

    Example: qunyun sessions summary 3 --config qunyun.yaml
    """
    result = _run(config, db, community, "summary", {"session": session})
    out = Console()
    out.print(escape(result["summary"]), highlight=False)
    out.print(_t("the summary went to the admins"))
