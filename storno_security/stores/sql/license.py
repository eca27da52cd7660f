"""SQL store of the license capability: the last verified time per key, persistent and shared
by every process (the shared adapter on ``storno_records``, namespace ``license``)."""

from __future__ import annotations

import sqlalchemy as sa

from storno_security.stores._adapters import LastSeen
from storno_security.stores.sql._records import SqlRecords

__all__ = ["SqlLastSeenStore"]


class SqlLastSeenStore(LastSeen):
    """Last verified times in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))
