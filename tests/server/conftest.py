"""Server fixtures: the app in-process (frozen clock), and real gunicorn servers on loopback.

``api`` runs a test over three backends:

* ``falcon``: Falcon's test client, SQLite + in-memory limits, a frozen clock;
* ``gunicorn-sqlite``: a real gunicorn (1 worker, 4 threads) on SQLite + in-memory limits;
* ``gunicorn-pg-redis``: a real gunicorn with 2 workers on PostgreSQL + Redis.

The gunicorn servers are started once per run and shared; each test acts from its own client
IP and with its own users, so tests do not see each other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import DirectoryEmailSink, MemoryEmailSink
from reference_server.settings import Settings
from reference_server.wiring import Server, build_server, run_now
from storno_security.clock import FrozenClock
from tests.conftest import (
    IN_CI,
    PG_ADMIN_URL,
    REDIS_URL,
    RUN_ID,
    _drop_database,
    _make_database,
    _port_open,
    missing_service,
)
from tests.server.api import Api, FalconApi, HttpApi

BACKENDS = ("falcon", "gunicorn-sqlite", "gunicorn-pg-redis")

TEST_ENV = {
    "STORNO_PASSWORD_COST": "4",
    "STORNO_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
    "STORNO_PUBLIC_URL": "http://localhost:8000",
    "STORNO_EMAIL_SINK": "directory",
}


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    env = {**TEST_ENV, "STORNO_DATA_DIR": str(data_dir)}
    return Settings.from_env(env, **overrides)


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def server(server_settings: Settings, clock: FrozenClock) -> Iterator[Server]:
    built = build_server(server_settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    yield built
    built.close()


@contextlib.contextmanager
def falcon_api_with_policy(
    data_dir: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, **policy: Any
) -> Iterator[FalconApi]:
    """The in-process app over a server whose kit policy has ``policy`` set (KitPolicy's
    fields, e.g. ``require_confirmed_email=True``): a policy the settings do not offer."""
    from reference_server import wiring

    settings_policy = wiring.kit_policy
    monkeypatch.setattr(
        wiring, "kit_policy", lambda settings: attrs.evolve(settings_policy(settings), **policy)
    )
    built = build_server(
        make_settings(data_dir), clock=clock, email=MemoryEmailSink(), run_later=run_now
    )
    monkeypatch.setattr(wiring, "kit_policy", settings_policy)
    try:
        sink = built.email
        assert isinstance(sink, MemoryEmailSink)
        client = falcon.testing.TestClient(create_app(server=built))
        yield FalconApi(client, clock=clock, mailbox=lambda: list(sink.sent))
    finally:
        built.close()


@pytest.fixture
def app(server: Server) -> falcon.App:
    return create_app(server=server)


@pytest.fixture
def client(app: falcon.App) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)


@pytest.fixture
def falcon_api(client: falcon.testing.TestClient, clock: FrozenClock, server: Server) -> FalconApi:
    sink = server.email
    assert isinstance(sink, MemoryEmailSink)
    return FalconApi(client, clock=clock, mailbox=lambda: list(sink.sent))


# -- real servers --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningServer:
    def __init__(self, *, name: str, env: dict[str, str], workers: int, data_dir: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("STORNO_")}
        full_env = {**inherited, **env}
        full_env.pop("CI", None)
        # Keys and schema are made once, before any worker starts (as `storno-security serve`).
        settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("STORNO_")})
        self.settings = settings  # tests reach the server's database (data written directly)
        build_server(settings).close()
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
                "reference_server.app:create_app_from_env()",
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)  # waiting for a real process to listen, not for test time
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-4000:]}")

    def mail(self) -> list[dict[str, str]]:
        return DirectoryEmailSink(self.data_dir / "mail").read_all()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def gunicorn_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("gunicorn-sqlite")
    env = {**TEST_ENV, "STORNO_DATA_DIR": str(base / "data")}
    server = RunningServer(name="gunicorn-sqlite", env=env, workers=1, data_dir=base / "data")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gunicorn_pg_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if not _port_open("127.0.0.1", 5432):
        missing_service("postgresql", "127.0.0.1:5432")
    if not _port_open("127.0.0.1", 6379):
        missing_service("redis", "127.0.0.1:6379")
    name = f"storno_srv_{RUN_ID}"
    url = _make_database(PG_ADMIN_URL, name)
    prefix = f"storno-srv:{RUN_ID}:"
    base = tmp_path_factory.mktemp("gunicorn-pg")
    env = {
        **TEST_ENV,
        "STORNO_DATA_DIR": str(base / "data"),
        "STORNO_DATABASE_URL": url,
        "STORNO_REDIS_URL": REDIS_URL,
        "STORNO_REDIS_PREFIX": prefix,
    }
    server = RunningServer(name="gunicorn-pg-redis", env=env, workers=2, data_dir=base / "data")
    try:
        yield server
    finally:
        server.stop()
        _drop_database(PG_ADMIN_URL, name, force=True)
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        except Exception:  # noqa: S110 - best-effort cleanup
            pass


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest) -> Api:
    """The same test over Falcon's test client and two real gunicorn servers."""
    if request.param == "falcon":
        result: Api = request.getfixturevalue("falcon_api")
        return result
    running: RunningServer = request.getfixturevalue(request.param.replace("-", "_"))
    http_api = HttpApi(running.base_url, mailbox=running.mail)
    http_api.server = running  # type: ignore[attr-defined]
    return http_api


@pytest.fixture
def falcon_mailbox(falcon_api: FalconApi) -> Callable[[], list[dict[str, str]]]:
    """Mail the in-process app (``falcon_api``) sent."""
    assert falcon_api.mailbox is not None
    return falcon_api.mailbox


@pytest.fixture
def mailbox(api: Api) -> Callable[[], list[dict[str, str]]]:
    """Mail the server sent: from the in-memory sink, or the real server's mail directory."""
    assert api.mailbox is not None
    return api.mailbox


__all__ = ["IN_CI", "make_settings", "secrets"]
