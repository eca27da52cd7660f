"""Fixtures of the rate-limit tests: each storage (memory, Redis) with a key prefix per test,
and a throw-away redis-server of a test's own (also used by the contract tests)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.ratelimit import RateLimiter, RateLimitStorage
from storno_security.stores.memory import MemoryRateLimitStorage
from tests.conftest import missing_service

STORAGES = ("memory", "redis")


def make_storage(kind: str, request: pytest.FixtureRequest) -> RateLimitStorage:
    """A fresh storage of ``kind``; Redis keys under this run's prefix plus a per-test part."""
    if kind == "memory":
        return MemoryRateLimitStorage()
    from storno_security.stores.redis import RedisRateLimitStorage

    client: Any = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisRateLimitStorage(client, prefix=f"{prefix}rl{secrets.token_hex(4)}:")


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> RateLimitStorage:
    """Each rate-limit storage in turn."""
    return make_storage(str(request.param), request)


@pytest.fixture
def limiter(storage: RateLimitStorage, clock: FrozenClock) -> RateLimiter:
    """A limiter with the spec's policies over each storage, on the frozen clock."""
    return RateLimiter(storage, clock=clock)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shutdown_redis(port: int) -> None:
    """``SHUTDOWN NOSAVE`` (redis-py swallows the ConnectionError it causes), no retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(nosave=True)
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(directory: Path, **settings: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A throw-away redis-server on a free port, with ``settings`` (``maxmemory="2mb"``, ...)
    as command-line options; stopped and reaped at the end whatever happens.

    The server runs in the foreground (``--daemonize no``) rather than daemonised, so that the
    test holds its process: it waits for "Ready to accept connections" on the server's output
    instead of polling or sleeping, and can kill exactly that process if ``SHUTDOWN`` does not
    end it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server", "binary not on PATH")
    assert binary is not None
    port = free_port()
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "save": "",
        "appendonly": "no",
        "daemonize": "no",
        "dir": str(directory),
    }
    options.update({name.replace("_", "-"): value for name, value in settings.items()})
    arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
    process = subprocess.Popen(
        [binary, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # blocks on the pipe until the server says it is ready
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server on port {port} did not start (exit {process.wait()})")
        yield port, process
    finally:
        if process.poll() is None:
            with contextlib.suppress(Exception):  # the kill below is the fallback
                shutdown_redis(port)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
