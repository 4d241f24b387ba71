"""``qunyun`` command line. Each command lives in a module of its own."""

from __future__ import annotations

import sys

from qunyun.cli import (  # noqa: F401  (registers commands)
    admin,
    console,
    demo,
    digest,
    elimination,
    export,
    gate,
    imports,
    knowledge,
    ledger,
    link,
    members,
    replay,
    report,
    run,
    sessions,
)
from qunyun.cli.app import app
from qunyun.core.errors import QunyunError


def main() -> None:
    """Entry point of the ``qunyun`` console script."""
    try:
        app()
    except QunyunError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
