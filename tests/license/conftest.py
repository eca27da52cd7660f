"""Fixtures for license tests: one RSA and one Ed25519 vendor key per run, a frozen clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from storno_security.clock import FrozenClock
from storno_security.license import (
    Entitlements,
    IssuedLicense,
    LicenseIssuer,
    LicenseKey,
    LicensePolicy,
    LicenseSigningKey,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore

VENDOR = "https://licensing.storno.test"
FREE = Entitlements(plan="free", features=frozenset(), max_companies=1, max_users=1)


@pytest.fixture(scope="session")
def rsa_key() -> LicenseSigningKey:
    return LicenseSigningKey.from_private_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


@pytest.fixture(scope="session")
def ed_key() -> LicenseSigningKey:
    return LicenseSigningKey.generate()


@pytest.fixture(params=["RS256", "EdDSA"])
def vendor_key(
    request: pytest.FixtureRequest, rsa_key: LicenseSigningKey, ed_key: LicenseSigningKey
) -> LicenseSigningKey:
    return rsa_key if request.param == "RS256" else ed_key


@pytest.fixture
def policy() -> LicensePolicy:
    return LicensePolicy(issuer=VENDOR, free_plan=FREE)


@pytest.fixture
def last_seen() -> MemoryLastSeenStore:
    return MemoryLastSeenStore()


@pytest.fixture
def make_verifier(
    policy: LicensePolicy,
    clock: FrozenClock,
    last_seen: MemoryLastSeenStore,
    rsa_key: LicenseSigningKey,
    ed_key: LicenseSigningKey,
) -> Callable[..., LicenseVerifier]:
    """A verifier of both vendor keys unless told otherwise."""

    def make(
        *,
        keys: list[LicenseKey] | None = None,
        policy: LicensePolicy = policy,
        instance_id: str | None = None,
        organization_id: str | None = "org-42",
    ) -> LicenseVerifier:
        return LicenseVerifier(
            keys if keys is not None else [rsa_key.public, ed_key.public],
            policy,
            clock=clock,
            last_seen=last_seen,
            instance_id=instance_id,
            organization_id=organization_id,
        )

    return make


@pytest.fixture
def issue(clock: FrozenClock) -> Callable[..., IssuedLicense]:
    """Issue a one-year business license with ``key``; keyword arguments override."""

    def make(key: LicenseSigningKey, **overrides: Any) -> IssuedLicense:
        arguments: dict[str, Any] = {
            "org_name": "ACME SRL",
            "plan": "business",
            "features": ["efactura", "xml_sign"],
            "max_companies": 5,
            "max_users": 20,
            "valid_for": timedelta(days=365),
        }
        arguments.update(overrides)
        organization_id = arguments.pop("organization_id", "org-42")
        return LicenseIssuer(key, issuer=VENDOR, clock=clock).issue(organization_id, **arguments)

    return make
