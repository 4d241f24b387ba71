"""What the operator commands share: load the configuration, open the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qunyun.cli.admin import database_url, open_existing
from qunyun.config.model import CommunitySettings, Settings, load_settings
from qunyun.core.clock import Clock, SystemClock
from qunyun.core.errors import CommandError, Msg
from qunyun.engine.engine import Engine

# The options every operator command takes, declared once.
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The deployment configuration (qunyun.yaml).")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: the config's deployment.database or $QUNYUN_DATABASE_URL)."),
]
CommunityOpt = Annotated[
    str | None, typer.Option("--community", help="Community id (needed when the config has several).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]


def open_community_engine(
    config: Path, db: str | None, *, clock: Clock | None = None
) -> tuple[Settings, Engine]:
    """The configuration and an engine on its (existing, migrated) database.

    The database is ``--db``, else the config's ``deployment.database``, else
    ``$QUNYUN_DATABASE_URL``, else the default SQLite file.
    """
    settings = load_settings(str(config))
    url = database_url(db, config) if db else database_url(None, config)
    engine = Engine(open_existing(url), settings, clock=clock or SystemClock())
    return settings, engine


def run_command(
    config: Path,
    db: str | None,
    community: str | None,
    playbook: str,
    name: str,
    args: dict[str, Any],
    *,
    group: str | None = None,
) -> dict[str, Any]:
    """Give ``playbook`` the operator's command ``name`` (``Engine.command``) as ``cli``."""
    settings, engine = open_community_engine(config, db)
    try:
        chosen = pick_community(settings, community)
        return engine.command(chosen.id, playbook, name, args, actor="cli", group=group)
    finally:
        engine.db.dispose()


def pick_community(settings: Settings, community: str | None) -> CommunitySettings:
    """``community`` by id, or the only one; a clear error otherwise."""
    if community is None:
        if len(settings.communities) == 1:
            return next(iter(settings.communities.values()))
        raise CommandError(
            Msg("the configuration has several communities; say which one"),
            hint=Msg("add --community ID (one of: {communities})", communities=", ".join(sorted(settings.communities))),
        )
    found = settings.communities.get(community)
    if found is None:
        raise CommandError(
            Msg("unknown community {community!r}", community=community),
            hint=Msg("one of: {communities}", communities=", ".join(sorted(settings.communities))),
        )
    return found
