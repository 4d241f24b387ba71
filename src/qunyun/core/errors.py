"""The one exception hierarchy of qunyun.

::

    QunyunError
    ├── ConfigError            a configuration file is wrong (file, line, key)
    ├── EventError             an event failed validation at the edge (line, field, event id)
    ├── StoreError             the database is unreachable or not migrated
    ├── PlaybookError          a playbook is misdeclared or misused its context
    ├── CommandError           an operator's command was refused (unknown member, bad argument…)
    └── ClockError             time went backwards or a schedule is invalid

Errors a user sees say what went wrong, where, and what to do. Never raise
these for control flow.
"""

from __future__ import annotations


class QunyunError(Exception):
    """Root of every error qunyun raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(QunyunError):
    """A configuration file is invalid. ``problems`` lists each (where, what)."""

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = problems
        text = "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text, hint=hint)


class EventError(QunyunError):
    """An incoming event is malformed. ``where`` names the line/field/event id."""

    def __init__(self, message: str, *, where: str = "", event_id: str | None = None) -> None:
        self.where = where
        self.event_id = event_id
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + message)


class StoreError(QunyunError):
    """The database cannot be used as it is."""


class PlaybookError(QunyunError):
    """A playbook is declared wrongly or used its context wrongly."""


class CommandError(QunyunError):
    """An operator's command (CLI, API, admin chat) cannot be carried out.

    Nothing the command did is kept. The message is shown to the operator as is.
    """


class ClockError(QunyunError):
    """Time or a schedule is invalid."""
