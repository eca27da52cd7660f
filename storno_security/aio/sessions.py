"""The session-state read, async: what every access-token check consults (REF-3, REF-4).

:class:`AsyncSessionStateStore` is the read half of
:class:`~storno_security.tokens.storage.SessionStateStore`: ``session_state`` only. The writes
(bumping an epoch, revoking a session) stay with the synchronous store, which the kit's flows
call; the async store reads what they wrote, from the same rows or keys:

* :class:`InlineSessionStateStore`: a synchronous store whose read never waits, called on the
  loop: the memory store (a dictionary lookup), or the SQLite store (in WAL mode a reader takes
  no lock; its lean read costs about 20 µs, where handing the statement to an async driver's
  thread costs more than that);
* :class:`~storno_security.aio.sql.AsyncSqlSessionStateStore`: the same ``SELECT`` on
  ``storno_records`` over SQLAlchemy asyncio;
* :class:`~storno_security.aio.redis.AsyncRedisSessionStateStore`: the same script over
  ``redis.asyncio``;
* :class:`OffloadedSessionStateStore`: any synchronous store, its read run in a thread.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from storno_security.aio.offload import Offloader
from storno_security.tokens.storage import SessionState, SessionStateStore

__all__ = [
    "AsyncSessionStateStore",
    "InlineSessionStateStore",
    "OffloadedSessionStateStore",
]


@runtime_checkable
class AsyncSessionStateStore(Protocol):
    """Reads a user's session epoch and whether a session is revoked, in one round trip."""

    async def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """Return the user's epoch and whether ``session_id`` is revoked, in one read (see
        :meth:`~storno_security.tokens.storage.SessionStateStore.session_state`).

        Raises:
            TypeError: an id is not a str.
            StoreUnavailableError: the backend could not be reached.
            CorruptRecordError: the stored state is not what the library writes.
            StoreError: the backend failed.
        """
        ...


class InlineSessionStateStore:
    """The read of a synchronous store that never waits, made on the loop: the memory store,
    or the SQLite store (see the module docstring). Not for a store that waits on a network.

    Args:
        store: the kit's session-state store.
    """

    def __init__(self, store: SessionStateStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"InlineSessionStateStore({self._store!r})"

    async def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`AsyncSessionStateStore.session_state`."""
        return self._store.session_state(user_id=user_id, session_id=session_id)


class OffloadedSessionStateStore:
    """Any synchronous store, its read run in the offloader's ``io`` lane (for a store with no
    native async form).

    Args:
        store: the synchronous store.
        offload: the thread pools.
    """

    def __init__(self, store: SessionStateStore, offload: Offloader) -> None:
        self._store = store
        self._offload = offload

    def __repr__(self) -> str:
        return f"OffloadedSessionStateStore({self._store!r})"

    async def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`AsyncSessionStateStore.session_state`."""
        store = self._store
        return await self._offload.io(
            lambda: store.session_state(user_id=user_id, session_id=session_id)
        )
