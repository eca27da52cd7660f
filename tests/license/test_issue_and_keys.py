"""The vendor side (LIC-4) and license keys: loading, kinds, strength, thumbprints."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from storno_security.clock import FrozenClock
from storno_security.errors import LicenseKeyError
from storno_security.license import (
    IssuedLicense,
    LicenseIssuer,
    LicenseKey,
    LicenseSigningKey,
    LicenseState,
    LicenseVerifier,
)
from storno_security.license.keys import _thumbprint
from tests.license.conftest import VENDOR

Issue = Callable[..., IssuedLicense]
MakeVerifier = Callable[..., LicenseVerifier]


@pytest.mark.spec("LIC-4")
def test_vendor_issues_from_a_private_key_pem(
    vendor_key: LicenseSigningKey, clock: FrozenClock, make_verifier: MakeVerifier
) -> None:
    # The vendor keeps an encrypted PEM; the application embeds only the public PEM.
    pem = vendor_key.private_pem(password=b"vendor passphrase")
    assert b"ENCRYPTED" in pem
    loaded = LicenseSigningKey.from_pem(pem, password=b"vendor passphrase")
    assert loaded.kid == vendor_key.kid
    assert loaded.algorithm == vendor_key.algorithm
    issuer = LicenseIssuer(loaded, issuer=VENDOR, clock=clock)
    issued = issuer.issue(
        "org-7",
        org_name="Beta SA",
        plan="starter",
        features={"efactura"},
        max_companies=1,
        max_users=3,
        valid_for=timedelta(days=30),
        instance_id="inst-9",
    )
    public = LicenseKey.from_pem(vendor_key.public.public_pem())
    status = make_verifier(keys=[public], instance_id="inst-9", organization_id="org-7").verify(
        issued.token
    )
    assert status.state is LicenseState.VALID
    assert status.license == issued.license
    assert issued.license.organization_id == "org-7"
    assert issued.token not in repr(issued)


@pytest.mark.spec("LIC-4")
def test_each_license_has_its_own_id(ed_key: LicenseSigningKey, issue: Issue) -> None:
    first, second = issue(ed_key), issue(ed_key)
    assert first.license.license_id != second.license.license_id


@pytest.mark.spec("LIC-4")
def test_issue_with_a_start_date(
    ed_key: LicenseSigningKey, issue: Issue, clock: FrozenClock
) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    lic = issue(ed_key, not_before=start, valid_for=timedelta(days=10)).license
    assert lic.issued_at == clock.now()
    assert lic.not_before == start
    assert lic.expires_at == start + timedelta(days=10)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"organization_id": ""}, ValueError),
        ({"org_name": ""}, ValueError),
        ({"plan": ""}, ValueError),
        ({"features": "efactura"}, TypeError),
        ({"features": [""]}, ValueError),
        ({"max_companies": -1}, ValueError),
        ({"max_users": True}, ValueError),
        ({"valid_for": timedelta(seconds=59)}, ValueError),
        ({"valid_for": timedelta(days=3661)}, ValueError),
        ({"valid_for": 30}, TypeError),
        ({"instance_id": ""}, ValueError),
        ({"not_before": datetime(2026, 4, 1)}, ValueError),  # naive
    ],
)
def test_issue_arguments_are_checked(
    overrides: dict[str, Any], error: type[Exception], ed_key: LicenseSigningKey, issue: Issue
) -> None:
    with pytest.raises(error):
        issue(ed_key, **overrides)


def test_issuer_arguments_are_checked(ed_key: LicenseSigningKey, clock: FrozenClock) -> None:
    with pytest.raises(TypeError):
        LicenseIssuer(ed_key.public, issuer=VENDOR, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="issuer"):
        LicenseIssuer(ed_key, issuer=" ", clock=clock)


# --- keys ------------------------------------------------------------------------------------


def test_algorithm_follows_the_key_type() -> None:
    assert LicenseSigningKey.generate().algorithm == "EdDSA"
    assert LicenseSigningKey.from_private_key(ed448.Ed448PrivateKey.generate()).algorithm == (
        "EdDSA"
    )
    assert LicenseSigningKey.generate("RS256", rsa_bits=2048).algorithm == "RS256"
    with pytest.raises(ValueError, match="algorithm"):
        LicenseSigningKey.generate("HS256")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rsa_bits"):
        LicenseSigningKey.generate("RS256", rsa_bits=1024)


def test_ed448_licenses_verify(issue: Issue, make_verifier: MakeVerifier) -> None:
    key = LicenseSigningKey.from_private_key(ed448.Ed448PrivateKey.generate())
    status = make_verifier(keys=[key.public]).verify(issue(key).token)
    assert status.license.kid == key.kid


@pytest.mark.parametrize(
    "private",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        lambda: b"secret",
    ],
    ids=["ec", "rsa-1024", "bytes"],
)
def test_unsupported_or_weak_keys_are_refused(private: Callable[[], Any]) -> None:
    key = private()
    with pytest.raises(LicenseKeyError):
        LicenseSigningKey.from_private_key(key)
    if hasattr(key, "public_key"):
        with pytest.raises(LicenseKeyError):
            LicenseKey.from_public_key(key.public_key())


@pytest.mark.parametrize(
    "pem", [b"", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", 42]
)
def test_malformed_public_pem(pem: Any) -> None:
    with pytest.raises(LicenseKeyError) as info:
        LicenseKey.from_pem(pem)
    assert info.value.__cause__ is None


def test_private_pem_with_wrong_password(ed_key: LicenseSigningKey) -> None:
    pem = ed_key.private_pem(password=b"right")
    for password in (b"wrong", None):
        with pytest.raises(LicenseKeyError) as info:
            LicenseSigningKey.from_pem(pem, password=password)
        assert info.value.reason == "malformed"


def test_given_kid(ed_key: LicenseSigningKey) -> None:
    key = LicenseKey.from_pem(ed_key.public.public_pem(), kid="vendor-2026")
    assert key.kid == "vendor-2026"
    for bad in ("", "x" * 129, "a\nb"):
        with pytest.raises(LicenseKeyError):
            LicenseKey.from_pem(ed_key.public.public_pem(), kid=bad)


def test_private_key_not_in_repr(ed_key: LicenseSigningKey) -> None:
    text = repr(ed_key)
    assert ed_key.kid in text
    assert "private_key" not in text


def test_rfc8037_ed25519_thumbprint() -> None:
    # RFC 8037, appendix A.2 and A.3: the example key and its RFC 7638 thumbprint.
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = ed25519.Ed25519PublicKey.from_public_bytes(x)
    assert _thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rsa_thumbprint_members(rsa_key: LicenseSigningKey) -> None:
    numbers = rsa_key.private_key.public_key().public_numbers()  # type: ignore[union-attr]

    def uint(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = json.dumps(
        {"e": uint(numbers.e), "kty": "RSA", "n": uint(numbers.n)}, separators=(",", ":")
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert rsa_key.kid == expected.rstrip(b"=").decode()
