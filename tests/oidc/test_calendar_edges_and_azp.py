"""Issue 14: Google ID tokens whose dates are at or past the calendar's edges, and ``azp``.

* ``exp``/``iat``/``nbf`` are numbers a datetime can hold (years 1 to 9999) or the claim is
  malformed; ``OverflowError``/``ValueError`` never escape (a signed ``exp`` of 2**52 did).
* ``azp`` (the party the token was issued to) is checked whenever it is present, not only
  when ``aud`` has several values: a token for our client, issued to someone else's, is
  refused (OpenID Connect Core 3.1.3.7).
"""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidIdTokenError
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.oidc.test_google import NOW, PROVIDER, reason, verifier_for

FIRST = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799  # 9999-12-31T23:59:59Z

_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([FIRST, FIRST - 1, LAST, LAST + 1, LAST + 0.9999999, 2**52, -(2**52)]),
)


@settings(max_examples=150, deadline=None)
@given(iat=_numbers, exp=_numbers, nbf=st.one_of(st.none(), _numbers))
def test_any_numbers_give_an_identity_or_our_error(
    iat: float, exp: float, nbf: float | None
) -> None:
    token = PROVIDER.token(NOW, iat=iat, exp=exp, nbf=nbf)
    with contextlib.suppress(InvalidIdTokenError):
        verifier_for(PROVIDER).verify(token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", 2**52),  # used to pass the 2**53 bound and overflow datetime
        ("exp", LAST + 1),
        ("exp", LAST + 0.9999999),  # rounds to year 10000
        ("exp", 10**30),
        ("iat", FIRST - 1),
        ("iat", -(2**52)),
        ("nbf", -(2**52)),
    ],
)
def test_a_date_outside_the_calendar_is_a_malformed_claim(claim: str, value: float) -> None:
    # a clock at the end of the calendar, so that a late exp is not simply expired
    clock = FrozenClock(datetime(9999, 12, 31, tzinfo=UTC))
    changes: dict[str, Any] = {claim: value}
    if claim != "exp":
        changes["exp"] = LAST
    if claim != "iat":
        changes["iat"] = LAST - 3600 * 24
    assert reason(verifier_for(PROVIDER, clock), PROVIDER.token(NOW, **changes)) == (
        f"claim_{claim}"
    )


def test_the_last_second_of_the_calendar_is_a_valid_expiry() -> None:
    clock = FrozenClock(datetime(9999, 12, 31, tzinfo=UTC))
    identity = verifier_for(PROVIDER, clock).verify(
        PROVIDER.token(NOW, iat=LAST - 86_400, exp=LAST)
    )
    assert identity.expires_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_json_number_literals_are_malformed(value: float) -> None:
    """json.dumps writes NaN/Infinity, which JSON does not have; our parser refuses them."""
    assert reason(verifier_for(PROVIDER), PROVIDER.token(NOW, exp=value)) == "malformed"


# --- azp ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "azp"),
    [
        (CLIENT_ID, "someone-elses-client"),  # one audience: azp used to be ignored
        ([CLIENT_ID], "someone-elses-client"),
        (CLIENT_ID, ""),
        (CLIENT_ID, 42),
        (CLIENT_ID, [CLIENT_ID]),
        ([CLIENT_ID, "other-client"], "someone-elses-client"),
        ([CLIENT_ID, "other-client"], None),  # several audiences need azp
    ],
)
def test_azp_when_present_must_be_one_of_our_clients(aud: Any, azp: Any) -> None:
    google = FakeGoogle()
    assert reason(verifier_for(google), google.token(NOW, aud=aud, azp=azp)) == "audience"


@pytest.mark.parametrize(
    ("aud", "azp", "audience"),
    [
        (CLIENT_ID, CLIENT_ID, CLIENT_ID),
        (CLIENT_ID, None, CLIENT_ID),  # absent: nothing to check with one audience
        (CLIENT_ID, "other-client", CLIENT_ID),  # issued to another client of ours
        ([CLIENT_ID, "third-party"], CLIENT_ID, CLIENT_ID),
        ([CLIENT_ID, "other-client"], "other-client", "other-client"),
    ],
)
def test_azp_of_ours_or_absent_is_accepted(aud: Any, azp: Any, audience: str) -> None:
    google = FakeGoogle()
    assert verifier_for(google).verify(google.token(NOW, aud=aud, azp=azp)).audience == audience
