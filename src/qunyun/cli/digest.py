"""``qunyun digest``: the essence digest of a day or week, the book, a member's archive.

Everything goes through the ``digest`` playbook's commands (``render``,
``book``, ``archive``) with :meth:`Engine.command` — the same path as the
console and the API — and this module only writes the documents it gets
back into ``--out``.
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
from qunyun.cli.common import run_command
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip

_LABELS: dict[str, str] = {
    "wrote {n} files to {out}: {entries} entries by {authors} authors ({period})":
        "已写入 {n} 个文件到 {out}：{entries} 条精华，{authors} 位作者（{period}）",
    "no essence in {period}: nothing written": "{period} 没有精华，未写入文件",
    "wrote the book to {out} ({files}): {chapters} chapters, {entries} entries by {authors} authors":
        "精华集已写入 {out}（{files}）：{chapters} 章，{entries} 条精华，{authors} 位作者",
    "no essence yet: no book written": "还没有精华，未生成精华集",
    "Talent archive of {name} ({member})": "{name}（{member}）的人才档案",
    "points": "积分",
    "title": "头衔",
    "medals": "勋章",
    "essence": "精华",
    "answers": "回答",
    "best answer": "最佳回答",
    "shares": "分享",
    "awards": "奖励",
    "what": "类别",
    "when": "时间",
    "content": "内容",
    "nothing yet": "暂无记录",
}


def _t(text: str, **values: object) -> str:
    chosen = _LABELS.get(text, text) if cli_lang() == "zh-CN" else text
    return chosen.format(**values) if values else chosen


def _run(config: Path, db: str | None, community: str | None, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return run_command(config, db, community, "digest", name, args)


def _write(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out / name).write_text(content, encoding="utf-8")


def _formats(fmt: str) -> list[str]:
    if fmt == "both":
        return ["md", "html"]
    if fmt not in ("md", "html"):
        raise CommandError(Msg("--format must be md, html or both, not {format!r}", format=fmt))
    return [fmt]


@app.command("digest")
def digest_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The deployment configuration (qunyun.yaml).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory to write the documents to (created if missing).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: the config's deployment.database or $QUNYUN_DATABASE_URL)."),
    ] = None,
    community: Annotated[
        str | None, typer.Option("--community", help="Community id (needed when the config has several).")
    ] = None,
    period: Annotated[str, typer.Option("--period", help="day or week (the ISO week of --date).")] = "day",
    day: Annotated[
        str | None,
        typer.Option("--date", help="A day in the period, YYYY-MM-DD (default: today in the community's time zone); "
                     "or a week label such as 2026-W45."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, html or both.")] = "both",
    book: Annotated[bool, typer.Option("--book", help="Compile all essence into one book instead.")] = False,
    by: Annotated[str, typer.Option("--by", help="The book's chapters: month or kind.")] = "month",
    archive: Annotated[
        str | None, typer.Option("--archive", help="Print this member's talent archive (a platform user id).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --archive: print JSON.")] = False,
) -> None:
    """Write the essence digest of a day or week (Markdown, HTML), the book of all essence, or a member's archive.

    Example: qunyun digest --config qunyun.yaml --date 2026-11-02 --out site/digest
    """
    if archive is not None:
        _print_archive(_run(config, db, community, "archive", {"member": archive}), as_json)
        return
    if out is None:
        raise CommandError(Msg("--out is required"),
                           hint=Msg("give the directory to write the documents to, e.g. --out digest"))
    formats = _formats(fmt)
    if book:
        if by not in ("month", "kind"):
            raise CommandError(Msg("--by must be month or kind, not {by!r}", by=by))
        result = _run(config, db, community, "book", {"by": by, "formats": formats})
        if not result["files"]:
            Console().print(_t("no essence yet: no book written"))
            return
        _write(out, result["files"])
        Console(soft_wrap=True).print(escape(_t(
            "wrote the book to {out} ({files}): {chapters} chapters, {entries} entries by {authors} authors",
            out=out, files=", ".join(sorted(result["files"])), chapters=result["chapters"],
            entries=result["entries"], authors=result["authors"],
        )))
        return
    if period not in ("day", "week"):
        raise CommandError(Msg("--period must be day or week, not {period!r}", period=period))
    args: dict[str, Any] = {"period": period, "formats": formats}
    if day is not None:
        args["label" if "-W" in day else "date"] = day
    result = _run(config, db, community, "render", args)
    if not result["files"]:
        Console(soft_wrap=True).print(escape(_t("no essence in {period}: nothing written", period=result["period"])))
        return
    _write(out, result["files"])
    Console(soft_wrap=True).print(escape(_t(
        "wrote {n} files to {out}: {entries} entries by {authors} authors ({period})",
        n=len(result["files"]), out=out, entries=result["entries"], authors=result["authors"],
        period=result["period"],
    )))


def _print_archive(found: dict[str, Any], as_json: bool) -> None:
    out = Console(soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(found, ensure_ascii=False))
        return
    out.print(escape(_t("Talent archive of {name} ({member})", name=found["name"], member=found["member"])))
    out.print(f"{_t('points')}: {found['points']}" + (f" · {_t('title')}: {escape(found['title'])}"
                                                       if found.get("title") else ""))
    if found.get("medals"):
        out.print(f"{_t('medals')}: " + escape(", ".join(sorted(found["medals"]))))
    table = Table()
    for col in ("what", "when", "content"):
        table.add_column(_t(col), overflow="fold")
    for e in found["essence"]:
        table.add_row(_t("essence"), escape(str(e.get("day") or "")), escape(clip(e.get("text", ""), 120)))
    for a in found["answers"]:
        what = _t("best answer") if a["best"] else _t("answers")
        table.add_row(what, escape(str(a.get("ts") or "")[:10]),
                      escape(clip(f"{a.get('question', '')} → {a.get('text', '')}", 120)))
    for s in found["shares"]:
        table.add_row(_t("shares"), escape(str(s.get("starts_at") or "")[:10]), escape(clip(str(s.get("topic")), 120)))
    for w in found["awards"]:
        table.add_row(_t("awards"), escape(str(w.get("ts") or "")[:10]),
                      escape(clip(json.dumps(w.get("data"), ensure_ascii=False), 120)))
    if table.row_count:
        out.print(table)
    else:
        out.print(_t("nothing yet"))
