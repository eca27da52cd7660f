"""What license checks need from storage: one monotonic "last seen" time per key (LIC-3).

The store remembers the latest time at which a genuine license was verified. A clock that reads
earlier than that has been set back. The one verb moves the time forward only, atomically, so
concurrent checks (threads, processes, hosts sharing a database) can never move it back.

Implementations: :class:`~storno_security.stores.memory.MemoryLastSeenStore` (per process; it
forgets on restart, so it only catches a rollback while the process lives) and
:class:`~storno_security.stores.sql.SqlLastSeenStore` (persistent: the one to use).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["LastSeenStore"]


@runtime_checkable
class LastSeenStore(Protocol):
    """A monotonic clock reading per key. One atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def record(self, key: str, seen: datetime) -> datetime:
        """Move ``key``'s last-seen time forward to ``seen`` if that is later; never back.

        Args:
            key: what the time belongs to (an installation, a licensee).
            seen: an aware datetime.

        Returns:
            The last-seen time after the call: ``seen`` or a later time recorded before.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...
