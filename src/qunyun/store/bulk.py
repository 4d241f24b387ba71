"""Bulk writes for the engine's hot path, straight through the DBAPI.

The engine writes several rows per event (event, message, rollup, state,
actions). Through SQLAlchemy Core each row's parameters are processed in
Python (~5-10 µs a row); here rows arrive as tuples already in the
database's own representation and go to ``cursor.executemany`` as they are.
This is the one place we bypass SQLAlchemy, for speed (docs/decisions.md);
the statements are generated from the same table metadata, so the schema
still has a single source.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Table


class Bulk:
    """Dialect-aware statement text and value conversion for bulk writes."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        self._mark = "?" if self.sqlite else "%s"
        self._cache: dict[tuple[Any, ...], str] = {}

    # -- values ------------------------------------------------------------

    def ts(self, value: datetime) -> Any:
        """An aware datetime as this database stores it (UTC)."""
        if self.sqlite:
            # the format SQLAlchemy's SQLite DateTime writes and reads back
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def day(self, value: date) -> Any:
        return value.isoformat() if self.sqlite else value

    @staticmethod
    def json(value: Any) -> str:
        return orjson.dumps(value).decode()

    # -- statements --------------------------------------------------------

    def insert_sql(self, table: Table, columns: Sequence[str]) -> str:
        key = ("i", table.name, tuple(columns))
        sql = self._cache.get(key)
        if sql is None:
            cols = ", ".join(columns)
            marks = ", ".join(self._mark for _ in columns)
            sql = f"INSERT INTO {table.name} ({cols}) VALUES ({marks})"
            self._cache[key] = sql
        return sql

    def upsert_sql(
        self,
        table: Table,
        columns: Sequence[str],
        keys: Sequence[str],
        *,
        add: Sequence[str] = (),
        replace: Sequence[str] = (),
    ) -> str:
        """INSERT … ON CONFLICT (keys) DO UPDATE: ``add`` columns are incremented, ``replace`` overwritten."""
        ck = ("u", table.name, tuple(columns), tuple(keys), tuple(add), tuple(replace))
        sql = self._cache.get(ck)
        if sql is None:
            sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in add]
            sets += [f"{c} = excluded.{c}" for c in replace]
            sql = (
                self.insert_sql(table, columns)
                + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"
            )
            self._cache[ck] = sql
        return sql

    def run(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            conn.exec_driver_sql(sql, list(rows))
