"""Shared machinery of the Redis stores: error translation. Private: import from
:mod:`storno_security.stores.redis`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

from storno_security.errors import CorruptRecordError, StoreUnavailableError

_T = TypeVar("_T")

# Replies to INCR, GET and friends that mean the key does not hold what a store writes.
_CORRUPT_REPLIES = ("not an integer", "overflow", "WRONGTYPE")


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.ResponseError as exc:
        if any(marker in str(exc) for marker in _CORRUPT_REPLIES):
            raise CorruptRecordError(reason="bad_value") from exc
        raise StoreUnavailableError("Redis refused the command", reason="refused") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailableError(reason="unavailable") from exc
    except redis.RedisError as exc:
        raise StoreUnavailableError(reason="redis_error") from exc


def _call(command: Callable[[], _T]) -> _T:
    with _redis_errors():
        return command()
