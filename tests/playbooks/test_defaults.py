"""Tests every playbook gets for free (like Zulip's DefaultTests).

For each installed playbook: it explains itself in both languages, it
survives empty and hostile input of every event type without a recorded
failure, nothing it says leaks control or bidi characters, and erasing a
member leaves nothing of them in its export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.engine.registry import default_registry
from qunyun.testing import Chat

Make = Callable[..., Chat]
PLAYBOOKS = default_registry().ids()

HOSTILE_TEXTS = [
    "",
    " ",
    "\u202e\u2066反转\u2069",
    "'; DROP TABLE members; -- 打卡",
    "<script>alert(1)</script>",
    "{name}{0.__class__}{{}}",
    "打卡" + "长" * 200_000,
    "\u0000\u0007\u001b[31m",
    "👍" * 1000,
]
HOSTILE_NAMES = ["", "\u202eevil", "a\u0000b", "x" * 4000, "<b>老王</b>", "{name}"]


def _config(pid: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {pid: {}}
    if pid == "faq":
        cfg[pid] = {"entries": [{"keywords": ["打卡", "class"], "answer": "见公告"}]}
    return cfg


@pytest.mark.parametrize("pid", PLAYBOOKS)
def test_it_explains_itself_in_both_languages(pid: str) -> None:
    cls = default_registry()[pid]
    assert cls.summary.get("zh-CN") and cls.summary.get("en")
    assert cls.handles, f"{pid} handles no event type"
    import sys

    doc = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
    assert doc.strip(), f"{pid} has no docstring"


@pytest.mark.parametrize("pid", PLAYBOOKS)
def test_it_survives_empty_and_hostile_input(make_chat: Make, pid: str) -> None:
    chat = make_chat(_config(pid))
    for i, name in enumerate(HOSTILE_NAMES):
        chat.join(f"h{i}", name)
    msg = None
    for i, text in enumerate(HOSTILE_TEXTS):
        msg = chat.say(f"h{i % len(HOSTILE_NAMES)}", text, mentions=["h1", "nobody"], reply_to=msg)
    assert msg is not None
    chat.react("h2", msg, "🔥")
    chat.react("h2", "no-such-message")
    chat.event("edit", "h3", target=msg, text="\u202e")
    chat.event("recall", "h3", target=msg)
    chat.event("join_request", "h9", answers={"why": "\u0000"})
    chat.pay("h1", 0, "CNY", memo="\u202e")
    chat.leave("h0")
    chat.leave("h5", by="h1")
    chat.advance(days=8)  # every timed job at least once
    assert chat.failures() == [], chat.failures()[0]["traceback"]
    for action in chat.actions:
        text = action.get("text", "")
        assert "\u202e" not in text and "\u0000" not in text and "\u0007" not in text, action
    chat.assert_ledger_balanced()


@pytest.mark.parametrize("pid", PLAYBOOKS)
def test_erasing_a_member_leaves_nothing_of_them(make_chat: Make, pid: str) -> None:
    chat = make_chat(_config(pid))
    for user in ("u1", "u10"):
        chat.join(user, user)
        chat.say(user, "打卡 今天读了书")
        chat.say(user, "请问这个 class 怎么上？")
    chat.advance(minutes=30)
    before_other = chat.engine.export_member("test", "sim", "u10")["playbooks"].get(pid)
    assert chat.engine.erase_member("test", "sim", "u1") == []
    assert not chat.engine.export_member("test", "sim", "u1")["playbooks"].get(pid)
    assert chat.engine.export_member("test", "sim", "u10")["playbooks"].get(pid) == before_other
    assert chat.scalar("SELECT count(*) FROM records WHERE member = 'u1'") == 0
