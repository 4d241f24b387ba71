"""Opening the database and keeping its schema current.

SQLite (WAL) is the embedded default, at ``$QUNYUN_HOME/qunyun.db`` (or
``$XDG_DATA_HOME/qunyun/qunyun.db``, or ``~/.local/share/qunyun/qunyun.db``).
PostgreSQL is reached by URL (``postgresql+psycopg://…``). Migrations are
Alembic's, shipped inside the package and applied by ``qunyun migrate``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from qunyun.core.errors import Msg, StoreError

MIGRATIONS = str(Path(__file__).with_name("migrations"))


def default_database_path() -> Path:
    home = os.environ.get("QUNYUN_HOME")
    if home:
        return Path(home) / "qunyun.db"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "qunyun" / "qunyun.db"


def resolve_url(url: str | None) -> str:
    """The URL to use: the one given, ``$QUNYUN_DATABASE_URL``, or the default file."""
    url = url or os.environ.get("QUNYUN_DATABASE_URL")
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url
    return f"sqlite:///{default_database_path()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a process crash; only an OS crash may lose
    # the last transactions, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")
    # Checkpoint the WAL every ~40 MB instead of every 4 MB: fewer fsync stalls.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def open_engine(url: str | None = None, *, echo: bool = False, deferred: bool = False) -> Engine:
    """Create an SQLAlchemy engine for ``url`` with our pragmas and settings.

    On SQLite every transaction takes the write lock at its start (``BEGIN
    IMMEDIATE``): the engine's read-then-write transactions never fail half
    way on a lock upgrade. ``deferred=True`` is for readers (the console's
    pages): a plain ``BEGIN`` that reads a WAL snapshot without blocking the
    engine's writes, taking the write lock only if it writes.
    """
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except ArgumentError:
        raise StoreError(
            Msg("not a database URL: {url!r}", url=resolved),
            hint=Msg("use sqlite:///path/to/qunyun.db or postgresql+psycopg://user@host/db"),
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(resolved, echo=echo, poolclass=NullPool if not database or database == ":memory:" else None)
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy, not pysqlite, manage transactions (so SAVEPOINT works).
        event.listen(engine, "connect", _sqlite_autocommit_off)
        event.listen(engine, "begin", _sqlite_begin_deferred if deferred else _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(resolved, echo=echo, pool_pre_ping=True)
    raise StoreError(
        Msg("unsupported database {backend!r}", backend=parsed.get_backend_name()),
        hint=Msg("qunyun runs on SQLite (embedded) and PostgreSQL"),
    )


def _sqlite_autocommit_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(Msg("cannot migrate {url!r}: {error}", url=engine.url, error=exc.orig)) from None


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """(current revision in the database, newest revision shipped)."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    head = script.get_current_head() or ""
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(
            Msg("cannot open database {url!r}: {error}", url=engine.url, error=exc.orig),
            hint=Msg("check the URL, that the server is running, and that you may connect"),
        ) from None
    return current, head


def require_current(engine: Engine) -> None:
    current, head = schema_status(engine)
    if current != head:
        raise StoreError(
            Msg("database schema is at {current}, qunyun needs {head}", current=current or Msg("nothing (never migrated)"), head=head),
            hint=Msg("run `qunyun migrate` (with the same --db)"),
        )
