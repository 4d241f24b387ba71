"""Read YAML while remembering where every key stood.

pydantic tells us *which* key is wrong; this module tells the user *where*
it is (file and line), and suggests the key they probably meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from qunyun.core.errors import ConfigError, Msg

Loc = tuple[str | int, ...]


class Located:
    """A YAML document as plain data plus a map from key path to line number."""

    def __init__(self, data: Any, lines: dict[Loc, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line`` for the deepest known prefix of ``loc``."""
        path = tuple(loc)
        while path and path not in self.lines:
            path = path[:-1]
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], source: str = "<config>") -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(
                key_node, yaml.ScalarNode
            ) else key_node.value
            if key == "<<":
                raise ConfigError(
                    [Msg("{where}: YAML merge keys (<<) are not supported",
                         where=f"{source}:{key_node.start_mark.line + 1}")],
                    hint=Msg("write the keys out in full"),
                )
            sub = (*path, str(key))
            lines[sub] = key_node.start_mark.line + 1
            if str(key) in out:
                raise ConfigError(
                    [Msg("{where}: key {key!r} appears twice", where=f"{source}:{key_node.start_mark.line + 1}",
                         key=key)],
                    hint=Msg("remove one of the two entries"),
                )
            out[str(key)] = _walk(value_node, sub, lines, source)
            lines[sub] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, source) for i, item in enumerate(node.value)]
    # scalar: let the safe constructor type it
    return yaml.safe_load(yaml.serialize(node))


def load_yaml(text: str, source: str = "<config>") -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(  # PyYAML's own words stay English
            [Msg("{where}: not valid YAML: {problem}", where=f"{source}{line}", problem=exc.problem)],
            hint=Msg("check indentation and quoting around that line"),
        ) from None
    if node is None:
        return Located({}, {(): 1}, source)
    lines: dict[Loc, int] = {}
    data = _walk(node, (), lines, source)
    return Located(data, lines, source)


def load_file(path: str | Path) -> Located:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Msg("{where}: file not found", where=str(p))], hint=Msg("create one with `qunyun init`")
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Msg("{where}: not UTF-8 text ({reason} at byte {start})", where=str(p), reason=exc.reason, start=exc.start)]
        ) from None
    return load_yaml(text, str(p))


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` (a :class:`Msg`) or an empty string; give it to a message as a value."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return Msg(" (did you mean {match!r}?)", match=match[0]) if match else ""
