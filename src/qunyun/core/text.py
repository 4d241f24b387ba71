"""Text helpers for what the bot says about people.

Names come from members and may carry control characters or bidirectional
overrides (U+202E) that would reorder the bot's own sentence. We keep the
raw name in the store and clean it only where we display it.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI_AND_CONTROLS = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]"
)


def display_name(name: str | None, fallback: str, *, limit: int = 32) -> str:
    """A name safe to put in a bot message: no controls, no bidi overrides, bounded."""
    cleaned = _BIDI_AND_CONTROLS.sub("", name or "").strip()
    cleaned = unicodedata.normalize("NFC", cleaned)
    if not cleaned:
        cleaned = fallback
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis if cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
