"""SQL stores of the token capability: refresh-token families and session state.

:class:`SqlRefreshFamilyStore` and :class:`SqlSessionStateStore` implement
:class:`~storno_security.tokens.storage.RefreshFamilyStore` and
:class:`~storno_security.tokens.storage.SessionStateStore`. Import them from
:mod:`storno_security.stores.sql`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.stores._adapters import SessionStates, _epoch
from storno_security.stores._records import storable
from storno_security.stores.sql._base import (
    _ID_LENGTH,
    _USER_LENGTH,
    _changed_each,
    _changed_one,
    _check_key,
    _ExactString,
    _fetch_one,
    _optional_time,
    _Reader,
    _required_time,
    _SqlStore,
    _text_of,
    _transaction,
    _UtcDateTime,
    metadata,
)
from storno_security.stores.sql._records import SqlRecords, records
from storno_security.tokens.storage import RefreshFamily, Rotation, RotationOutcome, SessionState

__all__ = [
    "SESSION_STATE_COLUMNS",
    "SqlRefreshFamilyStore",
    "SqlSessionStateStore",
    "refresh_families",
    "refresh_tokens",
    "session_state_of",
    "session_state_params",
]

refresh_families = sa.Table(
    "storno_refresh_families",
    metadata,
    sa.Column("family_id", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column("user_id", _ExactString(_USER_LENGTH), nullable=False, index=True),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=False, index=True),
    sa.Column("revoked_at", _UtcDateTime(), nullable=True),
    mysql_engine="InnoDB",
)

refresh_tokens = sa.Table(
    "storno_refresh_tokens",
    metadata,
    sa.Column("token_hash", _ExactString(_ID_LENGTH), primary_key=True),
    sa.Column(
        "family_id",
        _ExactString(_ID_LENGTH),
        sa.ForeignKey(refresh_families.c.family_id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("used_at", _UtcDateTime(), nullable=True),
    # the token its rotation made (schema version 2): a retry within the grace may replace it
    sa.Column("successor_hash", _ExactString(_ID_LENGTH), nullable=True),
    mysql_engine="InnoDB",
)


def _family_of(row: Any) -> RefreshFamily:
    """Build a family from a row, refusing values the library never writes."""
    if row.family_id is None:  # a token without its family
        raise CorruptRecordError(reason="orphan_token")
    return RefreshFamily(
        family_id=_text_of(row.family_id, "bad_family_id"),
        user_id=_text_of(row.user_id, "bad_user_id"),
        created_at=_required_time(row.created_at),
        expires_at=_required_time(row.expires_at),
    )


def _new_token(token_hash: str, family_id: str) -> sa.Insert:
    """``INSERT`` a live token of the family."""
    return sa.insert(refresh_tokens).values(token_hash=token_hash, family_id=family_id)


_F = refresh_families.c
_T = refresh_tokens.c
_REC = records.c

# The per-request read of SqlSessionStateStore, built once: the epoch record and whether the
# marker record exists, in one SELECT.
#: The session state's two columns (``epoch``, ``revoked``), bound by ``epochs``, ``markers``,
#: ``user_id`` and ``session_id``: a ``SELECT`` of their own, or beside other columns.
SESSION_STATE_COLUMNS: Final = (
    sa.select(_REC.number)
    .where(_REC.namespace == sa.bindparam("epochs"), _REC.record_key == sa.bindparam("user_id"))
    .scalar_subquery()
    .label("epoch"),
    sa.exists()
    .where(_REC.namespace == sa.bindparam("markers"), _REC.record_key == sa.bindparam("session_id"))
    .label("revoked"),
)
_SESSION_STATE = sa.select(*SESSION_STATE_COLUMNS)


def session_state_params(user_id: str, session_id: str) -> dict[str, str]:
    """The bound values of :data:`SESSION_STATE_COLUMNS` (arguments checked as lookup keys).

    Raises:
        TypeError: an argument is not a str.
    """
    return {
        "epochs": "epoch",
        "markers": "revoked",
        "user_id": _check_key("user_id", user_id),
        "session_id": _check_key("session_id", session_id),
    }


def session_state_of(row: Any) -> SessionState:
    """The session state of a row with :data:`SESSION_STATE_COLUMNS`."""
    epoch = row.epoch
    if row.revoked is None or isinstance(epoch, bool) or not isinstance(epoch, int | None):
        raise CorruptRecordError(reason="bad_epoch")
    return SessionState(epoch=0 if epoch is None else _epoch(epoch), revoked=bool(row.revoked))


def _revoke_family(family_id: str, now: datetime) -> sa.Update:
    """``UPDATE`` one family to revoked, if it is not already."""
    return (
        sa.update(refresh_families)
        .where(_F.family_id == family_id, _F.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _claim(*, by_user: bool) -> sa.Update:
    """The rotation's conditional ``UPDATE`` (bound: ``presented``, ``now``, ``successor`` and,
    ``by_user``, ``user``), built once: statements built per call cost more than the database's
    own work on SQLite."""
    live = sa.select(_F.family_id).where(
        _F.revoked_at.is_(None), _F.expires_at > sa.bindparam("now")
    )
    if by_user:
        live = live.where(_F.user_id == sa.bindparam("user"))
    return (
        sa.update(refresh_tokens)
        .where(
            _T.token_hash == sa.bindparam("presented"),
            _T.used_at.is_(None),
            _T.family_id.in_(live.scalar_subquery()),
        )
        .values(used_at=sa.bindparam("now"), successor_hash=sa.bindparam("successor"))
    )


_CLAIM = {False: _claim(by_user=False), True: _claim(by_user=True)}
_LOOKUP = (
    sa.select(
        _T.used_at,
        _T.successor_hash,
        _F.family_id,
        _F.user_id,
        _F.created_at,
        _F.expires_at,
        _F.revoked_at,
    )
    .select_from(refresh_tokens.outerjoin(refresh_families))
    .where(_T.token_hash == sa.bindparam("presented"))
)
_NEW_TOKEN = sa.insert(refresh_tokens).values(
    token_hash=sa.bindparam("token_hash"), family_id=sa.bindparam("family_id")
)


# --- refresh families ------------------------------------------------------------------------


class SqlRefreshFamilyStore(_SqlStore):
    """Refresh-token families in the ``storno_refresh_*`` tables.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def create_family(self, family: RefreshFamily, *, token_hash: str) -> None:
        """See :meth:`RefreshFamilyStore.create_family`."""
        if not isinstance(family, RefreshFamily):
            raise TypeError(f"family must be a RefreshFamily, not {type(family).__name__}")
        values = {
            "family_id": storable("family_id", family.family_id, _ID_LENGTH),
            "user_id": storable("user_id", family.user_id, _USER_LENGTH),
            "created_at": ensure_aware_utc(family.created_at),
            "expires_at": ensure_aware_utc(family.expires_at),
            "revoked_at": None,
        }
        token_hash = storable("token_hash", token_hash, _ID_LENGTH)
        with _transaction(self._engine, duplicate=True) as conn:
            conn.execute(sa.insert(refresh_families).values(**values))
            conn.execute(_new_token(token_hash, family.family_id))

    def rotate(
        self,
        *,
        presented_hash: str,
        new_hash: str,
        now: datetime,
        expected_user_id: str | None = None,
        grace: timedelta | None = None,
    ) -> Rotation:
        """See :meth:`RefreshFamilyStore.rotate`.

        One conditional ``UPDATE`` claims the presented token if it is unused and its family is
        live, unexpired and (when given) ``expected_user_id``'s; of concurrent callers, exactly
        one sees a row count of 1 and rotates. A caller that claims nothing reads the token and
        its family to name the outcome, and revokes the family on reuse."""
        presented_hash = _check_key("presented_hash", presented_hash)
        new_hash = storable("new_hash", new_hash, _ID_LENGTH)
        now = ensure_aware_utc(now)
        if expected_user_id is not None:
            expected_user_id = _check_key("expected_user_id", expected_user_id)

        live_families = sa.select(_F.family_id).where(_F.revoked_at.is_(None), _F.expires_at > now)
        if expected_user_id is not None:
            live_families = live_families.where(_F.user_id == expected_user_id)
        bound = {"presented": presented_hash, "now": now, "successor": new_hash}
        if expected_user_id is not None:
            bound["user"] = expected_user_id

        with _transaction(self._engine, duplicate=True) as conn:
            claimed = conn.execute(_CLAIM[expected_user_id is not None], bound).rowcount
            # a hash stored twice (it is the primary key) is refused here: two rows
            row = _fetch_one(conn.execute(_LOOKUP, {"presented": presented_hash}))
            if row is None:
                if claimed:  # pragma: no cover - a claimed row is read back in its transaction
                    raise CorruptRecordError(reason="orphan_token")
                return Rotation(RotationOutcome.UNKNOWN)
            family = _family_of(row)
            if claimed:
                conn.execute(_NEW_TOKEN, {"token_hash": new_hash, "family_id": family.family_id})
                return Rotation(RotationOutcome.ROTATED, family)
            used_at = _optional_time(row.used_at)
            revoked_at = _optional_time(row.revoked_at)
            if expected_user_id is not None and family.user_id != expected_user_id:
                return Rotation(RotationOutcome.WRONG_USER)
            if family.expires_at <= now:
                return Rotation(RotationOutcome.EXPIRED, family)
            if used_at is not None:
                successor = row.successor_hash
                if grace is not None and revoked_at is None and successor and now < used_at + grace:
                    # REF-5: replace the unused successor; its row lock names one winner
                    replace = (
                        sa.update(refresh_tokens)
                        .where(
                            _T.token_hash == successor,
                            _T.used_at.is_(None),
                            _T.family_id.in_(live_families.scalar_subquery()),
                        )
                        .values(used_at=now)
                    )
                    if _changed_one(conn, replace):
                        conn.execute(_new_token(new_hash, family.family_id))
                        return Rotation(RotationOutcome.REISSUED, family)
                conn.execute(_revoke_family(family.family_id, now))
                return Rotation(RotationOutcome.REUSED, family)
            if revoked_at is not None:
                return Rotation(RotationOutcome.REVOKED, family)
            # The row says "live", yet the conditional UPDATE did not match it: the stored values
            # do not compare in SQL as they read in Python. Refuse rather than guess.
            raise CorruptRecordError(reason="inconsistent")

    def revoke_by_token(
        self, token_hash: str, *, now: datetime, expected_user_id: str
    ) -> RefreshFamily | None:
        """See :meth:`RefreshFamilyStore.revoke_by_token`."""
        token_hash = _check_key("token_hash", token_hash)
        expected_user_id = _check_key("expected_user_id", expected_user_id)
        now = ensure_aware_utc(now)
        lookup = (
            sa.select(_F.family_id, _F.user_id, _F.created_at, _F.expires_at)
            .select_from(refresh_tokens.outerjoin(refresh_families))
            .where(_T.token_hash == token_hash)
        )
        with _transaction(self._engine) as conn:
            row = _fetch_one(conn.execute(lookup))
            if row is None:
                return None
            family = _family_of(row)
            if family.user_id != expected_user_id:
                return None
            conn.execute(_revoke_family(family.family_id, now))
            return family

    def revoke_family(self, family_id: str, *, now: datetime) -> bool:
        """See :meth:`RefreshFamilyStore.revoke_family`."""
        family_id = _check_key("family_id", family_id)
        now = ensure_aware_utc(now)
        return self._change_one(_revoke_family(family_id, now))

    def revoke_user_families(self, user_id: str, *, now: datetime) -> list[str]:
        """See :meth:`RefreshFamilyStore.revoke_user_families`: a conditional ``UPDATE``
        per family, so of concurrent callers exactly one reports it."""
        user_id = _check_key("user_id", user_id)
        now = ensure_aware_utc(now)
        live = sa.select(_F.family_id).where(_F.user_id == user_id, _F.revoked_at.is_(None))
        with _transaction(self._engine) as conn:
            return _changed_each(
                conn, live, lambda family_id: _revoke_family(family_id, now), "bad_family_id"
            )

    def live_families(self, user_id: str, *, now: datetime) -> list[RefreshFamily]:
        """See :meth:`RefreshFamilyStore.live_families`: one ``SELECT``."""
        user_id = _check_key("user_id", user_id)
        now = ensure_aware_utc(now)
        if not user_id:  # empty or unstorable: no such user
            return []
        query = (
            sa.select(_F.family_id, _F.user_id, _F.created_at, _F.expires_at)
            .where(_F.user_id == user_id, _F.revoked_at.is_(None), _F.expires_at > now)
            .order_by(_F.created_at, _F.family_id)
        )
        with _transaction(self._engine) as conn:
            return [_family_of(row) for row in conn.execute(query)]

    def forget_user(self, user_id: str) -> int:
        """See :meth:`~storno_security.tokens.storage.RefreshFamilyStore.forget_user`: two
        ``DELETE`` in one transaction."""
        user_id = _check_key("user_id", user_id)
        if not user_id:  # empty or unstorable: no such user
            return 0
        mine = sa.select(_F.family_id).where(_F.user_id == user_id).scalar_subquery()
        with _transaction(self._engine) as conn:
            tokens = conn.execute(sa.delete(refresh_tokens).where(_T.family_id.in_(mine)))
            families = conn.execute(sa.delete(refresh_families).where(_F.user_id == user_id))
            return int(tokens.rowcount + families.rowcount)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`RefreshFamilyStore.purge_expired`."""
        now = ensure_aware_utc(now)
        dead = sa.select(_F.family_id).where(_F.expires_at < now)
        with _transaction(self._engine) as conn:
            # The foreign key cascades too; this also covers a SQLite connection without it.
            conn.execute(sa.delete(refresh_tokens).where(_T.family_id.in_(dead.scalar_subquery())))
            return conn.execute(sa.delete(refresh_families).where(_F.expires_at < now)).rowcount


# --- session state ---------------------------------------------------------------------------


class SqlSessionStateStore(SessionStates):
    """Session epochs and revoked-session markers in ``storno_records`` (namespaces ``epoch``
    and ``revoked``); :meth:`session_state` is one ``SELECT`` (the lean read path on SQLite
    and PostgreSQL).

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))
        #: The engine whose records this store writes and reads.
        self.engine: Final = engine
        self._state = _Reader(engine, _SESSION_STATE, session_state_of)

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.session_state`."""
        state = self._state.one_or_none(session_state_params(user_id, session_id))
        if state is None:  # pragma: no cover - its SELECT has no FROM: always one row
            raise CorruptRecordError(reason="no_row")
        return state
