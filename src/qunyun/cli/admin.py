"""``qunyun init``, ``qunyun migrate`` and ``qunyun doctor``: setting up and checking a deployment."""

from __future__ import annotations

import contextlib
import enum
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from qunyun.cli.app import app
from qunyun.cli.i18n import cli_lang, tr
from qunyun.config.loader import load_file
from qunyun.config.model import Settings, load_settings, settings_from_text
from qunyun.config.starter import DEFAULT_FILE, render_starter
from qunyun.core.clock import SystemClock
from qunyun.core.errors import ConfigError, Msg, QunyunError, StoreError, in_lang
from qunyun.store import db as store_db

# ----------------------------------------------------------- shared helpers

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: the config's deployment.database, $QUNYUN_DATABASE_URL, "
        "or the default SQLite file).",
    ),
]
ConfigDbOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Take the database from this configuration's deployment.database."
    ),
]


def database_url(db: str | None, config: Path | None = None) -> str:
    """The database to use: ``--db``, else the config's ``deployment.database``,
    else ``$QUNYUN_DATABASE_URL``, else the default SQLite file."""
    if db:
        return store_db.resolve_url(db)
    if config is not None:
        return store_db.resolve_url(load_settings(str(config)).database)
    return store_db.resolve_url(None)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def missing_sqlite_file(url: str) -> Path | None:
    """The path of an SQLite database file that does not exist yet, else None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def open_existing(url: str) -> Engine:
    """An engine for a database that must already exist and be migrated."""
    missing = missing_sqlite_file(url)
    if missing is not None:
        raise StoreError(
            f"database file {missing} does not exist",
            hint=f"create it with `qunyun migrate --db {url}`, or check the path",
        )
    engine = store_db.open_engine(url)
    try:
        store_db.require_current(engine)
    except StoreError as exc:
        engine.dispose()
        if "qunyun migrate" in (exc.hint or ""):
            raise StoreError(
                exc.message, hint=f"run `qunyun migrate --db {redact(url)}` first"
            ) from None
        raise
    return engine


# --------------------------------------------------------------------- init


class Lang(enum.StrEnum):
    zh_CN = "zh-CN"
    en = "en"


@app.command("init")
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Directory to write qunyun.yaml into (created if missing).")
    ] = Path("."),
    lang: Annotated[
        Lang,
        typer.Option(
            "--lang", "-l", help="Language of the comments, the community and the bot's texts."
        ),
    ] = Lang.zh_CN,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            "-f",
            help="Replace an existing qunyun.yaml (the old one is kept as qunyun.yaml.bak).",
        ),
    ] = False,
) -> None:
    """Write a fully commented starter configuration, DIRECTORY/qunyun.yaml.

    The file shows every setting of every installed playbook with its default
    value and what it does, one community with a main group and an admins'
    group, and the words the bot says (the templates), ready to edit. It is
    generated from the models, so it always matches this version of qunyun.

    Example: qunyun init my-community --lang en
    """
    if directory.exists() and not directory.is_dir():
        raise QunyunError(
            f"{directory} is not a directory",
            hint="give the directory to write qunyun.yaml into, e.g. `qunyun init my-community`",
        )
    target = directory / DEFAULT_FILE
    if target.exists() and not force:
        raise QunyunError(
            f"{target} already exists; not overwriting it",
            hint="pass --force to replace it (the old file is kept as qunyun.yaml.bak), "
            "or write into another directory: `qunyun init DIR`",
        )
    shown = DEFAULT_FILE if directory == Path(".") else str(target)
    content = render_starter(lang.value, path=shown)
    # Never write a starter that does not load: check it as the loader will.
    try:
        settings = settings_from_text(content, f"<starter for {target}>")
    except ConfigError as exc:  # a playbook's defaults do not validate: say whose
        raise QunyunError(
            "the generated starter configuration does not validate:\n"
            + "\n".join(f"  - {p}" for p in exc.problems),
            hint="a playbook's defaults are invalid; `qunyun doctor` lists the installed "
            "playbooks — report this to the package that provides it",
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        backup = target.with_name(target.name + ".bak")
        os.replace(target, backup)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, target)

    console = Console(highlight=False)
    community = next(iter(settings.communities.values()))
    playbooks = list(community.playbook_specs)
    console.print(f"[green]✓[/] wrote {escape(str(target))} ({lang.value})", soft_wrap=True)
    if backup is not None:
        console.print(f"  the previous file is now {escape(str(backup))}", soft_wrap=True)
    console.print(
        f"  1 community, {len(community.groups)} groups, {len(playbooks)} playbooks: "
        + ", ".join(playbooks),
        soft_wrap=True,
    )
    console.print("next:", soft_wrap=True)
    console.print(f"  edit {escape(str(target))}", soft_wrap=True)
    console.print(f"  qunyun migrate --config {escape(str(target))}", soft_wrap=True)
    console.print(f"  qunyun doctor --config {escape(str(target))}", soft_wrap=True)


# ------------------------------------------------------------------ migrate


@app.command("migrate")
def migrate_command(
    db: DbOption = None,
    config: ConfigDbOption = None,
) -> None:
    """Create the database schema, or bring it up to date with this qunyun.

    Applies the Alembic migrations shipped with qunyun and prints the schema
    revision before and after. Safe to run again: a current database is left
    alone. SQLite files (and their directory) are created when missing.

    Example: qunyun migrate --db postgresql+psycopg://qunyun@localhost/qunyun
    """
    url = database_url(db, config)
    engine = store_db.open_engine(url)
    try:
        before, head = store_db.schema_status(engine)
        if before == head:
            typer.echo(f"{redact(url)}: schema is current ({head}); nothing to do")
            return
        try:
            store_db.migrate(engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot migrate {redact(url)}: {_first_line(exc)}",
                hint="check that the database user may create tables",
            ) from None
        after, _ = store_db.schema_status(engine)
        typer.echo(f"{redact(url)}: schema {before or 'empty'} → {after} (head {head})")
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (
        str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
    )


# ------------------------------------------------------------------- doctor


@dataclass
class Check:
    name: str
    #: True passed, False failed, None not checked
    ok: bool | None
    detail: str
    notes: list[str] = field(default_factory=list)


def _config_notes(exc: ConfigError, *hints: str) -> list[str]:
    """A ConfigError's problems and hints as doctor's notes, in the CLI's language."""
    lang = cli_lang()
    label = "提示" if lang == "zh-CN" else "hint"
    shown = [h for h in (exc.hint, *hints) if h]
    return [*exc.problems_in(lang), *(f"{label}: {in_lang(h, lang)}" for h in shown)]


