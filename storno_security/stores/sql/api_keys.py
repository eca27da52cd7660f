"""SQL store of the API-key capability: the ``storno_api_keys`` table.

:class:`SqlApiKeyStore` implements :class:`~storno_security.api_keys.ApiKeyStore`. Import it from
:mod:`storno_security.stores.sql`.

Verification reads one row by primary key (the public key id). Revocation and ``touch`` are each
one conditional ``UPDATE`` whose row count says whether this call changed the row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from storno_security.api_keys.scopes import ApiKeyScope
from storno_security.api_keys.storage import ApiKeyInfo, ApiKeyRecord
from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.stores._records import storable
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _USER_LENGTH,
    _aware_or_none,
    _changed_each,
    _check_key,
    _ExactString,
    _names_of,
    _optional_time,
    _Reader,
    _required_time,
    _SqlStore,
    _text_of,
    _transaction,
    _UtcDateTime,
    metadata,
)

__all__ = ["SqlApiKeyStore", "api_keys"]

_NAME_LENGTH: Final = 200
_SCOPE_LENGTH: Final = 16
_HASH_LENGTH: Final = 64

api_keys = sa.Table(
    "storno_api_keys",
    metadata,
    sa.Column("key_id", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("key_hash", _ExactString(_HASH_LENGTH), nullable=False, unique=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False, index=True),
    sa.Column("organization_id", _ExactString(_USER_LENGTH), nullable=False, index=True),
    sa.Column("name", _ExactString(_NAME_LENGTH), nullable=False),
    sa.Column("scope", _ExactString(_SCOPE_LENGTH), nullable=False),
    sa.Column("permissions", sa.Text(), nullable=True),  # a JSON array of ASCII names, or NULL
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=True),
    sa.Column("revoked_at", _UtcDateTime(), nullable=True),
    sa.Column("last_used_at", _UtcDateTime(), nullable=True),
    mysql_engine="InnoDB",
)

_K = api_keys.c
_INFO_COLUMNS: Final = (
    _K.key_id,
    _K.user_id,
    _K.organization_id,
    _K.name,
    _K.scope,
    _K.permissions,
    _K.created_at,
    _K.expires_at,
    _K.revoked_at,
    _K.last_used_at,
)
_GET: Final = sa.select(_K.key_hash, *_INFO_COLUMNS).where(_K.key_id == sa.bindparam("key_id"))
_SCOPES: Final = {scope.value: scope for scope in ApiKeyScope}


def _info_of(row: Any) -> ApiKeyInfo:
    """Build a description from a row, refusing values the library never writes."""
    scope = _SCOPES.get(row.scope) if isinstance(row.scope, str) else None
    if scope is None:
        raise CorruptRecordError(reason="bad_scope")
    names = _names_of(row.permissions)
    return ApiKeyInfo(
        key_id=_text_of(row.key_id, "bad_key_id"),
        user_id=_text_of(row.user_id, "bad_user_id"),
        organization_id=_text_of(row.organization_id, "bad_organization_id"),
        name=_text_of(row.name, "bad_name"),
        scope=scope,
        permissions=None if names is None else tuple(sorted(set(names))),
        created_at=_required_time(row.created_at),
        expires_at=_optional_time(row.expires_at),
        revoked_at=_optional_time(row.revoked_at),
        last_used_at=_optional_time(row.last_used_at),
    )


def _revoke(key_id: str, now: datetime) -> sa.Update:
    """``UPDATE`` one key to revoked, if it is not already."""
    return (
        sa.update(api_keys)
        .where(_K.key_id == key_id, _K.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _record_of(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(info=_info_of(row), key_hash=_text_of(row.key_hash, "bad_key_hash"))


class SqlApiKeyStore(_SqlStore):
    """API keys in the ``storno_api_keys`` table.

    Args:
        engine: an engine from :func:`~storno_security.stores.sql.create_engine` whose schema
            exists (:func:`~storno_security.stores.sql.create_schema`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self._get = _Reader(engine, _GET, _record_of)

    def create(self, record: ApiKeyRecord) -> None:
        """See :meth:`ApiKeyStore.create`."""
        if not isinstance(record, ApiKeyRecord):
            raise TypeError(f"record must be an ApiKeyRecord, not {type(record).__name__}")
        info = record.info
        if not isinstance(info.scope, ApiKeyScope):
            raise TypeError("scope must be an ApiKeyScope")
        permissions = None
        if info.permissions is not None:
            names = [storable("permission", p, _NAME_LENGTH) for p in info.permissions]
            permissions = json.dumps(sorted(set(names)), ensure_ascii=True)
        values = {
            "key_id": storable("key_id", info.key_id, _ID_LENGTH),
            "key_hash": storable("key_hash", record.key_hash, _HASH_LENGTH),
            "user_id": storable("user_id", info.user_id, _USER_LENGTH),
            "organization_id": storable("organization_id", info.organization_id, _USER_LENGTH),
            "name": storable("name", info.name, _NAME_LENGTH),
            "scope": info.scope.value,
            "permissions": permissions,
            "created_at": ensure_aware_utc(info.created_at),
            "expires_at": _aware_or_none(info.expires_at),
            "revoked_at": _aware_or_none(info.revoked_at),
            "last_used_at": _aware_or_none(info.last_used_at),
        }
        self._insert(api_keys, values)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """See :meth:`ApiKeyStore.get`: one ``SELECT`` by primary key."""
        return self._get.one_or_none({"key_id": _check_key("key_id", key_id)})

    def list_keys(
        self, *, user_id: str | None = None, organization_id: str | None = None
    ) -> list[ApiKeyInfo]:
        """See :meth:`ApiKeyStore.list_keys`."""
        if user_id is None and organization_id is None:
            raise ValueError("give user_id, organization_id or both")
        query = sa.select(*_INFO_COLUMNS).order_by(_K.created_at, _K.key_id)
        if user_id is not None:
            query = query.where(_K.user_id == _check_key("user_id", user_id))
        if organization_id is not None:
            query = query.where(
                _K.organization_id == _check_key("organization_id", organization_id)
            )
        return self._read_all(query, _info_of)

    def revoke(
        self,
        key_id: str,
        *,
        now: datetime,
        expected_user_id: str | None = None,
        expected_organization_id: str | None = None,
    ) -> bool:
        """See :meth:`ApiKeyStore.revoke`: one conditional ``UPDATE``."""
        key_id = _check_key("key_id", key_id)
        now = ensure_aware_utc(now)
        update = _revoke(key_id, now)
        if expected_user_id is not None:
            update = update.where(_K.user_id == _check_key("expected_user_id", expected_user_id))
        if expected_organization_id is not None:
            update = update.where(
                _K.organization_id
                == _check_key("expected_organization_id", expected_organization_id)
            )
        return self._change_one(update)

    def revoke_user_keys(
        self, user_id: str, *, now: datetime, organization_id: str | None = None
    ) -> list[str]:
        """See :meth:`ApiKeyStore.revoke_user_keys`: a conditional ``UPDATE`` per key, so
        of concurrent callers exactly one reports it."""
        user_id = _check_key("user_id", user_id)
        now = ensure_aware_utc(now)
        live = sa.select(_K.key_id).where(_K.user_id == user_id, _K.revoked_at.is_(None))
        if organization_id is not None:
            live = live.where(_K.organization_id == _check_key("organization_id", organization_id))
        with _transaction(self._engine) as conn:
            return _changed_each(conn, live, lambda key_id: _revoke(key_id, now), "bad_key_id")

    def forget_user(self, user_id: str) -> int:
        """See :meth:`~storno_security.api_keys.ApiKeyStore.forget_user`: one ``DELETE``."""
        user_id = _check_key("user_id", user_id)
        return self._delete(api_keys, _K.user_id == user_id) if user_id else 0

    def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """See :meth:`ApiKeyStore.touch`: one conditional ``UPDATE``."""
        key_id = _check_key("key_id", key_id)
        now = ensure_aware_utc(now)
        stale_before = ensure_aware_utc(stale_before)
        update = (
            sa.update(api_keys)
            .where(
                _K.key_id == key_id,
                sa.or_(_K.last_used_at.is_(None), _K.last_used_at <= stale_before),
            )
            .values(last_used_at=now)
        )
        return self._change_one(update)
