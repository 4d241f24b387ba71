"""``qunyun report``: a community's health report as HTML, PNG charts and a text summary."""

from __future__ import annotations

import enum
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qunyun.cli.admin import ConfigDbOption, DbOption, database_url, open_existing
from qunyun.cli.app import app
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import QunyunError

_WORDS: dict[str, dict[str, str]] = {
    "reading": {"zh-CN": "正在读取汇总数据…", "en": "Reading the rollups…"},
    "drawing": {"zh-CN": "正在绘制图表并写入文件…", "en": "Drawing the charts and writing the files…"},
    "wrote": {"zh-CN": "报告已写入", "en": "Report written to"},
    "file": {"zh-CN": "文件", "en": "file"},
    "size": {"zh-CN": "大小", "en": "size"},
    "metrics": {"zh-CN": "计算指标", "en": "metrics"},
    "files": {"zh-CN": "生成文件", "en": "files"},
    "time": {"zh-CN": "用时", "en": "time"},
    "s": {"zh-CN": "秒", "en": "s"},
    "note": {"zh-CN": "注意", "en": "note"},
}


def _w(key: str, lang: str) -> str:
    return _WORDS[key].get(lang, _WORDS[key]["en"])


class Lang(enum.StrEnum):
    zh_CN = "zh-CN"
    en = "en"


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise QunyunError(f"{option} {value!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2026-11-02") from None


def _only_community(engine: object) -> str:
    from sqlalchemy import Engine, text

    assert isinstance(engine, Engine)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM communities ORDER BY id"))]
    if len(ids) == 1:
        return str(ids[0])
    if not ids:
        raise QunyunError("the database holds no community yet", hint="replay or import events first")
    raise QunyunError("the database holds several communities; say which one", hint="add --community (one of: " + ", ".join(ids) + ")")


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the report into (created if missing).")],
    db: DbOption = None,
    config: ConfigDbOption = None,
    community: Annotated[str | None, typer.Option("--community", help="The community's id (needed if the database holds several).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only this group (its key) instead of the whole community.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="First day of the report, YYYY-MM-DD (default: a year before the end, or the first day with data).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day of the report, YYYY-MM-DD (default: the last day with data).")] = None,
    lang: Annotated[Lang | None, typer.Option("--lang", "-l", help="Language of the report (default: the community's locale).")] = None,
    silent_days: Annotated[int, typer.Option("--silent-days", min=1, help="Members silent this many days or more are lurkers.")] = 30,
) -> None:
    """Write a community's health report: report.html, a PNG per chart, summary.txt and summary.md.

    The numbers come from the rollups (member × group × day counters) the
    engine keeps, so this works on any replayed or imported chat history.
    report.html is self-contained and works offline; summary.txt is short
    enough to paste into the group.

    Example: qunyun report --db sqlite:///qunyun.db --out report/ --since 2026-09-01 --lang en
    """
    from qunyun.analytics.report import build_report, summary_text, write_report

    start = _day(since, "--since")
    end = _day(until, "--until")
    console = Console(stderr=True)
    ui = cli_lang()
    engine = open_existing(database_url(db, config))
    try:
        cid = community or _only_community(engine)
        with console.status(_w("reading", ui)), engine.connect() as conn:
            rep = build_report(
                conn, cid, start=start, end=end, group=group, silent_days=silent_days,
                lang=lang.value if lang else None,
            )
        with console.status(_w("drawing", ui)):
            written = write_report(rep, out)
    finally:
        engine.dispose()

    out_console = Console()
    out_console.print(summary_text(rep).rstrip("\n"), markup=False, highlight=False)
    table = Table(title=f"{_w('wrote', ui)} {escape(str(out))}")
    table.add_column(_w("file", ui))
    table.add_column(_w("size", ui), justify="right")
    for path in written.files:
        table.add_row(escape(path.name), f"{path.stat().st_size:,}")
    metrics_s = sum(rep.timings.values())
    s = _w("s", ui)
    table.caption = f"{_w('time', ui)}: {_w('metrics', ui)} {metrics_s:.2f} {s} · {_w('files', ui)} {written.seconds:.2f} {s}"
    out_console.print(table)
    for note in rep.notes:
        console.print(f"[yellow]{_w('note', ui)}:[/] {escape(note)}", highlight=False)
