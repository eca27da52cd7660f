"""GET of the current user with a valid bearer token: storno-security's FastAPI integration
against the same application built with fastapi-users' JWT strategy, both on SQLite, measured
with wrk in the same run; and our async access-token verify against our sync one.

Both servers run under uvicorn with the same settings (1 worker, ``--loop asyncio --http h11``,
no access log) on loopback; wrk sends the very same requests (``GET /users/me`` with
``Authorization: Bearer <token>``, and an ``X-Forwarded-For`` from a pool of addresses, which
our server trusts from loopback so that no client's API bucket empties) with the same threads
and connections, the two servers in alternate rounds. Per request:

* ours: the RS256 token (its verification cached after the first request), the API rate limit
  (in memory), and the session state (epoch and revocation) read from SQLite: on the loop (the
  integration's default on SQLite), and, reported without a target, through aiosqlite;
* fastapi-users: the HS256 token, and the user's row read from SQLite by aiosqlite.

``/users/me/profile`` (ours, reported without a target) also reads the account row, as
fastapi-users' answer does. fastapi-users is installed in ``bench/.venv-fastapi-users`` (made
on first use; git-ignored); without it (no network) that part is skipped with a line saying so.

Target: ours >= 1.0x fastapi-users' requests per second.

Run: python bench/frameworks.py [--seconds 4] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import measure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
USERS_VENV = HERE / ".venv-fastapi-users"
USERS_PACKAGES = ("fastapi-users[sqlalchemy]>=15", "aiosqlite", "uvicorn")

WRK_SCRIPT = r"""
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  n = 0
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
function request()
  n = n + 1
  wrk.headers["X-Forwarded-For"] = string.format("10.88.%d.%d", tid, n % 250 + 1)
  return wrk.format()
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d,'
    .. ' "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _users_python() -> Path | None:
    """The interpreter of the fastapi-users environment, made on first use; None without it."""
    python = USERS_VENV / "bin" / "python"
    if python.exists():
        return python
    print("making bench/.venv-fastapi-users (fastapi-users, aiosqlite, uvicorn) ...")
    try:
        subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "venv", str(USERS_VENV)], check=True, timeout=120
        )
        subprocess.run(  # noqa: S603 - the venv's pip, fixed arguments
            [str(python), "-m", "pip", "install", "--quiet", *USERS_PACKAGES],
            check=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"fastapi-users could not be installed ({type(exc).__name__}): comparison skipped")
        return None
    return python


