"""The console's words in zh-CN and en.

Each area of the console keeps its labels in ``locales/<area>.yaml``::

    overview.title: {en: Overview, zh-CN: 概览}

Keys are unique across files (a duplicate is an error at load), and every
key has both languages (``tests/console/test_i18n.py`` checks). Values may
hold ``{name}`` placeholders filled by :func:`Labels.__call__`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LOCALES = Path(__file__).with_name("locales")


@cache
def catalog() -> dict[str, dict[str, str]]:
    """key → {lang: text}, from every file in ``locales/``."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(LOCALES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, texts in data.items():
            if key in merged:
                raise ValueError(f"{path.name}: label {key!r} is defined twice")
            if not isinstance(texts, dict):
                raise ValueError(f"{path.name}: label {key!r} needs en and zh-CN texts")
            merged[key] = {str(k): str(v) for k, v in texts.items()}
    return merged


def normalize(lang: str | None) -> str | None:
    """``zh``, ``zh_CN``, ``zh-cn`` → ``zh-CN``; ``en-US`` → ``en``; else None."""
    if not lang:
        return None
    low = lang.strip().lower().replace("_", "-")
    if low.startswith("zh"):
        return "zh-CN"
    if low.startswith("en"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    for part in (header or "").split(","):
        found = normalize(part.split(";")[0])
        if found:
            return found
    return None


class Labels:
    """``t("overview.title")`` in one language; a missing key shows the key itself."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG

    def known(self, key: Any) -> bool:
        """Whether ``key`` is a label (a message key from a URL is shown only then)."""
        return isinstance(key, str) and key in catalog()

    def __call__(self, key: str, **values: Any) -> str:
        texts = catalog().get(key)
        if texts is None:
            return key
        text = texts.get(self.lang) or texts.get("en") or key
        return text.format(**values) if values else text
