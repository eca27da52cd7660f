"""A login burst does not stall the event loop: 20 concurrent logins at the production bcrypt
cost through the FastAPI integration, while a probe on the same loop measures the longest time
the loop could not run it. The logins' bcrypt runs in the offloader's bounded ``cpu`` lane, so
the loop stays free; the same probe sees a login run on the loop stall it for a whole hash.

The probe yields to the loop (``asyncio.sleep(0)``) in a tight loop and records the longest gap
between two of its turns: a measure, not a wait. It runs in an interpreter of its own, as a
server would: a test process that has run a thousand tests before carries a heap whose garbage
collection alone can pause any thread for tens of milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

LOGINS = 20
MAX_LAG_MS = 50.0

PROBE = r"""
import asyncio, json, sys, time

import httpx2
from fastapi import FastAPI

from storno_security.integrations.fastapi import setup
from storno_security.kit import Kit, KitKeys, KitPolicy
from storno_security.stores.memory import memory_bundle

LOGINS = int(sys.argv[1])
MAX_LAG_MS = float(sys.argv[2])
PASSWORD = "a long passphrase"


async def worst_lag_during(work):
    done = asyncio.Event()
    worst = 0.0

    async def probe():
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0)
    try:
        result = await work()
    finally:
        done.set()
        await prober
    return worst, result


kit = Kit(
    memory_bundle(),
    policy=KitPolicy.for_api(issuer="https://api.example.eu", audience="example-api"),
    keys=KitKeys.generate(rsa_bits=2048),
)
assert kit.policy.passwords.cost >= 12
kit.register("ana@example.eu", PASSWORD)
app = FastAPI()
setup(app, kit)


async def login(number):
    # each from an address of its own: the login limit is per client (RL-1)
    transport = httpx2.ASGITransport(app=app, client=(f"198.51.100.{number + 1}", 4000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post(
            "/api/auth", json={"email": "ana@example.eu", "password": PASSWORD}
        )
        return answer.status_code


async def main():
    # A FastAPI application builds its routes' handlers at its first request (about a quarter
    # of a second of CPU, once): a server has done so before any burst.
    transport = httpx2.ASGITransport(app=app, client=("198.51.100.250", 4000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/auth/me")).status_code == 401
    # Up to three bursts, the quietest counted: another process on a shared machine can take
    # the CPU from the loop for a while, which says nothing of the loop's own work; a loop that
    # runs bcrypt itself stalls in every burst.
    burst, statuses, elapsed = float("inf"), [], 0.0
    for attempt in range(3):
        started = time.perf_counter()
        worst, answers = await worst_lag_during(
            lambda: asyncio.gather(*(login(attempt * LOGINS + n) for n in range(LOGINS)))
        )
        elapsed = time.perf_counter() - started
        statuses = list(answers)
        burst = min(burst, worst)
        if burst * 1000 < MAX_LAG_MS:
            break

    async def inline():  # the control: the login called on the loop itself
        return kit.login("ana@example.eu", PASSWORD)

    on_loop, _ = await worst_lag_during(inline)
    print(json.dumps({"burst_ms": burst * 1000, "statuses": list(statuses),
                      "elapsed_s": elapsed, "on_loop_ms": on_loop * 1000}))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(LOGINS), str(MAX_LAG_MS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"\n{LOGINS} concurrent logins in {figures['elapsed_s']:.2f} s; worst loop lag "
        f"{figures['burst_ms']:.1f} ms (a login on the loop: {figures['on_loop_ms']:.1f} ms)"
    )
    return figures


@pytest.mark.slow
def test_twenty_concurrent_logins_keep_the_loop_responsive(measured: dict[str, Any]) -> None:
    assert measured["statuses"] == [200] * LOGINS
    assert measured["burst_ms"] < MAX_LAG_MS, f"the loop stalled for {measured['burst_ms']:.1f} ms"


@pytest.mark.slow
def test_the_probe_sees_a_login_run_on_the_loop(measured: dict[str, Any]) -> None:
    """The control: the same login called on the loop stalls it for a whole bcrypt."""
    assert measured["on_loop_ms"] > 2 * MAX_LAG_MS, measured
