"""The upgrade of a database from schema version 1 (one table per short-lived store) to 2 (the
records of ``storno_records``; ``successor_hash`` on refresh tokens, REF-5). Private:
:func:`~storno_security.stores.sql.create_schema` runs it when it finds version 1.

Every live record is carried over (epochs, revocation markers, TOTP replay guards, failure
windows, license times, reset tokens, pending challenges and step-up tokens); used or consumed
rows are not. It runs in one transaction, but MariaDB/MySQL commit each DDL statement at once:
there, a run that fails half-way is finished by hand (the steps are in this order: add the
column, copy the rows, drop the old tables).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from storno_security.errors import StoreError
from storno_security.stores._records import Record, micros
from storno_security.stores.sql._base import (
    _COMPONENT,
    _VERSION_QUERY,
    SCHEMA_VERSION,
    _fetch_one,
    _transaction,
    _translate_errors,
    metadata,
    schema_versions,
)
from storno_security.stores.sql._records import _values, records
from storno_security.stores.sql.tokens import refresh_tokens

_T0 = datetime(1970, 1, 1, tzinfo=UTC)  # created_at of records whose v1 row had none


def _s(value: Any) -> Any:
    return bytes(value).decode("utf-8") if isinstance(value, bytes | memoryview) else value


def _row(
    ns: str,
    key: str,
    now: datetime,
    expires_at: datetime | None,
    subject: str | None,
    tag: str | None,
    data: str,
    number: int,
    limit: int | None,
) -> dict[str, Any]:
    return _values(ns, key, Record(subject, tag, data, number, limit, now, expires_at))


def _t(value: Any) -> Any:
    return (
        value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value
    )


#: v1 table -> what a row becomes (``None``: dropped).
_CARRIED: dict[str, Callable[[Any], dict[str, Any] | None]] = {
    "storno_session_epochs": lambda r: _row(
        "epoch", _s(r.user_id), _T0, None, _s(r.user_id), None, "", r.epoch, None
    ),
    "storno_revoked_sessions": lambda r: _row(
        "revoked", _s(r.session_id), _T0, _t(r.until), None, None, "", micros(_t(r.until)), None
    ),
    "storno_mfa_totp_steps": lambda r: _row(
        "mfa:totp", _s(r.user_id), _T0, _t(r.until), _s(r.user_id), None, "", r.last_step, None
    ),
    "storno_mfa_failures": lambda r: _row(
        "mfa:failures",
        _s(r.user_id),
        _T0,
        _t(r.window_ends_at),
        _s(r.user_id),
        None,
        "",
        r.failures,
        None,
    ),
    "storno_license_last_seen": lambda r: _row(
        "license", _s(r.key), _T0, None, None, None, "", micros(_t(r.last_seen)), None
    ),
    "storno_password_reset_tokens": lambda r: _row(
        "password-reset",
        _s(r.token_hash),
        _t(r.created_at),
        _t(r.expires_at),
        _s(r.user_id),
        None,
        "",
        0,
        None,
    ),
    "storno_mfa_challenges": lambda r: (
        None
        if r.consumed_at is not None
        else _row(
            "mfa:challenge",
            _s(r.token_hash),
            _t(r.created_at),
            _t(r.expires_at),
            _s(r.user_id),
            None,
            _s(r.methods),
            r.failures,
            r.max_failures,
        )
    ),
    "storno_mfa_step_up_tokens": lambda r: (
        None
        if r.used_at is not None
        else _row(
            "mfa:stepup",
            _s(r.token_hash),
            _t(r.created_at),
            _t(r.expires_at),
            _s(r.user_id),
            _s(r.action),
            _s(r.method),
            0,
            None,
        )
    ),
    "storno_passkey_challenges": lambda r: _row(
        "passkey-challenge",
        _s(r.challenge_hash),
        _T0,
        _t(r.expires_at),
        _s(r.user_id),
        None,
        _s(r.purpose),
        0,
        None,
    ),
    "storno_password_reset_users": lambda r: None,
}


def upgrade_from_1(conn: sa.Connection) -> None:
    """Bring a version-1 database to version 2, in the caller's transaction."""
    inspector = sa.inspect(conn)
    columns = {c["name"] for c in inspector.get_columns("storno_refresh_tokens")}
    if "successor_hash" not in columns:
        kind = refresh_tokens.c.successor_hash.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE storno_refresh_tokens ADD COLUMN successor_hash {kind}")
    present = set(inspector.get_table_names())
    old = sa.MetaData()
    for name, convert in _CARRIED.items():
        if name not in present:
            continue
        table = sa.Table(name, old, autoload_with=conn)
        rows = [convert(row) for row in conn.execute(sa.select(table))]
        carried = [row for row in rows if row is not None]
        if carried:
            conn.execute(sa.insert(records), carried)
        conn.exec_driver_sql(f"DROP TABLE {name}")


def create_schema(engine: sa.Engine) -> None:
    """Create the tables of this module that do not exist yet (idempotent), and record the
    schema version in ``storno_schema_versions``; a database of an older version is upgraded.

    Raises:
        StoreUnavailableError: the database could not be reached.
        StoreError: the database refused the DDL, or it holds a schema newer than this release
            knows (``reason="schema_version"``: upgrade the library, never downgrade it).
    """
    with _translate_errors():
        metadata.create_all(engine, checkfirst=True)
    with _transaction(engine) as conn:
        row = _fetch_one(conn.execute(_VERSION_QUERY))
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        sa.insert(schema_versions).values(
                            component=_COMPONENT, version=SCHEMA_VERSION
                        )
                    )
            except sa_exc.IntegrityError:
                pass  # another process recorded it first
        elif row.version == 1:
            upgrade_from_1(conn)
            conn.execute(
                sa.update(schema_versions)
                .where(schema_versions.c.component == _COMPONENT)
                .values(version=SCHEMA_VERSION)
            )
        elif not isinstance(row.version, int) or row.version > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is newer than this release ({row.version!r} > "
                f"{SCHEMA_VERSION}); upgrade storno-security",
                reason="schema_version",
            )
