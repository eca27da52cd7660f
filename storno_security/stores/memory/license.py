"""In-memory last-seen store of the license capability: per process, forgotten on restart, so
it only catches a clock set back while the process lives (use the SQL store to remember)."""

from __future__ import annotations

from storno_security.stores._adapters import LastSeen
from storno_security.stores.memory._records import MemoryRecords

__all__ = ["MemoryLastSeenStore"]


class MemoryLastSeenStore(LastSeen):
    """Last verified times on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())
