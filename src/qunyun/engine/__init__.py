"""The engine: per-group ordered processing of events through playbooks.

Public surface for playbook authors: :class:`Playbook`, :class:`PlaybookConfig`,
:class:`Context`, :class:`JobCall`, :class:`Posting`.
"""

from qunyun.engine.context import Context, JobCall, Posting
from qunyun.engine.engine import Engine, Outcome, run_events
from qunyun.engine.playbook import Playbook, PlaybookConfig
from qunyun.engine.registry import Registry, default_registry

__all__ = [
    "Context",
    "Engine",
    "JobCall",
    "Outcome",
    "Playbook",
    "PlaybookConfig",
    "Posting",
    "Registry",
    "default_registry",
    "run_events",
]
