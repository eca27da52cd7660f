"""``AccessTokenVerifier.verify(token, session_state=...)``: the session state comes from the
given reader instead of the store, on first sight and on a cache hit alike, and its answer is
enforced exactly as the store's (the kit passes a reader that brings the caller's own records
in the same statement: issue 18)."""

from __future__ import annotations

import secrets

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    SessionState,
    TokenPolicy,
    VerifiedTokenCache,
)


class _Reader:
    def __init__(self, answer: SessionState) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, *, user_id: str, session_id: str) -> SessionState:
        self.calls.append((user_id, session_id))
        return self.answer


@pytest.fixture(params=["uncached", "cached"])
def reading_verifier(
    request: pytest.FixtureRequest,
    ring: KeyRing,
    policy: TokenPolicy,
    clock: FrozenClock,
    state: MemorySessionStateStore,
) -> AccessTokenVerifier:
    cache = VerifiedTokenCache(16) if request.param == "cached" else None
    return AccessTokenVerifier(ring, policy, clock=clock, sessions=state, cache=cache)


@pytest.mark.spec("REF-4")
def test_the_given_reader_decides_the_session_on_every_verification(
    reading_verifier: AccessTokenVerifier, issuer: AccessTokenIssuer
) -> None:
    session_id = secrets.token_hex(16)
    token = issuer.issue("user-1", session_id=session_id, epoch=1).token
    reader = _Reader(SessionState(epoch=1, revoked=False))
    for _ in range(2):  # first sight, then (when cached) a cache hit
        assert reading_verifier.verify(token, session_state=reader).subject == "user-1"
    assert reader.calls == [("user-1", session_id)] * 2
    reader.answer = SessionState(epoch=1, revoked=True)
    with pytest.raises(InvalidAccessTokenError) as revoked:
        reading_verifier.verify(token, session_state=reader)
    assert revoked.value.reason == "session_revoked"
    reader.answer = SessionState(epoch=2, revoked=False)
    with pytest.raises(InvalidAccessTokenError) as ended:
        reading_verifier.verify(token, session_state=reader)
    assert ended.value.reason == "session_epoch"


def test_the_reader_is_not_asked_for_a_token_that_fails_before_the_session(
    reading_verifier: AccessTokenVerifier, issuer: AccessTokenIssuer, clock: FrozenClock
) -> None:
    token = issuer.issue("user-1", session_id=secrets.token_hex(16), epoch=0).token
    reader = _Reader(SessionState(epoch=0, revoked=False))
    with pytest.raises(InvalidAccessTokenError) as forged:
        reading_verifier.verify(token[:-4] + "AAAA", session_state=reader)
    assert forged.value.reason == "signature"
    assert reader.calls == []


def test_without_a_reader_the_store_decides(
    reading_verifier: AccessTokenVerifier,
    issuer: AccessTokenIssuer,
    state: MemorySessionStateStore,
) -> None:
    token = issuer.issue("user-1", session_id=secrets.token_hex(16), epoch=0).token
    assert reading_verifier.verify(token).subject == "user-1"
    state.bump_epoch("user-1")
    with pytest.raises(InvalidAccessTokenError) as ended:
        reading_verifier.verify(token)
    assert ended.value.reason == "session_epoch"
