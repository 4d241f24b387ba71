"""The engine: per-group ordered processing of events through playbooks.

Public surface for playbook authors: :class:`Playbook`, :class:`PlaybookConfig`,
:class:`Context`, :class:`JobCall`, :class:`Posting`.
"""

from qunyun.engine.context import Command, Context, JobCall, Posting, ReadOnlyState
from qunyun.engine.engine import Engine, Outcome, run_events
from qunyun.engine.playbook import Playbook, PlaybookConfig
from qunyun.engine.registry import Registry, default_registry

__all__ = [
    "Command",
    "Context",
    "Engine",
    "JobCall",
    "Outcome",
    "Playbook",
    "PlaybookConfig",
    "Posting",
    "ReadOnlyState",
    "Registry",
    "default_registry",
    "run_events",
]
