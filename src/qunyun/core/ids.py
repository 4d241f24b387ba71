"""Deterministic identifiers."""

from __future__ import annotations

import hashlib


def action_id(cause: str, playbook: str, ordinal: int) -> str:
    """The id of the ``ordinal``-th action ``playbook`` produced for ``cause``.

    Same input gives the same id, so a replay of the same events yields the
    same action ids and an adapter can use them as transaction ids.
    """
    digest = hashlib.blake2b(
        f"{cause}\x1f{playbook}\x1f{ordinal}".encode(), digest_size=12
    ).hexdigest()
    return f"act-{digest}"
