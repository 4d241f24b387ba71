"""Placeholder: the `members` commands are being built (see the open issue)."""

from __future__ import annotations
