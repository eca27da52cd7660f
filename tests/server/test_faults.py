"""Faults with real components, against the real ``serve`` command (SRV-5): a Redis we kill, a
Redis that is down while a worker boots, a PostgreSQL behind a proxy we hold (a hung
database), a master killed under its workers, and slow clients. Each test is bounded: every
wait has a timeout, and the client timeouts are the bounds asserted."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, _drop_database, _make_database, _port_open, missing_service
from tests.server.faults_support import OwnRedis, Served, TcpProxy, register, request


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not OwnRedis.available():
        missing_service("redis-server", "the redis-server binary")
    redis = OwnRedis(directory=tmp_path).start()
    yield redis
    redis.kill()


@pytest.fixture
def pg_proxy() -> Iterator[tuple[TcpProxy, str]]:
    if not _port_open("127.0.0.1", 5432):
        missing_service("postgresql", "127.0.0.1:5432")
    name = f"storno_faults_{secrets.token_hex(4)}"
    direct = _make_database(PG_ADMIN_URL, name)
    proxy = TcpProxy(5432)
    try:
        yield proxy, direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
        _drop_database(PG_ADMIN_URL, name, force=True)


def _no_tracebacks(served: Served) -> None:
    assert "Traceback" not in served.log()


@pytest.mark.spec("SRV-5")
def test_a_killed_redis_leaves_liveness_up_readiness_down_and_writes_503(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    served = Served(tmp_path / "data", "--workers", "1", STORNO_REDIS_URL=own_redis.url)
    try:
        token = register(served.port, "redis-kill@example.eu")
        assert request(served.port, "GET", "/ready")[0] == 200
        own_redis.kill()
        assert request(served.port, "GET", "/health", timeout=2)[0] == 200
        status, _, body = request(served.port, "GET", "/ready", timeout=5)
        assert status == 503
        assert body["checks"] == {"database": "ok", "redis": "unavailable"}
        login = {"email": "redis-kill@example.eu", "password": "correct horse battery"}
        status, headers, body = request(served.port, "POST", "/api/auth", body=login, timeout=5)
        assert status == 503
        assert headers["retry-after"]
        assert body["code"] == "rate_limit_unavailable"
        status, headers, body = request(served.port, "GET", "/api/v1/me", token=token, timeout=5)
        assert status == 503
        assert headers["retry-after"]
        _no_tracebacks(served)
        # an expected 503 is one log line each
        assert served.log().count("rate_limit_unavailable") >= 1
    finally:
        served.stop()


@pytest.mark.spec("SRV-5")
def test_a_worker_booting_while_redis_is_down_starts_degraded_and_recovers(
    tmp_path: Path,
) -> None:
    if not OwnRedis.available():
        missing_service("redis-server", "the redis-server binary")
    redis = OwnRedis(directory=tmp_path)  # not started: its port is closed
    served = Served(tmp_path / "data", "--workers", "2", STORNO_REDIS_URL=redis.url)
    try:
        assert len(served.workers()) == 2  # both booted; the master did not halt
        status, _, body = request(served.port, "GET", "/ready", timeout=5)
        assert status == 503
        assert body["checks"]["redis"] == "unavailable"
        redis.start()
        statuses = []
        for _ in range(50):  # each worker's client reconnects on its next command
            statuses.append(request(served.port, "GET", "/ready", timeout=5)[0])
            if statuses[-3:] == [200, 200, 200]:
                break
        assert statuses[-3:] == [200, 200, 200]
        assert register(served.port, "redis-late@example.eu")
        _no_tracebacks(served)
    finally:
        served.stop()
        redis.kill()


@pytest.mark.spec("SRV-5")
@pytest.mark.spec("REF-6")
def test_serve_refuses_a_redis_that_may_evict(tmp_path: Path) -> None:
    if not OwnRedis.available():
        missing_service("redis-server", "the redis-server binary")
    redis = OwnRedis(directory=tmp_path).start("--maxmemory-policy", "allkeys-lru")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "reference_server", "serve", "--port", str(redis.port)],
            env=Served.environment(tmp_path / "data", STORNO_REDIS_URL=redis.url),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        redis.kill()
    assert result.returncode == 2
    refusals = [line for line in result.stderr.splitlines() if "maxmemory-policy" in line]
    assert len(refusals) == 1  # one line says what to change
    assert "maxmemory-policy is 'allkeys-lru'" in refusals[0]
    assert "Traceback" not in result.stderr


@pytest.mark.spec("SRV-5")
def test_a_hung_database_answers_503_by_the_deadline_and_health_stays_fast(
    tmp_path: Path, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, url = pg_proxy
    served = Served(
        tmp_path / "data",
        STORNO_DATABASE_URL=url,
        STORNO_REQUEST_TIMEOUT="2",
        STORNO_DB_CONNECT_TIMEOUT="2",
    )
    try:
        token = register(served.port, "hung@example.eu")
        assert request(served.port, "GET", "/api/v1/me", token=token)[0] == 200
        proxy.hold()
        answers: list[int] = []

        def me() -> None:
            # the bound: 2 s deadline + 1 s grace of the front, well inside this timeout
            answers.append(request(served.port, "GET", "/api/v1/me", token=token, timeout=6)[0])

        readiness: list[int] = []

        def ready() -> None:
            readiness.append(request(served.port, "GET", "/ready", timeout=6)[0])

        callers = [threading.Thread(target=me) for _ in range(4)]
        callers += [threading.Thread(target=ready) for _ in range(2)]
        for caller in callers:
            caller.start()
        for _ in range(3):  # while those hang on the database, liveness answers at once
            assert request(served.port, "GET", "/health", timeout=3)[0] == 200
        for caller in callers:
            caller.join(timeout=10)
        assert answers == [503] * 4
        assert readiness == [503] * 2
        proxy.cut()  # the held connections die; new ones flow again
        proxy.release()
        statuses = [request(served.port, "GET", "/api/v1/me", token=token)[0] for _ in range(3)]
        assert statuses[-1] == 200
        assert request(served.port, "GET", "/ready")[0] == 200
        _no_tracebacks(served)
    finally:
        proxy.release()
        served.stop()


@pytest.mark.spec("SRV-5")
def test_workers_exit_when_the_master_is_killed(tmp_path: Path) -> None:
    served = Served(tmp_path / "data")
    try:
        workers = served.workers()
        assert workers
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=5)
        deadline = time.monotonic() + 5

        def gone() -> bool:
            alive = any(served.running(pid) for pid in workers)
            return not alive and not _port_open("127.0.0.1", served.port)

        while time.monotonic() < deadline and not gone():
            time.sleep(0.05)  # waiting for real processes to exit
        assert gone()
    finally:
        served.stop()


@pytest.mark.spec("SRV-5")
def test_slow_clients_do_not_starve_the_server(tmp_path: Path) -> None:
    """20 clients sending their headers at 1 byte per second; /health from others answers."""
    served = Served(tmp_path / "data")
    slow: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=2)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            slow.append(sock)
        answered = 0
        for _ in range(6):
            for sock in slow:
                sock.sendall(b"a")
            if request(served.port, "GET", "/health", timeout=2)[0] == 200:
                answered += 1
            time.sleep(1)  # the slow clients' pace: one byte per second
        assert answered == 6
    finally:
        for sock in slow:
            sock.close()
        served.stop()


@pytest.mark.spec("SRV-5")
def test_a_hung_database_frees_the_thread_of_a_one_statement_read_by_the_deadline(
    tmp_path: Path, pg_proxy: tuple[TcpProxy, str]
) -> None:
    # The WSGI application as gunicorn serves it: no front answers for it at the deadline, so
    # the request's own thread must come back. GET /me is one statement sent straight on a
    # kept connection; the deadline covers it as it covers every other statement.
    import falcon.testing

    from reference_server.app import _prepare, create_app
    from reference_server.settings import Settings

    proxy, url = pg_proxy
    env = {
        **Served.TEST_ENV,
        "STORNO_DATA_DIR": str(tmp_path / "data"),
        "STORNO_DATABASE_URL": url,
        "STORNO_REQUEST_TIMEOUT": "1",
        "STORNO_DB_CONNECT_TIMEOUT": "2",
    }
    server = _prepare(Settings.from_env(env))
    client = falcon.testing.TestClient(server.deadlines.wsgi(create_app(server=server)))
    try:
        body = {"email": "held@example.eu", "password": "correct horse battery"}
        token = client.simulate_post("/api/auth/register", json=body).json["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        answers: list[int] = []
        first, held = threading.Event(), threading.Event()

        def me_twice() -> None:  # one thread, so the second read goes out on its kept connection
            answers.append(client.simulate_get("/api/v1/me", headers=headers).status_code)
            first.set()
            if held.wait(30):
                answers.append(client.simulate_get("/api/v1/me", headers=headers).status_code)

        caller = threading.Thread(target=me_twice, daemon=True)
        caller.start()
        assert first.wait(30)
        assert answers == [200]
        proxy.hold()
        started = time.monotonic()
        held.set()
        caller.join(timeout=15)  # the bound: 1 s deadline + the watchdog's poll, with room
        assert not caller.is_alive(), "the request thread hung on the held database"
        assert answers == [200, 503]
        assert time.monotonic() - started < 5
        proxy.release()
        assert client.simulate_get("/api/v1/me", headers=headers).status_code == 200
    finally:
        proxy.release()
        server.close()
