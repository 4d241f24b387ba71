"""``qunyun run``: the live engine with the configured adapters."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qunyun.cli.admin import open_existing, redact
from qunyun.cli.app import app
from qunyun.cli.i18n import cli_lang
from qunyun.core.errors import QunyunError

_LABELS = {
    "run summary": "运行汇总",
    "stopped by": "停止原因",
    "events": "事件",
    "refused at the edge": "入口拒收",
    "scheduled jobs fired": "定时任务执行次数",
    "actions delivered": "已送达动作",
    "retries": "重试次数",
    "failed for good": "最终失败",
    "notes to admins": "通知管理员",
    "payloads dropped": "丢弃的负载",
}


def _tr(text: str) -> str:
    return _LABELS.get(text, text) if cli_lang() == "zh-CN" else text


def _logging(level: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    for name in ("qunyun", "aiohttp"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(getattr(logging, level.upper()) if name == "qunyun" else logging.WARNING)
    return handler


def _adapter(options: Any, settings: Any, clock: Any) -> Any:
    """The adapter for one validated ``deployment.adapters`` entry."""
    from qunyun.adapters.config import MatrixOptions
    from qunyun.adapters.onebot import OneBotAdapter
    from qunyun.adapters.telegram.adapter import TelegramAdapter
    from qunyun.adapters.telegram.settings import TelegramOptions
    from qunyun.runtime import rooms_of

    rooms = rooms_of(settings, options.platform)
    if isinstance(options, MatrixOptions):
        from qunyun.adapters.matrix.adapter import MatrixAdapter

        return MatrixAdapter(
            options.settings, rooms=rooms, access_token=options.access_token, password=options.password
        )
    if isinstance(options, TelegramOptions):
        groups = [
            (key, group, community)
            for community in settings.communities.values()
            for (platform, key), group in community.groups.items()
            if platform == options.platform
        ]
        return TelegramAdapter(
            options,
            rooms=rooms,
            group_names={key: group.name for key, group, _ in groups},
            locales={key: community.locale for key, _, community in groups},
            clock=clock,
        )
    return OneBotAdapter(options, rooms=rooms, clock=clock)


@app.command("run")
def run_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The deployment configuration (qunyun.yaml).")],
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: the config's deployment.database, $QUNYUN_DATABASE_URL, "
                     "or the default SQLite file)."),
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option("--max-seconds", min=0.1, help="Stop by itself after this many seconds (tests, smoke checks)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info, warning or error (default: the config's deployment.log_level)."),
    ] = None,
) -> None:
    """Run the community live: adapters in, engine, scheduler, outbox delivery out.

    Starts every adapter under deployment.adapters (e.g. a OneBot reverse
    WebSocket server that NapCat connects to), handles each event as it
    arrives, fires scheduled jobs as their time comes, and delivers the
    actions through the platforms' rate limits, retrying with backoff. Stop
    it with Ctrl-C or SIGTERM: the event in hand is finished, pending
    actions get a last delivery pass, and the next run resumes the rest.
    Exit code 0 after a clean stop.

    Example: qunyun run --config qunyun.yaml
    """
    from qunyun.adapters.base import Adapter, Backoff
    from qunyun.adapters.config import load_run_config
    from qunyun.core.clock import SystemClock
    from qunyun.engine.engine import Engine
    from qunyun.runtime import Runtime, rooms_of
    from qunyun.store import db as store_db

    settings, options = load_run_config(str(config))
    level = (log_level or settings.log_level).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise QunyunError(f"unknown log level {log_level!r}", hint="use debug, info, warning or error")
    url = store_db.resolve_url(db or settings.database)
    database = open_existing(url)
    clock = SystemClock()
    adapters: list[Adapter] = [_adapter(o, settings, clock) for o in options]
    served = {a.platform for a in adapters}
    handler = _logging(level)
    log = logging.getLogger("qunyun.run")
    try:
        for community in settings.communities.values():
            for (platform, key), _group in community.groups.items():
                if platform not in served:
                    log.warning("group %s on %s: no adapter serves platform %r; it stays quiet", key, platform, platform)
        for a in adapters:
            if not rooms_of(settings, a.platform):
                log.warning("adapter %s: no group is configured with platform %r", a.platform, a.platform)
        engine = Engine(database, settings, clock=clock, capabilities={a.platform: a.capabilities for a in adapters})
        by_platform: dict[str, Any] = {o.platform: o for o in options}
        runtime = Runtime(
            engine,
            adapters,
            max_attempts=lambda a: by_platform[a.platform].max_attempts,
            concurrency=lambda a: by_platform[a.platform].concurrency,
            backoff=lambda a: Backoff(base=by_platform[a.platform].backoff_base, cap=by_platform[a.platform].backoff_cap),
        )
        log.info("database %s", redact(url))
        try:
            report = asyncio.run(runtime.run(max_seconds=max_seconds, install_signals=True))
        except OSError as exc:
            raise QunyunError(
                f"cannot start an adapter: {exc}",
                hint="is another program listening on that port? change deployment.adapters.N.port",
            ) from None
    finally:
        for name in ("qunyun", "aiohttp"):
            logging.getLogger(name).removeHandler(handler)
        database.dispose()

    table = Table(title=_tr("run summary"), show_header=False)
    table.add_row(_tr("stopped by"), report.stopped_by or "-")
    table.add_row(_tr("events"), ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "0")
    table.add_row(_tr("refused at the edge"), str(report.refused_events))
    table.add_row(_tr("payloads dropped"), str(sum(a.bad_count for a in adapters)))
    table.add_row(_tr("scheduled jobs fired"), str(report.jobs_fired))
    table.add_row(_tr("actions delivered"), str(report.delivered))
    table.add_row(_tr("retries"), str(report.retried))
    table.add_row(_tr("failed for good"), str(report.failed))
    table.add_row(_tr("notes to admins"), str(report.notes_to_admins))
    Console().print(table)
