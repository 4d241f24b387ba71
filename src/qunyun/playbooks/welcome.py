"""welcome: placeholder until implemented."""

from __future__ import annotations

from qunyun.engine import Playbook


class Welcome(Playbook):
    id = "welcome"
