"""Running the store contract suites in both modes: sync, and async.

The async verbs are driven from the (synchronous) test bodies of the existing suites through
:class:`Synced`: each call of an async method runs as a coroutine on one event loop that lives
in a thread of its own for the whole session, and the test waits for its result. Every async
engine and Redis client is made and used on that loop (psycopg and asyncmy bind a connection to
its loop). Concurrency tests that call from several threads at once send their
coroutines to the loop at once, so the async stores meet real concurrency there.

:class:`Hybrid` is a synchronous object whose named methods are replaced by an async object's,
so a suite's writes go through the synchronous store (as the kit's flows do) and its reads
through the async one: a sync writer and an async reader must see one state.

:func:`mode_params` parametrises a fixture over backend x mode.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.conftest import REDIS_URL, missing_service

T = TypeVar("T")
MODES = ("sync", "async")


class LoopThread:
    """One event loop running in a daemon thread; :meth:`run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Synced:
    """An async object seen synchronously: its coroutine methods run on the loop thread."""

    def __init__(self, target: Any, loop: LoopThread) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or name.startswith("_"):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            if inspect.iscoroutinefunction(value):
                return self._loop.run(value(*args, **kwargs))
            return value(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"Synced({self._target!r})"


class Hybrid:
    """A synchronous object whose methods in ``names`` are those of ``replacement``. Its class
    is named after the base's (``RedisSessionStateStore+async``), for suites that look."""

    def __new__(cls, base: Any, replacement: Any, names: tuple[str, ...]) -> Hybrid:
        named = type(f"{type(base).__name__}+async", (cls,), {})
        return super().__new__(named)

    def __init__(self, base: Any, replacement: Any, names: tuple[str, ...]) -> None:
        self._base = base
        self._replacement = replacement
        self._names = names

    def __getattr__(self, name: str) -> Any:
        if name in self._names:
            return getattr(self._replacement, name)
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return f"Hybrid({self._base!r}, {self._replacement!r})"


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    """The session's event loop, in its own thread."""
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def async_engines(loop_thread: LoopThread) -> Iterator[dict[str, Any]]:
    """Async engines per SQL backend (made lazily), disposed on the loop at the end."""
    engines: dict[str, Any] = {}
    yield engines
    for engine in engines.values():
        loop_thread.run(engine.dispose())


def get_async_engine(backend: str, request: pytest.FixtureRequest) -> Any:
    """The async engine on the database of ``backend``'s synchronous test engine (whose
    schema it creates, or skips/fails without a server)."""
    from storno_security.aio.sql import create_async_engine
    from tests.conftest import get_sql_engine

    sync_engine = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    engines: dict[str, Any] = request.getfixturevalue("async_engines")
    if backend not in engines:
        url = sync_engine.url.render_as_string(hide_password=False)
        engines[backend] = create_async_engine(url)
    return engines[backend]


@pytest.fixture(scope="session")
def async_redis(loop_thread: LoopThread) -> Iterator[Any]:
    """A ``redis.asyncio`` client of the test server, bound to the session's loop."""
    import redis
    import redis.asyncio

    async def make() -> Any:
        client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
        try:
            await client.ping()
        except redis.RedisError as exc:
            await client.aclose()
            return exc
        return client

    made = loop_thread.run(make())
    yield made
    if not isinstance(made, Exception):
        loop_thread.run(made.aclose())


def require_async_redis(request: pytest.FixtureRequest) -> Any:
    client = request.getfixturevalue("async_redis")
    if isinstance(client, Exception):
        missing_service("redis", type(client).__name__)
    return client


def mode_params(backends: tuple[str, ...]) -> list[Any]:
    return [pytest.param((b, m), id=f"{b}-{m}") for b in backends for m in MODES]


@pytest.fixture(scope="session")
def offloader() -> Iterator[Any]:
    """Small thread pools for the offloaded stores, closed at the end."""
    from storno_security.aio.offload import Offloader

    pools = Offloader(cpu_workers=1, io_workers=2)
    yield pools
    pools.close()
