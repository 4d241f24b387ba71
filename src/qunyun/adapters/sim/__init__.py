"""The ``sim`` adapter: a seeded, simulated learning community.

:class:`Simulation` produces validated events hour by hour and reacts to the
actions the engine took (:meth:`Simulation.observe`). Personas, rhythms and
texts live in :mod:`qunyun.adapters.sim.personas`. See ``docs/demo.md``.
"""

from qunyun.adapters.sim.personas import PERSONAS, Persona, persona_mix
from qunyun.adapters.sim.simulator import (
    BOT_ID,
    COMMUNITY_ID,
    DEFAULT_START,
    FAQ_ENTRIES,
    PLATFORM,
    WAVE_DAYS,
    Hour,
    SimGroup,
    SimMember,
    Simulation,
)

__all__ = [
    "BOT_ID",
    "COMMUNITY_ID",
    "DEFAULT_START",
    "FAQ_ENTRIES",
    "PERSONAS",
    "PLATFORM",
    "WAVE_DAYS",
    "Hour",
    "Persona",
    "SimGroup",
    "SimMember",
    "Simulation",
    "persona_mix",
]
