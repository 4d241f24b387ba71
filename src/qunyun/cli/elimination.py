"""``qunyun elimination``: preview who would be warned or removed, approve a prepared batch.

Both go through the ``elimination`` playbook's commands (``preview``,
``approve``) with :meth:`Engine.command`, exactly as the console and the API
will, so the CLI can do nothing the playbook would refuse.
"""

from __future__ import annotations

import json
import re
from datetime import date
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

elimination_app = typer.Typer(
    help="Elimination (淘汰机制): preview the inactive members, approve a prepared batch.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(elimination_app, name="elimination")


_LABELS: dict[str, str] = {
    "group": "群",
    "member": "成员",
    "name": "昵称",
    "action": "处理",
    "why": "原因",
    "warn": "提醒",
    "remove": "移出",
    "in {days} days": "最近 {days} 天",
    "KPI": "活跃要求",
    "deadline": "截止",
    "batch": "批次",
    "pending batches": "待批准批次",
    "nobody would be warned or removed as of {day}": "截至 {day}，没有需要提醒或移出的成员",
    "members": "成员数",
    "warned": "已提醒",
    "removed": "已移出",
    "invited": "已邀请候补",
    "skipped": "跳过",
    "result": "结果",
    "Elimination preview as of {day}": "淘汰预览（截至 {day}）",
    "batch {batch} approved": "批次 {batch} 已批准执行",
    # a member's standing in the preview's counts
    "active": "达标",
    "below": "未达标",
    "grace": "新人宽限期",
    "protected": "受保护",
    "exempt": "豁免",
}


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


_BATCH = re.compile(r"^(warn|remove)-\d{8}-(?P<group>.+)$")


def _run(config: Path, db: str | None, community: str | None, name: str, args: dict[str, Any]) -> dict[str, Any]:
    group = args.pop("_group", None)
    return run_command(config, db, community, "elimination", name, args, group=group)


def _why(row: dict[str, Any], group: dict[str, Any]) -> str:
    counts = ", ".join(f"{k}={v}" for k, v in row["counts"].items())
    return f"{counts} {_t('in {days} days', days=group['window_days'])} ({_t('KPI')}: {group['kpi']})"


@elimination_app.command("preview")
def preview_command(
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Measure as of this local day (YYYY-MM-DD); default today. "
                     "A replayed community lives in the past: give a day within its history."),
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who would be warned or removed now, and why. Changes nothing.

    Example: qunyun elimination preview --config qunyun.yaml --as-of 2026-12-01
    """
    args: dict[str, Any] = {}
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise CommandError(Msg("--as-of must be a date like 2026-12-01, not {value!r}", value=as_of)) from None
        args["as_of"] = as_of
    if group is not None:
        args["group"] = group
    result = _run(config, db, community, "preview", args)
    out = Console()
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False))
        return
    table = Table(title=_t("Elimination preview as of {day}", day=result["as_of"]))
    for col in ("group", "member", "name", "action", "why", "deadline"):
        table.add_column(_t(col))
    rows = 0
    for g in result["groups"]:
        for row in g["warn"]:
            table.add_row(escape(g["group"]), escape(row["member"]), escape(row["name"]), _t("warn"),
                          escape(_why(row, g)), "")
            rows += 1
        for row in g["remove"]:
            table.add_row(escape(g["group"]), escape(row["member"]), escape(row["name"]), _t("remove"),
                          escape(_why(row, g)), escape((row.get("deadline") or "")[:16]))
            rows += 1
    if rows:
        out.print(table)
    else:
        out.print(_t("nobody would be warned or removed as of {day}", day=result["as_of"]))
    for g in result["groups"]:
        status = ", ".join(f"{_t(k)} {v}" for k, v in sorted(g["by_status"].items()))
        line = f"{escape(g['group'])}: {_t('members')} {g['members']} ({escape(status)})"
        if g["pending_batches"]:
            line += f"; {_t('pending batches')}: {escape(', '.join(g['pending_batches']))}"
        out.print(line, highlight=False)


@elimination_app.command("approve")
def approve_command(
    batch: Annotated[str, typer.Argument(help="The batch id from the admins' notice or the preview.")],
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Leave this member out (repeat for several).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Carry out a reviewed batch: send its warnings, or remove its members.

    Everyone in the batch is measured again first: whoever became active,
    left or was excluded is skipped.

    Example: qunyun elimination approve remove-20261208-g-main --config qunyun.yaml --exclude u-17
    """
    found = _BATCH.match(batch)
    if found is None:
        raise CommandError(
            Msg("{batch!r} is not a batch id", batch=batch),
            hint=Msg("batch ids look like warn-20261201-g-main or remove-20261208-g-main"),
        )
    args: dict[str, Any] = {"batch": batch, "exclude": list(exclude or []), "_group": found.group("group")}
    result = _run(config, db, community, "approve", args)
    out = Console()
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False))
        return
    table = Table(title=_t("batch {batch} approved", batch=batch), show_header=False)
    for key in ("warned", "removed", "invited"):
        if key in result:
            table.add_row(_t(key), escape(", ".join(result[key])) or "-")
    skipped = ", ".join(f"{s['member']} ({s['why']})" for s in result.get("skipped", []))
    table.add_row(_t("skipped"), escape(skipped) or "-")
    out.print(table)
