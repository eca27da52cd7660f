"""Creating, verifying, listing and revoking API keys (KEY-1, KEY-2, KEY-3, KEY-5).

Verification is one SHA-256 and one lookup by key id; the stored hash is compared in constant
time; the result is a frozen :class:`~storno_security.api_keys.ApiKeyPrincipal` or one opaque
:class:`~storno_security.errors.InvalidApiKeyError`. ``last_used_at`` is written only when the
record in hand says it is older than the policy's interval, by a conditional write, so a busy
key costs one write a minute, not one per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, Literal

import attrs

from storno_security._compare import constant_time_equal
from storno_security.api_keys.format import _parse, generate_api_key, legacy_key_id
from storno_security.api_keys.policy import ApiKeyPolicy
from storno_security.api_keys.principal import ApiKeyPrincipal
from storno_security.api_keys.scopes import ApiKeyScope, is_forbidden_for_api_keys
from storno_security.api_keys.storage import ApiKeyInfo, ApiKeyRecord, ApiKeyStore
from storno_security.clock import Clock, ensure_aware_utc
from storno_security.errors import ApiKeyPermissionsError, InvalidApiKeyError

__all__ = ["ApiKeyEvent", "ApiKeyManager", "CreatedApiKey"]

_MAX_ID: Final = 255
_MAX_NAME: Final = 200
_PERMISSION_RE: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")


@attrs.frozen
class CreatedApiKey:
    """A key just created. ``key`` is shown to its owner once and never again (KEY-2).

    Attributes:
        key: the full key (secret; not in ``repr``).
        info: its public description.
    """

    key: str = attrs.field(repr=False)
    info: ApiKeyInfo

    @property
    def key_id(self) -> str:
        """The key's public id."""
        return self.info.key_id


@attrs.frozen
class ApiKeyEvent:
    """A security event from the API-key manager, for the audit trail (ACC-3). No secrets.

    Attributes:
        kind: ``api_key_created`` (also for an imported legacy key) or ``api_key_revoked``.
        user_id: the key's user (for a revocation of every key of a user: that user).
        at: when.
        key_ids: the keys concerned.
        organization_id: the key's organization, when one key is concerned or the revocation
            was limited to one organization.
        scope: for ``api_key_created``, the scope.
    """

    kind: Literal["api_key_created", "api_key_revoked"]
    user_id: str
    at: datetime
    key_ids: tuple[str, ...]
    organization_id: str | None = None
    scope: ApiKeyScope | None = None


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_ID or "\x00" in value:
        raise ValueError(f"{name} must be 1 to {_MAX_ID} characters without NUL")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, not {type(value).__name__}")
    if not value.strip() or len(value) > _MAX_NAME or "\x00" in value:
        raise ValueError(f"name must be 1 to {_MAX_NAME} characters without NUL")
    return value


