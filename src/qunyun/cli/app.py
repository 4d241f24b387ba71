"""The ``qunyun`` command-line application (typer)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="qunyun",
    help=(
        "qunyun (群运) — community operations engine for group chats.\n\n"
        "Start with `qunyun demo` to see a simulated community run, or `qunyun init` "
        "to write a starter configuration for your own."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
