"""What was derived from an immutable object, kept by that object's identity.

The stores hand out the same record object for as long as the rows it was read from are
unchanged, and a new one once they change (see the SQL stores' hot reads). What is derived
from such a record alone (a ``GET /me`` view, its rendered answer) is then the same for as long
as the object is, so it is derived once per object instead of once per request: a change made
anywhere yields a new object, which finds nothing kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

__all__ = ["IdentityMemo", "make_room"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def make_room(kept: dict[Any, Any], size: int) -> dict[Any, Any]:
    """``kept``, its oldest sixteenth (at least one entry) dropped first when it holds ``size``
    entries: not the lot, as freeing thousands of objects at once pauses the one call that
    filled it. Another thread may drop the same entries meanwhile; that is harmless."""
    if len(kept) >= size:
        for old in list(itertools.islice(kept, max(1, size // 16))):
            kept.pop(old, None)
    return kept


class IdentityMemo(Generic[_K, _V]):
    """``value`` by (``source`` object, ``extra`` key), for the last ``size`` pairs.

    An entry holds its source, so the source's ``id`` is not reused by another object while
    the entry is kept, and a lookup also checks the source is the very object. Thread-safe
    under the GIL: two threads deriving the same value at once both keep theirs, and either is
    right. The oldest sixteenth is dropped when full (not the lot, which would free thousands of
    objects within one request).
    """

    def __init__(self, size: int = 1024) -> None:
        if size < 16:
            raise ValueError(f"size must be at least 16, got {size}")
        self.size = size
        self._kept: dict[tuple[int, Hashable], tuple[_K, _V]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, source: _K, extra: Hashable = None) -> _V | None:
        """The value kept for ``source`` (this very object) and ``extra``, or ``None``."""
        kept = self._kept.get((id(source), extra))
        return kept[1] if kept is not None and kept[0] is source else None

    def keep(self, source: _K, value: _V, extra: Hashable = None) -> None:
        """Keep ``value`` for ``source`` and ``extra``."""
        make_room(self._kept, self.size)[(id(source), extra)] = (source, value)
