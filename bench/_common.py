"""Helpers shared by the bench scripts: timing, a Redis server of their own, round-trip counting.

Imported by name: run the scripts as ``python bench/x.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

#: A clock for a benchmark: ``time.perf_counter`` (wall time) or ``time.thread_time`` (CPU time
#: of the calling thread: for CPU-bound code on a machine shared with other jobs, it leaves out
#: the time the scheduler gives to others).
Timer = Callable[[], float]


def calibrate(
    fn: Callable[[], object], seconds: float, *, warmup: int = 200, minimum: int = 100
) -> tuple[int, int]:
    """How many calls of ``fn`` take about ``seconds`` (at least ``minimum``), found after
    ``warmup`` calls and 50 ms of counting; and how many calls finding it made."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < 0.05:
        fn()
        n += 1
    return max(minimum, int(n * seconds / 0.05)), warmup + n


def micros_per_call(
    fn: Callable[[], object], calls: int, *, timer: Timer = time.perf_counter
) -> float:
    """µs/op of ``calls`` calls of ``fn`` back to back."""
    t0 = timer()
    for _ in range(calls):
        fn()
    return (timer() - t0) / calls * 1e6


def measure(
    fn: Callable[[], object],
    seconds: float,
    rounds: int = 5,
    *,
    warmup: int = 200,
    minimum: int = 100,
) -> tuple[float, int]:
    """Median µs/op over ``rounds`` runs of about ``seconds / rounds`` each (at least
    ``minimum`` calls each, after ``warmup`` calls), and the op count."""
    per_round, calls = calibrate(fn, seconds / rounds, warmup=warmup, minimum=minimum)
    results = [micros_per_call(fn, per_round) for _ in range(rounds)]
    return statistics.median(results), calls + rounds * per_round


def measure_interleaved(
    functions: dict[str, Callable[[], object]],
    seconds: float,
    rounds: int = 7,
    *,
    timer: Timer = time.perf_counter,
) -> dict[str, list[float]]:
    """µs/op of each function in each of ``rounds`` rounds; within a round the functions run
    back to back, so a ratio of two figures of the same round compares like with like on a
    machine whose load changes over the run."""
    counts = {name: calibrate(fn, seconds / rounds)[0] for name, fn in functions.items()}
    results: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            results[name].append(micros_per_call(fn, counts[name], timer=timer))
    return results


def interleaved(fns: dict[str, Callable[[], object]], samples: int) -> dict[str, float]:
    """Median ms/op of slow operations (bcrypt), one call of each per sample, in turn, so that
    a busy machine slows them all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(samples):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


@contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server on a free port, stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; pass --redis-url")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory() as directory:
        options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        options |= {"daemonize": "no", "dir": directory}
        command = [binary, *(part for k, v in options.items() for part in (f"--{k}", v))]
        process = subprocess.Popen(  # noqa: S603 - our own redis-server, found on PATH
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if "Ready to accept connections" in line:
                    break
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            try:
                redis.Redis(port=port).shutdown(nosave=True)
            finally:
                process.wait(timeout=10)
                if process.stdout is not None:
                    process.stdout.close()


class Counted:
    """Counts client round trips and server-side commands around a measurement."""

    def __init__(self, client: redis.Redis[Any]) -> None:
        self.client = client
        self.round_trips = 0
        real = client.execute_command

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return real(*args, **kwargs)

        client.execute_command = counting  # type: ignore[method-assign]

    def server_commands(self) -> dict[str, int]:
        self.round_trips -= 1  # not this INFO itself
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    """``given``, or the URL of :func:`own_redis` (so other clients do not pollute the counts)."""
    if given is not None:
        yield given
        return
    with own_redis() as url:
        yield url
