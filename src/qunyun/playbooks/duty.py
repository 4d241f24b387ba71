"""duty: being built (see the open issue); does nothing yet."""

from __future__ import annotations

from typing import ClassVar

from qunyun.engine import Playbook


class Duty(Playbook):
    id = "duty"
    handles = frozenset({"message"})
    summary: ClassVar[dict[str, str]] = {"zh-CN": "建设中。", "en": "Being built."}
