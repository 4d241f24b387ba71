"""``qunyun import FORMAT FILE…``: exported chat histories into events, through the engine."""

from __future__ import annotations

import enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from qunyun.cli.admin import database_url
from qunyun.cli.app import app
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import CommandError, Msg
from qunyun.importers import FORMATS

# Labels of this command in zh-CN (English is the key).
_ZH: dict[str, str] = {
    "import summary": "导入汇总",
    "import check (dry run, nothing stored)": "导入检查（试运行，未写入）",
    "files": "文件",
    "groups": "群",
    "time span": "时间范围",
    "speakers": "发言人数",
    "messages": "消息",
    "joins": "入群",
    "leaves": "退群",
    "nick changes followed": "跟踪的昵称变更",
    "stored": "已写入",
    "already there (skipped)": "已存在（跳过）",
    "out of order (stored)": "乱序（已写入）",
    "late": "乱序（已写入）",
    "rejected": "被拒绝",
    "failed": "失败",
    "bad rows (skipped)": "坏行（已跳过）",
    "bad row": "坏行",
    "and {n} more bad rows": "……另有 {n} 个坏行",
    "time": "用时",
    "{s:.1f} s ({r:,.0f} events/s)": "{s:.1f} 秒（{r:,.0f} 事件/秒）",
    "{old} is now {new} (same person: {person})": "{old} 改名为 {new}（同一人：{person}）",
}


def _t(text: str, **values: object) -> str:
    chosen = _ZH.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


Format = enum.StrEnum("Format", {name: name for name in FORMATS})  # type: ignore[misc]
_FORMAT_HELP = "Export format: " + ", ".join(FORMATS) + "."


@app.command("import")
def import_command(
    fmt: Format = typer.Argument(..., metavar="FORMAT", help=_FORMAT_HELP),
    files: list[Path] = typer.Argument(..., help="The exported file(s); IRC: one file per day, in order.", exists=True, dir_okay=False, readable=True),
    group: str | None = typer.Option(None, "--group", "-g", help="Group key for the events (default: the chat id in the export, else the file name)."),
    community: str | None = typer.Option(None, "--community", help="Community that receives groups the configuration does not list (without --config: the id of the one community, default 'imported')."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Deployment configuration; without it, one community 'imported' takes every group."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: the config's deployment.database, $QUNYUN_DATABASE_URL, or the default SQLite file)."),
    timezone: str | None = typer.Option(None, "--timezone", "--tz", help="Time zone of times written without one (default: Asia/Shanghai for WeChat, UTC otherwise)."),
    encoding: str | None = typer.Option(None, "--encoding", help="Text encoding of CSV/log files (default: UTF-8, or GB18030 when the file is not UTF-8)."),
    playbooks: bool = typer.Option(False, "--playbooks", help="Run the configured playbooks on the imported events (default: off; history is not re-welcomed or re-rewarded)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only read and validate; store nothing."),
    batch: int = typer.Option(1000, "--batch", min=1, max=100_000, help="Events per database transaction."),
    window: int = typer.Option(1000, "--window", min=0, help="Re-order events by time within this many events (0: keep file order)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Import exported chat histories (FORMAT FILE…) as events.

    Formats: wechatmsg (WeChatMsg/留痕 CSV), pywxdump (PyWxDump CSV), telegram
    (Telegram Desktop result.json), discord (DiscordChatExporter JSON), gitter
    and irc (log lines). Files are streamed, so size does not matter. Each
    event gets an id derived from the export, so importing the same file twice
    changes nothing. Rows that cannot be read are reported with file and line
    and skipped; the exit code is then 1.

    Example: qunyun import telegram result.json --db sqlite:///history.db
    """
    from qunyun.config.model import load_settings
    from qunyun.importers.run import import_files
    from qunyun.store.db import migrate, open_engine

    console = Console(stderr=True)
    importer = FORMATS[str(fmt.value)](group=group, timezone=timezone, encoding=encoding)
    settings = None
    if config is not None:
        from qunyun.cli.common import pick_community

        settings = load_settings(str(config))
        community = pick_community(settings, community).id
    elif playbooks:
        raise CommandError(
            Msg("--playbooks needs --config: the playbooks and their settings come from the configuration"),
            hint=Msg("add --config qunyun.yaml (see `qunyun init`)"),
        )
    engine = None
    if not dry_run:
        engine = open_engine(database_url(db, config))
        migrate(engine)
    size = sum(p.stat().st_size for p in files)
    try:
        with Progress(
            TextColumn(f"[bold]import {fmt.value}[/]"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task("import", total=size)
            report = import_files(
                importer,
                files,
                db=engine,
                settings=settings,
                community=community,
                playbooks=playbooks,
                batch_size=batch,
                window=window,
                progress=lambda n: progress.advance(task, n),
            )
            progress.update(task, completed=size)
    finally:
        if engine is not None:
            engine.dispose()

    out = Console()
    for bad in report.bad:
        out.print(f"[red]{_t('bad row')}[/] {escape(str(bad))}", highlight=False, soft_wrap=True)
    if report.bad_count > len(report.bad):
        out.print("… " + _t("and {n} more bad rows", n=report.bad_count - len(report.bad)))
    for change in report.renames[:10]:
        out.print(
            "[dim]" + escape(_t("{old} is now {new} (same person: {person})", old=change.old, new=change.new, person=change.person)) + "[/]",
            highlight=False,
        )
    for problem in report.problems:
        colour = "yellow" if problem.status == "late" else "red"
        out.print(f"[{colour}]{escape(_t(problem.status))}[/] {escape(problem.key)}: {escape(problem.detail)}", highlight=False, soft_wrap=True)

    title = _t("import check (dry run, nothing stored)") if dry_run else _t("import summary")
    table = Table(title=title, show_header=False)
    table.add_row(_t("files"), f"{len(report.files):,}")
    table.add_row(_t("groups"), escape(", ".join(sorted(report.groups)[:5])) + (" …" if len(report.groups) > 5 else ""))
    if report.first is not None and report.last is not None:
        table.add_row(_t("time span"), f"{report.first.isoformat()} → {report.last.isoformat()}")
    table.add_row(_t("messages"), f"{report.events.get('message', 0):,}")
    table.add_row(_t("speakers"), f"{report.speakers:,}")
    table.add_row(_t("joins"), f"{report.events.get('member_joined', 0):,}")
    table.add_row(_t("leaves"), f"{report.events.get('member_left', 0):,}")
    if report.notes.get("renames"):
        table.add_row(_t("nick changes followed"), f"{report.notes['renames']:,}")
    for note, n in sorted(report.notes.items()):
        if note != "renames":
            table.add_row(f"  {escape(note)}", f"{n:,}")
    if not dry_run:
        table.add_row(_t("stored"), f"{report.outcomes.get('handled', 0):,}")
        table.add_row(_t("already there (skipped)"), f"{report.outcomes.get('duplicate', 0):,}")
        if report.outcomes.get("late"):
            table.add_row(_t("out of order (stored)"), f"{report.outcomes['late']:,}")
        for status in ("rejected", "failed"):
            if report.outcomes.get(status):
                table.add_row(_t(status), f"{report.outcomes[status]:,}")
    table.add_row(_t("bad rows (skipped)"), f"{report.bad_count:,}")
    table.add_row(_t("time"), _t("{s:.1f} s ({r:,.0f} events/s)", s=report.seconds, r=report.rate))
    out.print(table)
    if not report.ok:
        raise typer.Exit(1)
