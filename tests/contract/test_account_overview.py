"""The SQL account overview (``stores/sql/overview.py``): one read of a user's own records,
for a user without memberships, and for a membership whose organization row is gone (a
database whose foreign keys were not enforced); with the session state in the same read."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.kit.storage import AccountOverview
from storno_security.stores import sql as sql_stores
from storno_security.stores.sql import (
    SqlAccountOverviewStore,
    SqlDirectoryStore,
    SqlSessionStateStore,
)
from storno_security.tokens.storage import SessionState
from tests.conftest import get_sql_engine
from tests.contract.test_directory_store import NOW, accept, invite, new_id, register


def test_a_user_without_memberships_has_an_overview_of_the_user_alone(sql_engine: Any) -> None:
    directory, overview = SqlDirectoryStore(sql_engine), SqlAccountOverviewStore(sql_engine)
    user, _ = register(directory)
    table = sql_stores.memberships
    with sql_engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.user_id == user.user_id))
    found = overview.account_overview(user.user_id)
    assert found is not None
    assert (found.user, found.memberships, dict(found.organizations)) == (user, (), {})
    assert (found.has_passkeys, found.backup_codes_left) == (False, 0)
    assert overview.account_overview(new_id("user")) is None
    assert repr(overview) == f"SqlAccountOverviewStore({sql_engine.dialect.name})"


def test_a_membership_whose_organization_is_gone_lists_no_organization(
    sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine("sqlite", sql_urls, sql_engines)
    directory, overview = SqlDirectoryStore(engine), SqlAccountOverviewStore(engine)
    user, organization = register(directory)
    plain = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)  # no foreign_keys=ON
    table = sql_stores.organizations
    members = sql_stores.memberships
    try:
        with plain.begin() as conn:
            conn.execute(
                sa.delete(table).where(table.c.organization_id == organization.organization_id)
            )
        found = overview.account_overview(user.user_id)
        assert found is not None
        assert [m.organization_id for m in found.memberships] == [organization.organization_id]
        assert dict(found.organizations) == {}
    finally:
        with plain.begin() as conn:  # leave no dangling row in the run's database
            conn.execute(sa.delete(members).where(members.c.user_id == user.user_id))
        plain.dispose()


@pytest.mark.spec("REF-4")
def test_the_session_overview_is_the_session_state_and_the_overview_in_one_read(
    sql_engine: Any,
) -> None:
    from tests.contract.test_api_key_sql import _trace_connections, statements_of

    if sql_engine.dialect.name == "sqlite":
        _trace_connections(sql_engine)  # the lean read path runs below SQLAlchemy's events
    directory, overview = SqlDirectoryStore(sql_engine), SqlAccountOverviewStore(sql_engine)
    sessions = SqlSessionStateStore(sql_engine)
    user, _ = register(directory)
    session_id = secrets.token_hex(16)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def both() -> tuple[SessionState, AccountOverview | None]:
        expected = (
            sessions.session_state(user_id=user.user_id, session_id=session_id),
            overview.account_overview(user.user_id),
        )
        statements = statements_of(
            sql_engine,
            lambda: found.append(
                overview.session_overview(user_id=user.user_id, session_id=session_id)
            ),
        )
        assert found.pop() == expected
        assert len(statements) == 1, statements
        return expected

    found: list[tuple[SessionState, AccountOverview | None]] = []
    assert both()[0] == SessionState(epoch=0, revoked=False)
    sessions.bump_epoch(user.user_id)
    assert both()[0] == SessionState(epoch=1, revoked=False)
    sessions.revoke_session(session_id, now=now, until=now + timedelta(hours=1))
    state, seen = both()
    assert state == SessionState(epoch=1, revoked=True)
    assert seen is not None
    assert seen.user == user


def test_the_session_overview_of_a_user_who_is_gone_still_reads_the_session_state(
    sql_engine: Any,
) -> None:
    overview, sessions = SqlAccountOverviewStore(sql_engine), SqlSessionStateStore(sql_engine)
    gone, session_id = new_id("user"), secrets.token_hex(16)
    sessions.bump_epoch(gone)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    sessions.revoke_session(session_id, now=now, until=now + timedelta(hours=1))
    state, found = overview.session_overview(user_id=gone, session_id=session_id)
    assert (state, found) == (SessionState(epoch=1, revoked=True), None)


@pytest.mark.parametrize(("user_id", "session_id"), [(7, "s"), ("u", None), (b"u", "s")])
def test_the_session_overview_refuses_what_the_session_state_refuses(
    sql_engine: Any, user_id: Any, session_id: Any
) -> None:
    overview, sessions = SqlAccountOverviewStore(sql_engine), SqlSessionStateStore(sql_engine)
    with pytest.raises(TypeError):
        sessions.session_state(user_id=user_id, session_id=session_id)
    with pytest.raises(TypeError):
        overview.session_overview(user_id=user_id, session_id=session_id)


def test_a_key_no_column_can_hold_matches_nothing_in_the_session_overview(
    sql_engine: Any,
) -> None:
    overview = SqlAccountOverviewStore(sql_engine)
    for user_id, session_id in (("x" * 300, "s"), ("u", "x" * 300), ("", "")):
        found = overview.session_overview(user_id=user_id, session_id=session_id)
        assert found == (SessionState(epoch=0, revoked=False), None)


def test_the_overview_lists_memberships_in_the_directorys_order(sql_engine: Any) -> None:
    # oldest first, ties (one clock tick) by organization id: as memberships_of lists them
    directory, overview = SqlDirectoryStore(sql_engine), SqlAccountOverviewStore(sql_engine)
    user, _ = register(directory)
    for joined in (NOW + timedelta(hours=2), NOW - timedelta(hours=1), NOW, NOW):
        _, organization = register(directory)
        assert accept(
            directory, invite(directory, organization.organization_id), user.user_id, now=joined
        )
    expected = directory.memberships_of(user.user_id)
    assert len(expected) == 5
    found = overview.account_overview(user.user_id)
    assert found is not None
    assert list(found.memberships) == expected
    with_session = overview.session_overview(user_id=user.user_id, session_id="s")[1]
    assert with_session is not None
    assert list(with_session.memberships) == expected


def test_the_overview_kept_by_the_reader_is_read_only(sql_engine: Any) -> None:
    # the reader hands the same record to every request that reads the same rows
    directory, overview = SqlDirectoryStore(sql_engine), SqlAccountOverviewStore(sql_engine)
    user, organization = register(directory)
    found = overview.account_overview(user.user_id)
    assert found is not None
    assert list(found.organizations) == [organization.organization_id]
    organizations: Any = found.organizations
    with pytest.raises(TypeError):
        organizations["x"] = organization
    again = overview.account_overview(user.user_id)
    assert again is not None
    assert list(again.organizations) == [organization.organization_id]