def _check_config(config: Path | None) -> tuple[Check, Settings | None, Any]:
    """The config check, the settings if valid, and the raw YAML data if readable."""
    if config is None:
        return Check("configuration", None, "not checked: pass --config FILE"), None, None
    raw: Any = None
    with contextlib.suppress(ConfigError):
        raw = load_file(config).data
    try:
        settings = load_settings(str(config))
    except ConfigError as exc:
        notes = _config_notes(exc)
        count = len(exc.problems)
        return (
            Check("configuration", False, f"{config}: {count} problem{'s' * (count != 1)}", notes),
            None,
            raw,
        )
    except QunyunError as exc:
        return Check("configuration", False, f"{config}: cannot be checked", [str(exc)]), None, raw
    groups = sum(len(c.groups) for c in settings.communities.values())
    playbooks = sorted({p for c in settings.communities.values() for p in c.playbook_specs})
    detail = (
        f"{config}: {len(settings.communities)} communit{'ies' if len(settings.communities) != 1 else 'y'}, "
        f"{groups} group{'s' * (groups != 1)}; playbooks: {', '.join(playbooks) or 'none'}"
    )
    return Check("configuration", True, detail), settings, raw


def _check_playbooks() -> Check:
    from qunyun.engine.registry import GROUP, default_registry

    try:
        registry = default_registry()
    except QunyunError as exc:
        return Check(
            "playbooks installed", False, exc.message, [f"hint: {exc.hint}"] if exc.hint else []
        )
    sources: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.dist is not None:
            sources[ep.name] = f"{ep.dist.name} {ep.dist.version}"
    ids = registry.ids()
    if not ids:
        return Check(
            "playbooks installed",
            False,
            "none",
            ["hint: reinstall qunyun: the built-in playbooks are missing"],
        )
    lines = [
        f"{pid} v{registry[pid].version}" + (f" ({sources[pid]})" if pid in sources else "")
        for pid in ids
    ]
    return Check("playbooks installed", True, "\n".join(lines))


