"""A login burst does not block the event loop: 20 concurrent logins through the FastAPI
integration never run bcrypt on the loop's thread (the offloader's bounded ``cpu`` lane runs
it), while the control, a login called on the loop itself, does.

The check is by thread, not by time: which thread called bcrypt is a fact, a loop-lag
figure depends on the machine. The lag is measured here too (a probe on the loop records the
longest gap between its turns) and printed; its 50 ms target is checked by
``bench/frameworks.py``, where speed targets live. The probe runs in an interpreter of its own,
as a server would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

LOGINS = 20

PROBE = r"""
import asyncio, json, sys, threading, time

import bcrypt
import httpx2
from fastapi import FastAPI

from storno_security.integrations.fastapi import setup
from storno_security.kit import Kit, KitKeys, KitPolicy
from storno_security.passwords import PasswordPolicy
from storno_security.stores.memory import memory_bundle

LOGINS = int(sys.argv[1])
PASSWORD = "a long passphrase"
CALLS = []  # the thread of every bcrypt call


def recorded(function):
    def call(*args, **kwargs):
        CALLS.append(threading.get_ident())
        return function(*args, **kwargs)

    return call


bcrypt.checkpw = recorded(bcrypt.checkpw)
bcrypt.hashpw = recorded(bcrypt.hashpw)

kit = Kit(
    memory_bundle(),
    policy=KitPolicy.for_api(
        issuer="https://api.example.eu",
        audience="example-api",
        passwords=PasswordPolicy(cost=4, insecure_low_cost=True),
    ),
    keys=KitKeys.generate(rsa_bits=2048),
)
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


async def longest_gap_during(work):
    done, longest = asyncio.Event(), 0.0

    async def probe():
        nonlocal longest
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.monotonic()
            longest, last = max(longest, now - last), now

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0)
    try:
        result = await work()
    finally:
        done.set()
        await prober
    return result, longest


async def main():
    loop_thread = threading.get_ident()
    CALLS.clear()
    statuses, lag = await longest_gap_during(
        lambda: asyncio.gather(*(login(n) for n in range(LOGINS)))
    )
    burst = list(CALLS)
    CALLS.clear()
    kit.login("ana@example.eu", PASSWORD)  # the control: a login called on the loop itself
    control = list(CALLS)
    print(json.dumps({
        "statuses": list(statuses),
        "lag_ms": lag * 1000,
        "burst_calls": len(burst),
        "burst_on_loop": sum(t == loop_thread for t in burst),
        "control_calls": len(control),
        "control_on_loop": sum(t == loop_thread for t in control),
    }))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(LOGINS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n{LOGINS} concurrent logins: longest loop gap {figures['lag_ms']:.1f} ms")
    return figures


def test_twenty_concurrent_logins_never_run_bcrypt_on_the_loop(measured: dict[str, Any]) -> None:
    assert measured["statuses"] == [200] * LOGINS
    assert measured["burst_calls"] >= LOGINS  # every login checked its password
    assert measured["burst_on_loop"] == 0, measured


def test_the_probe_sees_a_login_run_on_the_loop(measured: dict[str, Any]) -> None:
    """The control: the same login called on the loop runs bcrypt on the loop's thread."""
    assert measured["control_calls"] >= 1
    assert measured["control_on_loop"] == measured["control_calls"], measured
