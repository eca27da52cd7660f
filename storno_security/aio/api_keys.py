"""API-key verification, async (KEY-1, KEY-3): the same checks as
:meth:`ApiKeyManager.verify <storno_security.api_keys.ApiKeyManager.verify>`, over an async
lookup.

:class:`AsyncApiKeyStore` has the two verbs verification needs, ``get`` and ``touch``, with the
synchronous protocol's meaning (:class:`~storno_security.api_keys.ApiKeyStore`); keys are still
created, listed and revoked by the kit through the synchronous store, and the async store reads
the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from storno_security._compare import constant_time_equal
from storno_security.aio.offload import Offloader
from storno_security.api_keys.format import _parse
from storno_security.api_keys.policy import ApiKeyPolicy
from storno_security.api_keys.principal import ApiKeyPrincipal
from storno_security.api_keys.storage import ApiKeyRecord, ApiKeyStore
from storno_security.clock import Clock
from storno_security.errors import InvalidApiKeyError

__all__ = [
    "AsyncApiKeyStore",
    "AsyncApiKeyVerifier",
    "InlineApiKeyStore",
    "OffloadedApiKeyStore",
]


@runtime_checkable
class AsyncApiKeyStore(Protocol):
    """The verification half of :class:`~storno_security.api_keys.ApiKeyStore`, async."""

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record with this key id (revoked and expired ones too), or ``None``.

        Raises:
            TypeError: ``key_id`` is not a str.
            StoreUnavailableError: the backend could not be reached.
            CorruptRecordError: the row is malformed.
            StoreError: the backend failed.
        """
        ...

    async def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """Set ``last_used_at = now`` if it is unset or not after ``stale_before``; one
        conditional write. Returns whether it wrote.

        Raises:
            StoreUnavailableError: the backend could not be reached; nothing changed.
            StoreError: the backend failed; nothing changed.
        """
        ...


class InlineApiKeyStore:
    """A synchronous store whose lookup never waits, read on the loop: the memory store, or
    the SQLite store (a WAL reader takes no lock). ``touch`` is a write: with ``offload`` it
    runs in the ``io`` lane (a SQLite writer may wait for the write lock), else on the loop
    (the memory store's lock is held for microseconds).

    Args:
        store: the kit's API-key store.
        offload: the thread pools, for a store whose writes may wait.
    """

    def __init__(self, store: ApiKeyStore, offload: Offloader | None = None) -> None:
        self._store = store
        self._offload = offload

    def __repr__(self) -> str:
        return f"InlineApiKeyStore({self._store!r})"

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """See :meth:`AsyncApiKeyStore.get`."""
        return self._store.get(key_id)

    async def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """See :meth:`AsyncApiKeyStore.touch`."""
        store = self._store
        if self._offload is None:
            return store.touch(key_id, now=now, stale_before=stale_before)
        return await self._offload.io(
            lambda: store.touch(key_id, now=now, stale_before=stale_before)
        )


class OffloadedApiKeyStore:
    """Any synchronous store, its verbs run in the offloader's ``io`` lane.

    Args:
        store: the synchronous store.
        offload: the thread pools.
    """

    def __init__(self, store: ApiKeyStore, offload: Offloader) -> None:
        self._store = store
        self._offload = offload

    def __repr__(self) -> str:
        return f"OffloadedApiKeyStore({self._store!r})"

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """See :meth:`AsyncApiKeyStore.get`."""
        return await self._offload.io(self._store.get, key_id)

    async def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """See :meth:`AsyncApiKeyStore.touch`."""
        store = self._store
        return await self._offload.io(
            lambda: store.touch(key_id, now=now, stale_before=stale_before)
        )


class AsyncApiKeyVerifier:
    """Verifies presented API keys over an async store, exactly as
    :meth:`ApiKeyManager.verify <storno_security.api_keys.ApiKeyManager.verify>` does: the key
    is parsed (a malformed or mistyped key never reaches the store), one lookup by key id, the
    stored SHA-256 compared in constant time, then revocation and expiry; ``last_used_at`` is
    written when the record is older than the policy's interval.

    Args:
        store: the async lookup.
        clock: the time source.
        policy: the kit's API-key policy (``kit.api_keys.policy``).
    """

    def __init__(
        self, store: AsyncApiKeyStore, *, clock: Clock, policy: ApiKeyPolicy | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy if policy is not None else ApiKeyPolicy()
        self._interval = self._policy.last_used_interval
        self._accept_legacy = self._policy.accept_legacy_keys

    def __repr__(self) -> str:
        return f"AsyncApiKeyVerifier({self._store!r})"

    async def verify(self, presented: str) -> ApiKeyPrincipal:
        """Check a presented key and return who it acts for.

        Raises:
            InvalidApiKeyError: for every way the key can be wrong; ``reason`` is
                ``malformed``, ``unknown``, ``revoked`` or ``expired``.
            StoreError: the store failed (the key's validity is then unknown: refuse the
                request).
        """
        key_id, key_hash = _parse(presented, self._accept_legacy)
        record = await self._store.get(key_id)
        if record is None or not constant_time_equal(record.key_hash, key_hash):
            raise InvalidApiKeyError(reason="unknown")
        info = record.info
        if info.revoked_at is not None:
            raise InvalidApiKeyError(reason="revoked")
        now = self._clock.now()
        if info.expires_at is not None and info.expires_at <= now:
            raise InvalidApiKeyError(reason="expired")
        stale_before = now - self._interval
        if info.last_used_at is None or info.last_used_at <= stale_before:
            await self._store.touch(key_id, now=now, stale_before=stale_before)
        return info.principal
