"""SQL store of the accounts capability: the ``storno_password_reset_tokens`` table (and
``storno_password_reset_users``, one lock row per user).

:class:`SqlResetTokenStore` implements :class:`~storno_security.accounts.ResetTokenStore`. Import
it from :mod:`storno_security.stores.sql`.

A row holds the SHA-256 of a token, never the token (ACC-2). Using a token is one transaction
whose conditional ``DELETE ... WHERE token_hash = ? AND expires_at > now`` decides, by its row
count, the one winner among concurrent callers; the winner then deletes every other row of the
user in the same transaction.

Every transaction that writes a user's tokens (issuing, using, revoking) first takes the user's
lock row in ``storno_password_reset_users`` (an upsert, which locks the row it inserts or
finds), so those transactions queue per user: issuing trims the user's live tokens to exactly
``max_active`` however many issues run at once, and two uses of sibling tokens cannot deadlock
on each other's rows. A lock row holds nothing but the user id; :meth:`revoke_all` deletes it.
(SQLite has no row locks: ``BEGIN IMMEDIATE`` queues every writer.)

Tokens are ordered by ``created_at`` and then ``id``, an auto-increment that breaks ties between
tokens issued in the same microsecond (or under a frozen clock).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from storno_security.accounts.storage import ResetTokenUse, _check_max_active
from storno_security.clock import ensure_aware_utc
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _USER_LENGTH,
    _changed_one,
    _check_key,
    _check_text,
    _count_of,
    _ExactString,
    _fetch,
    _fetch_one,
    _required_time,
    _SqlStore,
    _text_of,
    _transaction,
    _upsert_update,
    _UtcDateTime,
    metadata,
)

__all__ = ["SqlResetTokenStore", "password_reset_tokens", "password_reset_users"]

password_reset_tokens = sa.Table(
    "storno_password_reset_tokens",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),  # SQLite: the rowid
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("token_hash", _ExactString(_ID_LENGTH), nullable=False, unique=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=False, index=True),
    sa.Index("ix_storno_password_reset_tokens_user", "user_id", "created_at", "id"),
    mysql_engine="InnoDB",
)

password_reset_users = sa.Table(
    "storno_password_reset_users",
    metadata,
    sa.Column("user_id", _ExactString(_USER_LENGTH), primary_key=True),
    mysql_engine="InnoDB",
)

_T = password_reset_tokens.c


def _lock_user(conn: sa.Connection, user_id: str) -> None:
    """Take the user's lock row until the transaction ends: insert it, or, if it exists, make
    a no-op update of it (``ON CONFLICT DO UPDATE``; ``ON DUPLICATE KEY UPDATE`` on
    MariaDB/MySQL), which locks it all the same."""
    statement = _upsert_update(
        conn.dialect.name,
        password_reset_users,
        {"user_id": user_id},
        lambda new: [("user_id", new.user_id)],
    )
    conn.execute(statement)


def _user_rows(conn: sa.Connection, user_id: str) -> list[tuple[int, datetime]]:
    """The user's token rows as ``(id, expires_at)``, newest first."""
    query = (
        sa.select(_T.id, _T.expires_at)
        .where(_T.user_id == user_id)
        .order_by(_T.created_at.desc(), _T.id.desc())
    )
    return [
        (_count_of(row.id, "bad_id"), _required_time(row.expires_at))
        for row in _fetch(conn.execute(query))
    ]


class SqlResetTokenStore(_SqlStore):
    """Password-reset token hashes in the ``storno_password_reset_tokens`` table.

    Args:
        engine: an engine from :func:`~storno_security.stores.sql.create_engine` whose schema
            exists (:func:`~storno_security.stores.sql.create_schema`).
    """

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
    ) -> None:
        """Insert the token and trim the user's rows, in one transaction under the user's lock
        row: the user's rows dead at ``created_at`` are deleted, and the live ones but the
        ``max_active`` newest.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: the hash or user id is empty or too long, a time is naive,
                ``max_active`` is out of range, or the token would expire before it is created.
            StoreError: the hash exists already (``reason="duplicate"``), or the database
                failed; nothing was written.
            StoreUnavailableError: the database could not be reached; nothing was written.
            CorruptRecordError: a row of the user is malformed; nothing was written.
        """
        token_hash = _check_text("token_hash", token_hash, _ID_LENGTH)
        user_id = _check_text("user_id", user_id, _USER_LENGTH)
        created_at = ensure_aware_utc(created_at)
        expires_at = ensure_aware_utc(expires_at)
        if not created_at < expires_at:
            raise ValueError("expires_at must be after created_at")
        max_active = _check_max_active(max_active)
        values = {
            "token_hash": token_hash,
            "user_id": user_id,
            "created_at": created_at,
            "expires_at": expires_at,
        }
        with _transaction(self._engine, duplicate=True) as conn:
            _lock_user(conn, user_id)
            conn.execute(sa.insert(password_reset_tokens).values(**values))
            rows = _user_rows(conn, user_id)
            live = [row_id for row_id, end in rows if created_at < end]
            dropped = [row_id for row_id, end in rows if not created_at < end]
            dropped += live[max_active:]
            if dropped:
                conn.execute(sa.delete(password_reset_tokens).where(_T.id.in_(dropped)))

    def consume(self, token_hash: str, *, now: datetime) -> ResetTokenUse:
        """Use a live token with one conditional ``DELETE`` (the row count names the one
        winner), then delete every other row of its user, in one transaction.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
            CorruptRecordError: the row is malformed; nothing changed.
        """
        token_hash = _check_key("token_hash", token_hash)
        now = ensure_aware_utc(now)
        with _transaction(self._engine) as conn:
            row = _fetch_one(
                conn.execute(
                    sa.select(_T.user_id, _T.expires_at).where(_T.token_hash == token_hash)
                )
            )
            if row is None:
                return ResetTokenUse()
            user_id = _text_of(row.user_id, "bad_user_id")
            expires_at = _required_time(row.expires_at)
            _lock_user(conn, user_id)
            use = sa.delete(password_reset_tokens).where(
                _T.token_hash == token_hash, _T.expires_at > now
            )
            if not _changed_one(conn, use):
                # lost to a concurrent use, or not live: only the reason differs
                return ResetTokenUse(expired=not now < expires_at)
            conn.execute(sa.delete(password_reset_tokens).where(_T.user_id == user_id))
            return ResetTokenUse(user_id=user_id)

    def revoke_all(self, user_id: str) -> int:
        """Delete every token of the user, and its lock row, in one transaction.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the database failed; nothing changed.
            StoreUnavailableError: the database could not be reached; nothing changed.
        """
        user_id = _check_key("user_id", user_id)
        if not user_id:  # empty, or unstorable: no such user (and no lock row to write)
            return 0
        with _transaction(self._engine) as conn:
            _lock_user(conn, user_id)
            deleted: int = conn.execute(
                sa.delete(password_reset_tokens).where(_T.user_id == user_id)
            ).rowcount
            conn.execute(
                sa.delete(password_reset_users).where(password_reset_users.c.user_id == user_id)
            )
            return deleted

    def purge_expired(self, *, now: datetime) -> int:
        """Delete the rows whose ``expires_at`` is not after ``now``; one ``DELETE``.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
            StoreError: the database failed; nothing was deleted.
            StoreUnavailableError: the database could not be reached; nothing was deleted.
        """
        now = ensure_aware_utc(now)
        return self._delete(password_reset_tokens, _T.expires_at <= now)
