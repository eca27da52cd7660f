"""No secret ever reaches a security event (ACC-3).

Each *flow* drives a capability the way a server does, records the security events a server
would record through :class:`AuditLog` (including what the capability reports itself, such as
``SessionManager``'s ``on_event``), and returns ``(events, secrets_used)``. The test serialises
every event (JSON line and ``repr``) and looks for every secret and every long piece of one.

To cover a new capability, write a flow function and add it to ``FLOWS``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from storno_security.audit import (
    AuditLog,
    Outcome,
    SecurityEvent,
    SecurityEventType,
    event_to_json,
)
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidPasswordError, RefreshTokenReuseError
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.stores.memory import (
    MemoryAuditStore,
    MemoryRefreshFamilyStore,
    MemorySessionStateStore,
)
from storno_security.tokens import (
    AccessTokenIssuer,
    KeyRing,
    SessionManager,
    SigningKey,
    TokenPolicy,
)

Flow = Callable[[], tuple[list[SecurityEvent], list[str]]]
_RSA: list[rsa.RSAPrivateKey] = []


def _log() -> tuple[AuditLog, MemoryAuditStore, FrozenClock]:
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store = MemoryAuditStore()
    return AuditLog(store, clock=clock, pseudonym_key=secrets.token_bytes(32)), store, clock


def _all(store: MemoryAuditStore) -> list[SecurityEvent]:
    return store.query(organization_id=None, limit=10_000)


def password_flow() -> tuple[list[SecurityEvent], list[str]]:
    """Login by password: success, wrong password, unknown user, then a password change."""
    log, store, _ = _log()
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    password, wrong, new = "correct horse battery staple", "Tr0ub4dor&3-wrong", "n3w-Secret-pass!"
    stored = hasher.hash(password)
    ctx = {"ip": "198.51.100.7", "user_agent": "pytest", "organization_id": "org-1"}
    hasher.verify(password, stored)
    log.record(
        SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", details={"method": "password"}, **ctx
    )
    for attempt, target in ((wrong, stored), (password, None)):
        try:
            hasher.verify(attempt, target)
        except InvalidPasswordError as exc:
            log.record(
                SecurityEventType.LOGIN_FAILED,
                outcome=Outcome.FAILURE,
                actor_id="u1" if target else None,
                details={"reason": exc.reason, "method": "password"},
                **ctx,
            )
    new_hash = hasher.hash(new)
    log.record(SecurityEventType.PASSWORD_CHANGED, actor_id="u1", **ctx)
    return _all(store), [password, wrong, new, stored, new_hash]


def session_flow() -> tuple[list[SecurityEvent], list[str]]:
    """Session start, refresh, reuse of a rotated token, logout, and revoke-all."""
    log, store, clock = _log()
    if not _RSA:
        _RSA.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    policy = TokenPolicy(issuer="https://api.storno.test", audience="storno-api")
    ring = KeyRing(SigningKey.from_private_key(_RSA[0]))
    manager = SessionManager(
        issuer=AccessTokenIssuer(ring, policy, clock=clock),
        policy=policy,
        families=MemoryRefreshFamilyStore(),
        sessions=MemorySessionStateStore(),
        clock=clock,
        on_event=log.session_listener(),
    )
    used: list[str] = []
    first = manager.start("u1")
    used += [first.access_token, first.refresh_token]
    log.record(
        SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", details={"session_id": first.session_id}
    )
    second = manager.refresh(first.refresh_token)
    used += [second.access_token, second.refresh_token]
    log.record(
        SecurityEventType.TOKEN_REFRESHED, actor_id="u1", details={"session_id": second.session_id}
    )
    with pytest.raises(RefreshTokenReuseError):
        manager.refresh(first.refresh_token)  # reuse: the family dies, on_event reports it
    third = manager.start("u1")
    used += [third.access_token, third.refresh_token]
    manager.logout(third.refresh_token, user_id="u1")
    fourth = manager.start("u1")
    used += [fourth.access_token, fourth.refresh_token]
    manager.revoke_all("u1", reason="password_changed")
    return _all(store), used


#: Every flow whose events are scanned. Add new capabilities' flows here.
FLOWS: list[Flow] = [password_flow, session_flow]


def _pieces(secret: str) -> Iterable[str]:
    yield secret
    for part in secret.replace("$", ".").split("."):  # JWT segments, bcrypt hash fields
        if len(part) >= 12:
            yield part


def leaks(events: list[SecurityEvent], used: list[str]) -> list[str]:
    """The kinds of events in which some secret (or a long piece of one) appears."""
    found = []
    for event in events:
        text = event_to_json(event) + repr(event)
        for secret in used:
            if any(piece in text for piece in _pieces(secret)):
                found.append(event.type.value)
    return found


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__)
def test_no_secret_reaches_an_event(flow: Flow) -> None:
    events, used = flow()
    assert events, "a flow must produce events, or it proves nothing"
    assert used
    assert leaks(events, used) == []


def test_flows_record_the_expected_events() -> None:
    events, _ = session_flow()
    kinds = {e.type for e in events}
    assert {
        SecurityEventType.LOGIN_SUCCEEDED,
        SecurityEventType.TOKEN_REFRESHED,
        SecurityEventType.TOKEN_REUSE_DETECTED,
        SecurityEventType.LOGOUT,
        SecurityEventType.SESSIONS_REVOKED,
    } <= kinds
    events, _ = password_flow()
    assert [e.outcome for e in events].count(Outcome.FAILURE) == 2


def test_the_scan_catches_a_leak() -> None:
    # user agents are not checked for secrets (an attacker could otherwise suppress events);
    # a server that put a token there would be caught by the scan.
    log, store, _ = _log()
    token = secrets.token_urlsafe(32)
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", user_agent=f"x {token}")
    assert leaks(_all(store), [token]) == ["login.succeeded"]
