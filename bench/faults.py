"""The server under a slow database and slow clients (SRV-5), in one run, against the real
``serve`` command on PostgreSQL reached through a loopback TCP proxy:

* p50/p99 of ``GET /api/v1/me`` with no added latency and with 200 ms added to every database
  round trip (100 ms each way in the proxy), and how many of those answered 200 (the rest 503
  at the request deadline, ``STORNO_REQUEST_TIMEOUT``);
* database round trips per request (chunks the proxy forwarded to PostgreSQL, per request);
* the slow-client probe: 20 clients sending their headers at 1 byte per second while
  ``/health`` is asked once a second from another client: how many answered, and the slowest.

No targets are asserted (the tests check behaviour); the figures are printed. Bounded: the
whole run stays under 3 minutes (``timeout`` in .ci/run is the backstop).

Run: python bench/faults.py [--samples 200] [--slow-samples 24] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from tests.server.faults_support import Served, TcpProxy, register, request  # noqa: E402

ROUTE = "/api/v1/me"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _timed(port: int, token: str) -> tuple[float, int]:
    start = time.perf_counter()
    status = request(port, "GET", ROUTE, token=token, timeout=30)[0]
    return time.perf_counter() - start, status


def measure(port: int, token: str, samples: int, concurrency: int) -> dict[str, float]:
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: _timed(port, token), range(samples)))
    times = [t for t, _ in results]
    return {
        "n": len(results),
        "ok": sum(1 for _, s in results if s == 200),
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": _percentile(times, 0.99) * 1000,
    }


def round_trips(proxy: TcpProxy, port: int, token: str, requests: int = 20) -> float:
    request(port, "GET", ROUTE, token=token)  # warm: pooled connection, caches
    before = proxy.chunks_up
    for _ in range(requests):
        request(port, "GET", ROUTE, token=token)
    return (proxy.chunks_up - before) / requests


def slow_clients(port: int, clients: int = 20, probes: int = 6) -> tuple[int, float]:
    slow = []
    answered, slowest = 0, 0.0
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            slow.append(sock)
        for _ in range(probes):
            for sock in slow:
                sock.sendall(b"a")
            start = time.perf_counter()
            try:
                if request(port, "GET", "/health", timeout=2)[0] == 200:
                    answered += 1
                    slowest = max(slowest, time.perf_counter() - start)
            except OSError:
                pass
            time.sleep(1)  # the slow clients' pace: one byte per second
    finally:
        for sock in slow:
            sock.close()
    return answered, slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="requests without latency")
    parser.add_argument("--slow-samples", type=int, default=24, help="requests with latency")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "STORNO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="an administrative PostgreSQL URL (a database of the bench's own is made)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    admin = sa.make_url(args.pg_url)
    name = f"storno_bench_faults_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"faults bench skipped: PostgreSQL unavailable ({type(exc).__name__})")
        return 0
    proxy = TcpProxy(admin.port or 5432, target_host=admin.host or "127.0.0.1")
    url = admin.set(database=name, host="127.0.0.1", port=proxy.port)
    served = None
    try:
        with tempfile.TemporaryDirectory(prefix="storno-bench-faults-") as tmp:
            served = Served(
                Path(tmp) / "data", STORNO_DATABASE_URL=url.render_as_string(hide_password=False)
            )
            token = register(served.port, f"bench-{secrets.token_hex(4)}@example.eu")
            trips = round_trips(proxy, served.port, token)
            fast = measure(served.port, token, args.samples, concurrency=4)
            proxy.delay = 0.1  # each way: +200 ms per round trip
            slow = measure(served.port, token, args.slow_samples, concurrency=4)
            proxy.delay = 0.0
            answered, slowest = slow_clients(served.port)
            served.stop()
    finally:
        if served is not None:
            served.stop()
        proxy.close()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
    print(f"GET {ROUTE} on PostgreSQL through a loopback proxy (serve, 1 worker x 8 threads)")
    print(f"  database round trips per request: {trips:.1f}")
    for label, figures in (("no added latency", fast), ("+200 ms per round trip", slow)):
        print(
            f"  {label:24s} p50 {figures['p50_ms']:8.1f} ms   p99 {figures['p99_ms']:8.1f} ms"
            f"   {figures['ok']:.0f}/{figures['n']:.0f} answered 200"
        )
    print(
        f"slow clients (20 sending headers at 1 byte/s): {answered}/6 health probes answered, "
        f"slowest {slowest * 1000:.1f} ms"
    )
    print(f"bench time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
