"""The SQL account overview (``stores/sql/overview.py``): one read of a user's own records,
for a user without memberships, and for a membership whose organization row is gone (a
database whose foreign keys were not enforced)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from storno_security.stores import sql as sql_stores
from storno_security.stores.sql import SqlAccountOverviewStore, SqlDirectoryStore
from tests.conftest import get_sql_engine
from tests.contract.test_directory_store import new_id, register


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