def _check_database(url: str) -> tuple[Check, Engine | None]:
    shown = redact(url)
    missing = missing_sqlite_file(url)
    if missing is not None:
        return (
            Check(
                "database reachable",
                False,
                "SQLite file does not exist",
                [
                    f"{missing} does not exist",
                    f"hint: create it with `qunyun migrate --db {shown}`, or check the path",
                ],
            ),
            None,
        )
    try:
        engine = store_db.open_engine(url)
    except StoreError as exc:
        return Check(
            "database reachable", False, exc.message, [f"hint: {exc.hint}"] if exc.hint else []
        ), None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = conn.dialect.server_version_info
    except SQLAlchemyError as exc:
        engine.dispose()
        return (
            Check(
                "database reachable",
                False,
                f"{shown}: cannot connect",
                [
                    " ".join(str(getattr(exc, "orig", None) or exc).split()),
                    "hint: check the URL, that the server is running, and that you may connect",
                ],
            ),
            None,
        )
    name = engine.dialect.name
    if version:
        name += " " + ".".join(str(v) for v in version)
    return Check("database reachable", True, f"{shown} ({name})"), engine


def _check_schema(engine: Engine | None, url: str) -> Check:
    if engine is None:
        return Check("schema current", None, "not checked: the database is not reachable")
    try:
        current, head = store_db.schema_status(engine)
    except StoreError as exc:
        return Check("schema current", False, exc.message)
    if current == head:
        return Check("schema current", True, f"at {head} (head)")
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(store_db.alembic_config(engine))
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        return Check(
            "schema current",
            False,
            f"at {current}, which this qunyun does not know (head {head})",
            ["hint: the database was migrated by a newer qunyun; upgrade qunyun"],
        )
    return Check(
        "schema current",
        False,
        f"at {current or 'nothing (empty database)'}, head is {head}",
        [f"hint: run `qunyun migrate --db {redact(url)}`"],
    )


def _check_timezones(raw: Any, settings: Settings | None) -> Check:
    zones: list[str] = []
    if settings is not None:
        zones = [c.timezone for c in settings.communities.values()]
    elif isinstance(raw, dict) and isinstance(raw.get("communities"), list):
        for community in raw["communities"]:
            if isinstance(community, dict):
                zones.append(str(community.get("timezone", "Asia/Shanghai")))
    default = not zones
    if default:
        zones = ["Asia/Shanghai"]
    now = SystemClock().now()
    good: list[str] = []
    bad: list[str] = []
    for zone in dict.fromkeys(zones):
        try:
            offset = now.astimezone(ZoneInfo(zone)).strftime("%z")
        except (ZoneInfoNotFoundError, ValueError):
            bad.append(zone)
            continue
        good.append(f"{zone} (UTC{offset[:3]}:{offset[3:]})")
    if bad:
        notes = [f"unknown time zone {zone!r}" for zone in bad]
        notes.append(
            "hint: use IANA names like Asia/Shanghai; if those fail too, `pip install tzdata`"
        )
        return Check("time zones", False, ", ".join(bad) + " not found", notes)
    return Check("time zones", True, ", ".join(good) + (" (default)" if default else ""))


#: How long one adapter's checks may take before doctor gives up on them.
ADAPTER_CHECK_SECONDS = 20.0


def _has_adapters(raw: Any) -> bool:
    deployment = raw.get("deployment") if isinstance(raw, dict) else None
    return isinstance(deployment, dict) and bool(deployment.get("adapters"))


def _check_adapters(config: Path, wait: float) -> list[Check]:
    """Build every adapter of ``deployment.adapters`` as ``qunyun run`` does and ask it for its checks."""
    import asyncio

    from qunyun.adapters.config import load_run_config
    from qunyun.cli.run import _adapter

    try:
        settings, options = load_run_config(str(config))
    except ConfigError as exc:  # e.g. a secret's environment variable is not set
        notes = _config_notes(
            exc, Msg("set the environment variables doctor runs with as `qunyun run` will have them")
        )
        count = len(exc.problems)
        return [Check("adapters", False, f"{count} problem{'s' * (count != 1)}", notes)]
    checks: list[Check] = []
    clock = SystemClock()
    for option in options:
        try:
            adapter = _adapter(option, settings, clock)
        except (ValueError, QunyunError) as exc:
            checks.append(Check(f"{option.platform} adapter", False, f"cannot be set up: {exc}"))
            continue
        checks.extend(asyncio.run(_adapter_checks(adapter, wait)))
    return checks


