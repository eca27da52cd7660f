"""A complete login flow with the library alone: register, log in, refresh, change password.

Run: python examples/login_flow.py
"""

from __future__ import annotations

from storno_security import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    InvalidAccessTokenError,
    InvalidPasswordError,
    KeyRing,
    PasswordHasher,
    PasswordPolicy,
    RefreshTokenReuseError,
    SessionManager,
    SystemClock,
    TokenPolicy,
)
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore


def main() -> None:
    clock = SystemClock()
    # Cost 4 keeps the example fast; production keeps the default cost 12.
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    ring = KeyRing.generate(bits=2048)
    policy = TokenPolicy(issuer="https://api.example.eu", audience="example-api")
    state = MemorySessionStateStore()
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=state)
    sessions = SessionManager(
        issuer=issuer,
        policy=policy,
        families=MemoryRefreshFamilyStore(),
        sessions=state,
        clock=clock,
    )

    users = {"ana@example.eu": hasher.hash("a long and memorable passphrase")}

    def login(email: str, password: str) -> str:
        stored = users.get(email)
        result = hasher.verify(password, stored)  # None for unknown users: same time, same error
        if result.new_hash is not None:
            users[email] = result.new_hash  # policy upgrade on login (PW-3)
        return email

    try:
        login("nobody@example.eu", "whatever password")
    except InvalidPasswordError as exc:
        print("unknown user:", exc)

    user = login("ana@example.eu", "a long and memorable passphrase")
    pair = sessions.start(user)
    print("access token for", verifier.verify(pair.access_token).subject)

    renewed = sessions.refresh(pair.refresh_token)
    renewed = sessions.refresh(renewed.refresh_token)  # the client moved on
    try:
        sessions.refresh(pair.refresh_token)  # a stolen, already-used token
    except RefreshTokenReuseError:
        print("reuse detected: the whole login is revoked")
    try:
        verifier.verify(renewed.access_token)
    except InvalidAccessTokenError as exc:
        print("access token after reuse:", exc.reason)

    second = sessions.start(user)
    users[user] = hasher.hash("a brand new passphrase!")
    sessions.revoke_all(user, reason="password_changed")
    try:
        verifier.verify(second.access_token)
    except InvalidAccessTokenError as exc:
        print("access token after password change:", exc.reason)
    print("JWKS kids:", [key["kid"] for key in ring.jwks()["keys"]])


if __name__ == "__main__":
    main()
