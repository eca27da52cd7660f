"""Access-token verification in both modes: every test of ``tests/tokens/test_access.py`` that
takes the ``verifier`` fixture runs again with :class:`AsyncAccessTokenVerifier`, and the
session checks run over every session-state backend with a sync writer and an async reader.
"""

from __future__ import annotations

import inspect
import secrets
from datetime import timedelta
from typing import Any

import pytest

from storno_security.aio import AsyncAccessTokenVerifier, InlineSessionStateStore
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    TokenPolicy,
)
from tests.aio.conftest import Synced, mode_params
from tests.aio.test_session_state import SYNC, async_state_store
from tests.contract.conftest import make_store
from tests.tokens import test_access as suite
from tests.tokens.conftest import issuer, policy, ring, rsa_keys, signing_keys, state

__all__ = ["issuer", "policy", "ring", "rsa_keys", "signing_keys", "state"]  # fixtures used


@pytest.fixture(params=["sync", "async"])
def verifier(
    request: pytest.FixtureRequest,
    ring: KeyRing,
    policy: TokenPolicy,
    clock: FrozenClock,
    state: MemorySessionStateStore,
) -> Any:
    """The synchronous verifier, then the async one, over the same session state."""
    if request.param == "sync":
        return AccessTokenVerifier(ring, policy, clock=clock, sessions=state)
    verifier = AsyncAccessTokenVerifier(
        ring, policy, clock=clock, sessions=InlineSessionStateStore(state)
    )
    return Synced(verifier, request.getfixturevalue("loop_thread"))


#: Suite tests of the synchronous verifier's insides, not of what it answers. The async
#: verifier caches a token's stateless verification before it reads the session state, so a
#: token refused for its session is cached (a later call still reads the state, see
#: test_a_refused_token_stays_refused below).
_INSIDES = frozenset(
    {
        "test_a_rejected_token_is_not_cached",
        # the sync verifier's memo of checked headers, looked at directly
        "test_header_spellings_made_up_to_fill_the_header_memo_are_bounded",
    }
)

# Every other suite test that verifies through the fixture, unchanged.
for _name, _test in vars(suite).items():
    if (
        _name.startswith("test_")
        and _name not in _INSIDES
        and "verifier" in inspect.signature(_test).parameters
    ):
        globals()[_name] = _test


@pytest.fixture(params=mode_params(("memory", "sqlite", "postgresql", "mariadb", "redis")))
def backend_verifier(
    request: pytest.FixtureRequest, ring: KeyRing, policy: TokenPolicy, clock: FrozenClock
) -> tuple[Any, Any]:
    """(session-state store, verifier over it) per backend and mode."""
    backend, mode = request.param
    store = make_store(backend, request, SYNC)
    if mode == "sync":
        return store, AccessTokenVerifier(ring, policy, clock=clock, sessions=store)
    reader = async_state_store(backend, store, request)
    verifier = AsyncAccessTokenVerifier(ring, policy, clock=clock, sessions=reader)
    return store, Synced(verifier, request.getfixturevalue("loop_thread"))


def _reason(verifier: Any, token: str) -> str | None:
    try:
        verifier.verify(token)
    except InvalidAccessTokenError as exc:
        return exc.reason
    return None


@pytest.mark.spec("REF-4")
def test_an_epoch_bump_kills_older_tokens_on_every_backend(
    backend_verifier: tuple[Any, Any], issuer: AccessTokenIssuer, clock: FrozenClock
) -> None:
    store, verifier = backend_verifier
    user = f"user-{secrets.token_hex(6)}"
    old = issuer.issue(user, session_id=secrets.token_hex(8), epoch=0).token
    assert _reason(verifier, old) is None  # verified, and cached
    store.bump_epoch(user)
    assert _reason(verifier, old) == "session_epoch"  # the cache never skips the state
    new = issuer.issue(user, session_id=secrets.token_hex(8), epoch=1).token
    assert _reason(verifier, new) is None


@pytest.mark.spec("REF-3")
def test_a_revoked_session_kills_its_tokens_on_every_backend(
    backend_verifier: tuple[Any, Any], issuer: AccessTokenIssuer, clock: FrozenClock
) -> None:
    store, verifier = backend_verifier
    user, sid, other = f"user-{secrets.token_hex(6)}", secrets.token_hex(8), secrets.token_hex(8)
    token = issuer.issue(user, session_id=sid, epoch=0).token
    sibling = issuer.issue(user, session_id=other, epoch=0).token
    assert _reason(verifier, token) is None
    now = clock.now()
    store.revoke_session(sid, now=now, until=now + timedelta(hours=1))
    assert _reason(verifier, token) == "session_revoked"
    assert _reason(verifier, sibling) is None


@pytest.mark.spec("REF-4")
def test_a_refused_token_stays_refused(
    verifier: Any, issuer: AccessTokenIssuer, state: MemorySessionStateStore
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    state.bump_epoch("user-1")
    for _ in range(3):
        assert _reason(verifier, token) == "session_epoch"
