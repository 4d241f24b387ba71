"""Placeholder: the `digest` commands are being built (see the open issue)."""

from __future__ import annotations
