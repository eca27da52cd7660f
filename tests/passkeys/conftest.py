"""Fixtures of the passkey tests: a policy, memory stores, the relying party and the manager."""

from __future__ import annotations

import pytest

from storno_security.clock import FrozenClock
from storno_security.passkeys import PasskeyManager, PasskeyPolicy, PasskeyRelyingParty
from storno_security.stores.memory import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)
from tests.passkeys.authenticator import SoftAuthenticator

RP_ID = "storno.example"
ORIGIN = "https://app.storno.example"


def make_policy(**overrides: object) -> PasskeyPolicy:
    values: dict[str, object] = {
        "rp_id": RP_ID,
        "rp_name": "Storno",
        "allowed_origins": (ORIGIN, "https://storno.example"),
    }
    values.update(overrides)
    return PasskeyPolicy(**values)  # type: ignore[arg-type]


@pytest.fixture
def policy() -> PasskeyPolicy:
    return make_policy()


@pytest.fixture
def challenges() -> MemoryPasskeyChallengeStore:
    return MemoryPasskeyChallengeStore()


@pytest.fixture
def credentials() -> MemoryPasskeyCredentialStore:
    return MemoryPasskeyCredentialStore()


@pytest.fixture
def rp(
    policy: PasskeyPolicy, challenges: MemoryPasskeyChallengeStore, clock: FrozenClock
) -> PasskeyRelyingParty:
    return PasskeyRelyingParty(policy, challenges=challenges, clock=clock)


@pytest.fixture
def manager(
    rp: PasskeyRelyingParty, credentials: MemoryPasskeyCredentialStore, clock: FrozenClock
) -> PasskeyManager:
    return PasskeyManager(rp, credentials=credentials, clock=clock)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()
