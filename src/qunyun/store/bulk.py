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
        low: Sequence[str] = (),
        high: Sequence[str] = (),
    ) -> str:
        """INSERT … ON CONFLICT (keys) DO UPDATE: ``add`` columns are incremented, ``replace`` overwritten.

        ``low`` / ``high`` columns keep the smaller / larger of the stored and the new value
        (NULL counts as no value).
        """
        ck = ("u", table.name, tuple(columns), tuple(keys), tuple(add), tuple(replace), tuple(low), tuple(high))
        sql = self._cache.get(ck)
        if sql is None:
            t = table.name
            sets = [f"{c} = {t}.{c} + excluded.{c}" for c in add]
            sets += [f"{c} = excluded.{c}" for c in replace]
            for cols, op in ((low, "<"), (high, ">")):
                sets += [
                    f"{c} = CASE WHEN excluded.{c} IS NOT NULL AND ({t}.{c} IS NULL OR excluded.{c} {op} {t}.{c}) "
                    f"THEN excluded.{c} ELSE {t}.{c} END"
                    for c in cols
                ]
            sql = (
                self.insert_sql(table, columns)
                + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"
            )
            self._cache[ck] = sql
        return sql

    def run(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run ``sql`` once per row (``executemany``)."""
        if rows:
            conn.exec_driver_sql(sql, list(rows))

    #: PostgreSQL allows 65,535 bind parameters per statement.
    MAX_PARAMS = 60_000

    def insert(self, conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows: ``executemany`` on SQLite, multi-row VALUES on PostgreSQL."""
        if not rows:
            return
        if self.sqlite:
            conn.exec_driver_sql(self.insert_sql(table, columns), list(rows))
            return
        self._multi(conn, ("i", table.name, tuple(columns)), self.insert_sql(table, columns), "", rows)

    def upsert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        add: Sequence[str] = (),
        replace: Sequence[str] = (),
        low: Sequence[str] = (),
        high: Sequence[str] = (),
    ) -> None:
        """Insert or update rows; ``rows`` must not repeat a key (PostgreSQL refuses that)."""
        if not rows:
            return
        sql = self.upsert_sql(table, columns, keys, add=add, replace=replace, low=low, high=high)
        if self.sqlite:
            conn.exec_driver_sql(sql, list(rows))
            return
        head, _, tail = sql.partition(" ON CONFLICT ")
        self._multi(conn, ("u", sql), head, " ON CONFLICT " + tail, rows)

    def update_by_id(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        add: bool = False,
    ) -> None:
        """``UPDATE table SET col = value (or col + value) WHERE id = …`` for each row.

        Rows are ``(*values, id)``. PostgreSQL gets one ``UPDATE … FROM (VALUES …)``
        per chunk instead of a statement per row.
        """
        if not rows:
            return
        name = table.name
        if self.sqlite:
            sets = ", ".join(f"{c} = {c} + ?" if add else f"{c} = ?" for c in columns)
            conn.exec_driver_sql(f"UPDATE {name} SET {sets} WHERE id = ?", list(rows))
            return
        sets = ", ".join(f"{c} = t.{c} + v.{c}" if add else f"{c} = v.{c}" for c in columns)
        # typed first row so PostgreSQL knows the VALUES columns' types
        casts = [f"%s::{table.c[c].type.compile(dialect=conn.dialect)}" for c in (*columns, "id")]
        width = len(columns) + 1
        per = max(1, min(1000, self.MAX_PARAMS // width))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            ck = ("upd", name, tuple(columns), add, len(chunk))
            sql = self._cache.get(ck)
            if sql is None:
                first = "(" + ", ".join(casts) + ")"
                rest = "(" + ", ".join(["%s"] * width) + ")"
                values = ", ".join([first] + [rest] * (len(chunk) - 1))
                sql = (
                    f"UPDATE {name} AS t SET {sets} FROM (VALUES {values}) "
                    f"AS v({', '.join((*columns, 'id'))}) WHERE t.id = v.id"
                )
                self._cache[ck] = sql
            conn.exec_driver_sql(sql, tuple(value for row in chunk for value in row))

    def _multi(
        self, conn: Connection, key: tuple[Any, ...], single: str, tail: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        width = len(rows[0])
        per = max(1, min(1000, self.MAX_PARAMS // width))
        prefix = single[: single.rindex(" VALUES ")] + " VALUES "
        one = "(" + ", ".join(["%s"] * width) + ")"
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            ck = (*key, len(chunk))
            sql = self._cache.get(ck)
            if sql is None:
                sql = prefix + ", ".join([one] * len(chunk)) + tail
                self._cache[ck] = sql
            params = tuple(value for row in chunk for value in row)
            conn.exec_driver_sql(sql, params)
