"""Fixtures for token tests: one RSA key pair per run (generation is slow), fresh rings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    SessionManager,
    SigningKey,
    TokenPolicy,
)


@pytest.fixture(scope="session")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
def signing_keys(rsa_keys: list[rsa.RSAPrivateKey]) -> list[SigningKey]:
    return [SigningKey.from_private_key(k) for k in rsa_keys]


@pytest.fixture
def ring(signing_keys: list[SigningKey]) -> KeyRing:
    return KeyRing(signing_keys[0])


@pytest.fixture
def policy() -> TokenPolicy:
    return TokenPolicy(issuer="https://api.storno.test", audience="storno-api")


@pytest.fixture
def state() -> MemorySessionStateStore:
    return MemorySessionStateStore()


@pytest.fixture
def families() -> MemoryRefreshFamilyStore:
    return MemoryRefreshFamilyStore()


@pytest.fixture
def issuer(ring: KeyRing, policy: TokenPolicy, clock: FrozenClock) -> AccessTokenIssuer:
    return AccessTokenIssuer(ring, policy, clock=clock)


@pytest.fixture
def verifier(
    ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, state: MemorySessionStateStore
) -> AccessTokenVerifier:
    return AccessTokenVerifier(ring, policy, clock=clock, sessions=state)


@pytest.fixture
def manager(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> SessionManager:
    return SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=issuer,
        policy=policy,
        families=families,
        sessions=state,
        clock=clock,
    )
