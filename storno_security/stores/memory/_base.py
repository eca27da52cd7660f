"""Shared machinery of the memory stores. Private: import from
:mod:`storno_security.stores.memory`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


def _delete_where(lock: threading.Lock, rows: dict[_K, _V], dead: Callable[[_V], bool]) -> int:
    """Under ``lock``, delete the entries whose value is ``dead``; return how many."""
    with lock:
        keys = [key for key, value in rows.items() if dead(value)]
        for key in keys:
            del rows[key]
        return len(keys)


def _check_str(name: str, value: object) -> str:
    """A key or id: any str."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value
