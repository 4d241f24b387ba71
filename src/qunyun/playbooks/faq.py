"""faq: placeholder until implemented."""

from __future__ import annotations

from qunyun.engine import Playbook


class Faq(Playbook):
    id = "faq"