class Server:
    """One uvicorn serving a factory of bench/frameworks_apps.py on a free port."""

    def __init__(self, python: Path, factory: str, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BENCH_DIR": str(directory), "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [
                str(python),
                "-m",
                "uvicorn",
                "--factory",
                "--app-dir",
                str(HERE),
                f"frameworks_apps:{factory}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--loop",
                "asyncio",
                "--http",
                "h11",
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            self.token = self._started(factory, directory)
        except BaseException:
            self.stop()
            raise

    def _started(self, factory: str, directory: Path) -> str:
        log: list[str] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:  # the server says when it listens
            log.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise SystemExit(f"{factory} did not start:\n{''.join(log)[-3000:]}")
        stderr = self.process.stderr
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
        return (directory / f"{factory}.token").read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _check(server: Server, path: str) -> None:
    import urllib.request

    request = urllib.request.Request(server.url + path)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {server.token}")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        body = json.loads(answer.read())
    if answer.status != 200 or "id" not in body:
        raise SystemExit(f"{server.url}{path}: unexpected answer {answer.status} {body}")


def _wrk(server: Server, path: str, script: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        server.url + path,
        "--",
        server.token,
    ]
    result = subprocess.run(  # noqa: S603 - wrk from PATH, our own arguments
        command, capture_output=True, text=True, timeout=args.seconds + 30, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    figures: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    if figures["status_errors"] or figures["socket_errors"]:
        raise SystemExit(f"{server.url}{path}: errors under load: {figures}")
    return figures


def http_comparison(args: argparse.Namespace) -> float | None:
    """Requests per second of both servers; the ratio ours / fastapi-users (None if skipped)."""
    import shutil

    if shutil.which("wrk") is None:
        print("HTTP comparison skipped: wrk is not installed (apt-get install wrk)")
        return None
    users_python = _users_python()
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as tmp:
        directory = Path(tmp)
        script = directory / "bench.lua"
        script.write_text(WRK_SCRIPT)
        servers: dict[str, Server] = {}
        try:
            servers["ours"] = Server(Path(sys.executable), "ours", directory)
            servers["ours-aiosqlite"] = Server(Path(sys.executable), "ours_aiosqlite", directory)
            if users_python is not None:
                servers["fastapi-users"] = Server(users_python, "fastapi_users", directory)
            runs: list[tuple[str, str]] = [
                ("ours", "/users/me"),
                ("ours", "/users/me/profile"),
                ("ours-aiosqlite", "/users/me"),
            ]
            if "fastapi-users" in servers:
                runs.append(("fastapi-users", "/users/me"))
            for name, path in runs:
                _check(servers[name], path)
                _wrk(
                    servers[name], path, script, argparse.Namespace(**{**vars(args), "seconds": 1})
                )
            results: dict[tuple[str, str], list[dict[str, float]]] = {run: [] for run in runs}
            for _ in range(args.rounds):
                for name, path in runs:
                    results[(name, path)].append(_wrk(servers[name], path, script, args))
        finally:
            for server in servers.values():
                server.stop()
    print(
        f"\nGET of the current user, wrk -t{args.threads} -c{args.connections}, "
        f"{args.rounds} rounds of {args.seconds} s, 1 uvicorn worker each (median of rounds):"
    )
    rps: dict[tuple[str, str], float] = {}
    for (name, path), figures in results.items():
        rps[(name, path)] = statistics.median(f["rps"] for f in figures)
        p50 = statistics.median(f["p50_us"] for f in figures) / 1000
        p99 = statistics.median(f["p99_us"] for f in figures) / 1000
        print(
            f"  {name:14} {path:18} {rps[(name, path)]:8.0f} req/s   "
            f"p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
        )
    if ("fastapi-users", "/users/me") not in rps:
        print("fastapi-users comparison skipped: its environment could not be made")
        return None
    theirs = rps[("fastapi-users", "/users/me")]
    ratio = rps[("ours", "/users/me")] / theirs
    profile = rps[("ours", "/users/me/profile")] / theirs
    through_aiosqlite = rps[("ours-aiosqlite", "/users/me")] / theirs
    print(f"  ratio ours / fastapi-users:                   {ratio:.2f}x  (target >= 1.0x)")
    print(f"  ratio ours with the account row / theirs:     {profile:.2f}x  (no target)")
    print(f"  ratio ours through aiosqlite / theirs:        {through_aiosqlite:.2f}x  (no target)")
    return ratio


def verify_comparison(seconds: float) -> float:
    """µs/op of our sync and async access-token verify on SQLite; async / sync throughput."""
    from storno_security.aio import AsyncAccessTokenVerifier, InlineSessionStateStore
    from storno_security.aio.sql import AsyncSqlSessionStateStore, create_async_engine
    from storno_security.clock import SystemClock
    from storno_security.stores.sql import SqlSessionStateStore, create_engine, create_schema
    from storno_security.tokens import (
        AccessTokenIssuer,
        AccessTokenVerifier,
        KeyRing,
        TokenPolicy,
    )

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        url = f"sqlite:///{tmp}/verify.db"
        engine = create_engine(url)
        create_schema(engine)
        ring, clock = KeyRing.generate(bits=2048), SystemClock()
        policy = TokenPolicy(issuer="https://bench.example.eu", audience="bench")
        token = AccessTokenIssuer(ring, policy, clock=clock).issue("u-1", session_id="s-1", epoch=0)
        sync_store = SqlSessionStateStore(engine)
        sync = AccessTokenVerifier(ring, policy, clock=clock, sessions=sync_store)
        sync_us, _ = measure(lambda: sync.verify(token.token), seconds, warmup=100)

        async def run_async(store: Any) -> tuple[float, float]:
            verifier = AsyncAccessTokenVerifier(ring, policy, clock=clock, sessions=store)
            started = time.perf_counter()
            for _ in range(100):
                await verifier.verify(token.token)
            per_call = (time.perf_counter() - started) / 100
            calls = max(320, int(seconds / 2 / per_call))
            started = time.perf_counter()
            for _ in range(calls):
                await verifier.verify(token.token)
            sequential = (time.perf_counter() - started) / calls * 1e6
            started = time.perf_counter()
            for _ in range(calls // 32):
                await asyncio.gather(*(verifier.verify(token.token) for _ in range(32)))
            concurrent = (time.perf_counter() - started) / (calls // 32 * 32) * 1e6
            return sequential, concurrent

        async def both() -> dict[str, tuple[float, float]]:
            async_engine = create_async_engine(url)
            try:
                return {
                    "inline": await run_async(InlineSessionStateStore(sync_store)),
                    "aiosqlite": await run_async(AsyncSqlSessionStateStore(async_engine)),
                }
            finally:
                await async_engine.dispose()

        results = asyncio.run(both())
        engine.dispose()
    print("\nAccess-token verify with the session state on SQLite (cached token), in-process:")
    print(f"  sync  AccessTokenVerifier (pysqlite, lean read)        {sync_us:8.1f} µs/op")
    for name, (one_by_one, concurrent) in results.items():
        print(f"  async AsyncAccessTokenVerifier, {name:9} 1 by 1      {one_by_one:8.1f} µs/op")
        print(f"  async AsyncAccessTokenVerifier, {name:9} 32 at once  {concurrent:8.1f} µs/op")
    ratio = sync_us / results["inline"][0]
    print(f"  ratio async (inline) / sync throughput:     {ratio:.2f}x  (no target)")
    print(f"  ratio async (aiosqlite) / sync throughput:  {sync_us / results['aiosqlite'][0]:.2f}x")
    return ratio


def _on_term(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so that the servers are stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _on_term)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--verify-seconds", type=float, default=1.0)
    args = parser.parse_args()
    ratio = http_comparison(args)
    verify_comparison(args.verify_seconds)
    if ratio is not None and ratio < 1.0:
        print("TARGET MISSED: ours < 1.0x fastapi-users")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
