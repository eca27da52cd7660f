"""API-key verification in both modes: the store contract of
``tests/contract/test_api_key_store.py`` with ``get`` and ``touch`` made by the async store (on
memory, SQLite, PostgreSQL and MariaDB; the concurrency tests send their calls to the loop at
once), and the manager suite of ``tests/api_keys/test_manager.py`` with ``verify`` made by
:class:`AsyncApiKeyVerifier`.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from storno_security.aio import AsyncApiKeyVerifier, InlineApiKeyStore, OffloadedApiKeyStore
from storno_security.api_keys import ApiKeyManager
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryApiKeyStore
from storno_security.stores.sql import SqlApiKeyStore
from tests.aio.conftest import Hybrid, Synced, get_async_engine, mode_params
from tests.api_keys import test_manager as manager_suite
from tests.api_keys.conftest import CountingStore
from tests.contract import test_api_key_store as store_suite
from tests.contract.conftest import make_store

SYNC = {"memory": MemoryApiKeyStore, "sql": SqlApiKeyStore}
VERBS = ("get", "touch")


def async_api_key_store(
    backend: str, sync: Any, request: pytest.FixtureRequest, mode: str = "async"
) -> Any:
    if mode == "offloaded":  # any store, its verbs in the io lane
        return OffloadedApiKeyStore(sync, request.getfixturevalue("offloader"))
    if mode == "inline-offloaded":  # read on the loop, touch in the io lane (SQLite)
        return InlineApiKeyStore(sync, request.getfixturevalue("offloader"))
    if backend == "memory":
        return InlineApiKeyStore(sync)
    from storno_security.aio.sql import AsyncSqlApiKeyStore

    return AsyncSqlApiKeyStore(get_async_engine(backend, request))


@pytest.fixture(
    params=[
        *mode_params(("memory", "sqlite", "postgresql", "mariadb")),
        pytest.param(("postgresql", "offloaded"), id="postgresql-offloaded"),
        pytest.param(("sqlite", "inline-offloaded"), id="sqlite-inline-offloaded"),
    ]
)
def api_key_store(request: pytest.FixtureRequest) -> Any:
    """Each backend's store, then with its verification verbs made by the async store (or by
    the synchronous store's, run in the offloader's io lane)."""
    backend, mode = request.param
    sync = make_store(backend, request, SYNC)
    if mode == "sync":
        return sync
    reader = async_api_key_store(backend, sync, request, mode)
    return Hybrid(sync, Synced(reader, request.getfixturevalue("loop_thread")), VERBS)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture(params=["sync", "async"])
def manager(request: pytest.FixtureRequest, store: CountingStore, clock: FrozenClock) -> Any:
    """The manager, then the manager whose ``verify`` is the async verifier's (over the same
    counting store, so the suite's counts of lookups and writes hold for both)."""
    sync = ApiKeyManager(store, clock=clock)
    if request.param == "sync":
        return sync
    verifier = AsyncApiKeyVerifier(InlineApiKeyStore(store), clock=clock, policy=sync.policy)
    return Hybrid(sync, Synced(verifier, request.getfixturevalue("loop_thread")), ("verify",))


# The store contract, unchanged.
for _name, _test in vars(store_suite).items():
    if _name.startswith("test_"):
        globals()[f"test_store_{_name[5:]}"] = _test

# The manager suite's tests that go through the fixture, unchanged.
for _name, _test in vars(manager_suite).items():
    if _name.startswith("test_") and "manager" in inspect.signature(_test).parameters:
        globals()[f"test_manager_{_name[5:]}"] = _test


def test_the_async_api_key_stores_and_verifier_name_what_they_wrap(
    offloader: Any, clock: FrozenClock
) -> None:
    memory = MemoryApiKeyStore()
    inline, offloaded = InlineApiKeyStore(memory), OffloadedApiKeyStore(memory, offloader)
    assert repr(inline) == f"InlineApiKeyStore({memory!r})"
    assert repr(offloaded) == f"OffloadedApiKeyStore({memory!r})"
    assert repr(AsyncApiKeyVerifier(inline, clock=clock)) == f"AsyncApiKeyVerifier({inline!r})"
