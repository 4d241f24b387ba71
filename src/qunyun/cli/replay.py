"""``qunyun replay``: run an events file through the engine on event time."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from qunyun.cli.app import app
from qunyun.cli.i18n import tr
from qunyun.config.model import load_settings
from qunyun.store.db import migrate, open_engine


@app.command()
def replay(
    events: Path = typer.Argument(..., help="Events file, JSON Lines (one event per line, \"v\": 1).", exists=True, dir_okay=False, readable=True),
    config: Path = typer.Option(..., "--config", "-c", help="The deployment configuration (qunyun.yaml)."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: the config's deployment.database, $QUNYUN_DATABASE_URL, or the default SQLite file)."),
    actions: Path | None = typer.Option(None, "--actions", "-a", help="Write the actions to this JSON Lines file (each action once, even across interrupted runs)."),
    batch: int = typer.Option(1000, "--batch", min=1, max=100_000, help="Events per database transaction (group commit)."),
    window: int = typer.Option(1000, "--window", min=0, help="Re-order events by time within this many lines (0: keep file order)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run EVENTS through the engine on event time and write the actions.

    Scheduled jobs (reminders, welcome batches…) fire as the events' time
    passes them. Bad lines are reported with their line numbers and skipped;
    nothing else is lost, and running the same file again changes nothing
    (events are de-duplicated by id). Exit code 1 if any line was bad or any
    event was rejected.

    Example: qunyun replay events.jsonl --config qunyun.yaml --actions actions.jsonl
    """
    from qunyun.replay import replay_file

    console = Console(stderr=True)
    settings = load_settings(str(config))
    engine = open_engine(db or settings.database)
    migrate(engine)
    size = events.stat().st_size
    with Progress(
        TextColumn(f"[bold]{tr('replay')}[/]"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("replay", total=size)
        report = replay_file(
            events,
            settings,
            engine,
            actions=actions,
            batch_size=batch,
            window=window,
            progress=lambda n: progress.advance(task, n),
        )
        progress.update(task, completed=size)

    out = Console()
    for bad in report.lines_bad:
        out.print(f"[red]{tr('bad line')}[/] {escape(bad.error)}", highlight=False, soft_wrap=True)
    if report.bad_count > len(report.lines_bad):
        out.print("… " + tr("and {n} more bad lines", n=report.bad_count - len(report.lines_bad)))
    for problem in report.problems:
        colour = "yellow" if problem.status == "late" else "red"
        out.print(
            f"[{colour}]{tr(problem.status)}[/] {escape(problem.key)}: {escape(problem.detail)}",
            highlight=False,
            soft_wrap=True,
        )

    table = Table(title=tr("replay summary"), show_header=False)
    table.add_row(tr("events read"), f"{report.events:,}")
    for status in ("handled", "late", "duplicate", "rejected", "failed"):
        table.add_row(f"  {tr(status)}", f"{report.outcomes.get(status, 0):,}")
    table.add_row(tr("bad lines (skipped)"), f"{report.bad_count:,}")
    table.add_row(tr("scheduled jobs fired"), f"{report.jobs_fired:,}")
    table.add_row(tr("playbook failures (rolled back)"), f"{report.playbook_failures:,}")
    if actions is not None:
        table.add_row(tr("actions delivered to file"), f"{report.actions_written:,}")
    table.add_row(tr("time"), tr("{s:.1f} s ({r:,.0f} events/s)", s=report.seconds, r=report.rate))
    out.print(table)
    if not report.ok:
        raise typer.Exit(1)