def _permission_set(name: str, values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be an iterable of str, not a str")
    result = frozenset(values)
    for value in result:
        if not isinstance(value, str):
            raise TypeError(f"{name} must hold only str, not {type(value).__name__}")
        if _PERMISSION_RE.fullmatch(value) is None:
            raise ValueError(f"{name}: {value!r} is not a permission name")
    return result


class ApiKeyManager:
    """Creates, verifies, lists and revokes API keys.

    Args:
        store: where keys are kept.
        clock: the time source.
        policy: the policy; the defaults of :class:`ApiKeyPolicy` when not given.
        on_event: called with an :class:`ApiKeyEvent` after every creation and revocation, for
            the audit trail.
    """

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        clock: Clock,
        policy: ApiKeyPolicy | None = None,
        on_event: Callable[[ApiKeyEvent], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_event = on_event
        self._policy = policy if policy is not None else ApiKeyPolicy()
        self._interval = self._policy.last_used_interval
        self._accept_legacy = self._policy.accept_legacy_keys

    @property
    def policy(self) -> ApiKeyPolicy:
        """The policy in force."""
        return self._policy

    def __repr__(self) -> str:
        return f"ApiKeyManager({self._store!r})"

    def _emit(self, event: ApiKeyEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    # --- creation ----------------------------------------------------------------------------

    def _expiry(self, now: datetime, expires_at: datetime | None) -> datetime | None:
        limit = self._policy.max_lifetime
        if expires_at is None:
            return None if limit is None else now + limit
        expires_at = ensure_aware_utc(expires_at)
        if expires_at <= now:
            raise ValueError("expires_at must be in the future")
        if limit is not None and expires_at > now + limit:
            raise ValueError(f"expires_at is beyond the policy's max_lifetime ({limit})")
        return expires_at

    def _permissions(
        self,
        permissions: Iterable[str] | None,
        creator_permissions: Iterable[str] | None,
    ) -> tuple[str, ...] | None:
        if permissions is None:
            return None
        wanted = _permission_set("permissions", permissions)
        if not wanted:
            raise ValueError("permissions must not be empty (give None for the scope's)")
        if creator_permissions is None:
            raise ValueError("creator_permissions is required with an explicit permission list")
        held = _permission_set("creator_permissions", creator_permissions)
        if any(is_forbidden_for_api_keys(p) for p in wanted):
            raise ApiKeyPermissionsError(reason="forbidden")
        if not wanted <= held:
            raise ApiKeyPermissionsError(reason="exceeds_creator")
        return tuple(sorted(wanted))

    def create(
        self,
        user_id: str,
        organization_id: str,
        *,
        name: str,
        scope: ApiKeyScope | str,
        expires_at: datetime | None = None,
        permissions: Iterable[str] | None = None,
        creator_permissions: Iterable[str] | None = None,
    ) -> CreatedApiKey:
        """Create a key that acts for ``user_id`` in ``organization_id`` (KEY-1, KEY-2, KEY-4).

        The caller has authorised the creation (the user may manage API keys in the
        organization, and was not authenticated by an API key: KEY-5).

        Args:
            user_id: the user the key acts for (its creator).
            organization_id: the one organization it acts in.
            name: a label, 1 to 200 characters.
            scope: ``read``, ``write`` or ``admin``.
            expires_at: when it stops working (aware, in the future); ``None`` for never, or
                for the policy's ``max_lifetime`` when that is set.
            permissions: an explicit permission list instead of the scope's; each must be
                among ``creator_permissions`` and none may be of a family no key may have.
            creator_permissions: the creator's effective permissions in the organization now;
                required with ``permissions``.

        Returns:
            The key (shown once) and its description. Only its SHA-256 is stored.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: an empty or too long id or name, an unknown scope, a naive or past
                expiry or one beyond ``max_lifetime``, a malformed or empty permission list, or
                ``permissions`` without ``creator_permissions``.
            ApiKeyPermissionsError: a permission the creator does not hold
                (``reason="exceeds_creator"``) or that no key may carry (``"forbidden"``).
            StoreError: the store failed (or, with odds below 2^-70, the key id exists);
                no key was created.
        """
        user_id = _check_id("user_id", user_id)
        organization_id = _check_id("organization_id", organization_id)
        name = _check_name(name)
        scope = ApiKeyScope.parse(scope)
        now = self._clock.now()
        expiry = self._expiry(now, expires_at)
        explicit = self._permissions(permissions, creator_permissions)
        generated = generate_api_key()
        info = ApiKeyInfo(
            key_id=generated.key_id,
            user_id=user_id,
            organization_id=organization_id,
            name=name,
            scope=scope,
            permissions=explicit,
            created_at=now,
            expires_at=expiry,
        )
        self._store.create(ApiKeyRecord(info=info, key_hash=generated.key_hash))
        self._emit_created(info, now)
        return CreatedApiKey(key=generated.key, info=info)

    def _emit_created(self, info: ApiKeyInfo, now: datetime) -> None:
        self._emit(
            ApiKeyEvent(
                kind="api_key_created",
                user_id=info.user_id,
                at=now,
                key_ids=(info.key_id,),
                organization_id=info.organization_id,
                scope=info.scope,
            )
        )

    def import_legacy_key(
        self,
        key_hash: str,
        *,
        user_id: str,
        organization_id: str,
        name: str,
        scope: ApiKeyScope | str,
        created_at: datetime,
        expires_at: datetime | None = None,
        last_used_at: datetime | None = None,
    ) -> ApiKeyInfo:
        """Migrate a key of the platform's older form, given the SHA-256 (hex) of the whole key
        as the platform stored it (KEY-1). The key then verifies unchanged.

        Args:
            key_hash: SHA-256 of ``af_`` + 64 hex characters, as 64 lowercase hex digits.
            user_id: the user it acts for.
            organization_id: the organization it acts in.
            name: a label.
            scope: its scope.
            created_at: when the old platform created it (aware).
            expires_at: its expiry, if it had one (may be in the past: it then fails
                verification as expired).
            last_used_at: when the old platform last saw it used, if known.

        Returns:
            The stored description; its ``key_id`` is :func:`legacy_key_id` of the hash.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a malformed hash, an empty or too long id or name, an unknown scope or
                a naive time.
            StoreError: the key exists already (``reason="duplicate"``) or the store failed.
        """
        key_id = legacy_key_id(key_hash)
        info = ApiKeyInfo(
            key_id=key_id,
            user_id=_check_id("user_id", user_id),
            organization_id=_check_id("organization_id", organization_id),
            name=_check_name(name),
            scope=ApiKeyScope.parse(scope),
            permissions=None,
            created_at=ensure_aware_utc(created_at),
            expires_at=None if expires_at is None else ensure_aware_utc(expires_at),
            last_used_at=None if last_used_at is None else ensure_aware_utc(last_used_at),
        )
        self._store.create(ApiKeyRecord(info=info, key_hash=key_hash))
        self._emit_created(info, self._clock.now())
        return info

    # --- verification ------------------------------------------------------------------------

    def verify(self, presented: str) -> ApiKeyPrincipal:
        """Check a presented key (the ``Authorization`` header value) and return who it acts
        for (KEY-1, KEY-3).

        A malformed or mistyped key is refused before any store lookup. Otherwise one lookup by
        key id; the stored SHA-256 is compared in constant time; then revocation and expiry.
        ``last_used_at`` is written when the record is older than the policy's interval.

        Raises:
            InvalidApiKeyError: for every way the key can be wrong; ``reason`` is
                ``malformed``, ``unknown``, ``revoked`` or ``expired``.
            StoreError: the store failed (the key's validity is then unknown: refuse the
                request).
        """
        key_id, key_hash = _parse(presented, self._accept_legacy)
        record = self._store.get(key_id)
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
            self._store.touch(key_id, now=now, stale_before=stale_before)
        return info.principal

    # --- listing and revocation --------------------------------------------------------------

    def list_keys(
        self, *, user_id: str | None = None, organization_id: str | None = None
    ) -> list[ApiKeyInfo]:
        """The keys of a user, of an organization, or of a user in an organization, oldest
        first. Descriptions only: never a key, never a hash.

        Raises:
            TypeError: a filter is not a string.
            ValueError: neither filter is given, or one is empty or too long.
            StoreError: the store failed.
        """
        if user_id is None and organization_id is None:
            raise ValueError("give user_id, organization_id or both")
        if user_id is not None:
            user_id = _check_id("user_id", user_id)
        if organization_id is not None:
            organization_id = _check_id("organization_id", organization_id)
        return self._store.list_keys(user_id=user_id, organization_id=organization_id)

    def revoke(
        self,
        key_id: str,
        *,
        expected_user_id: str | None = None,
        expected_organization_id: str | None = None,
    ) -> bool:
        """Revoke a key; it fails verification from the next request on (KEY-3).

        Args:
            key_id: the key's public id.
            expected_user_id: when given, only a key of this user is revoked.
            expected_organization_id: when given, only a key of this organization is revoked
                (an organization admin revoking a member's key).

        Returns:
            Whether this call revoked it (``False``: unknown, someone else's, or revoked
            already; the three are not told apart).

        Raises:
            TypeError: an argument is not a string.
            StoreError: the store failed; nothing changed (or, with ``on_event``, reading the
                key back for the event failed after the revocation took effect).
        """
        if not isinstance(key_id, str):
            raise TypeError(f"key_id must be a str, not {type(key_id).__name__}")
        for name, value in (
            ("expected_user_id", expected_user_id),
            ("expected_organization_id", expected_organization_id),
        ):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        now = self._clock.now()
        revoked = self._store.revoke(
            key_id,
            now=now,
            expected_user_id=expected_user_id,
            expected_organization_id=expected_organization_id,
        )
        if revoked and self._on_event is not None:
            record = self._store.get(key_id)  # for the audit event only; decided above
            if record is not None:
                self._emit(
                    ApiKeyEvent(
                        kind="api_key_revoked",
                        user_id=record.info.user_id,
                        at=now,
                        key_ids=(key_id,),
                        organization_id=record.info.organization_id,
                    )
                )
        return revoked

    def revoke_user_keys(self, user_id: str, *, organization_id: str | None = None) -> list[str]:
        """Revoke every live key of a user (in one organization when given), e.g. when the
        account is deleted or the membership ends.

        Returns:
            The ids of the keys revoked, sorted.

        Raises:
            TypeError: an argument is not a string.
            ValueError: an empty or too long id.
            StoreError: the store failed; nothing changed.
        """
        user_id = _check_id("user_id", user_id)
        if organization_id is not None:
            organization_id = _check_id("organization_id", organization_id)
        now = self._clock.now()
        revoked = self._store.revoke_user_keys(user_id, now=now, organization_id=organization_id)
        if revoked:
            self._emit(
                ApiKeyEvent(
                    kind="api_key_revoked",
                    user_id=user_id,
                    at=now,
                    key_ids=tuple(revoked),
                    organization_id=organization_id,
                )
            )
        return revoked
