"""Issue 14: ``auth_time`` as a first-class claim, and access-token dates at the calendar's edges.

* ``AccessTokenIssuer.issue(auth_time=...)`` writes when the person last authenticated as an
  integer ``auth_time`` claim (OpenID Connect's name); verification gives it back as
  ``AccessTokenClaims.auth_time`` and refuses one that is not an integer or is later than
  ``iat`` beyond the leeway. An ``auth_time`` given in ``extra_claims``, as the server did
  before the keyword, still works.
* ``iat``/``nbf``/``exp``/``auth_time`` outside years 1 to 9999 (huge, negative, non-finite)
  are malformed claims: only ``InvalidAccessTokenError`` escapes, whatever the numbers.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    TokenPolicy,
)
from tests.tokens import forge
from tests.tokens.test_access import _forged, claims_for, header_for, reject

FIRST = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799  # 9999-12-31T23:59:59Z


# --- auth_time --------------------------------------------------------------------------------


@pytest.mark.spec("JWT-1")
def test_auth_time_round_trip(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    login = clock.now() - timedelta(minutes=3, microseconds=250)
    issued = issuer.issue("u", session_id="s", epoch=0, auth_time=login)
    claims = verifier.verify(issued.token)
    assert claims.auth_time == login.replace(microsecond=0)  # whole seconds, rounded down
    assert claims.extra["auth_time"] == math.floor(login.timestamp())  # still there, raw


def test_auth_time_absent_is_none(issuer: AccessTokenIssuer, verifier: AccessTokenVerifier) -> None:
    claims = verifier.verify(issuer.issue("u", session_id="s", epoch=0).token)
    assert claims.auth_time is None
    assert "auth_time" not in claims.extra


def test_auth_time_in_another_zone_is_written_in_utc(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    login = clock.now().astimezone(timezone(timedelta(hours=2))) - timedelta(seconds=5)
    claims = verifier.verify(issuer.issue("u", session_id="s", epoch=0, auth_time=login).token)
    assert claims.auth_time == login
    assert claims.auth_time is not None
    assert claims.auth_time.tzinfo is UTC


def test_auth_time_as_an_extra_claim_still_works(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    """What the reference server sends today: ``extra_claims={"auth_time": now}``."""
    now = int(clock.now().timestamp())
    issued = issuer.issue("u", session_id="s", epoch=0, extra_claims={"auth_time": now, "x": 1})
    claims = verifier.verify(issued.token)
    assert claims.auth_time == clock.now().replace(microsecond=0)
    assert claims.extra == {"auth_time": now, "x": 1}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"auth_time": datetime(2026, 3, 1)}, ValueError),  # naive
        ({"auth_time": "2026-03-01T12:00:00Z"}, TypeError),
        ({"auth_time": 1_772_366_400}, TypeError),  # an int belongs in extra_claims
        ({"auth_time": datetime(2027, 1, 1, tzinfo=UTC)}, ValueError),  # later than now
        ({"extra_claims": {"auth_time": 1.5}}, ValueError),
        ({"extra_claims": {"auth_time": True}}, ValueError),
        ({"extra_claims": {"auth_time": "now"}}, ValueError),
        ({"extra_claims": {"auth_time": 10**12}}, ValueError),  # later than now
        (
            {
                "auth_time": datetime(2026, 3, 1, tzinfo=UTC),
                "extra_claims": {"auth_time": 1_772_323_200},
            },
            ValueError,
        ),  # twice
    ],
)
def test_issue_refuses_a_bad_auth_time(
    issuer: AccessTokenIssuer, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        issuer.issue("u", session_id="s", epoch=0, **kwargs)


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize("value", ["1772366400", 1772366400.0, 1.5, True, [1], {"t": 1}])
def test_a_non_integer_auth_time_is_refused(
    value: Any,
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
) -> None:
    reject(verifier, _forged(ring, clock, policy, auth_time=value), "claim_auth_time")


@pytest.mark.spec("JWT-2")
def test_a_null_auth_time_is_refused(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    payload = {**claims_for(clock, policy), "auth_time": None}
    header = json.dumps(header_for(ring.signer)).encode()
    token = forge.raw_rs256(header, json.dumps(payload).encode(), ring.signer.private_key)
    reject(verifier, token, "claim_auth_time")


@pytest.mark.spec("JWT-2")
def test_auth_time_after_iat_beyond_the_leeway_is_refused(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    now = int(clock.now().timestamp())
    leeway = int(policy.leeway.total_seconds())
    assert verifier.verify(_forged(ring, clock, policy, auth_time=now + leeway)).auth_time
    reject(verifier, _forged(ring, clock, policy, auth_time=now + leeway + 1), "claim_auth_time")
    assert verifier.verify(_forged(ring, clock, policy, auth_time=FIRST)).auth_time == datetime(
        1, 1, 1, tzinfo=UTC
    )
    reject(verifier, _forged(ring, clock, policy, auth_time=FIRST - 1), "claim_auth_time")
    reject(verifier, _forged(ring, clock, policy, auth_time=-(10**30)), "claim_auth_time")


# --- dates at the calendar's edges ------------------------------------------------------------

_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([FIRST, FIRST - 1, LAST, LAST + 1, LAST + 0.9999999, FIRST - 0.5, 2**63]),
)


@pytest.mark.spec("JWT-2")
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(iat=_numbers, nbf=_numbers, exp=_numbers, auth_time=st.one_of(st.none(), _numbers))
def test_any_numbers_give_claims_or_our_error(
    iat: float,
    nbf: float,
    exp: float,
    auth_time: float | None,
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
) -> None:
    token = _forged(ring, clock, policy, iat=iat, nbf=nbf, exp=exp, auth_time=auth_time)
    try:
        claims = verifier.verify(token)
    except InvalidAccessTokenError:
        return
    assert claims.issued_at <= claims.expires_at or claims.issued_at > claims.expires_at


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("exp", 10**30, "claim_exp"),
        ("exp", LAST + 1, "claim_exp"),
        ("exp", 1e300, "claim_exp"),
        ("exp", LAST + 0.9999999, "claim_exp"),  # rounds to year 10000
        ("iat", FIRST - 1, "claim_iat"),
        ("nbf", -(10**30), "claim_nbf"),
        ("exp", math.inf, "malformed"),  # json.dumps writes Infinity, which JSON has not
        ("exp", math.nan, "malformed"),
        ("nbf", -math.inf, "malformed"),
    ],
)
def test_a_date_outside_the_calendar_is_refused(
    claim: str,
    value: float,
    reason: str,
    ring: KeyRing,
    policy: TokenPolicy,
    state: Any,
) -> None:
    clock = FrozenClock(datetime(9999, 12, 31, tzinfo=UTC))  # so a late exp is not just expired
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=state)
    changes: dict[str, Any] = {"iat": LAST - 86_400, "nbf": LAST - 86_400, "exp": LAST}
    changes[claim] = value
    reject(verifier, _forged(ring, clock, policy, **changes), reason)


def test_the_last_second_of_the_calendar_is_a_valid_expiry(
    ring: KeyRing, policy: TokenPolicy, state: Any
) -> None:
    clock = FrozenClock(datetime(9999, 12, 31, tzinfo=UTC))
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=state)
    token = _forged(ring, clock, policy, iat=LAST - 86_400, nbf=FIRST, exp=LAST)
    for _ in range(2):  # first sight, then from the cache
        claims = verifier.verify(token)
        assert claims.expires_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert claims.not_before == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.spec("JWT-2")
def test_fractional_dates_verify_to_the_microsecond(
    ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, verifier: AccessTokenVerifier
) -> None:
    # RFC 7519 NumericDates may carry fractions (other issuers write them): the dates come back
    # exact to the microsecond, on first sight and from the cache alike.
    now = clock.now().timestamp()
    token = _forged(ring, clock, policy, iat=now - 0.25, nbf=now - 0.5, exp=now + 60.75)
    for _ in range(2):
        claims = verifier.verify(token)
        assert claims.issued_at == clock.now() - timedelta(microseconds=250_000)
        assert claims.not_before == clock.now() - timedelta(microseconds=500_000)
        assert claims.expires_at == clock.now() + timedelta(seconds=60, microseconds=750_000)


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
def test_a_boolean_date_is_refused(
    claim: str, ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, state: Any
) -> None:
    # true is 1 to Python (an int): 1970-01-01T00:00:01Z must not be read into it
    verifier = AccessTokenVerifier(
        ring, policy, clock=FrozenClock(datetime(1970, 1, 1, tzinfo=UTC)), sessions=state
    )
    changes: dict[str, Any] = {"iat": 0, "nbf": 0, "exp": 3600, claim: True}
    reject(verifier, _forged(ring, clock, policy, **changes), f"claim_{claim}")
