"""A login burst does not stall the event loop: 20 concurrent logins at the production bcrypt
cost through the FastAPI integration, while a probe on the same loop measures the longest time
the loop could not run it. The logins' bcrypt runs in the offloader's bounded ``cpu`` lane, so
the loop stays free; the same probe sees a login run on the loop stall it for a whole hash.

The probe yields to the loop (``asyncio.sleep(0)``) in a tight loop and records the longest gap
between two of its turns: a measure, not a wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from storno_security.integrations.fastapi import setup
from storno_security.kit import Kit, KitKeys, KitPolicy
from storno_security.stores.memory import memory_bundle

PASSWORD = "a long passphrase"
LOGINS = 20
MAX_LAG = 0.050  # seconds


async def worst_lag_during(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Run ``work`` while probing the loop; the longest gap between two turns of the probe."""
    done = asyncio.Event()
    worst = 0.0

    async def probe() -> None:
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


@pytest.fixture(scope="module")
def kit() -> Kit:
    """A kit at the production password cost (bcrypt 12), one registered user."""
    made = Kit(
        memory_bundle(),
        policy=KitPolicy.for_api(issuer="https://api.example.eu", audience="example-api"),
        keys=KitKeys.generate(rsa_bits=2048),
    )
    assert made.policy.passwords.cost >= 12
    made.register("ana@example.eu", PASSWORD)
    return made


@pytest.mark.slow
def test_twenty_concurrent_logins_keep_the_loop_responsive(kit: Kit) -> None:
    app = FastAPI()
    setup(app, kit)

    async def burst() -> list[int]:
        async def one(number: int) -> int:
            # each from an address of its own: the login limit is per client (RL-1)
            transport = httpx2.ASGITransport(app=app, client=(f"198.51.100.{number + 1}", 4000))
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
                answer = await client.post(
                    "/api/auth", json={"email": "ana@example.eu", "password": PASSWORD}
                )
                return answer.status_code

        return await asyncio.gather(*(one(n) for n in range(LOGINS)))

    async def measured() -> tuple[float, list[int]]:
        # A FastAPI application builds its routes' handlers at its first request (about a
        # quarter of a second of CPU, once): a server has done so before any burst.
        transport = httpx2.ASGITransport(app=app, client=("198.51.100.200", 4000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/api/auth/me")).status_code == 401
        return await worst_lag_during(burst)

    started = time.perf_counter()
    worst, statuses = asyncio.run(measured())
    elapsed = time.perf_counter() - started
    print(f"\n{LOGINS} concurrent logins in {elapsed:.2f} s; worst loop lag {worst * 1000:.1f} ms")
    assert statuses == [200] * LOGINS
    assert worst < MAX_LAG, f"the loop stalled for {worst * 1000:.1f} ms"


@pytest.mark.slow
def test_the_probe_sees_a_login_run_on_the_loop(kit: Kit) -> None:
    """The control: the same login called on the loop stalls it for a whole bcrypt."""

    async def inline() -> Any:
        return kit.login("ana@example.eu", PASSWORD)

    worst, _ = asyncio.run(worst_lag_during(inline))
    assert worst > 2 * MAX_LAG, f"a login on the loop stalled it only {worst * 1000:.1f} ms"
