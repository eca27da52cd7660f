"""Offline license verification: algorithms and keys (LIC-1), claims (LIC-2), time (LIC-3)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidLicenseError, LicenseKeyError
from storno_security.license import (
    LICENSE_TYPE,
    Entitlements,
    IssuedLicense,
    LicenseKey,
    LicensePolicy,
    LicenseSigningKey,
    LicenseState,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore
from tests.license.conftest import FREE, VENDOR
from tests.tokens import forge

Issue = Callable[..., IssuedLicense]
MakeVerifier = Callable[..., LicenseVerifier]


def _reason(verifier: LicenseVerifier, token: str) -> str:
    with pytest.raises(InvalidLicenseError) as info:
        verifier.verify(token)
    assert str(info.value) == "invalid license"
    return info.value.reason


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


def _signed(key: LicenseSigningKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Sign arbitrary header and payload with a vendor key, as a forger holding it would."""
    signing_input = f"{forge.segment(header)}.{forge.segment(payload)}"
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        return forge.rs256(header, payload, private)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return f"{signing_input}.{forge.b64(private.sign(signing_input.encode()))}"


# --- LIC-1: keys and algorithms ----------------------------------------------------------------


@pytest.mark.spec("LIC-1")
def test_genuine_license_verifies(
    vendor_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    issued = issue(vendor_key)
    status = make_verifier().verify(issued.token)
    assert status.state is LicenseState.VALID
    assert status.license == issued.license
    assert status.entitlements == issued.license.entitlements
    assert status.clock_rollback is False
    header, _ = _parts(issued.token)
    assert header == {"alg": vendor_key.algorithm, "kid": vendor_key.kid, "typ": LICENSE_TYPE}


@pytest.mark.spec("LIC-1")
def test_forged_signature(
    vendor_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    token = issue(vendor_key).token
    header_b64, _, signature = token.split(".")
    _, payload = _parts(token)
    payload["plan"] = "enterprise"
    payload["max_users"] = None
    forged = f"{header_b64}.{forge.segment(payload)}.{signature}"
    assert _reason(make_verifier(), forged) == "signature"


@pytest.mark.spec("LIC-1")
def test_signed_by_an_unknown_key(issue: Issue, make_verifier: MakeVerifier) -> None:
    stranger = LicenseSigningKey.generate()
    assert _reason(make_verifier(), issue(stranger).token) == "unknown_key"


@pytest.mark.spec("LIC-1")
def test_unknown_key_claiming_a_known_kid(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    impostor = LicenseSigningKey.from_private_key(
        ed25519.Ed25519PrivateKey.generate(), kid=ed_key.kid
    )
    assert _reason(make_verifier(), issue(impostor).token) == "signature"


@pytest.mark.spec("LIC-1")
def test_alg_none(vendor_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier) -> None:
    header, payload = _parts(issue(vendor_key).token)
    for alg in ("none", "None", "NONE"):
        token = forge.unsigned({**header, "alg": alg}, payload)
        assert _reason(make_verifier(), token) in {"algorithm", "malformed"}
        token = forge.unsigned({**header, "alg": alg}, payload) + "AAAA"
        assert _reason(make_verifier(), token) == "algorithm"


@pytest.mark.spec("LIC-1")
def test_hs256_keyed_with_the_public_key(
    rsa_key: LicenseSigningKey, ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    for key in (rsa_key, ed_key):
        header, payload = _parts(issue(key).token)
        pem = key.public.public_pem()
        for secret in (pem, pem.strip()):
            token = forge.hs256({**header, "alg": "HS256"}, payload, secret)
            assert _reason(make_verifier(), token) == "algorithm"


@pytest.mark.spec("LIC-1")
@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "HS512", "EdDSA", "RS256"])
def test_other_algorithms_are_refused(
    alg: str, rsa_key: LicenseSigningKey, ed_key: LicenseSigningKey, issue: Issue,
    make_verifier: MakeVerifier,
) -> None:  # fmt: skip
    # A valid RS256 signature under a header that names another algorithm, and the reverse.
    for key in (rsa_key, ed_key):
        if alg == key.algorithm:
            continue
        header, payload = _parts(issue(key).token)
        token = _signed(key, {**header, "alg": alg}, payload)
        assert _reason(make_verifier(), token) == "algorithm"


@pytest.mark.spec("LIC-1")
def test_a_key_verifies_only_its_own_algorithm(
    rsa_key: LicenseSigningKey, ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    # An Ed25519 signature presented under the RSA key's kid, with alg EdDSA: refused by the key.
    header, payload = _parts(issue(ed_key).token)
    token = _signed(ed_key, {**header, "kid": rsa_key.kid}, payload)
    assert _reason(make_verifier(), token) == "algorithm"


@pytest.mark.spec("LIC-1")
@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.test/jwks"},
        {"jwk": {"kty": "OKP"}},
        {"x5u": "https://evil.test/c"},
        {"crit": ["exp"]},
        {"typ": "JWT"},
        {"typ": "at+jwt"},
    ],
)
def test_header_parameters_are_refused(
    extra: dict[str, Any], ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    header, payload = _parts(issue(ed_key).token)
    assert _reason(make_verifier(), _signed(ed_key, {**header, **extra}, payload)) == "header"


@pytest.mark.spec("LIC-1")
def test_no_network_call(
    vendor_key: LicenseSigningKey,
    issue: Issue,
    make_verifier: MakeVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = issue(vendor_key).token

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during license verification")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert make_verifier().verify(token).state is LicenseState.VALID


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "..", "a..c", "é.b.c", "eyJ.e30.AAAA", "W10.e30.AAAA", "e30.e30.AAAA"],
)
def test_malformed(token: str, make_verifier: MakeVerifier) -> None:
    assert _reason(make_verifier(), token) in {"malformed", "header"}


def test_oversized_token_is_refused_before_parsing(
    make_verifier: MakeVerifier, policy: LicensePolicy
) -> None:
    assert _reason(make_verifier(), "a" * (policy.max_token_bytes + 1)) == "malformed"


def test_duplicate_json_members_are_refused(
    rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    header, payload = _parts(issue(rsa_key).token)
    body = json.dumps(payload)[:-1] + ', "plan": "enterprise"}'
    token = forge.raw_rs256(json.dumps(header).encode(), body.encode(), rsa_key.private_key)
    assert _reason(make_verifier(), token) == "malformed"


@pytest.mark.spec("LIC-1")
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_bit_change_is_rejected(
    data: st.DataObject, ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    token = issue(ed_key).token
    last = len(token) - 1
    index = data.draw(st.integers(0, last) | st.integers(last - 1, last), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    chars = list(token)
    chars[index] = chr(ord(chars[index]) ^ (1 << bit))
    with pytest.raises(InvalidLicenseError):
        make_verifier().verify("".join(chars))


# --- LIC-2: claims ---------------------------------------------------------------------------


@pytest.mark.spec("LIC-2")
def test_license_carries_every_claim_typed(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    issued = issue(ed_key, instance_id="inst-1", max_users=None)
    lic = make_verifier(instance_id="inst-1").verify(issued.token).license
    now = clock.now()
    assert lic.issuer == VENDOR
    assert lic.organization_id == "org-42"
    assert lic.org_name == "ACME SRL"
    assert isinstance(lic.license_id, str)
    assert len(lic.license_id) >= 16
    assert (lic.issued_at, lic.not_before) == (now, now)
    assert lic.expires_at == now + timedelta(days=365)
    assert lic.plan == "business"
    assert lic.features == frozenset({"efactura", "xml_sign"})
    assert lic.entitlements.has("efactura")
    assert not lic.entitlements.has("passkeys")
    assert (lic.max_companies, lic.max_users) == (5, None)
    assert lic.instance_id == "inst-1"
    assert lic.kid == ed_key.kid
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lic.plan_name = "enterprise"  # type: ignore[attr-defined]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lic.entitlements.max_users = 10  # type: ignore[misc]


REQUIRED = ["iss", "sub", "org_name", "jti", "iat", "nbf", "exp", "plan", "features",
            "max_companies", "max_users"]  # fmt: skip


@pytest.mark.spec("LIC-2")
@pytest.mark.parametrize("claim", REQUIRED)
def test_every_claim_is_required(
    claim: str, rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    header, payload = _parts(issue(rsa_key).token)
    del payload[claim]
    assert _reason(make_verifier(), _signed(rsa_key, header, payload)) == f"claim_{claim}"


@pytest.mark.spec("LIC-2")
@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", 1),
        ("sub", ""),
        ("org_name", None),
        ("jti", ["x"]),
        ("iat", "2026-01-01"),
        ("nbf", True),
        ("exp", 1e30),
        ("plan", {}),
        ("features", "efactura"),
        ("features", ["ok", 3]),
        ("features", [""]),
        ("max_companies", -1),
        ("max_companies", 2.5),
        ("max_users", False),
        ("instance_id", ""),
        ("instance_id", 7),
    ],
)
def test_claims_are_typed(
    claim: str, value: object, rsa_key: LicenseSigningKey, issue: Issue,
    make_verifier: MakeVerifier,
) -> None:  # fmt: skip
    header, payload = _parts(issue(rsa_key).token)
    payload[claim] = value
    assert _reason(make_verifier(), _signed(rsa_key, header, payload)) == f"claim_{claim}"


@pytest.mark.spec("LIC-2")
def test_expiry_before_start_is_refused(
    rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    header, payload = _parts(issue(rsa_key).token)
    payload["exp"] = payload["nbf"]
    assert _reason(make_verifier(), _signed(rsa_key, header, payload)) == "claim_exp"


@pytest.mark.spec("LIC-2")
def test_wrong_issuer(
    rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    header, payload = _parts(issue(rsa_key).token)
    payload["iss"] = "https://someone-else.test"
    assert _reason(make_verifier(), _signed(rsa_key, header, payload)) == "issuer"


@pytest.mark.spec("LIC-2")
def test_instance_binding(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    bound = issue(ed_key, instance_id="inst-A").token
    assert make_verifier(instance_id="inst-A").verify(bound).license.instance_id == "inst-A"
    assert _reason(make_verifier(instance_id="inst-B"), bound) == "instance_mismatch"
    assert _reason(make_verifier(), bound) == "instance_mismatch"
    unbound = issue(ed_key).token
    assert make_verifier(instance_id="inst-B").verify(unbound).license.instance_id is None
    strict = LicensePolicy(issuer=VENDOR, require_instance_binding=True)
    assert _reason(make_verifier(policy=strict, instance_id="inst-B"), unbound) == (
        "instance_required"
    )


@pytest.mark.spec("LIC-2")
def test_not_yet_valid(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    token = issue(ed_key, not_before=clock.now() + timedelta(days=3)).token
    assert _reason(make_verifier(), token) == "not_yet_valid"
    clock.advance(timedelta(days=3))
    assert make_verifier().verify(token).state is LicenseState.VALID


# --- LIC-3: grace, fallback, clock rollback -------------------------------------------------


@pytest.mark.spec("LIC-3")
def test_expired_in_grace(
    vendor_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    issued = issue(vendor_key, valid_for=timedelta(days=30))
    clock.advance(timedelta(days=30))  # exactly at exp
    status = make_verifier().verify(issued.token)
    assert status.state is LicenseState.GRACE
    assert status.in_grace
    assert not status.expired
    assert status.entitlements == issued.license.entitlements  # still honoured
    assert status.grace_ends_at == issued.license.expires_at + timedelta(days=14)
    clock.advance(timedelta(days=14) - timedelta(seconds=1))
    assert make_verifier().verify(issued.token).state is LicenseState.GRACE


@pytest.mark.spec("LIC-3")
def test_after_grace_falls_back_to_the_free_plan(
    vendor_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    issued = issue(vendor_key, valid_for=timedelta(days=30))
    clock.advance(timedelta(days=30 + 14))
    status = make_verifier().verify(issued.token)  # no exception for mere expiry
    assert status.state is LicenseState.EXPIRED
    assert status.expired
    assert not status.in_grace
    assert status.entitlements == FREE
    assert status.license == issued.license  # what lapsed, for the message to the customer
    clock.advance(timedelta(days=3000))
    no_free_plan = LicensePolicy(issuer=VENDOR)
    status = make_verifier(policy=no_free_plan).verify(issued.token)
    assert status.state is LicenseState.EXPIRED
    assert status.entitlements is None


@pytest.mark.spec("LIC-3")
def test_grace_period_is_a_policy_setting(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    assert LicensePolicy(issuer=VENDOR).grace_period == timedelta(days=14)
    token = issue(ed_key, valid_for=timedelta(days=30)).token
    clock.advance(timedelta(days=31))
    no_grace = LicensePolicy(issuer=VENDOR, grace_period=timedelta(0), free_plan=FREE)
    assert make_verifier(policy=no_grace).verify(token).entitlements == FREE


@pytest.mark.spec("LIC-3")
def test_clock_set_back_is_detected_and_gains_nothing(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    issued = issue(ed_key, valid_for=timedelta(days=30))
    verifier = make_verifier()
    clock.advance(timedelta(days=60))
    seen = clock.now()
    assert verifier.verify(issued.token).state is LicenseState.EXPIRED
    clock.advance(timedelta(days=-50))  # back to a time the license was valid
    status = verifier.verify(issued.token)
    assert status.clock_rollback is True
    assert status.state is LicenseState.EXPIRED
    assert status.entitlements == FREE
    assert status.checked_at == seen
    assert status.clock_time == clock.now()


@pytest.mark.spec("LIC-3")
def test_small_clock_corrections_are_not_reported(
    ed_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier, clock: FrozenClock
) -> None:
    token = issue(ed_key).token
    verifier = make_verifier()
    verifier.verify(token)
    seen = clock.now()
    clock.advance(timedelta(minutes=-4))
    status = verifier.verify(token)
    assert status.clock_rollback is False
    assert status.checked_at == seen  # judged at the later time all the same
    clock.advance(timedelta(minutes=-2))  # 6 minutes behind: beyond the 5-minute tolerance
    assert verifier.verify(token).clock_rollback is True


@pytest.mark.spec("LIC-3")
def test_clock_before_the_license_was_issued_is_reported(
    ed_key: LicenseSigningKey, issue: Issue, clock: FrozenClock, policy: LicensePolicy
) -> None:
    token = issue(ed_key).token
    clock.advance(timedelta(days=-10))
    verifier = LicenseVerifier(
        [ed_key.public],
        policy,
        clock=clock,
        last_seen=MemoryLastSeenStore(),
        organization_id="org-42",
    )
    status = verifier.verify(token)  # a fresh store: only iat tells
    assert status.clock_rollback is True
    assert status.state is LicenseState.VALID
    assert status.checked_at == status.license.issued_at


@pytest.mark.spec("LIC-3")
def test_only_genuine_licenses_move_the_last_seen_time(
    ed_key: LicenseSigningKey,
    issue: Issue,
    make_verifier: MakeVerifier,
    clock: FrozenClock,
    last_seen: MemoryLastSeenStore,
) -> None:
    token = issue(ed_key).token
    verifier = make_verifier()
    verifier.verify(token)
    start = clock.now()
    clock.advance(timedelta(days=400))
    with pytest.raises(InvalidLicenseError):
        verifier.verify(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))
    # The forged token did not push the last-seen time into the future.
    assert last_seen.record("license", start) == start


# --- construction ----------------------------------------------------------------------------


def test_verifier_arguments_are_checked(
    ed_key: LicenseSigningKey, policy: LicensePolicy, clock: FrozenClock
) -> None:
    store = MemoryLastSeenStore()
    with pytest.raises(ValueError, match="at least one"):
        LicenseVerifier([], policy, clock=clock, last_seen=store)
    with pytest.raises(LicenseKeyError):
        LicenseVerifier([ed_key.public, ed_key.public], policy, clock=clock, last_seen=store)
    with pytest.raises(TypeError):
        LicenseVerifier([ed_key], policy, clock=clock, last_seen=store)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        LicenseVerifier([ed_key.public], object(), clock=clock, last_seen=store)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instance_id"):
        LicenseVerifier([ed_key.public], policy, clock=clock, last_seen=store, instance_id="")
    with pytest.raises(TypeError):
        LicenseVerifier([ed_key.public], policy, clock=clock, last_seen=store).verify(b"x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"issuer": VENDOR, "grace_period": timedelta(days=-1)},
        {"issuer": VENDOR, "grace_period": 14},
        {"issuer": VENDOR, "leeway": timedelta(seconds=61)},
        {"issuer": VENDOR, "rollback_tolerance": timedelta(days=2)},
        {"issuer": VENDOR, "free_plan": "free"},
        {"issuer": VENDOR, "max_token_bytes": 100},
        {"issuer": VENDOR, "require_instance_binding": 1},
    ],
)
def test_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        LicensePolicy(**kwargs)


def test_public_keys_only_on_the_verifier_side(ed_key: LicenseSigningKey) -> None:
    public = LicenseKey.from_pem(ed_key.public.public_pem())
    assert public == ed_key.public
    assert "PRIVATE" not in public.public_pem().decode()
    assert not hasattr(public.key, "sign")


@pytest.mark.parametrize("last_seen_key", ["", None])
def test_the_last_seen_key_must_name_something(
    ed_key: LicenseSigningKey, policy: LicensePolicy, clock: FrozenClock, last_seen_key: Any
) -> None:
    with pytest.raises(ValueError, match="last_seen_key must be a non-empty string"):
        LicenseVerifier(
            [ed_key.public],
            policy,
            clock=clock,
            last_seen=MemoryLastSeenStore(),
            last_seen_key=last_seen_key,
        )


@pytest.mark.parametrize("features", ["efactura", {"efactura": True}, None])
def test_entitlement_features_must_be_a_collection(features: Any) -> None:
    with pytest.raises(TypeError, match="features must be a collection of str"):
        Entitlements(plan="business", features=features, max_companies=5, max_users=None)