async def _adapter_checks(adapter: Any, wait: float) -> list[Check]:
    """Start what the adapter needs for its checks, run them (bounded in time), stop it again.

    Nothing reaches the engine: doctor's sink refuses every event, a Matrix
    bot syncs into a throw-away copy of its state file (the stored sync
    position stays as ``qunyun run`` left it), and a Telegram bot is not
    started at all (polling would take updates away from ``qunyun run``).
    """
    import asyncio
    import shutil
    import tempfile

    from qunyun.adapters.matrix.adapter import MatrixAdapter
    from qunyun.adapters.onebot import OneBotAdapter

    name = f"{adapter.platform} adapter"

    async def refuse(event: Any) -> bool:
        return False

    tmp: tempfile.TemporaryDirectory[str] | None = None
    started = False
    try:
        if isinstance(adapter, OneBotAdapter):
            try:
                await adapter.start(refuse)
            except OSError as exc:
                return [Check(name, False, f"cannot listen: {exc}", [
                    "hint: if `qunyun run` is running, it holds the port: stop it for the check, or read its log",
                ])]
            started = True
            for _ in range(max(0, round(wait * 10))):  # the implementation connects to us
                if adapter.connected:
                    break
                await asyncio.sleep(0.1)
        elif isinstance(adapter, MatrixAdapter):
            tmp = tempfile.TemporaryDirectory(prefix="qunyun-doctor-")
            copy = Path(tmp.name) / adapter.state_path.name
            if adapter.state_path.is_file():
                shutil.copyfile(adapter.state_path, copy)
            adapter.state_path = copy
            started = True  # stop() closes whatever start() opened, even if it failed half-way
            try:
                await asyncio.wait_for(adapter.start(refuse), ADAPTER_CHECK_SECONDS)
            except Exception as exc:
                return [Check(name, False, f"cannot connect: {type(exc).__name__}: {exc}")]
        try:
            found = await asyncio.wait_for(adapter.check(), ADAPTER_CHECK_SECONDS)
        except TimeoutError:
            return [Check(name, False, f"no answer within {ADAPTER_CHECK_SECONDS:g} s")]
        except Exception as exc:  # an adapter's bug must not hide the other checks
            return [Check(name, False, f"the check failed: {type(exc).__name__}: {exc}")]
        return [Check(c.name, c.ok, c.detail, [*c.notes]) for c in found]
    finally:
        if started or not isinstance(adapter, (OneBotAdapter, MatrixAdapter)):
            with contextlib.suppress(Exception):
                await adapter.stop()
        if tmp is not None:
            tmp.cleanup()


@app.command("doctor")
def doctor_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Check this configuration file (and use its deployment.database).",
        ),
    ] = None,
    db: DbOption = None,
    adapter_wait: Annotated[
        float,
        typer.Option(
            "--adapter-wait",
            min=0,
            max=120,
            help="Seconds to wait for a OneBot implementation to connect before checking it.",
        ),
    ] = 5.0,
) -> None:
    """Check that everything is ready to run, and say what to fix.

    Checks the configuration (every problem with its file and line), that the
    database is reachable and its schema current, which playbooks are
    installed, and that the time zones are known. With deployment.adapters it
    also connects each adapter as `qunyun run` would and shows its checks
    (reachable, logged in, the bot's rights in each group); a OneBot adapter
    listens for --adapter-wait seconds for the implementation to connect.
    Exit code 0 when every check passes, 1 when any fails.

    Example: qunyun doctor --config qunyun.yaml
    """
    config_check, settings, raw = _check_config(config)
    if db:
        url = store_db.resolve_url(db)
    else:
        configured = settings.database if settings is not None else None
        if configured is None and isinstance(raw, dict):
            deployment = raw.get("deployment")
            if isinstance(deployment, dict) and isinstance(deployment.get("database"), str):
                configured = deployment["database"]
        url = store_db.resolve_url(configured)
    db_check, engine = _check_database(url)
    try:
        checks = [
            config_check,
            db_check,
            _check_schema(engine, url),
            _check_playbooks(),
            _check_timezones(raw, settings),
        ]
        if config is not None and settings is not None and _has_adapters(raw):
            checks.extend(_check_adapters(config, adapter_wait))
    finally:
        if engine is not None:
            engine.dispose()

    console = Console(highlight=False)
    table = Table(title="qunyun doctor", show_header=True, header_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column(tr("check"), no_wrap=True)
    table.add_column(tr("result"), overflow="fold")
    marks = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}
    for check in checks:
        table.add_row(marks[check.ok], tr(check.name), escape(check.detail))
    console.print(table)
    for check in checks:
        if check.notes:
            console.print(f"[bold]{tr(check.name)}[/]:", soft_wrap=True)
            for note in check.notes:
                console.print(f"  {escape(note)}", soft_wrap=True)
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        message = "{n} check failed: {names}" if len(failed) == 1 else "{n} checks failed: {names}"
        names = ", ".join(tr(name) for name in failed)
        console.print(f"[red]✗ {escape(tr(message, n=len(failed), names=names))}[/]")
        raise typer.Exit(1)
    console.print(f"[green]✓ {tr('all checks passed')}[/]")
