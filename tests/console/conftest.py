"""Fixtures for the console: a simulated community to look at, users, signed-in clients.

``demo_site`` runs the demo once per database (SQLite, then PostgreSQL) for
the whole session: read-only tests share it. ``fresh_site`` runs a smaller
demo for one test, for tests that change things (approve, award, erase,
save the configuration).

Users (password ``correct horse battery``):

- ``olivia`` owner of ``demo``;  ``adam`` admin of ``demo``;  ``vera`` viewer of ``demo``;
- ``otto`` owner of ``other`` (a second community with its own group and no role in ``demo``).
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qunyun.console.accounts import Accounts
from qunyun.console.app import create_app
from qunyun.core.clock import FakeClock
from qunyun.demo import run_demo
from qunyun.store.db import open_engine
from tests.conftest import IN_CI, PG_URL, _pg_url_for_schema

PASSWORD = "correct horse battery"
USERS = {"olivia": ("demo", "owner"), "adam": ("demo", "admin"), "vera": ("demo", "viewer"), "otto": ("other", "owner")}
OTHER = {
    "id": "other",
    "name": "Other community",
    "timezone": "Europe/Berlin",
    "locale": "en",
    "groups": [{"id": "o-main", "platform": "sim", "name": "Other main"}],
}


@dataclass
class Site:
    """A community in a database, its configuration, and the console's clock."""

    config: Path
    db_url: str
    clock: FakeClock
    backend: str

    def app(self) -> Any:
        return create_app(self.config, self.db_url, clock=self.clock)

    def client(self, username: str | None = None) -> TestClient:
        client = TestClient(self.app(), base_url="http://127.0.0.1")
        if username:
            login(client, username)
        return client


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    """Sign in through the form (with its double-submit CSRF cookie); return the response."""
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "the sign-in form has no CSRF field"
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)},
                       follow_redirects=False)


def sql(site: Site, query: str, **params: Any) -> list[Any]:
    """Plain SQL on the site's database, committed: the rows of a query, ``[rowcount]`` of a change."""
    engine = open_engine(site.db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(query), params)
            return list(result) if result.returns_rows else [result.rowcount]
    finally:
        engine.dispose()


def config_section(client: TestClient, community: str = "demo") -> str:
    """The text of the configuration editor's box for ``community``."""
    page = client.get(f"/c/{community}/config")
    found = re.search(r'<textarea[^>]*data-testid="config-text">(.*?)</textarea>', page.text, re.S)
    assert found, "no editor on the page"
    return html.unescape(found.group(1))


def config_problems(page: str) -> list[tuple[int | None, str]]:
    """(editor line, text) of each problem the configuration editor shows."""
    out = []
    for item in re.findall(r'<li data-testid="config-problem">(.*?)</li>', page, re.S):
        line = re.search(r"(?:editor line|编辑框第) (\d+)", item)
        code = re.search(r"<code>(.*?)</code>", item, re.S)
        assert code
        out.append((int(line.group(1)) if line else None, html.unescape(code.group(1))))
    return out


def csrf_of(client: TestClient, path: str = "/account") -> str:
    """The session's CSRF token, read from a page's <meta name="csrf-token">."""
    page = client.get(path)
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', page.text)
    assert found and found.group(1), f"no CSRF token on {path}"
    return found.group(1)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium per test module, closed at its end: Playwright's sync API allows one
    instance at a time in a process, and other tests' asyncio loops must not run inside it."""
    from tests.console.browser import launch

    with launch() as browser:
        yield browser


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made and PG_URL:
        admin = create_engine(_admin_url())
        for schema in made:  # one transaction each: dropping them all at once runs out of lock slots
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _admin_url() -> Any:
    base = make_url(PG_URL or "")
    if base.drivername in ("postgresql", "postgres"):
        base = base.set(drivername="postgresql+psycopg")
    return base


def _database(backend: str, where: Path, schemas: list[str]) -> str:
    if backend == "sqlite":
        return f"sqlite:///{where / 'console.db'}"
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but QUNYUN_TEST_DATABASE_URL is not set")
        pytest.skip("set QUNYUN_TEST_DATABASE_URL to run the PostgreSQL half")
    schema = "c_" + uuid.uuid4().hex[:12]
    admin = create_engine(_admin_url())
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    schemas.append(schema)
    return _pg_url_for_schema(PG_URL, schema)


def build_site(backend: str, where: Path, schemas: list[str], *, db_url: str | None = None, **demo: Any) -> Site:
    db_url = db_url or _database(backend, where, schemas)
    run = run_demo(out=where / "demo", db_url=db_url, **demo)
    config = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    config["communities"].append(OTHER)
    run.config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    clock = FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    engine = open_engine(db_url)
    accounts = Accounts(engine, clock)
    for name, (community, role) in USERS.items():
        accounts.create_user(name, PASSWORD, display_name=name.title())
        accounts.grant(name, community, role)
    engine.dispose()
    return Site(run.config_path, db_url, clock, backend)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def demo_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              _pg_schemas: list[str]) -> Site:
    """The demo community (seed 42, 150 members, 28 days), shared by read-only tests."""
    where = tmp_path_factory.mktemp(f"console-{request.param}")
    return build_site(request.param, where, _pg_schemas, members=150, days=28)


@pytest.fixture(scope="session")
def _fresh_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One small demo per database, run once; each ``fresh_site`` is a copy of it.

    SQLite: the file is copied. PostgreSQL: a database of its own made with
    ``CREATE DATABASE … TEMPLATE`` (a file-level copy, a fraction of a second
    where running the demo again takes seconds). Dropped at the end.
    """
    made: dict[str, Any] = {"databases": []}
    yield made
    if made["databases"] and PG_URL:
        admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in made["databases"]:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pg_database(name: str, template: str | None = None) -> str:
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return _admin_url().set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_site(request: pytest.FixtureRequest, tmp_path: Path, _fresh_templates: dict[str, Any]) -> Site:
    """A small demo community (80 members, 21 days) of this test's own, for tests that change things."""
    backend = request.param
    if backend == "postgresql" and not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but QUNYUN_TEST_DATABASE_URL is not set")
        pytest.skip("set QUNYUN_TEST_DATABASE_URL to run the PostgreSQL half")
    template = _fresh_templates.get(backend)
    if template is None:
        where = Path(tempfile.mkdtemp(prefix=f"qunyun-fresh-{backend}-", dir=tmp_path.parent))
        if backend == "sqlite":
            site = build_site(backend, where, [], members=80, days=21)
        else:
            name = "qy_tpl_" + uuid.uuid4().hex[:12]
            _fresh_templates["databases"].append(name)
            site = build_site(backend, where, [], members=80, days=21, db_url=_pg_database(name))
            template_name = name
        template = _fresh_templates[backend] = {"where": where, "site": site,
                                                "database": template_name if backend != "sqlite" else None}
    where: Path = template["where"]
    shutil.copytree(where / "demo", tmp_path / "demo")
    config = tmp_path / "demo" / template["site"].config.name
    # the configuration names its own directory (the digests' out_dir): point it at the copy
    config.write_text(config.read_text(encoding="utf-8").replace(str(where / "demo"), str(tmp_path / "demo")),
                      encoding="utf-8")
    if backend == "sqlite":
        shutil.copyfile(where / "console.db", tmp_path / "console.db")
        db_url = f"sqlite:///{tmp_path / 'console.db'}"
    else:
        name = "qy_" + uuid.uuid4().hex[:12]
        _fresh_templates["databases"].append(name)
        db_url = _pg_database(name, template["database"])
    return Site(config, db_url, FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC)), backend)
