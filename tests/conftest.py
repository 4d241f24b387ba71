"""Shared fixtures.

Every test that takes ``db_url`` (or ``make_chat``) runs twice: on SQLite and
on PostgreSQL. PostgreSQL comes from ``QUNYUN_TEST_DATABASE_URL``; each test
gets a schema of its own. Without that variable the PostgreSQL half is
skipped locally — but under CI (``CI=true``) a missing database is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qunyun.testing import Chat

PG_URL = os.environ.get("QUNYUN_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_url_for_schema(base: str, schema: str) -> str:
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    query = dict(url.query)
    query["options"] = f"-csearch_path={schema}"
    return url.set(query=query).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qunyun.db'}"
        return
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but QUNYUN_TEST_DATABASE_URL is not set: PostgreSQL tests cannot run")
        pytest.skip("set QUNYUN_TEST_DATABASE_URL to run the PostgreSQL half")
    schema = "t_" + uuid.uuid4().hex[:12]
    base = make_url(PG_URL)
    if base.drivername in ("postgresql", "postgres"):
        base = base.set(drivername="postgresql+psycopg")
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - environment problem
        admin.dispose()
        pytest.fail(f"cannot reach PostgreSQL at {PG_URL}: {exc}")
    try:
        yield _pg_url_for_schema(PG_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def make_chat(db_url: str) -> Iterator[Callable[..., Chat]]:
    """``make_chat(playbooks_config, **options)`` → a :class:`Chat` on this test's database."""
    chats: list[Chat] = []

    def factory(config: Any = None, **kwargs: Any) -> Chat:
        chat = Chat(config, db_url=db_url, **kwargs)
        chats.append(chat)
        return chat

    yield factory
    for chat in chats:
        chat.close()


@pytest.fixture(autouse=True)
def _cli_in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI output is asserted in English unless a test asks otherwise (QUNYUN_LANG)."""
    monkeypatch.setenv("QUNYUN_LANG", "en")
