"""``qunyun link``: where the community join link sends the next newcomer.

It asks the ``capacity`` playbook for its routing table (the ``status``
command, run in the entry group like every operator command) and prints it:
each group in routing order with its members, held places, capacity and room,
its tag/city rules, the group the next newcomer goes to, whether a new group
has been requested, and how many newcomers are waiting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qunyun.cli.admin import DbOption
from qunyun.cli.app import app
from qunyun.cli.common import open_community_engine, pick_community
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import CommandError, Msg

_ZH: dict[str, str] = {
    "join link routing": "入群活码分流",
    "community": "社群",
    "entry group": "活码所在群",
    "(none: routing by the route command only)": "（未设置：仅通过 route 命令分流）",
    "next newcomer goes to": "下一位新人将被分到",
    "every group is full": "所有群都已满",
    "new group requested": "已申请新群",
    "template {template}, at {at}, reminds admins at {until}": "模板 {template}，申请于 {at}，{until} 提醒管理员",
    "no": "否",
    "waiting newcomers": "等待中的新人",
    "group": "群",
    "name": "名称",
    "members": "成员",
    "held": "已预留",
    "full at": "满员线",
    "capacity": "容量",
    "room": "空位",
    "rules": "规则",
    "state": "状态",
    "next": "下一个",
    "full": "已满",
    "open": "有空位",
    "exclusive": "仅限匹配",
    "city": "城市",
    "tags": "标签",
}


def _t(text: str, **values: object) -> str:
    chosen = _ZH.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def _rules(row: dict[str, Any]) -> str:
    parts = []
    if row.get("city"):
        parts.append(f"{_t('city')}: {row['city']}")
    if row.get("tags"):
        parts.append(f"{_t('tags')}: {', '.join(row['tags'])}")
    if parts and row.get("exclusive"):
        parts.append(_t("exclusive"))
    return "; ".join(parts) or "—"


@app.command("link")
def link(
    config: Annotated[Path, typer.Option("--config", "-c", help="The deployment configuration (qunyun.yaml).")],
    db: DbOption = None,
    community: Annotated[
        str | None, typer.Option("--community", help="Community id (needed when the configuration has several).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the routing table as JSON instead.")] = False,
) -> None:
    """Show where the community join link sends the next newcomer.

    One row per group in routing order: members, places held for invited
    newcomers, capacity and the "full at" line, room left, tag/city rules.
    Below it: the next group, whether a new group was requested because
    every group is full, and how many newcomers are waiting.

    Example: qunyun link --config qunyun.yaml --community demo
    """
    settings, engine = open_community_engine(config, db)
    try:
        chosen = pick_community(settings, community)
        spec = chosen.playbook_specs.get("capacity")
        if spec is None:
            raise CommandError(
                Msg("the capacity playbook is not enabled in community {community!r}", community=chosen.id),
                hint=Msg("add `{setting}` under the community's playbooks",
                         setting="capacity: {entry_group: <group id>}"),
            )
        entry = (spec or {}).get("entry_group")
        group = entry if any(g.key == entry for g in chosen.groups.values()) else None
        status = engine.command(chosen.id, "capacity", "status", {}, actor="cli", group=group)
    finally:
        engine.db.dispose()

    if as_json:
        typer.echo(json.dumps(status, ensure_ascii=False, indent=2))
        return

    out = Console()
    table = Table(title=f"{_t('join link routing')} · {escape(chosen.name)}")
    table.add_column("#", justify="right")
    for label in ("group", "name"):
        table.add_column(_t(label))
    for label in ("members", "held", "capacity", "full at", "room"):
        table.add_column(_t(label), justify="right")
    table.add_column(_t("rules"))
    table.add_column(_t("state"))
    for i, row in enumerate(status["groups"], 1):
        if row["problem"]:
            state = f"[red]{escape(row['problem'])}[/]"
        elif row["group"] == status["next"]:
            state = f"[bold green]{_t('next')}[/]"
        elif row["full"]:
            state = f"[yellow]{_t('full')}[/]"
        else:
            state = _t("open")
        table.add_row(
            str(i),
            escape(row["group"]),
            escape(row["name"]),
            str(row["members"]),
            str(row["held"]),
            str(row["capacity"]),
            str(row["limit"]),
            str(row["room"]),
            escape(_rules(row)),
            state,
        )
    out.print(table)
    entry_text = status["entry_group"] or _t("(none: routing by the route command only)")
    out.print(f"{_t('entry group')}: {escape(entry_text)}", highlight=False)
    nxt = status["next"]
    out.print(
        f"{_t('next newcomer goes to')}: "
        + (f"[bold green]{escape(nxt)}[/]" if nxt else f"[red]{_t('every group is full')}[/]"),
        highlight=False,
    )
    request = status["request"]
    if request:
        detail = _t("template {template}, at {at}, reminds admins at {until}", **request)
        out.print(f"{_t('new group requested')}: {escape(detail)}", highlight=False)
    else:
        out.print(f"{_t('new group requested')}: {_t('no')}", highlight=False)
    out.print(f"{_t('waiting newcomers')}: {status['waiting']}", highlight=False)
