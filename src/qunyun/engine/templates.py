"""Message templates: the words the bot says, in the community's language.

A template is plain text with ``{name}`` placeholders. Playbooks ship zh-CN
and en defaults; operators override any of them in the config. We do not use
``str.format`` (it allows attribute access and format specs): a placeholder
is a name, and an unknown name is left as written so a typo shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: Mapping[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name in values:
            return str(values[name])
        return token

    return _PLACEHOLDER.sub(sub, template)


def pick(
    defaults: Mapping[str, Mapping[str, str]],
    overrides: Mapping[str, Mapping[str, str]],
    playbook: str,
    name: str,
    locale: str,
) -> str:
    """The template text for ``playbook.name`` in ``locale``: operator's first."""
    key = f"{playbook}.{name}"
    chosen = overrides.get(key)
    if chosen and locale in chosen:
        return chosen[locale]
    default = defaults.get(name)
    if default is None:
        raise KeyError(f"playbook {playbook!r} has no template {name!r}")
    return default.get(locale) or default.get("en") or next(iter(default.values()))
