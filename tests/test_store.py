"""The store: migrations on both backends, schema status, column types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from qunyun.core.errors import StoreError
from qunyun.store import models as m
from qunyun.store.db import (
    alembic_config,
    default_database_path,
    migrate,
    open_engine,
    require_current,
    resolve_url,
    schema_status,
)
from qunyun.store.types import JSONText, UTCDateTime

TABLES = set(m.Base.metadata.tables)


def test_the_schema_has_the_tables_of_the_architecture() -> None:
    assert {
        "communities", "groups", "members", "memberships", "events", "messages", "actions",
        "jobs", "playbook_state", "records", "failures", "ledger_accounts",
        "ledger_transactions", "ledger_postings", "rollups",
    } <= TABLES


def test_migrations_apply_on_a_fresh_database(db_url: str) -> None:
    db = open_engine(db_url)
    current, head = schema_status(db)
    assert current is None
    assert head
    with pytest.raises(StoreError) as info:
        require_current(db)
    assert "qunyun migrate" in str(info.value)
    migrate(db)
    assert schema_status(db) == (head, head)
    require_current(db)
    names = set(inspect(db).get_table_names())
    assert names >= TABLES
    assert "alembic_version" in names
    db.dispose()


def test_migrating_twice_is_harmless(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    migrate(db)
    current, head = schema_status(db)
    assert current == head
    db.dispose()


def test_the_migrations_match_the_models(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    with db.connect() as conn:
        diffs = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), m.Base.metadata
        )
    assert diffs == [], "models changed without a migration: run alembic revision --autogenerate"
    db.dispose()


def test_migrations_go_down_and_up_again(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    command.downgrade(alembic_config(db), "base")
    assert schema_status(db)[0] is None
    assert not TABLES & set(inspect(db).get_table_names())
    migrate(db)
    current, head = schema_status(db)
    assert current == head
    db.dispose()


def test_a_database_that_cannot_be_reached_is_a_store_error() -> None:
    db = open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError) as info:
        schema_status(db)
    assert info.value.hint
    db.dispose()


@pytest.mark.parametrize("url", ["not a url at all", "mysql://u@h/db"])
def test_bad_urls_are_store_errors(url: str) -> None:
    with pytest.raises(StoreError):
        open_engine(url)


def test_resolve_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("QUNYUN_HOME", str(tmp_path))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'qunyun.db'}"
    assert default_database_path() == tmp_path / "qunyun.db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("QUNYUN_DATABASE_URL", "sqlite:///from-env.db")
    assert resolve_url(None) == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"


def test_default_path_without_qunyun_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUNYUN_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_database_path() == tmp_path / "qunyun" / "qunyun.db"


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = open_engine(f"sqlite:///{tmp_path / 'sub' / 'q.db'}")
    with db.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "sub").is_dir()  # the parent directory is created
    db.dispose()


def test_savepoints_work_on_sqlite(tmp_path: Path) -> None:
    db = open_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with db.connect() as conn:
        conn.begin()
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        nested = conn.begin_nested()
        conn.execute(text("INSERT INTO t VALUES (2)"))
        nested.rollback()
        conn.commit()
        assert [r[0] for r in conn.execute(text("SELECT x FROM t"))] == [1]
    db.dispose()


# --------------------------------------------------------------------------- column types


def _community(created_at: datetime) -> dict[str, object]:
    return {"id": "c", "name": "n", "timezone": "Asia/Shanghai", "locale": "zh-CN",
            "created_at": created_at}


def test_utc_datetime_round_trips_aware_datetimes(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    t = m.Community.__table__
    written = datetime(2026, 11, 2, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    with db.begin() as conn:
        conn.execute(insert(t).values(**_community(written)))
    with db.connect() as conn:
        read = conn.execute(select(t.c.created_at)).scalar_one()
    assert read == written
    assert read.tzinfo is not None
    assert read.utcoffset() == timedelta(0)
    assert read == datetime(2026, 11, 2, 15, 30, 15, 123456, tzinfo=UTC)
    # and comparisons in SQL happen in UTC
    with db.connect() as conn:
        n = conn.execute(
            select(t.c.id).where(t.c.created_at > datetime(2026, 11, 2, 15, 30, tzinfo=UTC))
        ).all()
    assert len(n) == 1
    db.dispose()


def test_utc_datetime_refuses_naive_datetimes(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    t = m.Community.__table__
    with pytest.raises(StatementError, match="naive datetime"), db.begin() as conn:
        conn.execute(insert(t).values(**_community(datetime(2026, 11, 2, 23, 30))))
    with db.connect() as conn:
        assert conn.execute(select(t.c.id)).all() == []
    db.dispose()


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_utc_datetime_bind_and_result(dialect: object) -> None:
    col = UTCDateTime()
    aware = datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    bound = col.process_bind_param(aware, dialect)  # type: ignore[arg-type]
    assert bound is not None
    assert bound.replace(tzinfo=None) == datetime(2026, 1, 1, 0, 0)
    assert col.process_bind_param(None, dialect) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        col.process_bind_param(datetime(2026, 1, 1), dialect)  # type: ignore[arg-type]
    back = col.process_result_value(datetime(2026, 1, 1, 0, 0), dialect)  # type: ignore[arg-type]
    assert back == datetime(2026, 1, 1, tzinfo=UTC)
    assert back is not None and back.tzinfo is not None


def test_json_text_round_trips(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    t = m.PlaybookState.__table__
    value = {"名字": "小王", "n": 2**62, "nested": [1, {"a": None, "b": True}], "f": 1.5,
             "rtl": "\u202e"}
    with db.begin() as conn:
        conn.execute(insert(t).values(community_id="c", playbook="p", key="m:u1", value=value,
                                      updated_at=datetime(2026, 1, 1, tzinfo=UTC)))
    with db.connect() as conn:
        assert conn.execute(select(t.c.value)).scalar_one() == value
    col = JSONText()
    assert col.process_bind_param(None, sqlite.dialect()) is None
    assert col.process_result_value(None, sqlite.dialect()) is None
    db.dispose()


def test_event_ids_are_unique_per_platform(db_url: str) -> None:
    db = open_engine(db_url)
    migrate(db)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(insert(m.Community.__table__).values(**_community(now)))
        gid = conn.execute(
            insert(m.Group.__table__)
            .values(community_id="c", platform="sim", key="g", created_at=now)
            .returning(m.Group.__table__.c.id)
        ).scalar_one()
    row = {"platform": "sim", "event_id": "evt-1", "group_id": gid, "type": "message", "ts": now,
           "actor": "u", "status": "handled", "payload": {}}
    with db.begin() as conn:
        conn.execute(insert(m.EventRow.__table__).values(**row))
        conn.execute(insert(m.EventRow.__table__).values(**{**row, "platform": "telegram"}))
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.begin() as conn:
        conn.execute(insert(m.EventRow.__table__).values(**row))
    db.dispose()
