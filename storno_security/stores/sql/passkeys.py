"""SQL stores of the passkey capability: ceremony challenges, credentials and user handles.

:class:`SqlPasskeyChallengeStore` and :class:`SqlPasskeyCredentialStore` implement
:class:`~storno_security.passkeys.storage.PasskeyChallengeStore` and
:class:`~storno_security.passkeys.storage.PasskeyCredentialStore`. Import them from
:mod:`storno_security.stores.sql`.

Consuming a challenge is a ``DELETE`` whose row count says who won; raising a sign count is a
conditional ``UPDATE`` that only matches a smaller stored count. Credentials are keyed by the
SHA-256 of their id (ids may be up to 1023 bytes, too long for an index on every backend).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.passkeys.storage import PasskeyCredential, UseOutcome, credential_key
from storno_security.stores._adapters import PasskeyChallenges
from storno_security.stores._records import storable
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _MYSQL_DIALECTS,
    _USER_LENGTH,
    _aware_or_none,
    _check_key,
    _ExactString,
    _existing_row,
    _fetch_one,
    _optional_time,
    _required_time,
    _SqlStore,
    _transaction,
    _upsert,
    _UtcDateTime,
    metadata,
)
from storno_security.stores.sql._records import SqlRecords

__all__ = [
    "SqlPasskeyChallengeStore",
    "SqlPasskeyCredentialStore",
    "passkey_credentials",
    "passkey_user_handles",
]

_MAX_CREDENTIAL_ID = 1023  # WebAuthn's limit
_MAX_HANDLE = 64
_MAX_PUBLIC_KEY = 4096
_NAME_LENGTH = 255
_TRANSPORTS_LENGTH = 255
_MAX_COUNT = 2**32 - 1

passkey_user_handles = sa.Table(
    "storno_passkey_user_handles",
    metadata,
    sa.Column("user_id", _ExactString(_USER_LENGTH), primary_key=True),
    sa.Column("user_handle", sa.LargeBinary(_MAX_HANDLE), nullable=False),
    mysql_engine="InnoDB",
)

passkey_credentials = sa.Table(
    "storno_passkey_credentials",
    metadata,
    sa.Column("credential_key", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("credential_id", sa.LargeBinary(_MAX_CREDENTIAL_ID), nullable=False),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False, index=True),
    sa.Column("user_handle", sa.LargeBinary(_MAX_HANDLE), nullable=False),
    sa.Column("public_key", sa.LargeBinary(_MAX_PUBLIC_KEY), nullable=False),
    sa.Column("sign_count", sa.BigInteger(), nullable=False),
    sa.Column("transports", sa.String(_TRANSPORTS_LENGTH), nullable=False),
    sa.Column("aaguid", sa.String(36), nullable=False),
    sa.Column("backup_eligible", sa.Boolean(), nullable=False),
    sa.Column("backed_up", sa.Boolean(), nullable=False),
    sa.Column("name", _ExactString(_NAME_LENGTH), nullable=False),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("last_used_at", _UtcDateTime(), nullable=True),
    sa.Column("flagged_at", _UtcDateTime(), nullable=True),
    mysql_engine="InnoDB",
)

_H = passkey_user_handles.c
_C = passkey_credentials.c


class SqlPasskeyChallengeStore(PasskeyChallenges):
    """Ceremony challenges in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))


