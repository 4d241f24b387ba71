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
            Msg("database file {path} does not exist", path=missing),
            hint=Msg("create it with `qunyun migrate --db {url}`, or check the path", url=url),
        )
    engine = store_db.open_engine(url)
    try:
        store_db.require_current(engine)
    except StoreError as exc:
        engine.dispose()
        if "qunyun migrate" in (exc.hint or ""):
            raise StoreError(
                exc.message, hint=Msg("run `qunyun migrate --db {url}` first", url=redact(url))
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
    console.print(
        "[green]✓[/] " + escape(tr("wrote {path} ({lang})", path=target, lang=lang.value)),
        soft_wrap=True,
    )
    if backup is not None:
        console.print("  " + escape(tr("the previous file is now {path}", path=backup)), soft_wrap=True)
    console.print(
        "  "
        + tr(
            "1 community, {groups} groups, {n} playbooks: {names}",
            groups=len(community.groups),
            n=len(playbooks),
            names=", ".join(playbooks),
        ),
        soft_wrap=True,
    )
    console.print(tr("next:"), soft_wrap=True)
    console.print("  " + escape(tr("edit {path}", path=target)), soft_wrap=True)
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
            typer.echo(tr("{url}: schema is current ({head}); nothing to do", url=redact(url), head=head))
            return
        try:
            store_db.migrate(engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                Msg("cannot migrate {url}: {error}", url=redact(url), error=_first_line(exc)),
                hint=Msg("check that the database user may create tables"),
            ) from None
        after, _ = store_db.schema_status(engine)
        typer.echo(
            tr(
                "{url}: schema {before} → {after} (head {head})",
                url=redact(url),
                before=before or tr("empty"),
                after=after,
                head=head,
            )
        )
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


def _hint(text: str, **values: object) -> str:
    """A doctor note saying what to do, in the CLI's language."""
    return f"{tr('hint')}: {tr(text, **values)}"


def _config_notes(exc: ConfigError, *hints: str) -> list[str]:
    """A ConfigError's problems and hints as doctor's notes, in the CLI's language."""
    lang = cli_lang()
    shown = [h for h in (exc.hint, *hints) if h]
    return [*exc.problems_in(lang), *(f"{tr('hint')}: {in_lang(h, lang)}" for h in shown)]


def _error_notes(exc: QunyunError) -> list[str]:
    """An error's hint (if any) as doctor's note, in the CLI's language."""
    return [f"{tr('hint')}: {in_lang(exc.hint, cli_lang())}"] if exc.hint else []


def _problems(n: int, **values: object) -> str:
    """``{n} problem(s)`` (with ``{config}: `` first when given), in the CLI's language."""
    one = n == 1
    if "config" in values:
        key = "{config}: {n} problem" if one else "{config}: {n} problems"
    else:
        key = "{n} problem" if one else "{n} problems"
    return tr(key, n=n, **values)


def _check_config(config: Path | None) -> tuple[Check, Settings | None, Any]:
    """The config check, the settings if valid, and the raw YAML data if readable."""
    if config is None:
        return Check("configuration", None, tr("not checked: pass --config FILE")), None, None
    raw: Any = None
    with contextlib.suppress(ConfigError):
        raw = load_file(config).data
    try:
        settings = load_settings(str(config))
    except ConfigError as exc:
        notes = _config_notes(exc)
        return (
            Check("configuration", False, _problems(len(exc.problems), config=config), notes),
            None,
            raw,
        )
    except QunyunError as exc:
        detail = tr("{config}: cannot be checked", config=config)
        return Check("configuration", False, detail, [exc.localized(cli_lang())]), None, raw
    groups = sum(len(c.groups) for c in settings.communities.values())
    playbooks = sorted({p for c in settings.communities.values() for p in c.playbook_specs})
    communities = len(settings.communities)
    key = _CONFIG_SUMMARY[communities == 1, groups == 1]
    detail = tr(
        key, config=config, c=communities, g=groups, names=", ".join(playbooks) or tr("none")
    )
    return Check("configuration", True, detail), settings, raw


#: The configuration check's summary, by (one community, one group).
_CONFIG_SUMMARY = {
    (True, True): "{config}: {c} community, {g} group; playbooks: {names}",
    (True, False): "{config}: {c} community, {g} groups; playbooks: {names}",
    (False, True): "{config}: {c} communities, {g} group; playbooks: {names}",
    (False, False): "{config}: {c} communities, {g} groups; playbooks: {names}",
}


def _check_playbooks() -> Check:
    from qunyun.engine.registry import GROUP, default_registry

    try:
        registry = default_registry()
    except QunyunError as exc:
        return Check(
            "playbooks installed", False, in_lang(exc.message, cli_lang()) or "", _error_notes(exc)
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
            tr("none"),
            [_hint("reinstall qunyun: the built-in playbooks are missing")],
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
                tr("SQLite file does not exist"),
                [
                    tr("{path} does not exist", path=missing),
                    _hint("create it with `qunyun migrate --db {url}`, or check the path", url=shown),
                ],
            ),
            None,
        )
    try:
        engine = store_db.open_engine(url)
    except StoreError as exc:
        message = in_lang(exc.message, cli_lang()) or ""
        return Check("database reachable", False, message, _error_notes(exc)), None
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
                tr("{url}: cannot connect", url=shown),
                [
                    " ".join(str(getattr(exc, "orig", None) or exc).split()),
                    _hint("check the URL, that the server is running, and that you may connect"),
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
        return Check("schema current", None, tr("not checked: the database is not reachable"))
    try:
        current, head = store_db.schema_status(engine)
    except StoreError as exc:
        return Check("schema current", False, in_lang(exc.message, cli_lang()) or "")
    if current == head:
        return Check("schema current", True, tr("at {head} (head)", head=head))
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(store_db.alembic_config(engine))
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        return Check(
            "schema current",
            False,
            tr("at {current}, which this qunyun does not know (head {head})", current=current, head=head),
            [_hint("the database was migrated by a newer qunyun; upgrade qunyun")],
        )
    return Check(
        "schema current",
        False,
        tr("at {current}, head is {head}", current=current, head=head)
        if current
        else tr("at nothing (empty database), head is {head}", head=head),
        [_hint("run `qunyun migrate --db {url}`", url=redact(url))],
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
        notes = [tr("unknown time zone {zone!r}", zone=zone) for zone in bad]
        notes.append(_hint("use IANA names like Asia/Shanghai; if those fail too, `pip install tzdata`"))
        return Check("time zones", False, tr("{zones} not found", zones=", ".join(bad)), notes)
    shown = ", ".join(good)
    return Check("time zones", True, tr("{zones} (default)", zones=shown) if default else shown)


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
        return [Check("adapters", False, _problems(len(exc.problems)), notes)]
    checks: list[Check] = []
    clock = SystemClock()
    for option in options:
        try:
            adapter = _adapter(option, settings, clock)
        except (ValueError, QunyunError) as exc:
            name = tr("{platform} adapter", platform=option.platform)
            checks.append(Check(name, False, tr("cannot be set up: {error}", error=exc)))
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

    name = tr("{platform} adapter", platform=adapter.platform)

    async def refuse(event: Any) -> bool:
        return False

    tmp: tempfile.TemporaryDirectory[str] | None = None
    started = False
    try:
        if isinstance(adapter, OneBotAdapter):
            try:
                await adapter.start(refuse)
            except OSError as exc:
                return [Check(name, False, tr("cannot listen: {error}", error=exc), [
                    _hint("if `qunyun run` is running, it holds the port: stop it for the check, or read its log"),
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
                error = f"{type(exc).__name__}: {exc}"
                return [Check(name, False, tr("cannot connect: {error}", error=error))]
        try:
            found = await asyncio.wait_for(adapter.check(), ADAPTER_CHECK_SECONDS)
        except TimeoutError:
            return [Check(name, False, tr("no answer within {s:g} s", s=ADAPTER_CHECK_SECONDS))]
        except Exception as exc:  # an adapter's bug must not hide the other checks
            error = f"{type(exc).__name__}: {exc}"
            return [Check(name, False, tr("the check failed: {error}", error=error))]
        # the adapters write Msg texts (English, with their zh-CN in core/locales/errors_adapters.yaml)
        lang = cli_lang()
        return [Check(in_lang(c.name, lang) or "", c.ok, in_lang(c.detail, lang) or "", [in_lang(n, lang) or "" for n in c.notes])
                for c in found]
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
        names = ("、" if cli_lang() == "zh-CN" else ", ").join(tr(name) for name in failed)
        console.print(f"[red]✗ {escape(tr(message, n=len(failed), names=names))}[/]")
        raise typer.Exit(1)
    console.print(f"[green]✓ {tr('all checks passed')}[/]")
