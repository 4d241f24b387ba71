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

from qunyun.core.errors import ConfigError

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
                    [f"{source}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported"],
                    hint="write the keys out in full",
                )
            sub = (*path, str(key))
            lines[sub] = key_node.start_mark.line + 1
            if str(key) in out:
                raise ConfigError(
                    [f"{source}:{key_node.start_mark.line + 1}: key {key!r} appears twice"],
                    hint="remove one of the two entries",
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
        raise ConfigError(
            [f"{source}{line}: not valid YAML: {exc.problem}"],
            hint="check indentation and quoting around that line",
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
            [f"{p}: file not found"], hint="create one with `qunyun init`"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return load_yaml(text, str(p))


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
