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
        from rich.markup import escape

        from qunyun.cli.i18n import cli_lang

        lang = cli_lang()
        label = "错误" if lang == "zh-CN" else "error"
        Console(stderr=True).print(f"[bold red]{label}:[/] {escape(exc.localized(lang))}", markup=True,
                                   highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
