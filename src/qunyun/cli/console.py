"""``qunyun console``: serve the operator's console (web app and REST API), and manage its users.

    qunyun console --config qunyun.yaml                       # http://127.0.0.1:8040
    qunyun console user add alice --community reading --role owner
    qunyun console user grant bob --community reading --role viewer
    qunyun console token create alice --name ci --scope read

Passwords are read from a prompt, or from the environment variable named by
``--password-env`` (for scripts); never from the command line, where other
users of the machine could read them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qunyun.cli.admin import database_url, open_existing
from qunyun.cli.app import app
from qunyun.cli.common import DbOpt
from qunyun.cli.i18n import cli_lang, tr
from qunyun.console.accounts import ROLES, SCOPES, Accounts
from qunyun.core.clock import SystemClock
from qunyun.core.errors import CommandError, Msg

console_app = typer.Typer(
    help="The operator's console: a web app and REST API for running the community.",
    no_args_is_help=False,
    invoke_without_command=True,
)
user_app = typer.Typer(help="Console users and their roles (owner, admin, viewer) per community.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (Authorization: Bearer …) for integrations.", no_args_is_help=True)
console_app.add_typer(user_app, name="user")
console_app.add_typer(token_app, name="token")
app.add_typer(console_app, name="console")

DEFAULT_PORT = 8040
_ZH = {
    "Console for {config} at {url}": "控制台（{config}）：{url}",
    "Press Ctrl+C to stop.": "按 Ctrl+C 停止。",
    "user {name} created": "已创建用户 {name}",
    "{name} is now {role} of {community}": "{name} 现在是 {community} 的{role}",
    "{name} has no role in {community} any more": "{name} 不再拥有 {community} 的角色",
    "password of {name} changed; their sessions ended": "已修改 {name} 的密码，其登录会话已结束",
    "Token for {name} (shown once, keep it secret):": "{name} 的令牌（仅显示一次，请妥善保管）：",
    "user": "用户",
    "name": "名称",
    "roles": "角色",
    "locked": "已锁定",
    "Console users": "控制台用户",
}


def _t(text: str, **values: object) -> str:
    if cli_lang() == "zh-CN":
        text = _ZH.get(text, text)
    return text.format(**values) if values else text


def _accounts(config: Path | None, db: str | None) -> Accounts:
    engine = open_existing(database_url(db, config))
    return Accounts(engine, SystemClock())


def _password(env: str | None, *, confirm: bool = True) -> str:
    if env:
        given = os.environ.get(env)
        if not given:
            raise CommandError(Msg("environment variable {env} is empty or not set", env=env),
                               hint=Msg("export it, or omit --password-env to be prompted"))
        return given
    typed: str = typer.prompt(tr("Password"), hide_input=True, confirmation_prompt=confirm)
    return typed


PasswordEnvOpt = Annotated[
    str | None, typer.Option("--password-env", help="Read the password from this environment variable instead of a prompt.")
]
ConfigOptional = Annotated[Path | None, typer.Option("--config", "-c", help="The deployment configuration (for its database).")]


@console_app.callback()
def serve(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="The deployment configuration (qunyun.yaml).")] = None,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default; put a TLS proxy in front to expose it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies/--no-secure-cookies", help="Mark cookies Secure (when served over HTTPS).")
    ] = False,
) -> None:
    """Serve the console and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json).

    Example: qunyun console --config qunyun.yaml --port 8040
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise CommandError(Msg("qunyun console needs --config (the deployment configuration)"),
                           hint=Msg("e.g. qunyun console --config qunyun.yaml"))
    serve_console(config, db, host=host, port=port, secure_cookies=secure_cookies)


def serve_console(config: Path, db: str | None, *, host: str, port: int, secure_cookies: bool = False,
                  announce: bool = True) -> None:
    from datetime import timedelta

    import uvicorn

    from qunyun.console.app import create_app

    # dashboards may show numbers up to 5 minutes old while fresher ones are computed,
    # and are computed once at start, so that nobody waits for a full recomputation
    application = create_app(config, db, secure_cookies=secure_cookies, stale_for=timedelta(minutes=5), warm=True)
    if announce:  # `qunyun demo` says where and how to sign in itself, in the demo's language
        out = Console()
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        out.print(_t("Console for {config} at {url}", config=config, url=url), highlight=False)
        out.print(_t("Press Ctrl+C to stop."))
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Username (letters, digits, . _ @ -).")],
    community: Annotated[str | None, typer.Option(help="Grant a role in this community right away.")] = None,
    role: Annotated[str, typer.Option(help="Role: " + ", ".join(ROLES) + ".")] = "viewer",
    display_name: Annotated[str | None, typer.Option(help="Name shown in the console.")] = None,
    locale: Annotated[str | None, typer.Option(help="Console language for this user: zh-CN or en.")] = None,
    password_env: PasswordEnvOpt = None,
    config: ConfigOptional = None,
    db: DbOpt = None,
) -> None:
    """Create a console user (asks for the password)."""
    accounts = _accounts(config, db)
    accounts.create_user(name, _password(password_env), display_name=display_name, locale=locale)
    Console().print(_t("user {name} created", name=name), highlight=False)
    if community:
        accounts.grant(name, community, role)
        Console().print(_t("{name} is now {role} of {community}", name=name, role=role, community=community), highlight=False)


@user_app.command("grant")
def user_grant(
    name: str,
    community: Annotated[str, typer.Option(help="Community id.")],
    role: Annotated[str, typer.Option(help="Role: " + ", ".join(ROLES) + ".")],
    config: ConfigOptional = None,
    db: DbOpt = None,
) -> None:
    """Give a user a role in a community (replacing the one they had)."""
    _accounts(config, db).grant(name, community, role)
    Console().print(_t("{name} is now {role} of {community}", name=name, role=role, community=community), highlight=False)


@user_app.command("revoke")
def user_revoke(
    name: str,
    community: Annotated[str, typer.Option(help="Community id.")],
    config: ConfigOptional = None,
    db: DbOpt = None,
) -> None:
    """Take a user's role in a community away."""
    _accounts(config, db).revoke(name, community)
    Console().print(_t("{name} has no role in {community} any more", name=name, community=community), highlight=False)


@user_app.command("passwd")
def user_passwd(name: str, password_env: PasswordEnvOpt = None, config: ConfigOptional = None, db: DbOpt = None) -> None:
    """Set a user's password (ends their sessions and clears a lockout)."""
    _accounts(config, db).set_password(name, _password(password_env))
    Console().print(_t("password of {name} changed; their sessions ended", name=name), highlight=False)


@user_app.command("list")
def user_list(config: ConfigOptional = None, db: DbOpt = None) -> None:
    """List console users with their roles."""
    table = Table(title=_t("Console users"))
    for col in ("user", "name", "roles", "locked"):
        table.add_column(_t(col))
    for username, display, roles, locked in _accounts(config, db).users():
        table.add_row(username, display or "", ", ".join(f"{c}:{r}" for c, r in sorted(roles.items())), "✔" if locked else "")
    Console().print(table)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    token_name: Annotated[str, typer.Option("--name", help="What the token is for (shown in the console).")],
    scope: Annotated[list[str], typer.Option("--scope", help="Scopes: " + ", ".join(SCOPES) + " (repeat the option).")],
    config: ConfigOptional = None,
    db: DbOpt = None,
) -> None:
    """Create an API token for a user; it is printed once."""
    token = _accounts(config, db).create_token(name, token_name, scope)
    Console().print(_t("Token for {name} (shown once, keep it secret):", name=name), highlight=False)
    typer.echo(token)
