"""In-memory last-seen store of the license capability: per process, forgotten on restart."""

from __future__ import annotations

import threading
from datetime import datetime

from storno_security.clock import ensure_aware_utc
from storno_security.stores.memory._base import _check_str

__all__ = ["MemoryLastSeenStore"]


class MemoryLastSeenStore:
    """Last verified times in a dictionary guarded by one lock.

    It catches a clock set back only while the process lives: use
    :class:`~storno_security.stores.sql.SqlLastSeenStore` to remember across restarts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, datetime] = {}

    def record(self, key: str, seen: datetime) -> datetime:
        """See :meth:`~storno_security.license.storage.LastSeenStore.record`.

        Raises:
            TypeError: ``key`` is not a ``str`` or ``seen`` not a ``datetime``.
            ValueError: ``seen`` is naive.
        """
        _check_str("key", key)
        seen = ensure_aware_utc(seen)
        with self._lock:
            current = self._times.get(key)
            if current is None or current < seen:
                self._times[key] = seen
                return seen
            return current
