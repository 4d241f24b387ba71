"""Testing helpers for playbook authors: a conversation harness on a fake clock."""

from qunyun.testing.harness import Chat, check_ledger, community_config

__all__ = ["Chat", "check_ledger", "community_config"]
