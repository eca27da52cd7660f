"""What API keys need from storage: one protocol with the fewest verbs that work.

A store keeps one record per key: its public description (:class:`ApiKeyInfo`) and the SHA-256
of the whole key (KEY-2), never the key. Verification reads one record by key id (one indexed
lookup); ``last_used_at`` is written by :meth:`ApiKeyStore.touch`, a conditional write that the
caller attempts only when the record it holds says the value is stale (KEY-3).

Implementations: :mod:`storno_security.stores.memory` and :mod:`storno_security.stores.sql`.
Stores take times from the caller and never read a clock.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from storno_security.api_keys.format import is_legacy_key_id
from storno_security.api_keys.principal import ApiKeyPrincipal
from storno_security.api_keys.scopes import ApiKeyScope

__all__ = ["ApiKeyInfo", "ApiKeyRecord", "ApiKeyStore"]


@attrs.frozen
class ApiKeyInfo:
    """The public description of a key: what listings show. Holds no secret and no hash.

    Attributes:
        key_id: public id (12 base62 characters, or ``legacy-…`` for a key of the older form).
        user_id: the user the key acts for.
        organization_id: the one organization it acts in (KEY-4).
        name: a label chosen by its creator.
        scope: ``read``, ``write`` or ``admin`` (KEY-3).
        permissions: an explicit permission list (sorted), or ``None`` for "the scope's".
        created_at: when it was created.
        expires_at: when it stops working, or ``None``.
        revoked_at: when it was revoked, or ``None``.
        last_used_at: the last verification that wrote it (at most once per
            :attr:`~storno_security.api_keys.ApiKeyPolicy.last_used_interval`), or ``None``.
    """

    key_id: str
    user_id: str
    organization_id: str
    name: str
    scope: ApiKeyScope
    permissions: tuple[str, ...] | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def legacy(self) -> bool:
        """Whether the key has the platform's older form (``af_`` + 64 hex)."""
        return is_legacy_key_id(self.key_id)

    @functools.cached_property
    def principal(self) -> ApiKeyPrincipal:
        """Who the key acts for, as verification returns it (built once per description)."""
        return ApiKeyPrincipal(
            self.user_id,
            self.organization_id,
            self.key_id,
            self.scope,
            None if self.permissions is None else frozenset(self.permissions),
            self.expires_at,
        )


@attrs.frozen
class ApiKeyRecord:
    """What a store holds for one key.

    Attributes:
        info: the public description.
        key_hash: SHA-256 (lowercase hex) of the whole key.
    """

    info: ApiKeyInfo
    key_hash: str = attrs.field(repr=False)


@runtime_checkable
class ApiKeyStore(Protocol):
    """Storage of API keys. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def create(self, record: ApiKeyRecord) -> None:
        """Store a new key.

        Raises:
            StoreError: the key id or hash exists already (``reason="duplicate"``), or the
                backend failed; nothing was written.
        """
        ...

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """Return the record with this key id (revoked and expired ones too), or ``None``.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def list_keys(
        self, *, user_id: str | None = None, organization_id: str | None = None
    ) -> list[ApiKeyInfo]:
        """Every key of the user, of the organization, or of the user in the organization
        (revoked and expired ones too), oldest first (ties by key id). At least one filter.

        Raises:
            ValueError: neither filter is given.
            StoreError: the backend failed.
        """
        ...

    def revoke(
        self,
        key_id: str,
        *,
        now: datetime,
        expected_user_id: str | None = None,
        expected_organization_id: str | None = None,
    ) -> bool:
        """Revoke a live key, if it belongs to ``expected_user_id`` and
        ``expected_organization_id`` (each checked when given).

        Returns:
            Whether this call revoked it: ``False`` for an unknown key, another owner's key or a
            key revoked already. Of concurrent calls, at most one returns ``True``.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def revoke_user_keys(
        self, user_id: str, *, now: datetime, organization_id: str | None = None
    ) -> list[str]:
        """Revoke every live key of the user (in ``organization_id`` when given).

        Returns:
            The ids of the keys this call revoked, sorted.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every key of the user, revoked or not (account deletion, ACC-7).

        Returns:
            How many were deleted.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...

    def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """Set ``last_used_at = now`` if it is unset or not after ``stale_before``.

        One conditional write: of concurrent calls with the same ``stale_before``, at most one
        returns ``True``.

        Returns:
            Whether the value was written.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...
