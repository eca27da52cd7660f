"""Google ID-token verification against a locally generated key set playing the provider."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import IdentityProviderUnavailableError, InvalidIdTokenError
from storno_security.oidc import (
    CachingJwksFetcher,
    GoogleIdentity,
    GoogleIdTokenPolicy,
    GoogleIdTokenVerifier,
    StaticJwksFetcher,
)
from tests.oidc.provider import CLIENT_ID, FakeGoogle, b64

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROVIDER = FakeGoogle(("key-1", "key-2"))


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle()


def verifier_for(
    google: FakeGoogle, clock: FrozenClock | None = None, **policy: Any
) -> GoogleIdTokenVerifier:
    return GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID, "other-client"), **policy),
        fetcher=google,
        clock=clock or FrozenClock(NOW),
    )


def reason(verifier: GoogleIdTokenVerifier, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidIdTokenError) as excinfo:
        verifier.verify(token, **kwargs)
    assert str(excinfo.value) == "invalid identity token"  # one message for every cause
    return excinfo.value.reason


def test_a_valid_token_gives_the_identity(google: FakeGoogle) -> None:
    identity = verifier_for(google).verify(google.token(NOW))
    assert identity == GoogleIdentity(
        subject="110169484474386276334",
        email="ana@example.eu",
        name="Ana Popescu",
        hosted_domain=None,
        audience=CLIENT_ID,
        issued_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    assert google.fetches == [False]


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_both_google_issuers(google: FakeGoogle, issuer: str) -> None:
    assert verifier_for(google).verify(google.token(NOW, iss=issuer)).subject


@pytest.mark.parametrize(
    "issuer", ["https://accounts.google.com/", "https://evil.example", "http://accounts.google.com"]
)
def test_wrong_issuer(google: FakeGoogle, issuer: str) -> None:
    assert reason(verifier_for(google), google.token(NOW, iss=issuer)) == "issuer"


@pytest.mark.parametrize("aud", ["someone-elses-client", ["someone-elses-client"], [], 7])
def test_wrong_audience(google: FakeGoogle, aud: Any) -> None:
    assert reason(verifier_for(google), google.token(NOW, aud=aud)) == "audience"


def test_several_audiences_need_our_azp(google: FakeGoogle) -> None:
    verifier = verifier_for(google)
    both = [CLIENT_ID, "someone-elses-client"]
    assert verifier.verify(google.token(NOW, aud=both)).audience == CLIENT_ID
    assert reason(verifier, google.token(NOW, aud=both, azp="someone-elses-client")) == "audience"
    assert reason(verifier, google.token(NOW, aud=both, azp=None)) == "audience"


def test_expiry_with_bounded_leeway(google: FakeGoogle) -> None:
    clock = FrozenClock(NOW)
    verifier = verifier_for(google, clock)
    token = google.token(NOW)
    clock.set(NOW + timedelta(hours=1, seconds=59))  # within the 60 s leeway
    assert verifier.verify(token)
    clock.set(NOW + timedelta(hours=1, seconds=60))
    assert reason(verifier, token) == "expired"


def test_issued_in_the_future(google: FakeGoogle) -> None:
    verifier = verifier_for(google)
    assert verifier.verify(google.token(NOW + timedelta(seconds=60)))
    assert reason(verifier, google.token(NOW + timedelta(seconds=61))) == "issued_in_future"


def test_not_yet_valid(google: FakeGoogle) -> None:
    token = google.token(NOW, nbf=int(NOW.timestamp()) + 120)
    assert reason(verifier_for(google), token) == "not_yet_valid"


def test_leeway_is_bounded() -> None:
    with pytest.raises(ValueError, match="leeway"):
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,), leeway=timedelta(minutes=10))


@pytest.mark.parametrize("verified", [False, "false", None, 1, "True"])
def test_unverified_email(google: FakeGoogle, verified: Any) -> None:
    token = google.token(NOW, email_verified=verified)
    assert reason(verifier_for(google), token) == "email_not_verified"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", None), ("sub", ""), ("sub", 42), ("email", None), ("exp", None), ("iat", "now")],
)
def test_missing_or_mistyped_claims(google: FakeGoogle, claim: str, value: Any) -> None:
    assert reason(verifier_for(google), google.token(NOW, **{claim: value})) == f"claim_{claim}"


def test_unknown_kid_refreshes_once_then_fails(google: FakeGoogle) -> None:
    google.add_key("unpublished", publish=False)
    token = google.token(NOW, kid="unpublished")
    assert reason(verifier_for(google), token) == "unknown_key"
    assert google.fetches == [False, True]


def test_a_rotated_key_is_found_on_refresh(google: FakeGoogle) -> None:
    verifier = verifier_for(google)
    calls: list[bool] = []
    stale = google.document()

    class Rotating:
        def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
            calls.append(refresh)
            return google.document() if refresh else stale

    google.add_key("key-new")
    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=Rotating(), clock=FrozenClock(NOW)
    )
    assert verifier.verify(google.token(NOW, kid="key-new")).subject
    assert calls == [False, True]


def test_alg_none_is_refused(google: FakeGoogle) -> None:
    token = google.forged(NOW, header={"alg": "none", "kid": "key-1"})
    assert token.endswith(".")
    assert reason(verifier_for(google), token) == "malformed"  # no signature at all
    for alg in ("none", "None", "NONE"):
        token = google.forged(NOW, header={"alg": alg, "kid": "key-1"}, key=b"x")
        assert reason(verifier_for(google), token) == "algorithm"


def test_hs256_with_the_public_key_as_secret_is_refused(google: FakeGoogle) -> None:
    public_pem = (
        google.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = google.forged(
        NOW, header={"alg": "HS256", "kid": "key-1", "typ": "JWT"}, key=public_pem
    )
    assert reason(verifier_for(google), token) == "algorithm"


def test_an_algorithm_outside_the_policy_is_refused(google: FakeGoogle) -> None:
    token = google.token(NOW, alg="RS512")
    assert reason(verifier_for(google), token) == "algorithm"
    # allowed by the policy, still refused: the JWKS entry pins its key to RS256
    assert reason(verifier_for(google, algorithms=("RS256", "RS512")), token) == "unknown_key"


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks"},
        {"x5u": "https://evil.example/cert"},
        {"jwk": {"kty": "RSA"}},
        {"crit": ["exp"]},
        {"typ": "at+jwt"},
    ],
)
def test_dangerous_headers_are_refused(google: FakeGoogle, extra: dict[str, Any]) -> None:
    assert reason(verifier_for(google), google.token(NOW, headers=extra)) == "header"


def test_a_token_signed_by_another_key_with_our_kid(google: FakeGoogle) -> None:
    impostor = FakeGoogle()
    token = impostor.token(NOW, kid="key-1")
    assert reason(verifier_for(google), token) == "signature"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_weak_keys_in_the_jwks_are_never_used() -> None:
    weak = FakeGoogle(bits=1024)
    assert reason(verifier_for(weak), weak.token(NOW)) == "unknown_key"


def test_hosted_domain(google: FakeGoogle) -> None:
    verifier = verifier_for(google, hosted_domains=("example.eu",))
    assert verifier.verify(google.token(NOW, hd="example.eu")).hosted_domain == "example.eu"
    assert reason(verifier, google.token(NOW)) == "hosted_domain"
    assert reason(verifier, google.token(NOW, hd="evil.example")) == "hosted_domain"


def test_nonce(google: FakeGoogle) -> None:
    verifier = verifier_for(google)
    assert verifier.verify(google.token(NOW, nonce="n-123"), expected_nonce="n-123")
    assert reason(verifier, google.token(NOW, nonce="n-124"), expected_nonce="n-123") == "nonce"
    assert reason(verifier, google.token(NOW), expected_nonce="n-123") == "nonce"


def test_fetcher_failures_are_not_token_errors(google: FakeGoogle) -> None:
    class Broken:
        def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
            raise OSError("network down")

    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=Broken(), clock=FrozenClock(NOW)
    )
    with pytest.raises(IdentityProviderUnavailableError) as excinfo:
        verifier.verify(google.token(NOW))
    assert excinfo.value.reason == "fetch_failed"
    bad = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)),
        fetcher=StaticJwksFetcher({"keys": "nope"}),
        clock=FrozenClock(NOW),
    )
    with pytest.raises(IdentityProviderUnavailableError) as excinfo:
        bad.verify(google.token(NOW))
    assert excinfo.value.reason == "bad_jwks"


def test_caching_fetcher_rate_limits_refreshes(google: FakeGoogle) -> None:
    clock = FrozenClock(NOW)
    loads: list[datetime] = []

    def load() -> dict[str, Any]:
        loads.append(clock.now())
        return google.document()

    fetcher = CachingJwksFetcher(load, clock=clock)
    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=fetcher, clock=clock
    )
    google.add_key("unpublished", publish=False)
    bogus = google.token(NOW, kid="unpublished")
    for _ in range(5):  # a flood of made-up kids: one load, not ten
        reason(verifier, bogus)
    assert len(loads) == 1
    clock.advance(61)
    reason(verifier, bogus)
    assert len(loads) == 2
    clock.advance(3600)  # stale: loaded again on the next use
    assert verifier.verify(google.token(clock.now()))
    assert len(loads) == 3


# --- hypothesis ------------------------------------------------------------------------------

_VERIFIER = verifier_for(PROVIDER)
_TOKEN = PROVIDER.token(NOW)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0), replacement=st.sampled_from("AQgw-_xyz0189.="))
def test_any_tampering_is_rejected(index: int, replacement: str) -> None:
    position = index % len(_TOKEN)
    if _TOKEN[position] == replacement:
        return
    tampered = _TOKEN[:position] + replacement + _TOKEN[position + 1 :]
    with pytest.raises(InvalidIdTokenError):
        _VERIFIER.verify(tampered)


@settings(max_examples=200, deadline=None)
@given(
    claims=st.dictionaries(
        st.sampled_from(
            [
                "iss",
                "aud",
                "sub",
                "email",
                "exp",
                "iat",
                "email_verified",
                "nbf",
                "name",
                "hd",
                "azp",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.lists(st.text(max_size=10), max_size=3),
    )
)
def test_signed_junk_claims_give_only_our_error(claims: dict[str, Any]) -> None:
    token = PROVIDER.token(NOW, **claims)
    try:
        identity = _VERIFIER.verify(token)
    except InvalidIdTokenError:
        return
    assert identity.audience == CLIENT_ID
    assert identity.email


@settings(max_examples=200, deadline=None)
@given(junk=st.text(max_size=300))
def test_arbitrary_strings_give_only_our_error(junk: str) -> None:
    with pytest.raises(InvalidIdTokenError):
        _VERIFIER.verify(junk)


def test_caching_fetcher_rides_out_a_provider_outage(google: FakeGoogle) -> None:
    clock = FrozenClock(NOW)
    up = [True]
    loads: list[datetime] = []

    def load() -> dict[str, Any]:
        loads.append(clock.now())
        if not up[0]:
            raise OSError("provider down")
        return google.document()

    fetcher = CachingJwksFetcher(load, clock=clock)
    first = fetcher.jwks()
    up[0] = False
    clock.advance(timedelta(hours=1, minutes=1))  # stale, provider down: the stale copy serves
    assert fetcher.jwks() == first
    clock.advance(30)  # tried a moment ago: no new load
    assert fetcher.jwks() == first
    assert len(loads) == 2
    clock.advance(timedelta(hours=1))  # too stale to trust: fail
    with pytest.raises(IdentityProviderUnavailableError):
        fetcher.jwks()


def test_caching_fetcher_does_not_hammer_after_a_failure() -> None:
    clock = FrozenClock(NOW)
    loads: list[datetime] = []

    def load() -> dict[str, Any]:
        loads.append(clock.now())
        raise OSError("provider down")

    fetcher = CachingJwksFetcher(load, clock=clock)
    for _ in range(5):
        with pytest.raises(IdentityProviderUnavailableError):
            fetcher.jwks(refresh=True)
    assert len(loads) == 1
    clock.advance(60)
    with pytest.raises(IdentityProviderUnavailableError):
        fetcher.jwks()
    assert len(loads) == 2


# --- keys, headers and parts that are refused ----------------------------------------------------


@pytest.mark.parametrize("kid", [None, "", 7])
def test_a_token_without_a_usable_kid_names_no_key(google: FakeGoogle, kid: Any) -> None:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    # signed by Google's key, so only the missing kid can be wrong
    payload = b64(json.dumps(google.claims(NOW)).encode())
    signing_input = b64(json.dumps(header).encode()) + "." + payload
    signature = google.keys["key-1"].sign(
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    forged = f"{signing_input}.{b64(signature)}"
    assert reason(verifier_for(google), forged) == "unknown_key"
    assert google.fetches == []  # refused before the JWKS was asked for


def test_jwks_entries_that_are_not_usable_rsa_keys_are_skipped(google: FakeGoogle) -> None:
    (good,) = google.document()["keys"]
    not_rsa = {"kty": "EC", "crv": "P-256", "kid": "key-1", "x": good["n"][:43], "y": "AA"}
    broken = {**good, "n": "!!not base64url!!"}
    no_exponent = {key: value for key, value in good.items() if key != "e"}
    for entries in ([not_rsa], [broken], [no_exponent]):
        fetcher = StaticJwksFetcher({"keys": entries})
        verifier = GoogleIdTokenVerifier(
            GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=fetcher, clock=FrozenClock(NOW)
        )
        assert reason(verifier, google.token(NOW)) == "unknown_key"
    # an unusable entry before the good one is passed over, not fatal
    fetcher = StaticJwksFetcher({"keys": [not_rsa, broken, no_exponent, good]})
    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=fetcher, clock=FrozenClock(NOW)
    )
    assert verifier.verify(google.token(NOW)).subject == "110169484474386276334"


def test_the_fetchers_own_unavailability_passes_through(google: FakeGoogle) -> None:
    outage = IdentityProviderUnavailableError(reason="rate_limited_by_google")

    class Down:
        def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
            raise outage

    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=Down(), clock=FrozenClock(NOW)
    )
    with pytest.raises(IdentityProviderUnavailableError) as excinfo:
        verifier.verify(google.token(NOW))
    assert excinfo.value is outage
    assert excinfo.value.__cause__ is None


def test_the_verifier_checks_its_policy_and_shows_only_client_ids(google: FakeGoogle) -> None:
    with pytest.raises(TypeError, match="policy must be a GoogleIdTokenPolicy"):
        GoogleIdTokenVerifier(
            {"client_ids": (CLIENT_ID,)},  # type: ignore[arg-type]
            fetcher=google,
            clock=FrozenClock(NOW),
        )
    verifier = verifier_for(google)
    assert repr(verifier) == f"GoogleIdTokenVerifier(client_ids=({CLIENT_ID!r}, 'other-client'))"


@pytest.mark.parametrize(
    ("client_ids", "message"),
    [
        ((), "client_ids must be a non-empty tuple of strings"),
        ([CLIENT_ID], "client_ids must be a non-empty tuple of strings"),
        ((CLIENT_ID, "  "), "client_ids must hold non-empty strings"),
        ((CLIENT_ID, 42), "client_ids must hold non-empty strings"),
    ],
)
def test_the_policy_needs_real_client_ids(client_ids: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GoogleIdTokenPolicy(client_ids=client_ids)


def test_jwks_fetchers_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="document must be a mapping"):
        StaticJwksFetcher([{"kty": "RSA"}])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="load must be callable"):
        CachingJwksFetcher({"keys": []}, clock=FrozenClock(NOW))  # type: ignore[arg-type]
    for max_age, interval in ((timedelta(minutes=1), timedelta(minutes=2)), (None, timedelta(-1))):
        with pytest.raises(ValueError, match="min_refresh_interval"):
            CachingJwksFetcher(
                dict,
                clock=FrozenClock(NOW),
                max_age=max_age or timedelta(hours=1),
                min_refresh_interval=interval,
            )


def test_a_loaded_jwks_that_is_not_a_mapping_is_unavailable() -> None:
    clock = FrozenClock(NOW)
    fetcher = CachingJwksFetcher(lambda: [{"kty": "RSA"}], clock=clock)  # type: ignore[arg-type,return-value]
    with pytest.raises(IdentityProviderUnavailableError) as excinfo:
        fetcher.jwks()
    assert excinfo.value.reason == "bad_jwks"
