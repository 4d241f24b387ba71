"""qunyun (群运): a community operations engine for group chats.

Events come in from chat platforms, playbooks decide what to do, actions go
out through an outbox. See ``docs/`` for the contracts.
"""

__version__ = "0.1.0"
