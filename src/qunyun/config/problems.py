"""Configuration problems in zh-CN and en.

Every problem qunyun writes about a configuration file is a
:class:`~qunyun.core.errors.Msg` whose location stays a value
(``Msg("{where}: community id {community!r} is used twice", where="qunyun.yaml:3", ...)``),
so :meth:`ConfigError.localized <qunyun.core.errors.ConfigError.localized>` gives it
in zh-CN from ``core/locales/errors_config.yaml``.

pydantic's own messages are pydantic's English. :class:`PydanticMsg` keeps that
text as it is and renders zh-CN from the catalogue's ``pydantic:<type>`` entries,
by the error's type and context (:data:`PYDANTIC_TYPES`). A type not listed
there stays English; so do the details pydantic and other libraries quote
(a date parser's reason, a validator's English ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from qunyun.config.loader import Located, suggest
from qunyun.core.errors import Msg, catalog

#: how the catalogue names pydantic's error types
PYDANTIC_KEY = "pydantic:"

#: pydantic error type → the context values its zh-CN text uses (catalogue key ``pydantic:<type>``).
#: ``missing`` and ``extra_forbidden`` are not here: :func:`pydantic_problems` says them in its own words.
PYDANTIC_TYPES: dict[str, tuple[str, ...]] = {
    "string_type": (),
    "string_too_short": ("min_length",),
    "string_too_long": ("max_length",),
    "string_pattern_mismatch": ("pattern",),
    "int_type": (),
    "int_parsing": (),
    "int_from_float": (),
    "float_type": (),
    "float_parsing": (),
    "finite_number": (),
    "bool_type": (),
    "bool_parsing": (),
    "greater_than": ("gt",),
    "greater_than_equal": ("ge",),
    "less_than": ("lt",),
    "less_than_equal": ("le",),
    "multiple_of": ("multiple_of",),
    "literal_error": ("expected",),
    "enum": ("expected",),
    "too_short": ("field_type", "min_length", "actual_length"),
    "too_long": ("field_type", "max_length", "actual_length"),
    "list_type": (),
    "dict_type": (),
    "model_type": (),
    "model_attributes_type": (),
    "none_required": (),
    "value_error": ("error",),
    "assertion_error": ("error",),
    "date_type": (),
    "date_from_datetime_parsing": ("error",),
    "date_from_datetime_inexact": (),
    "datetime_type": (),
    "datetime_from_date_parsing": ("error",),
    "time_type": (),
    "time_parsing": ("error",),
}

#: pydantic's ``field_type`` in too_short / too_long
_FIELD_TYPES = {"List": "列表", "Dictionary": "映射", "Set": "集合", "Tuple": "元组"}


class PydanticMsg(Msg):
    """One pydantic validation error's message: pydantic's English, zh-CN by its type and context."""

    kind: str

    def __new__(cls, text: str, kind: str, ctx: dict[str, Any] | None = None) -> PydanticMsg:
        made = str.__new__(cls, text)
        made.template = text
        made.values = dict(ctx or {})
        made.kind = kind
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return (PydanticMsg, (str(self), self.kind, self.values))

    def in_lang(self, lang: str | None) -> str:
        zh = catalog().get(PYDANTIC_KEY + self.kind) if lang == "zh-CN" else None
        needed = PYDANTIC_TYPES.get(self.kind)
        # a type we do not know, or a context another pydantic version shaped differently: its English
        if zh is None or needed is None or any(name not in self.values for name in needed):
            return str(self)
        return zh.format(**{name: _zh_value(name, self.values[name]) for name in needed})


def _zh_value(name: str, value: Any) -> Any:
    if name == "error":
        # our own validators raise ValueError(Msg(...)); anyone else's text stays as written
        said = value.args[0] if isinstance(value, BaseException) and len(value.args) == 1 else value
        return said.in_lang("zh-CN") if isinstance(said, Msg) else str(value)
    if name == "expected" and isinstance(value, str):
        # "'a', 'b' or 'c'": the values are the config's own words, only the last joint is English
        head, joint, last = value.rpartition(" or ")
        return f"{head} 或 {last}" if joint else value
    if name == "field_type":
        return _FIELD_TYPES.get(str(value), value)
    return value


def pydantic_problems(
    exc: ValidationError, located: Located, prefix: tuple[str | int, ...], fields: Sequence[str]
) -> list[str]:
    """Each error of ``exc`` as ``file:line: dotted.key: what`` (``fields``: the keys to suggest from)."""
    problems: list[str] = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        what: str
        if error["type"] == "extra_forbidden":
            what = Msg("unknown key{suggestion}", suggestion=suggest(str(error["loc"][-1]), fields))
        elif error["type"] == "missing":
            what = Msg("required key is missing")
        else:
            what = PydanticMsg(error["msg"], error["type"], error.get("ctx"))
        problems.append(Msg("{where}: {key}: {problem}", where=located.where(loc),
                            key=".".join(str(p) for p in loc), problem=what))
    return problems