class SqlPasskeyCredentialStore(_SqlStore):
    """Passkeys in ``storno_passkey_credentials``, user handles in
    ``storno_passkey_user_handles``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def user_handle(self, user_id: str, *, candidate: bytes) -> bytes:
        """See :meth:`PasskeyCredentialStore.user_handle`: an insert that does nothing on
        a conflict, then a read, in one transaction."""
        user_id = storable("user_id", user_id, _USER_LENGTH)
        if not isinstance(candidate, bytes) or not 1 <= len(candidate) <= _MAX_HANDLE:
            raise ValueError("candidate must be 1 to 64 bytes")
        with _transaction(self._engine) as conn:
            conn.execute(_insert_ignore(conn.dialect, user_id=user_id, user_handle=candidate))
            row = _existing_row(conn, sa.select(_H.user_handle).where(_H.user_id == user_id))
        return _handle_of(row.user_handle)

    def add(self, credential: PasskeyCredential) -> None:
        """See :meth:`PasskeyCredentialStore.add`."""
        if not isinstance(credential, PasskeyCredential):
            raise TypeError("credential must be a PasskeyCredential")
        self._insert(passkey_credentials, _values_of(credential))

    def get(self, credential_id: bytes) -> PasskeyCredential | None:
        """See :meth:`PasskeyCredentialStore.get`."""
        key = credential_key(credential_id)
        query = sa.select(passkey_credentials).where(_C.credential_key == key)
        return self._read_one(query, _credential_of)

    def list_for_user(self, user_id: str) -> list[PasskeyCredential]:
        """See :meth:`PasskeyCredentialStore.list_for_user`."""
        user_id = _check_key("user_id", user_id)
        query = (
            sa.select(passkey_credentials)
            .where(_C.user_id == user_id)
            .order_by(_C.created_at, _C.credential_key)
        )
        found = self._read_all(query, _credential_of)
        return sorted(found, key=lambda c: (c.created_at, c.credential_id))

    def rename(self, credential_id: bytes, *, user_id: str, name: str) -> bool:
        """See :meth:`PasskeyCredentialStore.rename`."""
        key = credential_key(credential_id)
        user_id = _check_key("user_id", user_id)
        name = storable("name", name, _NAME_LENGTH)
        return self._change_one(
            sa.update(passkey_credentials)
            .where(_C.credential_key == key, _C.user_id == user_id)
            .values(name=name)
        )

    def delete(self, credential_id: bytes, *, user_id: str) -> bool:
        """See :meth:`PasskeyCredentialStore.delete`."""
        key = credential_key(credential_id)
        user_id = _check_key("user_id", user_id)
        mine = (_C.credential_key == key, _C.user_id == user_id)
        return self._change_one(sa.delete(passkey_credentials).where(*mine))

    def forget_user(self, user_id: str) -> int:
        """See :meth:`PasskeyCredentialStore.forget_user`."""
        return sum(self._delete_user(user_id))

    def delete_for_user(self, user_id: str) -> int:
        """See :meth:`PasskeyCredentialStore.delete_for_user`."""
        return self._delete_user(user_id)[0]

    def _delete_user(self, user_id: str) -> tuple[int, int]:
        """Delete the user's credentials and handle, in one transaction; return how many of
        each."""
        user_id = _check_key("user_id", user_id)
        if not user_id:  # empty or unstorable: no such user
            return 0, 0
        with _transaction(self._engine) as conn:
            count = conn.execute(sa.delete(passkey_credentials).where(_C.user_id == user_id))
            handle = conn.execute(sa.delete(passkey_user_handles).where(_H.user_id == user_id))
            return int(count.rowcount), int(handle.rowcount)

    def record_use(
        self, credential_id: bytes, *, sign_count: int, backed_up: bool, now: datetime
    ) -> UseOutcome:
        """See :meth:`PasskeyCredentialStore.record_use`: one conditional ``UPDATE`` that
        only matches an unflagged row with a smaller count (or 0 and 0), else a second one that
        flags the row, in one transaction."""
        key = credential_key(credential_id)
        _check_count(sign_count)
        if not isinstance(backed_up, bool):
            raise TypeError("backed_up must be a bool")
        now = ensure_aware_utc(now)
        grows = _C.sign_count == 0 if sign_count == 0 else _C.sign_count < sign_count
        mine = _C.credential_key == key
        with _transaction(self._engine) as conn:
            recorded = conn.execute(
                sa.update(passkey_credentials)
                .where(mine, _C.flagged_at.is_(None), grows)
                .values(sign_count=sign_count, backed_up=backed_up, last_used_at=now)
            ).rowcount
            if recorded == 1:
                return UseOutcome.RECORDED
            flagged = conn.execute(
                sa.update(passkey_credentials)
                .where(mine, _C.flagged_at.is_(None))
                .values(flagged_at=now)
            ).rowcount
            if flagged == 1:
                return UseOutcome.REGRESSED
            exists = _fetch_one(conn.execute(sa.select(_C.credential_key).where(mine)))
            return UseOutcome.UNKNOWN if exists is None else UseOutcome.FLAGGED

    def flag(self, credential_id: bytes, *, now: datetime) -> bool:
        """See :meth:`PasskeyCredentialStore.flag`."""
        key = credential_key(credential_id)
        now = ensure_aware_utc(now)
        return self._change_one(
            sa.update(passkey_credentials)
            .where(_C.credential_key == key, _C.flagged_at.is_(None))
            .values(flagged_at=now)
        )


def _insert_ignore(dialect: sa.Dialect, **values: Any) -> Any:
    """An ``INSERT`` of a user handle that does nothing when the user has one."""
    insert = _upsert(dialect.name, passkey_user_handles, values)
    if dialect.name in _MYSQL_DIALECTS:
        return insert.prefix_with("IGNORE")
    return insert.on_conflict_do_nothing()


def _check_count(sign_count: object) -> None:
    if isinstance(sign_count, bool) or not isinstance(sign_count, int):
        raise TypeError("sign_count must be an int")
    if not 0 <= sign_count <= _MAX_COUNT:
        raise ValueError("sign_count must be between 0 and 2**32 - 1")


def _bytes_of(value: object, max_length: int, reason: str) -> bytes:
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes) or not 1 <= len(value) <= max_length:
        raise CorruptRecordError(reason=reason)
    return value


def _handle_of(value: object) -> bytes:
    return _bytes_of(value, _MAX_HANDLE, "bad_user_handle")


def _values_of(credential: PasskeyCredential) -> dict[str, Any]:
    def check_bytes(name: str, value: object, max_length: int) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError(f"{name} must be bytes")
        if not 1 <= len(value) <= max_length:
            raise ValueError(f"{name} must be 1 to {max_length} bytes")
        return value

    _check_count(credential.sign_count)
    transports = " ".join(credential.transports)
    if len(transports) > _TRANSPORTS_LENGTH or any(
        not t or " " in t for t in credential.transports
    ):
        raise ValueError("transports cannot be stored")
    if not isinstance(credential.aaguid, str) or len(credential.aaguid) > 36:
        raise ValueError("aaguid must be a UUID string")
    return {
        "credential_key": credential.key,
        "credential_id": check_bytes("credential_id", credential.credential_id, _MAX_CREDENTIAL_ID),
        "user_id": storable("user_id", credential.user_id, _USER_LENGTH),
        "user_handle": check_bytes("user_handle", credential.user_handle, _MAX_HANDLE),
        "public_key": check_bytes("public_key", credential.public_key, _MAX_PUBLIC_KEY),
        "sign_count": credential.sign_count,
        "transports": transports,
        "aaguid": credential.aaguid,
        "backup_eligible": bool(credential.backup_eligible),
        "backed_up": bool(credential.backed_up),
        "name": storable("name", credential.name, _NAME_LENGTH),
        "created_at": ensure_aware_utc(credential.created_at),
        "last_used_at": _aware_or_none(credential.last_used_at),
        "flagged_at": _aware_or_none(credential.flagged_at),
    }


def _credential_of(row: sa.Row[Any]) -> PasskeyCredential:
    """Build a credential from a row, refusing values the library never writes."""
    credential_id = _bytes_of(row.credential_id, _MAX_CREDENTIAL_ID, "bad_credential_id")
    if credential_key(credential_id) != row.credential_key:
        raise CorruptRecordError(reason="bad_credential_key")
    if not isinstance(row.user_id, str) or not row.user_id:
        raise CorruptRecordError(reason="bad_user_id")
    count = row.sign_count
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        raise CorruptRecordError(reason="bad_sign_count")
    if not isinstance(row.transports, str) or not isinstance(row.aaguid, str):
        raise CorruptRecordError(reason="bad_text")
    if not isinstance(row.name, str) or not row.name:
        raise CorruptRecordError(reason="bad_name")
    return PasskeyCredential(
        credential_id=credential_id,
        user_id=row.user_id,
        user_handle=_handle_of(row.user_handle),
        public_key=_bytes_of(row.public_key, _MAX_PUBLIC_KEY, "bad_public_key"),
        sign_count=count,
        transports=tuple(row.transports.split()),
        aaguid=row.aaguid,
        backup_eligible=bool(row.backup_eligible),
        backed_up=bool(row.backed_up),
        name=row.name,
        created_at=_required_time(row.created_at),
        last_used_at=_optional_time(row.last_used_at),
        flagged_at=_optional_time(row.flagged_at),
    )
