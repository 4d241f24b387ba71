"""``qunyun knowledge``: curate the keyword knowledge base.

Each subcommand is a ``knowledge`` playbook command run with
:meth:`Engine.command`, like the console and the API, so the limits the
playbook enforces in the chat apply here too and every change is in the
audit log.
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
    run_command,
)
from qunyun.cli.i18n import cli_lang
from qunyun.core.text import clip

knowledge_app = typer.Typer(
    help="Knowledge base (关键词知识库): list, add, enable, disable, edit and remove entries.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(knowledge_app, name="knowledge")

EntryArg = Annotated[str, typer.Argument(help="The entry's id (as `qunyun knowledge list` shows it).")]

_LABELS: dict[str, str] = {
    "Knowledge base": "知识库",
    "the knowledge base is empty": "知识库是空的",
    "id": "编号",
    "keywords": "关键词",
    "answer": "答案",
    "active": "生效",
    "yes": "是",
    "waiting": "待审核/停用",
    "added #{id}: {keywords}": "已添加 #{id}：{keywords}",
    "merged into #{id}: {keywords}": "已合并到 #{id}：{keywords}",
    "removed #{id}": "已删除 #{id}",
    "enabled #{id}": "已启用 #{id}",
    "disabled #{id}": "已停用 #{id}",
    "changed #{id}": "已修改 #{id}",
}


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def _run(config: Path, db: str | None, community: str | None, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return run_command(config, db, community, "knowledge", name, args)


@knowledge_app.command("list")
def list_command(
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Only entries whose keywords or answer contain this.")] = None,
    waiting: Annotated[bool, typer.Option("--waiting", help="Only entries not in use (waiting for review or disabled).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the entries.

    Example: qunyun knowledge list --config qunyun.yaml --query 退款
    """
    args: dict[str, Any] = {}
    if query:
        args["query"] = query
    if waiting:
        args["active"] = False
    rows = _run(config, db, community, "list", args)["entries"]
    out = Console(soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print(_t("the knowledge base is empty"))
        return
    table = Table(title=_t("Knowledge base"))
    for col in ("id", "keywords", "answer", "active"):
        table.add_column(_t(col), overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["id"]),
            escape(", ".join(row.get("keywords", []))),
            escape(clip(row.get("answer", ""), 120)),
            _t("yes") if row.get("active") else _t("waiting"),
        )
    out.print(table)


@knowledge_app.command("add")
def add_command(
    keywords: Annotated[str, typer.Argument(help="Keywords, separated by commas: \"退款,退费\".")],
    answer: Annotated[str, typer.Argument(help="The answer the bot gives.")],
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
) -> None:
    """Add an entry (active at once); the same answer as an existing entry merges into it.

    Example: qunyun knowledge add "退款,退费" "开课 7 天内可全额退款。" --config qunyun.yaml
    """
    result = _run(config, db, community, "add", {"keywords": keywords, "answer": answer})
    label = "merged into #{id}: {keywords}" if result["status"] == "merged" else "added #{id}: {keywords}"
    Console(soft_wrap=True).print(escape(_t(label, id=result["id"], keywords=", ".join(result["keywords"]))))


def _simple(name: str, message: str, entry: str, config: Path, db: str | None, community: str | None,
            **extra: Any) -> None:
    result = _run(config, db, community, name, {"entry": entry, **extra})
    Console(soft_wrap=True).print(escape(_t(message, id=result["id"])))


@knowledge_app.command("remove")
def remove_command(entry: EntryArg, config: ConfigOpt, db: DbOpt = None, community: CommunityOpt = None) -> None:
    """Delete an entry.

    Example: qunyun knowledge remove 3 --config qunyun.yaml
    """
    _simple("remove", "removed #{id}", entry, config, db, community)


@knowledge_app.command("disable")
def disable_command(entry: EntryArg, config: ConfigOpt, db: DbOpt = None, community: CommunityOpt = None) -> None:
    """Stop answering with an entry (it is kept).

    Example: qunyun knowledge disable 3 --config qunyun.yaml
    """
    _simple("disable", "disabled #{id}", entry, config, db, community)


@knowledge_app.command("enable")
def enable_command(entry: EntryArg, config: ConfigOpt, db: DbOpt = None, community: CommunityOpt = None) -> None:
    """Answer with an entry: one a member captured (after review), or one disabled before.

    Example: qunyun knowledge enable 3 --config qunyun.yaml
    """
    _simple("enable", "enabled #{id}", entry, config, db, community)


@knowledge_app.command("edit")
def edit_command(
    entry: EntryArg,
    config: ConfigOpt,
    db: DbOpt = None,
    community: CommunityOpt = None,
    keywords: Annotated[str | None, typer.Option("--keywords", "-k", help="New keywords, comma-separated.")] = None,
    answer: Annotated[str | None, typer.Option("--answer", "-a", help="New answer.")] = None,
) -> None:
    """Change an entry's keywords or answer.

    Example: qunyun knowledge edit 3 --answer "开课 14 天内可退款。" --config qunyun.yaml
    """
    extra: dict[str, Any] = {}
    if keywords is not None:
        extra["keywords"] = keywords
    if answer is not None:
        extra["answer"] = answer
    _simple("edit", "changed #{id}", entry, config, db, community, **extra)
