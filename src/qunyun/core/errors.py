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

What an operator reads is in zh-CN and en. A message written as
``Msg("member {member} is not in {group}", member=..., group=...)`` is an
English ``str`` that remembers its template and values, so
:meth:`QunyunError.localized` can give it in zh-CN from the catalogue in
``core/locales/*.yaml`` (English template → zh-CN template; a test checks
that every ``Msg`` raised in the code has its entry with the same
placeholders). A message without an entry stays English.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

LOCALES = Path(__file__).with_name("locales")


@cache
def catalog() -> dict[str, str]:
    """English template → zh-CN template, from every file in ``core/locales/``."""
    import yaml

    merged: dict[str, str] = {}
    for path in sorted(LOCALES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of English template to zh-CN template")
        for en, zh in data.items():
            if not isinstance(en, str) or not isinstance(zh, str) or not zh.strip():
                raise ValueError(f"{path}: entry {en!r} needs a non-empty zh-CN text")
            if merged.get(en, zh) != zh:
                raise ValueError(f"{path}: {en!r} is translated twice, differently")
            merged[en] = zh
    return merged


class Msg(str):
    """An English message that can be given again in another language.

    ``Msg(template, **values)`` equals ``template.format(**values)``; the
    template and values are kept for :meth:`in_lang`. Values that are
    themselves ``Msg`` are translated with it.
    """

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, /, **values: Any) -> Msg:
        made = super().__new__(cls, template.format(**values) if values else template)
        made.template = template
        made.values = values
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return (_msg, (self.template, self.values))

    def in_lang(self, lang: str | None) -> str:
        """This message in ``lang`` (``zh-CN`` or ``en``); English where the catalogue has no entry."""
        if lang != "zh-CN":
            return str(self)
        template = catalog().get(self.template, self.template)
        values = {k: v.in_lang(lang) if isinstance(v, Msg) else v for k, v in self.values.items()}
        return template.format(**values) if values else template


def _msg(template: str, values: dict[str, Any]) -> Msg:
    return Msg(template, **values)


def in_lang(text: str | None, lang: str | None) -> str | None:
    """``text`` in ``lang`` if it is a :class:`Msg`, else as it is."""
    return text.in_lang(lang) if isinstance(text, Msg) else text


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

    def localized(self, lang: str | None, *, with_hint: bool = True) -> str:
        """The message (and hint) in ``lang``: zh-CN where the catalogue has it, else English."""
        message = in_lang(self.message, lang) or ""
        if not (with_hint and self.hint):
            return message
        label = "提示" if lang == "zh-CN" else "hint"
        return f"{message}\n  {label}: {in_lang(self.hint, lang)}"


class ConfigError(QunyunError):
    """A configuration file is invalid. ``problems`` lists each (where, what).

    ``problems`` and ``str(exc)`` are English; a problem written as a :class:`Msg`
    (``Msg("{where}: ...", where="qunyun.yaml:12", ...)``) is given in another
    language by :meth:`problems_in` and :meth:`localized`.
    """

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = problems
        text = "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text, hint=hint)

    def problems_in(self, lang: str | None) -> list[str]:
        """Each problem in ``lang``: zh-CN where the catalogue has it, else English."""
        return [in_lang(p, lang) or "" for p in self.problems]

    def localized(self, lang: str | None, *, with_hint: bool = True) -> str:
        """The header, every problem and the hint in ``lang``."""
        header = Msg("invalid configuration:").in_lang(lang)
        text = header + "\n" + "\n".join(f"  - {p}" for p in self.problems_in(lang))
        # the hint (and its label) as every other error gives it
        return QunyunError(text, hint=self.hint).localized(lang, with_hint=with_hint)


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
