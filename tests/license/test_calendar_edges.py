"""Issue 14: dates at the edges of the calendar never raise anything but a license error.

A genuine license whose ``iat``/``nbf``/``exp`` are numbers outside what a datetime holds
(before year 1, after 9999, huge, negative, non-finite) is a malformed claim; one whose dates
are inside the calendar but whose grace or leeway arithmetic would step out of it is judged
with that arithmetic held to the calendar's ends. ``OverflowError``/``ValueError`` never
escape, whatever the numbers.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import CorruptRecordError, InvalidLicenseError
from storno_security.license import (
    IssuedLicense,
    LicenseIssuer,
    LicensePolicy,
    LicenseSigningKey,
    LicenseState,
    LicenseVerifier,
)
from tests.license.conftest import FREE, VENDOR
from tests.license.test_verify import _parts, _signed

Issue = Callable[..., IssuedLicense]
MakeVerifier = Callable[..., LicenseVerifier]

FIRST = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799  # 9999-12-31T23:59:59Z

_edges = st.sampled_from(
    [FIRST, FIRST - 1, LAST, LAST + 1, LAST + 0.5, LAST + 0.9999999, FIRST - 0.5, 0, -1]
)
_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _edges,
)


def forge_payload_text(token: str) -> str:
    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def _forged(key: LicenseSigningKey, issue: Issue, **claims: Any) -> str:
    header, payload = _parts(issue(key).token)
    payload.update(claims)
    return _signed(key, header, payload)


@pytest.mark.spec("LIC-2")
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(iat=_numbers, nbf=_numbers, exp=_numbers)
def test_any_numbers_give_a_status_or_a_license_error(
    iat: float, nbf: float, exp: float, rsa_key: LicenseSigningKey, issue: Issue,
    make_verifier: MakeVerifier,
) -> None:  # fmt: skip
    token = _forged(rsa_key, issue, iat=iat, nbf=nbf, exp=exp)
    try:
        status = make_verifier().verify(token)
    except InvalidLicenseError:
        return
    assert status.state in set(LicenseState)


@pytest.mark.spec("LIC-2")
@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", LAST + 1),
        ("exp", 10**30),
        ("exp", 1e300),
        ("nbf", FIRST - 1),
        ("nbf", -(10**30)),
        ("iat", 10**30),
        ("iat", -1e300),
        ("exp", LAST + 0.9999999),  # rounds to year 10000
    ],
)
def test_a_date_outside_the_calendar_is_a_malformed_claim(
    claim: str, value: float, rsa_key: LicenseSigningKey, issue: Issue,
    make_verifier: MakeVerifier,
) -> None:  # fmt: skip
    with pytest.raises(InvalidLicenseError) as info:
        make_verifier().verify(_forged(rsa_key, issue, **{claim: value}))
    assert info.value.reason == f"claim_{claim}"


@pytest.mark.spec("LIC-2")
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_malformed(
    constant: str, rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    """Python's JSON parser reads NaN and Infinity, which JSON does not have."""
    value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[constant]
    token = _forged(rsa_key, issue, exp=value)  # json.dumps writes the literal
    assert constant in forge_payload_text(token)
    with pytest.raises(InvalidLicenseError) as info:
        make_verifier().verify(token)
    assert info.value.reason == "malformed"


@pytest.mark.spec("LIC-3")
def test_a_license_ending_at_the_end_of_the_calendar_is_valid(
    rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    """exp + 14 days of grace is past 9999-12-31: the grace ends at the calendar's end."""
    status = make_verifier().verify(_forged(rsa_key, issue, exp=LAST))
    assert status.state is LicenseState.VALID
    assert status.grace_ends_at == datetime.max.replace(tzinfo=UTC)
    assert status.license.expires_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.spec("LIC-3")
def test_a_license_starting_at_the_start_of_the_calendar_is_valid(
    rsa_key: LicenseSigningKey, issue: Issue, make_verifier: MakeVerifier
) -> None:
    """nbf - 60 s of leeway is before year 1: the license is valid from the start."""
    status = make_verifier().verify(_forged(rsa_key, issue, nbf=FIRST, iat=FIRST))
    assert status.state is LicenseState.VALID
    assert status.license.not_before == datetime(1, 1, 1, tzinfo=UTC)


class _ForwardOnly:
    """A last-seen store for any datetime (the library's stores keep times within 2**53 µs of
    the epoch, about year 2255; the arithmetic tested here is the verifier's)."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def record(self, key: str, seen: datetime) -> datetime:
        if self.latest is None or self.latest < seen:
            self.latest = seen
        return self.latest


@pytest.mark.spec("LIC-3")
def test_a_clock_at_the_end_of_the_calendar(rsa_key: LicenseSigningKey, issue: Issue) -> None:
    token = _forged(rsa_key, issue, exp=LAST - 10)
    clock = FrozenClock(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    verifier = LicenseVerifier(
        [rsa_key.public],
        LicensePolicy(issuer=VENDOR, free_plan=FREE),
        clock=clock,
        last_seen=_ForwardOnly(),
        organization_id="org-42",
    )
    status = verifier.verify(token)
    assert status.state is LicenseState.GRACE
    assert status.grace_ends_at == datetime.max.replace(tzinfo=UTC)


class _BrokenLastSeen:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def record(self, key: str, seen: datetime) -> Any:
        return self.answer


@pytest.mark.spec("LIC-3")
@pytest.mark.parametrize(
    "answer",
    [
        "2026-03-01",
        None,
        datetime(2026, 3, 1),  # naive
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),  # in UTC: past 9999
    ],
)
def test_a_last_seen_store_answering_no_usable_time_is_a_corrupt_record(
    answer: object, rsa_key: LicenseSigningKey, issue: Issue
) -> None:
    verifier = LicenseVerifier(
        [rsa_key.public],
        LicensePolicy(issuer=VENDOR, free_plan=FREE),
        clock=FrozenClock(datetime(2026, 3, 1, 12, tzinfo=UTC)),
        last_seen=_BrokenLastSeen(answer),
        organization_id="org-42",
    )
    with pytest.raises(CorruptRecordError):
        verifier.verify(issue(rsa_key).token)


@pytest.mark.spec("LIC-4")
def test_the_issuer_refuses_a_validity_past_the_calendar(
    rsa_key: LicenseSigningKey, clock: FrozenClock
) -> None:
    issuer = LicenseIssuer(rsa_key, issuer=VENDOR, clock=clock)
    arguments: dict[str, Any] = {
        "org_name": "ACME SRL",
        "plan": "business",
        "max_companies": 5,
        "max_users": 20,
        "valid_for": timedelta(days=365),
    }
    start = datetime(1, 1, 1, tzinfo=UTC)
    assert issuer.issue("org-42", not_before=start, **arguments).license.not_before == start
    with pytest.raises(ValueError, match="years 1 to 9999"):
        issuer.issue("org-42", not_before=datetime(9999, 12, 1, tzinfo=UTC), **arguments)
