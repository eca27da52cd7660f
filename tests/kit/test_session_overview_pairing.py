"""The one-read ``GET /me`` path (``authenticate(overview=True)``) reads the session state with
the user's records only where the overview store reads the very records the bundle's
``session_state`` store writes. A bundle that pairs the SQL overview with another session-state
store (a custom assembly) reads the state from that store, so a revocation it records is seen
at once (REF-4)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.stores.sql import SqlAccountOverviewStore, SqlSessionStateStore, sql_bundle
from tests.conftest import get_sql_engine
from tests.kit.conftest import build_world


@pytest.mark.spec("REF-4")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_revocation_in_another_session_store_ends_the_overview_read(
    backend: str, clock: FrozenClock, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    bundle = attrs.evolve(sql_bundle(engine), session_state=MemorySessionStateStore(), closers=())
    world = build_world(clock, bundle)
    session = world.register()
    header = f"Bearer {session.tokens.access_token}"
    caller = world.kit.authenticate(header, overview=True)
    assert caller is not None
    user_id = caller.user_id
    assert world.kit.caller_view(caller).user.user_id == user_id
    assert world.kit.logout_everywhere(user_id) == 1  # recorded in the memory store only
    for overview in (True, False):
        with pytest.raises(InvalidAccessTokenError):
            world.kit.authenticate(header, overview=overview)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_overview_store_says_which_session_state_it_reads(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    other = get_sql_engine("sqlite" if backend != "sqlite" else "postgresql", sql_urls, sql_engines)
    overview = SqlAccountOverviewStore(engine)
    assert overview.reads_session_state_of(SqlSessionStateStore(engine))
    assert not overview.reads_session_state_of(SqlSessionStateStore(other))
    assert not overview.reads_session_state_of(MemorySessionStateStore())
    assert not overview.reads_session_state_of(object())
