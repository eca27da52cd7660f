"""HTTP throughput of the reference server: the same public route with and without a Bearer
token, measured with wrk on loopback in the same run.

Starts ``storno-security serve`` (SQLite, in-memory rate limits, 1 worker, threads), registers
one user for a token, then runs wrk against ``GET /.well-known/jwks.json`` alternately without
and with ``Authorization: Bearer <jwt>`` (the token is verified on every request: signature on
first sight, then the verified-token cache plus the session check). Each request comes from one
of a few hundred client addresses (``X-Forwarded-For`` from a trusted loopback proxy), so no
per-IP token bucket (RL-2) empties during the run. Prints requests/s of both, the ratio, and
the non-2xx count. Targets: authenticated >= 0.90x unauthenticated; no non-2xx response.

Run: bench/server.sh [--seconds 4] [--rounds 3]   (needs wrk; the whole run stays under 60 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROUTE = "/.well-known/jwks.json"

# One client address per request from a pool of 250 per wrk thread, behind a trusted proxy.
# wrk.headers is per thread, so setting it per request is safe.
WRK_SCRIPT = r"""
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  n = 0
  if args[1] ~= nil and args[1] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[1]
  end
end
function request()
  n = n + 1
  wrk.headers["X-Forwarded-For"] = string.format("10.77.%d.%d", tid, n % 250 + 1)
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


def _request(url: str, *, body: Any = None, token: str | None = None) -> tuple[int, Message, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


def _wait_healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if _request(base + "/health")[0] == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)  # waiting for a real process to listen
    raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")


def _wrk(
    url: str, script: Path, token: str, *, seconds: int, threads: int, connections: int
) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        token,
    ]
    result = subprocess.run(  # noqa: S603 - wrk from PATH, our own arguments
        command, capture_output=True, text=True, timeout=seconds + 20, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    figures: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _clean_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=4, help="length of one wrk run (whole seconds)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind, alternated")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--server-threads", type=int, default=4, help="gunicorn threads")
    parser.add_argument(
        "--redis-url",
        help="put session state and rate limits in this Redis (default: SQLite + memory)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("server bench skipped: wrk is not installed")
        return 0
    signal.signal(signal.SIGTERM, _on_term)

    with tempfile.TemporaryDirectory(prefix="storno-bench-") as tmp:
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORNO_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env |= {
            "STORNO_DATA_DIR": str(workdir / "data"),
            "STORNO_TRUSTED_PROXIES": "127.0.0.1/32",
            "STORNO_EMAIL_SINK": "memory",
            "STORNO_PASSWORD_COST": "4",  # one registration; bcrypt is not what is measured
        }
        if args.redis_url:
            env["STORNO_REDIS_URL"] = args.redis_url
            env["STORNO_REDIS_PREFIX"] = f"storno-bench:{os.getpid()}:"
        backend = "SQLite + Redis" if args.redis_url else "SQLite + memory limits"
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log = workdir / "server.log"
        command = [
            sys.executable,
            "-m",
            "reference_server",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            "--threads",
            str(args.server_threads),
            "--log-level",
            "warning",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - our own server
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_healthy(process, base, log)
            status, _, body = _request(
                base + "/api/auth/register",
                body={
                    "email": "bench@example.eu",
                    "password": "correct horse battery",
                    "name": "B",
                },
            )
            if status != 201:
                raise SystemExit(f"registration failed: {status} {body}")
            token = body["access_token"]
            # The token must take the authenticated path: its bucket is the 50,000 one (RL-2).
            _, auth_headers, _ = _request(base + ROUTE, token=token)
            _, anon_headers, _ = _request(base + ROUTE)
            limits = (anon_headers.get("RateLimit-Limit"), auth_headers.get("RateLimit-Limit"))
            if limits != ("10000", "50000"):
                raise SystemExit(f"unexpected rate-limit buckets (anonymous, Bearer): {limits}")

            script = workdir / "bench.lua"
            script.write_text(WRK_SCRIPT)
            kinds = {"without auth": "", "Bearer JWT": token}
            run = {"threads": args.threads, "connections": args.connections}
            for secret in kinds.values():  # warm-up: caches, JIT-free but page cache and pools
                _wrk(base + ROUTE, script, secret, seconds=1, **run)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
            for _ in range(args.rounds):
                for name, secret in kinds.items():
                    results[name].append(
                        _wrk(base + ROUTE, script, secret, seconds=args.seconds, **run)
                    )
        finally:
            _stop(process)
            if args.redis_url:
                _clean_redis(args.redis_url, env["STORNO_REDIS_PREFIX"])

    print(
        f"server GET {ROUTE}, gunicorn 1 worker x {args.server_threads} threads, {backend}, "
        f"wrk -t{args.threads} -c{args.connections}, {args.rounds} x {args.seconds:g} s "
        f"per kind, Python {sys.version.split()[0]}"
    )
    rps: dict[str, float] = {}
    non_2xx = 0
    for name, runs in results.items():
        rps[name] = statistics.median(r["rps"] for r in runs)
        bad = int(sum(r["status_errors"] for r in runs))
        sockets = int(sum(r["socket_errors"] for r in runs))
        p50 = statistics.median(r["p50_us"] for r in runs) / 1000
        p99 = statistics.median(r["p99_us"] for r in runs) / 1000
        non_2xx += bad
        print(
            f"  {name:<13} {rps[name]:9.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"non-2xx {bad}  socket errors {sockets}"
        )
    ratio = rps["Bearer JWT"] / rps["without auth"]
    print(f"  Bearer / without auth = {ratio:5.2f}x  (target >= 0.90x)")
    print(f"  non-2xx responses     = {non_2xx}  (target 0)")
    ok = ratio >= 0.90 and non_2xx == 0
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
