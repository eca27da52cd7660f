"""Regression tests for the security review: a license is bound to its licensee (``sub``).

In a multi-organization installation, one organization's license must not unlock another's
plan: verification compares ``sub`` with the organization the license is checked for, and a
mismatch is an invalid license, like a license bound to another instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidLicenseError
from storno_security.license import (
    IssuedLicense,
    LicensePolicy,
    LicenseSigningKey,
    LicenseState,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore
from tests.license.conftest import FREE, VENDOR

Issue = Callable[..., IssuedLicense]


@pytest.fixture
def verifier_for(
    ed_key: LicenseSigningKey,
    rsa_key: LicenseSigningKey,
    clock: FrozenClock,
    last_seen: MemoryLastSeenStore,
) -> Callable[..., LicenseVerifier]:
    def make(policy: LicensePolicy | None = None, **kwargs: Any) -> LicenseVerifier:
        return LicenseVerifier(
            [ed_key.public, rsa_key.public],
            policy if policy is not None else LicensePolicy(issuer=VENDOR, free_plan=FREE),
            clock=clock,
            last_seen=last_seen,
            **kwargs,
        )

    return make


def _reason(call: Callable[[], object]) -> str:
    with pytest.raises(InvalidLicenseError) as info:
        call()
    assert str(info.value) == "invalid license"
    return info.value.reason


@pytest.mark.finding("internal review of license")
@pytest.mark.spec("LIC-2")
def test_another_organizations_license_is_refused(
    vendor_key: LicenseSigningKey, issue: Issue, verifier_for: Callable[..., LicenseVerifier]
) -> None:
    """The review's proof of concept: org-7 installs the license of org-42 (a business plan)."""
    token = issue(vendor_key, organization_id="org-42").token
    verifier = verifier_for()
    assert _reason(lambda: verifier.verify(token, expected_organization_id="org-7")) == (
        "organization_mismatch"
    )
    status = verifier.verify(token, expected_organization_id="org-42")
    assert status.state is LicenseState.VALID
    assert status.license.organization_id == "org-42"


@pytest.mark.finding("internal review of license")
@pytest.mark.spec("LIC-2")
def test_the_installations_organization_binds_every_check(
    ed_key: LicenseSigningKey, issue: Issue, verifier_for: Callable[..., LicenseVerifier]
) -> None:
    """A single-organization installation names its organization once, on the verifier."""
    token = issue(ed_key, organization_id="org-42").token
    assert verifier_for(organization_id="org-42").verify(token).state is LicenseState.VALID
    assert _reason(lambda: verifier_for(organization_id="org-7").verify(token)) == (
        "organization_mismatch"
    )
    # every binding given is checked: the verifier's and the call's
    both = verifier_for(organization_id="org-42")
    assert _reason(lambda: both.verify(token, expected_organization_id="org-7")) == (
        "organization_mismatch"
    )
    assert both.verify(token, expected_organization_id="org-42").state is LicenseState.VALID


@pytest.mark.finding("internal review of license")
@pytest.mark.spec("LIC-2")
def test_the_organization_is_required_by_default(
    ed_key: LicenseSigningKey, issue: Issue, verifier_for: Callable[..., LicenseVerifier]
) -> None:
    """Without an organization to compare ``sub`` with, the default policy refuses to verify:
    forgetting the binding is a programming error, not a silent acceptance."""
    assert LicensePolicy(issuer=VENDOR).require_organization_binding is True
    token = issue(ed_key).token
    with pytest.raises(ValueError, match="organization"):
        verifier_for().verify(token)
    # an explicit opt-out (one organization per installation, nothing to mix up)
    relaxed = LicensePolicy(issuer=VENDOR, require_organization_binding=False)
    assert verifier_for(relaxed).verify(token).state is LicenseState.VALID
    # ... still checks a binding when one is given
    assert _reason(lambda: verifier_for(relaxed).verify(token, expected_organization_id="x")) == (
        "organization_mismatch"
    )


@pytest.mark.finding("internal review of license")
@pytest.mark.spec("LIC-3")
def test_a_foreign_license_does_not_move_the_last_seen_time(
    ed_key: LicenseSigningKey,
    issue: Issue,
    verifier_for: Callable[..., LicenseVerifier],
    last_seen: MemoryLastSeenStore,
    clock: FrozenClock,
) -> None:
    token = issue(ed_key, organization_id="org-42").token
    with pytest.raises(InvalidLicenseError):
        verifier_for().verify(token, expected_organization_id="org-7")
    assert last_seen.record("license", clock.now()) == clock.now()


@pytest.mark.finding("internal review of license")
def test_organization_arguments_are_checked(
    ed_key: LicenseSigningKey, issue: Issue, verifier_for: Callable[..., LicenseVerifier]
) -> None:
    token = issue(ed_key).token
    with pytest.raises(ValueError, match="organization_id"):
        verifier_for(organization_id="")
    with pytest.raises(ValueError, match="organization_id"):
        verifier_for(organization_id=42)
    with pytest.raises(ValueError, match="expected_organization_id"):
        verifier_for().verify(token, expected_organization_id="")
    with pytest.raises(ValueError, match="expected_organization_id"):
        verifier_for().verify(token, expected_organization_id=42)
    with pytest.raises((TypeError, ValueError)):
        LicensePolicy(issuer=VENDOR, require_organization_binding=1)  # type: ignore[arg-type]


_ids = st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=20)


@pytest.mark.finding("internal review of license")
@pytest.mark.spec("LIC-2")
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(licensee=_ids, other=_ids, same=st.booleans())
def test_only_the_licensee_organization_is_accepted(
    ed_key: LicenseSigningKey,
    issue: Issue,
    verifier_for: Callable[..., LicenseVerifier],
    licensee: str,
    other: str,
    same: bool,
) -> None:
    installing = licensee if same else other
    token = issue(ed_key, organization_id=licensee).token
    verifier = verifier_for()
    if licensee == installing:
        assert verifier.verify(token, expected_organization_id=installing).license
    else:
        assert _reason(lambda: verifier.verify(token, expected_organization_id=installing)) == (
            "organization_mismatch"
        )
