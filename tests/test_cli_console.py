"""`qunyun console user …` and `qunyun console token create`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app
from qunyun.console.accounts import Accounts
from qunyun.core.clock import SystemClock
from qunyun.core.errors import QunyunError
from qunyun.store.db import migrate, open_engine

runner = CliRunner()


def run(*args: str, code: int = 0, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """The command's output; with ``code=2`` the refusal's message (``qunyun`` prints it and exits 2)."""
    result = runner.invoke(app, list(args), input=input, env=env)
    if code == 2:
        assert isinstance(result.exception, QunyunError), result.output + repr(result.exception)
        return str(result.exception)
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def db(db_url: str) -> str:
    engine = open_engine(db_url)
    migrate(engine)
    engine.dispose()
    return db_url


def test_users_roles_passwords_and_tokens(db: str) -> None:
    env = {"ADMIN_PW": "a long enough secret", "NEW_PW": "another long secret"}
    out = run("console", "user", "add", "alice", "--community", "reading", "--role", "owner",
              "--password-env", "ADMIN_PW", "--db", db, env=env)
    assert "user alice created" in out and "alice is now owner of reading" in out
    run("console", "user", "add", "bob", "--password-env", "ADMIN_PW", "--db", db, env=env)
    run("console", "user", "grant", "bob", "--community", "reading", "--role", "viewer", "--db", db)
    listing = run("console", "user", "list", "--db", db)
    assert "alice" in listing and "reading:owner" in listing and "reading:viewer" in listing

    engine = open_engine(db)
    accounts = Accounts(engine, SystemClock())
    assert accounts.authenticate("alice", "a long enough secret")[1] == "ok"
    run("console", "user", "passwd", "alice", "--password-env", "NEW_PW", "--db", db, env=env)
    assert accounts.authenticate("alice", "a long enough secret")[1] == "invalid"
    assert accounts.authenticate("alice", "another long secret")[1] == "ok"

    run("console", "user", "revoke", "bob", "--community", "reading", "--db", db)
    assert accounts.load(accounts.user_id("bob")).roles == {}  # type: ignore[union-attr]

    out = run("console", "token", "create", "alice", "--name", "ci", "--scope", "read", "--db", db)
    token = out.strip().splitlines()[-1]
    user = accounts.token_user(token)
    assert user is not None and user.username == "alice" and user.scopes == ("read",)
    engine.dispose()


def test_the_password_is_asked_twice_when_no_variable_is_given(db: str) -> None:
    run("console", "user", "add", "carol", "--db", db, input="a long enough secret\na long enough secret\n")
    engine = open_engine(db)
    assert Accounts(engine, SystemClock()).authenticate("carol", "a long enough secret")[1] == "ok"
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["user", "add", "dave", "--password-env", "PW"], {"PW": "short"}, "too short"),
        (["user", "add", "bad name!", "--password-env", "PW"], {"PW": "long enough pw"}, "invalid username"),
        (["user", "add", "erin", "--password-env", "MISSING"], {}, "MISSING is empty or not set"),
        (["user", "grant", "nobody", "--community", "c", "--role", "owner"], {}, "no console user 'nobody'"),
        (["token", "create", "nobody", "--name", "x", "--scope", "read"], {}, "no console user 'nobody'"),
    ],
)
def test_refusals_say_why(db: str, args: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING", raising=False)
    out = run("console", *args, "--db", db, code=2, env=env)
    assert message in out


def test_unknown_role_and_scope(db: str) -> None:
    run("console", "user", "add", "frank", "--password-env", "PW", "--db", db, env={"PW": "long enough pw"})
    assert "unknown role 'boss'" in run("console", "user", "grant", "frank", "--community", "c", "--role", "boss",
                                        "--db", db, code=2)
    assert "unknown scopes ['admin']" in run("console", "token", "create", "frank", "--name", "x", "--scope", "admin",
                                             "--db", db, code=2)


def test_serving_needs_a_configuration() -> None:
    assert "needs --config" in run("console", code=2)
