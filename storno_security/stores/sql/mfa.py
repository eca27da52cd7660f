"""SQL stores of the MFA capability: TOTP replay guard, backup codes, challenges, step-up tokens,
per-user failure counts.

:class:`SqlTotpReplayStore`, :class:`SqlBackupCodeStore`, :class:`SqlMfaChallengeStore`,
:class:`SqlStepUpStore` and :class:`SqlMfaFailureStore` implement the protocols of
:mod:`storno_security.mfa.storage`. Import them from :mod:`storno_security.stores.sql`.

Every "exactly once" is one conditional statement whose row count says who won:

* a TOTP step: an upsert that writes only if the stored step is earlier (``INSERT ... ON
  CONFLICT DO UPDATE ... WHERE`` on PostgreSQL and SQLite; on MariaDB/MySQL, whose affected-row
  count cannot tell an insert from an unchanged row, ``INSERT ... ON DUPLICATE KEY UPDATE`` writes
  the caller's random nonce only when it moves the step, and the caller reads the nonce back
  under the row lock its own statement holds);
* a backup code, a challenge, a step-up token: ``UPDATE ... WHERE <still unused/live>``;
* a second-factor attempt (the per-user limit on wrong codes): one upsert that adds one to a
  live window's count or starts a new window (``INSERT ... ON CONFLICT DO UPDATE SET failures =
  CASE WHEN <live> ...``; ``ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL), then a read of the
  count under the row lock that statement holds.

Backup codes belong to a *set*: a row per user in ``storno_mfa_backup_code_sets`` names the
current set, and only its codes count. Replacing the set rewrites that row first, so concurrent
replacements queue on its lock and exactly one set (the last) is ever valid.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.mfa.storage import (
    FailureCount,
    StoredBackupCode,
    StoredChallenge,
    StoredStepUp,
    _check_window,
)
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _MYSQL_DIALECTS,
    _USER_LENGTH,
    _check_key,
    _check_text,
    _count_of,
    _ExactString,
    _existing_row,
    _ExpiringStore,
    _fetch_one,
    _required_time,
    _SqlStore,
    _text_of,
    _transaction,
    _upsert,
    _upsert_update,
    _UtcDateTime,
    metadata,
)

__all__ = [
    "SqlBackupCodeStore",
    "SqlMfaChallengeStore",
    "SqlMfaFailureStore",
    "SqlStepUpStore",
    "SqlTotpReplayStore",
    "mfa_backup_code_sets",
    "mfa_backup_codes",
    "mfa_challenges",
    "mfa_failures",
    "mfa_step_up_tokens",
    "mfa_totp_steps",
]

_HASH_LENGTH = 255  # a bcrypt hash of the passwords module is 83 characters
_NAME_LENGTH = 64  # methods lists, action names, method names
_NONCE_LENGTH = 32

mfa_totp_steps = sa.Table(
    "storno_mfa_totp_steps",
    metadata,
    sa.Column("user_id", _ExactString(_USER_LENGTH), primary_key=True),
    sa.Column("last_step", sa.BigInteger(), nullable=False),
    sa.Column("until", _UtcDateTime(), nullable=False, index=True),
    sa.Column("nonce", _ExactString(_NONCE_LENGTH), nullable=False),
    mysql_engine="InnoDB",
)

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

mfa_challenges = sa.Table(
    "storno_mfa_challenges",
    metadata,
    sa.Column("token_hash", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False),
    sa.Column("methods", _ExactString(_NAME_LENGTH), nullable=False),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=False, index=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("max_failures", sa.Integer(), nullable=False),
    sa.Column("consumed_at", _UtcDateTime(), nullable=True),
    mysql_engine="InnoDB",
)

mfa_step_up_tokens = sa.Table(
    "storno_mfa_step_up_tokens",
    metadata,
    sa.Column("token_hash", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False),
    sa.Column("action", _ExactString(_NAME_LENGTH), nullable=False),
    sa.Column("method", _ExactString(_NAME_LENGTH), nullable=False),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=False, index=True),
    sa.Column("used_at", _UtcDateTime(), nullable=True),
    mysql_engine="InnoDB",
)

mfa_failures = sa.Table(
    "storno_mfa_failures",
    metadata,
    sa.Column("user_id", _ExactString(_USER_LENGTH), primary_key=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("window_ends_at", _UtcDateTime(), nullable=False, index=True),
    mysql_engine="InnoDB",
)

_S = mfa_totp_steps.c
_BS = mfa_backup_code_sets.c
_B = mfa_backup_codes.c
_C = mfa_challenges.c
_U = mfa_step_up_tokens.c
_F = mfa_failures.c


# --- TOTP replay -----------------------------------------------------------------------------


class SqlTotpReplayStore(_ExpiringStore):
    """The last accepted TOTP step of each user, in ``storno_mfa_totp_steps``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    _expiry = _S.until

    def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
        """Atomically make ``step`` the user's last accepted step if it is later than the
        stored one; see the module docstring for the statement per dialect.

        Returns:
            Whether the step was recorded (``False``: a replay).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` is empty or too long, ``step`` negative, or a time naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: the stored row is malformed.
        """
        user_id = _check_text("user_id", user_id, _USER_LENGTH)
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError("step must be an int")
        if step < 0:
            raise ValueError("step must not be negative")
        ensure_aware_utc(now)
        until = ensure_aware_utc(until)
        nonce = secrets.token_hex(_NONCE_LENGTH // 2)
        values = {"user_id": user_id, "last_step": step, "until": until, "nonce": nonce}
        with _transaction(self._engine) as conn:
            dialect = conn.dialect.name
            upsert = _upsert(dialect, mfa_totp_steps, values)
            if dialect in _MYSQL_DIALECTS:
                later = _S.last_step < upsert.inserted.last_step
                # MySQL applies the assignments left to right: last_step must come last.
                statement = upsert.on_duplicate_key_update(
                    [
                        ("nonce", sa.func.if_(later, upsert.inserted.nonce, _S.nonce)),
                        ("until", sa.func.if_(later, upsert.inserted.until, _S.until)),
                        ("last_step", sa.func.if_(later, upsert.inserted.last_step, _S.last_step)),
                    ]
                )
                conn.execute(statement)
                row = _existing_row(conn, sa.select(_S.nonce).where(_S.user_id == user_id))
                return bool(row.nonce == nonce)
            statement = upsert.on_conflict_do_update(
                index_elements=[_S.user_id],
                set_={
                    "last_step": upsert.excluded.last_step,
                    "until": upsert.excluded.until,
                    "nonce": upsert.excluded.nonce,
                },
                where=_S.last_step < upsert.excluded.last_step,
            )
            # SQLAlchemy reports an INSERT's row count only when asked to
            written = conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount
            if written not in (0, 1):
                raise CorruptRecordError(reason="duplicate_row")
            return written == 1


# --- backup codes ----------------------------------------------------------------------------


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
        """Replace the user's whole set with ``codes`` (empty: delete the set), in one
        transaction that first rewrites the user's set row, so concurrent replacements queue.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a value is empty or too long, or ``now`` is naive.
            StoreError: a code id exists already (``reason="duplicate"``), or the database
                failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
        """
        user_id = _check_text("user_id", user_id, _USER_LENGTH)
        now = ensure_aware_utc(now)
        set_id = secrets.token_hex(16)
        rows = []
        for code in codes:
            if not isinstance(code, StoredBackupCode):
                raise TypeError("codes must be StoredBackupCode instances")
            rows.append(
                {
                    "code_id": _check_text("code_id", code.code_id, _ID_LENGTH),
                    "user_id": user_id,
                    "set_id": set_id,
                    "hint": _check_text("hint", code.hint, 4),
                    "code_hash": _check_text("code_hash", code.code_hash, _HASH_LENGTH),
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

    def find_code(self, user_id: str, hint: str) -> StoredBackupCode | None:
        """Return the user's unused code of the current set with this hint, or ``None``.

        Raises:
            TypeError: an argument is not a str.
            StoreError: the database failed.
            StoreUnavailableError: the database could not be reached.
            CorruptRecordError: the row is malformed, or two unused codes share the hint.
        """
        user_id = _check_key("user_id", user_id)
        hint = _check_key("hint", hint)
        query = sa.select(_B.code_id, _B.hint, _B.code_hash).where(
            _B.user_id == user_id,
            _B.hint == hint,
            _B.used_at.is_(None),
            _B.set_id == self._current_set(user_id),
        )
        with _transaction(self._engine, read_only=True) as conn:
            row = _fetch_one(conn.execute(query))
        if row is None:
            return None
        return StoredBackupCode(
            code_id=_text_of(row.code_id, "bad_code_id"),
            hint=_text_of(row.hint, "bad_hint"),
            code_hash=_text_of(row.code_hash, "bad_code_hash"),
        )

    def use_code(self, user_id: str, code_id: str, *, now: datetime) -> bool:
        """Mark the code used with one conditional ``UPDATE``; ``True`` for the one winner.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: more than one row matched.
        """
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
        """How many unused codes of the current set the user has.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the database failed.
            StoreUnavailableError: the database could not be reached.
        """
        user_id = _check_key("user_id", user_id)
        query = sa.select(sa.func.count()).where(
            _B.user_id == user_id,
            _B.used_at.is_(None),
            _B.set_id == self._current_set(user_id),
        )
        with _transaction(self._engine, read_only=True) as conn:
            row = _fetch_one(conn.execute(query))
        return 0 if row is None else _count_of(row[0])


# --- challenges ------------------------------------------------------------------------------


def _challenge_of(row: sa.Row[Any]) -> StoredChallenge:
    methods = _text_of(row.methods, "bad_methods")
    return StoredChallenge(
        token_hash=_text_of(row.token_hash, "bad_token_hash"),
        user_id=_text_of(row.user_id, "bad_user_id"),
        methods=tuple(methods.split(",")),
        created_at=_required_time(row.created_at),
        expires_at=_required_time(row.expires_at),
        max_failures=_count_of(row.max_failures),
        failures=_count_of(row.failures),
    )


def _check_methods(methods: object) -> str:
    if not isinstance(methods, tuple) or not methods:
        raise TypeError("methods must be a non-empty tuple")
    for method in methods:
        if not isinstance(method, str) or not method or "," in method:
            raise ValueError("each method must be a non-empty str without commas")
    return _check_text("methods", ",".join(methods), _NAME_LENGTH)


class SqlMfaChallengeStore(_ExpiringStore):
    """MFA login challenges in ``storno_mfa_challenges``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    _expiry = _C.expires_at

    @staticmethod
    def _live(token_hash: str, now: datetime) -> tuple[Any, ...]:
        return (
            _C.token_hash == token_hash,
            _C.consumed_at.is_(None),
            _C.failures < _C.max_failures,
            _C.expires_at > now,
        )

    def create_challenge(self, challenge: StoredChallenge) -> None:
        """Store a new challenge.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a value is empty, too long or negative, or a time is naive.
            StoreError: the token hash exists already (``reason="duplicate"``), or the database
                failed; nothing was written.
            StoreUnavailableError: the database could not be reached.
        """
        if not isinstance(challenge, StoredChallenge):
            raise TypeError("challenge must be a StoredChallenge")
        for name in ("max_failures", "failures"):
            value = getattr(challenge, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int")
        values = {
            "token_hash": _check_text("token_hash", challenge.token_hash, _ID_LENGTH),
            "user_id": _check_text("user_id", challenge.user_id, _USER_LENGTH),
            "methods": _check_methods(challenge.methods),
            "created_at": ensure_aware_utc(challenge.created_at),
            "expires_at": ensure_aware_utc(challenge.expires_at),
            "failures": challenge.failures,
            "max_failures": challenge.max_failures,
            "consumed_at": None,
        }
        self._insert(mfa_challenges, values)

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """Return the challenge if it is live, else ``None``.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed.
            StoreUnavailableError: the database could not be reached.
            CorruptRecordError: the row is malformed.
        """
        token_hash = _check_key("token_hash", token_hash)
        now = ensure_aware_utc(now)
        query = sa.select(mfa_challenges).where(*self._live(token_hash, now))
        with _transaction(self._engine, read_only=True) as conn:
            row = _fetch_one(conn.execute(query))
        return None if row is None else _challenge_of(row)

    def record_failure(self, token_hash: str, *, now: datetime) -> int | None:
        """Count one failure with ``UPDATE ... SET failures = failures + 1 WHERE <live>``, and
        read the new count under the row lock that statement holds.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: the row is malformed.
        """
        token_hash = _check_key("token_hash", token_hash)
        now = ensure_aware_utc(now)
        statement = (
            sa.update(mfa_challenges)
            .where(*self._live(token_hash, now))
            .values(failures=_C.failures + 1)
        )
        return self._change_one_then_read(
            statement,
            sa.select(_C.failures).where(_C.token_hash == token_hash),
            lambda row: _count_of(row.failures),
        )

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """End a live challenge with one conditional ``UPDATE``; the one winner gets it.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: the row is malformed.
        """
        token_hash = _check_key("token_hash", token_hash)
        now = ensure_aware_utc(now)
        statement = (
            sa.update(mfa_challenges).where(*self._live(token_hash, now)).values(consumed_at=now)
        )
        return self._change_one_then_read(
            statement, sa.select(mfa_challenges).where(_C.token_hash == token_hash), _challenge_of
        )


# --- step-up tokens --------------------------------------------------------------------------


class SqlStepUpStore(_ExpiringStore):
    """Step-up verification tokens in ``storno_mfa_step_up_tokens``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    _expiry = _U.expires_at

    def create_grant(self, grant: StoredStepUp) -> None:
        """Store a new step-up token.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a value is empty or too long, or a time is naive.
            StoreError: the token hash exists already (``reason="duplicate"``), or the database
                failed; nothing was written.
            StoreUnavailableError: the database could not be reached.
        """
        if not isinstance(grant, StoredStepUp):
            raise TypeError("grant must be a StoredStepUp")
        values = {
            "token_hash": _check_text("token_hash", grant.token_hash, _ID_LENGTH),
            "user_id": _check_text("user_id", grant.user_id, _USER_LENGTH),
            "action": _check_text("action", grant.action, _NAME_LENGTH),
            "method": _check_text("method", grant.method, _NAME_LENGTH),
            "created_at": ensure_aware_utc(grant.created_at),
            "expires_at": ensure_aware_utc(grant.expires_at),
            "used_at": None,
        }
        self._insert(mfa_step_up_tokens, values)

    def consume_grant(
        self, token_hash: str, *, user_id: str, action: str, now: datetime
    ) -> StoredStepUp | None:
        """Use the token with one conditional ``UPDATE`` (unused, unexpired, this user and
        action); the one winner gets the grant.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: the row is malformed.
        """
        token_hash = _check_key("token_hash", token_hash)
        user_id = _check_key("user_id", user_id)
        action = _check_key("action", action)
        now = ensure_aware_utc(now)
        statement = (
            sa.update(mfa_step_up_tokens)
            .where(
                _U.token_hash == token_hash,
                _U.user_id == user_id,
                _U.action == action,
                _U.used_at.is_(None),
                _U.expires_at > now,
            )
            .values(used_at=now)
        )
        row = self._change_one_then_read(
            statement,
            sa.select(mfa_step_up_tokens).where(_U.token_hash == token_hash),
            lambda row: row,  # the record is built after the commit
        )
        if row is None:
            return None
        return StoredStepUp(
            token_hash=_text_of(row.token_hash, "bad_token_hash"),
            user_id=_text_of(row.user_id, "bad_user_id"),
            action=_text_of(row.action, "bad_action"),
            method=_text_of(row.method, "bad_method"),
            created_at=_required_time(row.created_at),
            expires_at=_required_time(row.expires_at),
        )


# --- per-user failure counts -----------------------------------------------------------------


class SqlMfaFailureStore(_ExpiringStore):
    """Per-user counts of second-factor attempts in ``storno_mfa_failures``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    _expiry = _F.window_ends_at

    def record_attempt(
        self, user_id: str, *, now: datetime, window_ends_at: datetime
    ) -> FailureCount:
        """Count one attempt with one upsert: a live window (``window_ends_at > now``) gets one
        more, anything else (no row, or a window that has ended) becomes a new window with a
        count of 1. The count is then read under the row lock the upsert holds, so concurrent
        attempts each read their own.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` is empty or too long, a time is naive, or the window empty.
            StoreError: the database failed; nothing was counted.
            StoreUnavailableError: the database could not be reached; nothing was counted.
            CorruptRecordError: the stored row is malformed.
        """
        user_id = _check_text("user_id", user_id, _USER_LENGTH)
        now, window_ends_at = _check_window(now, window_ends_at)
        values = {"user_id": user_id, "failures": 1, "window_ends_at": window_ends_at}
        live = _F.window_ends_at > sa.literal(now, _UtcDateTime())
        with _transaction(self._engine) as conn:
            # failures comes first: on MySQL it must read the old window.
            statement = _upsert_update(
                conn.dialect.name,
                mfa_failures,
                values,
                lambda new: [
                    ("failures", sa.case((live, _F.failures + 1), else_=new.failures)),
                    (
                        "window_ends_at",
                        sa.case((live, _F.window_ends_at), else_=new.window_ends_at),
                    ),
                ],
            )
            conn.execute(statement)
            row = _existing_row(
                conn, sa.select(_F.failures, _F.window_ends_at).where(_F.user_id == user_id)
            )
        return FailureCount(
            failures=_count_of(row.failures), window_ends_at=_required_time(row.window_ends_at)
        )

    def clear_failures(self, user_id: str) -> None:
        """Delete the user's row (one ``DELETE``).

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the database failed; the count stays.
            StoreUnavailableError: the database could not be reached; the count stays.
        """
        user_id = _check_key("user_id", user_id)
        self._delete(mfa_failures, _F.user_id == user_id)
