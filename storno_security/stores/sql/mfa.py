"""SQL stores of the MFA capability. The TOTP replay guard, challenges, step-up tokens and
failure counts are the shared adapters on ``storno_records``; backup codes are bespoke.

:class:`SqlTotpReplayStore`, :class:`SqlBackupCodeStore`, :class:`SqlMfaChallengeStore`,
:class:`SqlStepUpStore` and :class:`SqlMfaFailureStore` implement the protocols of
:mod:`storno_security.mfa.storage`. Import them from :mod:`storno_security.stores.sql`.

Backup codes belong to a *set*: a row per user in ``storno_mfa_backup_code_sets`` names the
current set, and only its codes count. Replacing the set rewrites that row first, so concurrent
replacements queue on its lock and exactly one set (the last) is ever valid. Using a code is a
conditional ``UPDATE ... WHERE <unused, current set>`` whose row count names the one winner.
(Bespoke: a set is replaced whole, and the codes live until then, which no expiring record is.)
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storno_security.clock import ensure_aware_utc
from storno_security.mfa.storage import StoredBackupCode
from storno_security.stores._adapters import MfaChallenges, MfaFailures, StepUps, TotpReplay
from storno_security.stores._records import storable
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _USER_LENGTH,
    _check_key,
    _count_of,
    _ExactString,
    _SqlStore,
    _text_of,
    _transaction,
    _upsert_update,
    _UtcDateTime,
    metadata,
)
from storno_security.stores.sql._records import SqlRecords

__all__ = [
    "SqlBackupCodeStore",
    "SqlMfaChallengeStore",
    "SqlMfaFailureStore",
    "SqlStepUpStore",
    "SqlTotpReplayStore",
    "mfa_backup_code_sets",
    "mfa_backup_codes",
]

_HASH_LENGTH = 255  # a bcrypt hash of the passwords module is 83 characters
_NAME_LENGTH = 64  # methods lists, action names, method names
_NONCE_LENGTH = 32

mfa_backup_code_sets = sa.Table(
    "storno_mfa_backup_code_sets",
    metadata,
    sa.Column("user_id", _ExactString(_USER_LENGTH), primary_key=True),
    sa.Column("set_id", _ExactString(_ID_LENGTH), nullable=False),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    mysql_engine="InnoDB",
)

mfa_backup_codes = sa.Table(
    "storno_mfa_backup_codes",
    metadata,
    sa.Column("code_id", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False),
    sa.Column("set_id", _ExactString(_ID_LENGTH), nullable=False),
    sa.Column("hint", _ExactString(4), nullable=False),
    sa.Column("code_hash", _ExactString(_HASH_LENGTH), nullable=False),
    sa.Column("used_at", _UtcDateTime(), nullable=True),
    sa.Index("ix_storno_mfa_backup_codes_user_hint", "user_id", "hint"),
    mysql_engine="InnoDB",
)

_BS = mfa_backup_code_sets.c
_B = mfa_backup_codes.c


# --- backup codes ----------------------------------------------------------------------------


def _code_of(row: Any) -> StoredBackupCode:
    return StoredBackupCode(
        code_id=_text_of(row.code_id, "bad_code_id"),
        hint=_text_of(row.hint, "bad_hint"),
        code_hash=_text_of(row.code_hash, "bad_code_hash"),
    )


class SqlBackupCodeStore(_SqlStore):
    """Backup-code hashes in ``storno_mfa_backup_code_sets`` and ``storno_mfa_backup_codes``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    @staticmethod
    def _current_set(user_id: str) -> Any:
        return sa.select(_BS.set_id).where(_BS.user_id == user_id).scalar_subquery()

    def replace_codes(
        self, user_id: str, codes: Sequence[StoredBackupCode], *, now: datetime
    ) -> None:
        """See :meth:`BackupCodeStore.replace_codes`: one transaction that first rewrites
        the user's set row, so concurrent replacements queue."""
        user_id = storable("user_id", user_id, _USER_LENGTH)
        now = ensure_aware_utc(now)
        set_id = secrets.token_hex(16)
        rows = []
        for code in codes:
            if not isinstance(code, StoredBackupCode):
                raise TypeError("codes must be StoredBackupCode instances")
            rows.append(
                {
                    "code_id": storable("code_id", code.code_id, _ID_LENGTH),
                    "user_id": user_id,
                    "set_id": set_id,
                    "hint": storable("hint", code.hint, 4),
                    "code_hash": storable("code_hash", code.code_hash, _HASH_LENGTH),
                    "used_at": None,
                }
            )
        values = {"user_id": user_id, "set_id": set_id, "created_at": now}
        with _transaction(self._engine, duplicate=True) as conn:
            statement = _upsert_update(
                conn.dialect.name,
                mfa_backup_code_sets,
                values,
                lambda new: [("set_id", new.set_id), ("created_at", new.created_at)],
            )
            conn.execute(statement)  # takes the user's set-row lock until commit
            conn.execute(sa.delete(mfa_backup_codes).where(_B.user_id == user_id))
            if rows:
                conn.execute(sa.insert(mfa_backup_codes), rows)
            else:
                conn.execute(sa.delete(mfa_backup_code_sets).where(_BS.user_id == user_id))

    def forget_user(self, user_id: str) -> int:
        """See :meth:`BackupCodeStore.forget_user`."""
        user_id = _check_key("user_id", user_id)
        if not user_id:  # empty or unstorable: no such user
            return 0
        with _transaction(self._engine) as conn:
            count = conn.execute(sa.delete(mfa_backup_codes).where(_B.user_id == user_id)).rowcount
            sets = conn.execute(sa.delete(mfa_backup_code_sets).where(_BS.user_id == user_id))
            return int(count + sets.rowcount)

    def find_code(self, user_id: str, hint: str) -> StoredBackupCode | None:
        """See :meth:`BackupCodeStore.find_code`."""
        user_id = _check_key("user_id", user_id)
        hint = _check_key("hint", hint)
        query = sa.select(_B.code_id, _B.hint, _B.code_hash).where(
            _B.user_id == user_id,
            _B.hint == hint,
            _B.used_at.is_(None),
            _B.set_id == self._current_set(user_id),
        )
        return self._read_one(query, _code_of)

    def use_code(self, user_id: str, code_id: str, *, now: datetime) -> bool:
        """See :meth:`BackupCodeStore.use_code`: one conditional ``UPDATE``."""
        user_id = _check_key("user_id", user_id)
        code_id = _check_key("code_id", code_id)
        now = ensure_aware_utc(now)
        statement = (
            sa.update(mfa_backup_codes)
            .where(
                _B.code_id == code_id,
                _B.user_id == user_id,
                _B.used_at.is_(None),
                _B.set_id == self._current_set(user_id),
            )
            .values(used_at=now)
        )
        return self._change_one(statement)

    def count_unused(self, user_id: str) -> int:
        """See :meth:`BackupCodeStore.count_unused`."""
        user_id = _check_key("user_id", user_id)
        query = sa.select(sa.func.count()).where(
            _B.user_id == user_id,
            _B.used_at.is_(None),
            _B.set_id == self._current_set(user_id),
        )
        return self._read_one(query, lambda row: _count_of(row[0])) or 0


class SqlTotpReplayStore(TotpReplay):
    """The last accepted TOTP step of each user, in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))


class SqlMfaChallengeStore(MfaChallenges):
    """MFA login challenges in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))


class SqlStepUpStore(StepUps):
    """Step-up verification tokens in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))


class SqlMfaFailureStore(MfaFailures):
    """Per-user counts of second-factor attempts in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))
