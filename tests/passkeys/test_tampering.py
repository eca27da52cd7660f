"""Any tampering with a real assertion or attestation is refused, with the library's error only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidPasskeyError
from storno_security.passkeys import PasskeyManager, PasskeyRelyingParty
from storno_security.stores.memory import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)
from tests.passkeys.authenticator import SoftAuthenticator, b64url, b64url_decode
from tests.passkeys.conftest import ORIGIN, make_policy

USER = "user-ana"

_clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
_manager = PasskeyManager(
    PasskeyRelyingParty(make_policy(), challenges=MemoryPasskeyChallengeStore(), clock=_clock),
    credentials=MemoryPasskeyCredentialStore(),
    clock=_clock,
)
_authenticator = SoftAuthenticator(attestation="packed")
_options = _manager.start_registration(USER, user_name="ana").as_dict()
_manager.finish_registration(
    _authenticator.create(_options, origin=ORIGIN), user_id=USER, name="Laptop"
)

FIELDS = ("clientDataJSON", "authenticatorData", "signature", "userHandle")


def _tamper(data: bytes, index: int, xor: int) -> bytes:
    mutable = bytearray(data)
    mutable[index % len(mutable)] ^= xor
    return bytes(mutable)


@pytest.mark.spec("PK-1")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(FIELDS),
    index=st.integers(min_value=0, max_value=10_000),
    xor=st.integers(min_value=1, max_value=255),
)
def test_any_tampered_assertion_is_refused(field: str, index: int, xor: int) -> None:
    options = _manager.start_login().as_dict()
    response = _authenticator.get(options, origin=ORIGIN)
    raw = b64url_decode(response["response"][field])
    response["response"][field] = b64url(_tamper(raw, index, xor))
    with pytest.raises(InvalidPasskeyError):
        _manager.finish_login(response)


@pytest.mark.spec("PK-1")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0, max_value=10_000), xor=st.integers(1, 255))
def test_any_tampered_attestation_is_refused(index: int, xor: int) -> None:
    options = _manager.start_registration(USER, user_name="ana").as_dict()
    response = SoftAuthenticator(attestation="packed").create(options, origin=ORIGIN)
    field = "attestationObject" if index % 2 else "clientDataJSON"
    raw = b64url_decode(response["response"][field])
    response["response"][field] = b64url(_tamper(raw, index // 2, xor))
    with pytest.raises(InvalidPasskeyError):
        _manager.finish_registration(response, user_id=USER, name="x")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _shaped(data: Any) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"id": st.text(max_size=20), "rawId": st.text(max_size=20), "type": st.just("public-key")},
        optional={"response": st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=40))},
    )


@settings(max_examples=200, deadline=None)
@given(junk=_json | _shaped(None) | st.text(max_size=200).map(json.dumps))
def test_arbitrary_input_gives_only_our_error(junk: Any) -> None:
    if not isinstance(junk, str | dict):
        junk = json.dumps(junk)
    with pytest.raises(InvalidPasskeyError):
        _manager.finish_login(junk)
    with pytest.raises(InvalidPasskeyError):
        _manager.finish_registration(junk, user_id=USER, name="x")
