"""Adapters: where platforms meet the engine.

Each ``adapters/<platform>/`` package turns that platform's payloads into
validated :mod:`qunyun.core.events` at the edge and, where it can, carries
the engine's actions back. ``sim`` is the built-in simulated community used
by ``qunyun demo``, the tests and "what if" experiments; ``replay`` reads
JSON Lines event files.
"""
