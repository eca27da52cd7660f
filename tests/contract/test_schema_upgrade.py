"""The upgrade from schema version 1 (a table per short-lived store) to 2 (``storno_records``):
a database written by the previous release keeps its epochs, revocation markers, replay guards,
failure windows, license times, reset tokens and pending challenges, as the new stores read them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.stores import sql
from storno_security.stores.sql._base import _ExactString, _UtcDateTime
from tests.conftest import (
    MYSQL_ADMIN_URL,
    PG_ADMIN_URL,
    RUN_ID,
    _drop_database,
    _make_database,
    _port_open,
    missing_service,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
H = hashlib.sha256(b"token").hexdigest()

V1 = sa.MetaData()
_S, _D = _ExactString, _UtcDateTime
sa.Table(
    "storno_session_epochs",
    V1,
    sa.Column("user_id", _S(255), primary_key=True),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
)
sa.Table(
    "storno_revoked_sessions",
    V1,
    sa.Column("session_id", _S(64), primary_key=True),
    sa.Column("until", _D(), nullable=False),
)
sa.Table(
    "storno_mfa_totp_steps",
    V1,
    sa.Column("user_id", _S(255), primary_key=True),
    sa.Column("last_step", sa.BigInteger()),
    sa.Column("until", _D()),
    sa.Column("nonce", _S(32)),
)
sa.Table(
    "storno_mfa_failures",
    V1,
    sa.Column("user_id", _S(255), primary_key=True),
    sa.Column("failures", sa.Integer()),
    sa.Column("window_ends_at", _D()),
)
sa.Table(
    "storno_license_last_seen",
    V1,
    sa.Column("key", _S(255), primary_key=True),
    sa.Column("last_seen", _D()),
)
sa.Table(
    "storno_password_reset_tokens",
    V1,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("token_hash", _S(64)),
    sa.Column("user_id", _S(255)),
    sa.Column("created_at", _D()),
    sa.Column("expires_at", _D()),
)
sa.Table("storno_password_reset_users", V1, sa.Column("user_id", _S(255), primary_key=True))
sa.Table(
    "storno_mfa_challenges",
    V1,
    sa.Column("token_hash", _S(64), primary_key=True),
    sa.Column("user_id", _S(255)),
    sa.Column("methods", _S(64)),
    sa.Column("created_at", _D()),
    sa.Column("expires_at", _D()),
    sa.Column("failures", sa.Integer()),
    sa.Column("max_failures", sa.Integer()),
    sa.Column("consumed_at", _D(), nullable=True),
)
sa.Table(
    "storno_mfa_step_up_tokens",
    V1,
    sa.Column("token_hash", _S(64), primary_key=True),
    sa.Column("user_id", _S(255)),
    sa.Column("action", _S(64)),
    sa.Column("method", _S(64)),
    sa.Column("created_at", _D()),
    sa.Column("expires_at", _D()),
    sa.Column("used_at", _D(), nullable=True),
)
sa.Table(
    "storno_passkey_challenges",
    V1,
    sa.Column("challenge_hash", _S(64), primary_key=True),
    sa.Column("purpose", sa.String(16)),
    sa.Column("user_id", _S(255), nullable=True),
    sa.Column("expires_at", _D()),
)
sa.Table(
    "storno_refresh_families",
    V1,
    sa.Column("family_id", _S(64), primary_key=True),
    sa.Column("user_id", _S(255)),
    sa.Column("created_at", _D()),
    sa.Column("expires_at", _D()),
    sa.Column("revoked_at", _D(), nullable=True),
)
sa.Table(
    "storno_refresh_tokens",
    V1,
    sa.Column("token_hash", _S(64), primary_key=True),
    sa.Column("family_id", _S(64)),
    sa.Column("used_at", _D(), nullable=True),
)
sa.Table(
    "storno_schema_versions",
    V1,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer()),
)

ROWS = {
    "storno_session_epochs": [{"user_id": "u-1", "epoch": 4}],
    "storno_revoked_sessions": [{"session_id": "s-1", "until": LATER}],
    "storno_mfa_totp_steps": [{"user_id": "u-1", "last_step": 100, "until": LATER, "nonce": "n"}],
    "storno_mfa_failures": [{"user_id": "u-1", "failures": 3, "window_ends_at": LATER}],
    "storno_license_last_seen": [{"key": "install-1", "last_seen": NOW}],
    "storno_password_reset_tokens": [
        {"id": 1, "token_hash": H, "user_id": "u-1", "created_at": NOW, "expires_at": LATER}
    ],
    "storno_password_reset_users": [{"user_id": "u-1"}],
    "storno_mfa_challenges": [
        {
            "token_hash": H,
            "user_id": "u-1",
            "methods": "totp,passkey",
            "created_at": NOW,
            "expires_at": LATER,
            "failures": 1,
            "max_failures": 5,
            "consumed_at": None,
        }
    ],
    "storno_mfa_step_up_tokens": [
        {
            "token_hash": H,
            "user_id": "u-1",
            "action": "vault.read",
            "method": "totp",
            "created_at": NOW,
            "expires_at": LATER,
            "used_at": None,
        }
    ],
    "storno_passkey_challenges": [
        {"challenge_hash": H, "purpose": "registration", "user_id": "u-1", "expires_at": LATER}
    ],
    "storno_refresh_families": [
        {
            "family_id": "f-1",
            "user_id": "u-1",
            "created_at": NOW,
            "expires_at": NOW + timedelta(days=30),
            "revoked_at": None,
        }
    ],
    "storno_refresh_tokens": [{"token_hash": H, "family_id": "f-1", "used_at": None}],
    "storno_schema_versions": [{"component": "tokens", "version": 1}],
}


@pytest.mark.parametrize("where", ["sqlite", "postgresql", "mariadb"])
def test_a_version_1_database_is_upgraded_with_its_state(where: str, tmp_path: Path) -> None:
    name = f"storno_up_{RUN_ID}"
    admin = {"postgresql": (PG_ADMIN_URL, 5432, True), "mariadb": (MYSQL_ADMIN_URL, 3306, False)}
    if where == "sqlite":
        url = f"sqlite:///{tmp_path / 'v1.db'}"
    else:
        admin_url, port, _ = admin[where]
        if not _port_open("127.0.0.1", port):
            missing_service(where, "no server on its port")
        url = _make_database(admin_url, name)
    engine = sql.create_engine(url)
    try:
        V1.create_all(engine)
        with engine.begin() as conn:
            for table, rows in ROWS.items():
                conn.execute(sa.insert(V1.tables[table]), rows)
        sql.create_schema(engine)
        assert sql.schema_version(engine) == 2
        tables = set(sa.inspect(engine).get_table_names())
        assert "storno_session_epochs" not in tables
        assert "storno_password_reset_users" not in tables
        _state_is_carried(engine)
        sql.create_schema(engine)  # idempotent once upgraded
    finally:
        engine.dispose()
        if where != "sqlite":
            _drop_database(admin[where][0], name, force=admin[where][2])


def _state_is_carried(engine: Any) -> None:
    from storno_security.tokens.storage import RotationOutcome

    state = sql.SqlSessionStateStore(engine)
    assert state.session_state(user_id="u-1", session_id="s-1").epoch == 4
    assert state.session_state(user_id="u-1", session_id="s-1").revoked is True
    assert state.bump_epoch("u-1") == 5
    assert sql.SqlTotpReplayStore(engine).record_step("u-1", 100, now=NOW, until=LATER) is False
    assert (
        sql.SqlMfaFailureStore(engine).record_attempt("u-1", now=NOW, window_ends_at=LATER).failures
        == 4
    )
    assert sql.SqlLastSeenStore(engine).record("install-1", NOW - timedelta(days=1)) == NOW
    challenge = sql.SqlMfaChallengeStore(engine).get_challenge(H, now=NOW)
    assert challenge is not None
    assert (challenge.methods, challenge.failures, challenge.max_failures) == (
        ("totp", "passkey"),
        1,
        5,
    )
    grant = sql.SqlStepUpStore(engine).consume_grant(H, user_id="u-1", action="vault.read", now=NOW)
    assert grant is not None
    assert grant.method == "totp"
    passkey = sql.SqlPasskeyChallengeStore(engine).consume(H, now=NOW)
    assert passkey is not None
    assert passkey.user_id == "u-1"
    assert sql.SqlResetTokenStore(engine).consume(H, now=NOW).user_id == "u-1"
    families = sql.SqlRefreshFamilyStore(engine)
    first = families.rotate(presented_hash=H, new_hash="a" * 64, now=NOW)
    assert first.outcome is RotationOutcome.ROTATED
    retry = families.rotate(
        presented_hash=H, new_hash="b" * 64, now=NOW, grace=timedelta(seconds=5)
    )
    assert retry.outcome is RotationOutcome.REISSUED  # the new column works


def test_an_upgrade_carries_the_tables_there_are(tmp_path: Path) -> None:
    """A version-1 database made before some of the version-1 tables existed, whose token table
    already has the column an interrupted upgrade added."""
    engine = sql.create_engine(f"sqlite:///{tmp_path / 'partial.db'}")
    present = (
        "storno_session_epochs",
        "storno_refresh_families",
        "storno_refresh_tokens",
        "storno_schema_versions",
    )
    try:
        V1.create_all(engine, tables=[V1.tables[name] for name in present])
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE storno_refresh_tokens ADD COLUMN successor_hash VARCHAR(64)"
            )
            for name in present:
                conn.execute(sa.insert(V1.tables[name]), ROWS[name])
        sql.create_schema(engine)
        assert sql.schema_version(engine) == 2
        state = sql.SqlSessionStateStore(engine)
        assert state.session_state(user_id="u-1", session_id="s-1").epoch == 4
        assert "storno_session_epochs" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_version_recorded_meanwhile_by_another_process_is_kept() -> None:
    """Two processes create one new schema: the other records the version between this one's
    read of it and its insert, which the unique key refuses; the schema is created once."""
    if not _port_open("127.0.0.1", 5432):  # SQLite: one writer at a time, it cannot happen
        missing_service("postgresql", "no server on its port")
    name = f"storno_race_{RUN_ID}"
    url = _make_database(PG_ADMIN_URL, name)
    engine = sql.create_engine(url)
    other = sa.create_engine(url, poolclass=sa.pool.NullPool)
    fired: list[str] = []

    def first(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        if not fired and statement.startswith("INSERT INTO storno_schema_versions"):
            fired.append(statement)
            with other.begin() as other_conn:
                other_conn.execute(
                    sa.insert(sql.schema_versions).values(component="tokens", version=2)
                )

    sa.event.listen(engine, "before_cursor_execute", first)
    try:
        sql.create_schema(engine)
        assert fired
        assert sql.schema_version(engine) == 2
    finally:
        sa.event.remove(engine, "before_cursor_execute", first)
        engine.dispose()
        other.dispose()
        _drop_database(PG_ADMIN_URL, name, force=True)
