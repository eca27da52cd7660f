"""HTTP throughput of the reference server: what authentication costs an authenticated GET,
measured with wrk on loopback in the same run.

Two gunicorn servers (1 worker each, threads; SQLite and in-memory rate limits, or Redis) run
on the same data directory, started the same way:

* ``verifying``: the server as shipped: the Bearer token is verified on every request (RS256 on
  first sight, then the verified-token cache plus the session check against the store);
* ``trusting``: the same app whose authentication step is replaced by the caller it would have
  found (no signature, cache or session check); everything else runs as shipped.

wrk sends the very same bytes to both (``GET /api/v1/me`` with ``Authorization: Bearer ...``),
alternating runs, so the ratio is the cost of verifying the token on a real authenticated GET.
Target: verifying >= 0.90x trusting, and no non-2xx answer. For the worst case it also reports
(no target) a public route that does no work, ``/.well-known/jwks.json``, with and without the
token. Each request comes from one of a few hundred client addresses (``X-Forwarded-For`` from a
trusted loopback proxy), so no per-IP token bucket (RL-2) empties during the run.

Run: bench/server.sh [--seconds 3] [--rounds 3]   (needs wrk; the whole run stays under 60 s)
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
ROUTE = "/api/v1/me"
PUBLIC_ROUTE = "/.well-known/jwks.json"
TRUST_VARIABLE = "BENCH_TRUSTED_USER_ID"

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


def trusting_app() -> Any:
    """The app with its authentication step replaced by a fixed caller (bench only).

    The caller is the user named in ``BENCH_TRUSTED_USER_ID``; the ``Authorization`` header is
    still read, so both servers see the same request and do the same work but the check.
    """
    from reference_server.context import Caller

    from reference_server.app import create_app_from_env
    from storno_security.integrations.falcon.middleware import AuthMiddleware

    caller = Caller(user_id=os.environ[TRUST_VARIABLE], kind="user")

    def trust(self: AuthMiddleware, header: str) -> Caller:
        return caller

    AuthMiddleware._authenticate = trust  # type: ignore[method-assign]
    return create_app_from_env()


def verifying_app() -> Any:
    """The app as shipped."""
    from reference_server.app import create_app_from_env

    return create_app_from_env()


def _start(
    factory: str, env: dict[str, str], workdir: Path, threads: int
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = workdir / f"{factory}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        "--pythonpath",
        str(ROOT / "bench"),
        f"server_app:{factory}()",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own server
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, f"http://127.0.0.1:{port}", log


def _summary(name: str, runs: list[dict[str, float]]) -> tuple[float, int]:
    rps = statistics.median(r["rps"] for r in runs)
    bad = int(sum(r["status_errors"] for r in runs))
    sockets = int(sum(r["socket_errors"] for r in runs))
    p50 = statistics.median(r["p50_us"] for r in runs) / 1000
    p99 = statistics.median(r["p99_us"] for r in runs) / 1000
    print(
        f"  {name:<24} {rps:9.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"non-2xx {bad}  socket errors {sockets}"
    )
    return rps, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=3, help="length of one wrk run (whole seconds)"
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

    processes: list[subprocess.Popen[bytes]] = []
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
        try:
            # Keys and schema once, before either server starts (as `storno-security serve`).
            subprocess.run(
                [sys.executable, "-m", "reference_server", "keys", "generate"],
                env=env,
                check=True,
                capture_output=True,
            )
            verifying, base, log = _start("verifying_app", env, workdir, args.server_threads)
            processes.append(verifying)
            _wait_healthy(verifying, base, log)
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
            trusting, trusted_base, trusted_log = _start(
                "trusting_app",
                env | {TRUST_VARIABLE: body["user"]["id"]},
                workdir,
                args.server_threads,
            )
            processes.append(trusting)
            _wait_healthy(trusting, trusted_base, trusted_log)
            # Both answer the route for this user; the token takes the authenticated path.
            for url in (base, trusted_base):
                status, headers, me = _request(url + ROUTE, token=token)
                if status != 200 or me["user"]["id"] != body["user"]["id"]:
                    raise SystemExit(f"{url}{ROUTE} answered {status} {me}")
                if headers.get("RateLimit-Limit") != "50000":
                    raise SystemExit("the Bearer request did not take the authenticated bucket")

            script = workdir / "bench.lua"
            script.write_text(WRK_SCRIPT)
            run = {"threads": args.threads, "connections": args.connections}
            kinds = {
                f"{ROUTE} verifying": (base + ROUTE, token),
                f"{ROUTE} trusting": (trusted_base + ROUTE, token),
                f"{PUBLIC_ROUTE} anonymous": (base + PUBLIC_ROUTE, ""),
                f"{PUBLIC_ROUTE} Bearer": (base + PUBLIC_ROUTE, token),
            }
            for url, secret in kinds.values():  # warm-up: caches, pools, page cache
                _wrk(url, script, secret, seconds=1, **run)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
            for _ in range(args.rounds):
                for name, (url, secret) in kinds.items():
                    results[name].append(_wrk(url, script, secret, seconds=args.seconds, **run))
        finally:
            for process in processes:
                _stop(process)
            if args.redis_url:
                _clean_redis(args.redis_url, env["STORNO_REDIS_PREFIX"])

    print(
        f"server, gunicorn 1 worker x {args.server_threads} threads, {backend}, "
        f"wrk -t{args.threads} -c{args.connections}, {args.rounds} x {args.seconds:g} s "
        f"per kind, alternated, Python {sys.version.split()[0]}"
    )
    rps: dict[str, float] = {}
    non_2xx = 0
    for name, runs in results.items():
        rps[name], bad = _summary(name, runs)
        non_2xx += bad
    ratio = rps[f"{ROUTE} verifying"] / rps[f"{ROUTE} trusting"]
    public = rps[f"{PUBLIC_ROUTE} Bearer"] / rps[f"{PUBLIC_ROUTE} anonymous"]
    print(f"  authenticated GET {ROUTE}: verifying / trusting = {ratio:5.2f}x  (target >= 0.90x)")
    print(f"  empty public route: Bearer / anonymous = {public:5.2f}x  (worst case, no target)")
    print(f"  non-2xx responses = {non_2xx}  (target 0)")
    ok = ratio >= 0.90 and non_2xx == 0
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
