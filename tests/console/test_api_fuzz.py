"""Fuzz the REST API against its own OpenAPI document (schemathesis).

Every operation is called with generated parameters and bodies, signed in as
an admin with read and write scopes, on a community of its own (the fuzz may
erase members or approve batches). No answer may be a server error; every
error has the one shape; every answer matches the documented schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from qunyun.console.accounts import Accounts
from qunyun.store.db import open_engine
from tests.console.conftest import Site, build_site


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def fuzz_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              _pg_schemas: list[str]) -> tuple[Site, str]:
    site = build_site(request.param, tmp_path_factory.mktemp(f"fuzz-{request.param}"), _pg_schemas,
                      members=60, days=14)
    engine = open_engine(site.db_url)
    token = Accounts(engine, site.clock).create_token("adam", "fuzz", ["read", "write"])
    engine.dispose()
    return site, token


@pytest.fixture(scope="session")
def api_schema(fuzz_site: tuple[Site, str]) -> Any:
    site, _token = fuzz_site
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", site.app())


CALLS: list[int] = []


def _check(case: Any, token: str) -> None:
    if "community" in (case.path_parameters or {}) and hash(str(case.path_parameters)) % 4:
        # mostly the real community, so that the routes' own code runs, not only the 404
        case.path_parameters["community"] = "demo"
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    CALLS.append(response.status_code)
    where = f"{case.method} {case.formatted_path} {case.query or ''}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"ok", "error", "code"} and body["ok"] is False, (where, body)
    else:
        assert body.get("ok") is True, (where, body)
        case.validate_response(response)


def test_no_operation_fails(api_schema: Any, fuzz_site: tuple[Site, str]) -> None:
    """Each operation, 20 generated calls (derandomised: the same calls every run)."""
    _site, token = fuzz_site
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            _check(case, token)

        run()
    # the fuzz really called the API, and reached the routes' own code
    assert len(CALLS) >= 20 and 200 in CALLS, CALLS[:50]


def test_the_fuzz_covers_every_operation(api_schema: Any) -> None:
    operations = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert ("GET", "/communities/{community}") in {(m, p.removeprefix("/api/v1")) for m, p in operations}
    assert len(operations) >= 3

