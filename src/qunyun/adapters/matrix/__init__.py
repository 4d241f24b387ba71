"""The Matrix adapter (mautrix-python): see :mod:`.adapter` and ``docs/matrix.md``."""

from qunyun.adapters.matrix.adapter import Gap, MatrixAdapter, Removal
from qunyun.adapters.matrix.settings import MatrixSettings, RoomTemplate

__all__ = ["Gap", "MatrixAdapter", "MatrixSettings", "Removal", "RoomTemplate"]
