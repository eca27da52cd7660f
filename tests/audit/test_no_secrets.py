"""No secret ever reaches a security event (ACC-3).

Each *flow* drives a capability the way a server does (real capability APIs, memory stores, the
frozen clock), records the security events a server would record through :class:`AuditLog` and
the ``storno_security.audit`` mappings (including what a capability reports itself, such as
``SessionManager``'s and ``ApiKeyManager``'s ``on_event``), and returns
``(events, secrets_used)``: every secret the flow handled (passwords, TOTP secrets and codes,
backup codes, API keys, tokens, vault plaintexts and keys, license tokens, private keys as PEM
and JWK, WebAuthn challenges).

The scan looks at every field of every event, its JSON line and its ``repr``, case-insensitively,
for each secret, each long piece of one (JWT segments, PEM lines), and their common encodings
(hex, base64, base64url, with and without padding; secrets that are themselves base64, base64url,
base32 or hex are also looked for in the other encodings of the bytes they encode).

To cover a new capability, write a flow function and add it to ``FLOWS``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import attrs
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from storno_security import audit
from storno_security.api_keys import ApiKeyManager, hash_api_key
from storno_security.audit import AuditLog, Outcome, SecurityEvent, SecurityEventType, event_to_json
from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidApiKeyError,
    InvalidCiphertextError,
    InvalidIdTokenError,
    InvalidLicenseError,
    InvalidMfaCodeError,
    InvalidPasskeyError,
    InvalidPasswordError,
    PasskeyCloneSuspectedError,
    RateLimitExceededError,
    RefreshTokenReuseError,
)
from storno_security.license import (
    Entitlements,
    LicenseIssuer,
    LicensePolicy,
    LicenseSigningKey,
    LicenseVerifier,
)
from storno_security.mfa import (
    MFA_DISABLE,
    BackupCodes,
    MfaChallenges,
    MfaPolicy,
    PendingChallenge,
    SecondFactorVerifier,
    StepUpTokens,
    TotpAuthenticator,
    VerifiedFactor,
    disable_mfa,
)
from storno_security.oidc import GoogleIdTokenPolicy, GoogleIdTokenVerifier
from storno_security.passkeys import PasskeyManager, PasskeyPolicy, PasskeyRelyingParty
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.ratelimit import RateLimiter, client_key
from storno_security.rbac import (
    Membership,
    Principal,
    authorize_member_addition,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
)
from storno_security.stores.memory import (
    MemoryApiKeyStore,
    MemoryAuditStore,
    MemoryBackupCodeStore,
    MemoryLastSeenStore,
    MemoryMfaChallengeStore,
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
    MemoryRateLimitStorage,
    MemoryRefreshFamilyStore,
    MemorySessionStateStore,
    MemoryStepUpStore,
    MemoryTotpReplayStore,
)
from storno_security.tokens import (
    AccessTokenIssuer,
    KeyRing,
    SessionManager,
    SigningKey,
    TokenPolicy,
)
from storno_security.vault import VaultKey, VaultKeyRing
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.passkeys.authenticator import SoftAuthenticator, b64url

Secret = str | bytes
Flow = Callable[[], tuple[list[SecurityEvent], list[Secret]]]

IP = "198.51.100.7"
CTX = {"ip": IP, "user_agent": "pytest", "organization_id": "org-1"}
MFA_POLICY = MfaPolicy.insecure_for_tests()


def _log() -> tuple[AuditLog, MemoryAuditStore, FrozenClock]:
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store = MemoryAuditStore()
    return AuditLog(store, clock=clock, pseudonym_key=secrets.token_bytes(32)), store, clock


def _all(store: MemoryAuditStore) -> list[SecurityEvent]:
    return store.query(organization_id=None, limit=10_000)


@cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _google() -> FakeGoogle:
    return FakeGoogle()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _jwk_private_parts(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> list[str]:
    """The private members of the key's JWK (``d``, and ``p``, ``q``, ``dp``, ``dq``, ``qi``)."""

    def b64int(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return [b64url(raw)]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return [b64url(key.private_numbers().private_value.to_bytes(32, "big"))]
    n = key.private_numbers()
    return [b64int(v) for v in (n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)]


def _session_manager(log: AuditLog, clock: FrozenClock) -> SessionManager:
    policy = TokenPolicy(issuer="https://api.storno.test", audience="storno-api")
    ring = KeyRing(SigningKey.from_private_key(_rsa_key()))
    return SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=AccessTokenIssuer(ring, policy, clock=clock),
        policy=policy,
        families=MemoryRefreshFamilyStore(),
        sessions=MemorySessionStateStore(),
        clock=clock,
        on_event=log.session_listener(),
    )


def _failed(
    log: AuditLog,
    clock: FrozenClock,
    event_type: SecurityEventType,
    error: BaseException,
    **context: Any,
) -> None:
    """Record the failure a library error reports, at the clock's time."""
    log.record_event(audit.event_from_error(event_type, error, at=clock.now(), **context))


# --- flows -----------------------------------------------------------------------------------


def password_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Login by password: success, wrong password, unknown user, then a password change."""
    log, store, clock = _log()
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    password, wrong, new = "correct horse battery staple", "Tr0ub4dor&3-wrong", "n3w-Secret-pass!"
    stored = hasher.hash(password)
    hasher.verify(password, stored)
    log.record(
        SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", details={"method": "password"}, **CTX
    )
    for attempt, target in ((wrong, stored), (password, None)):
        with pytest.raises(InvalidPasswordError) as failure:
            hasher.verify(attempt, target)
        _failed(
            log,
            clock,
            SecurityEventType.LOGIN_FAILED,
            failure.value,
            method="password",
            actor_id="u1" if target else None,
            **CTX,
        )
    new_hash = hasher.hash(new)
    log.record(SecurityEventType.PASSWORD_CHANGED, actor_id="u1", **CTX)
    return _all(store), [password, wrong, new, stored, new_hash]


def session_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Session start, refresh, reuse of a rotated token, logout, and revoke-all."""
    log, store, clock = _log()
    manager = _session_manager(log, clock)
    used: list[Secret] = []
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


def _totp_code(secret: str, clock: FrozenClock) -> str:
    return str(pyotp.TOTP(secret).at(clock.now()))


def _wrong_code(secret: str, clock: FrozenClock) -> str:
    near = {str(pyotp.TOTP(secret).at(clock.now(), counter_offset=k)) for k in (-1, 0, 1)}
    return next(c for c in (f"{secrets.randbelow(10**6):06d}" for _ in range(99)) if c not in near)


def mfa_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """TOTP enrolment, backup codes, an MFA login (wrong code, right code), a backup-code login,
    a used code refused, then step-up to disable MFA."""
    log, store, clock = _log()
    totp = TotpAuthenticator(
        MFA_POLICY.totp, replay=MemoryTotpReplayStore(), clock=clock, lockout=None
    )
    codes = BackupCodes(MFA_POLICY, store=MemoryBackupCodeStore(), clock=clock, lockout=None)
    factors = SecondFactorVerifier(totp=totp, backup_codes=codes)
    challenges = MfaChallenges(MFA_POLICY, store=MemoryMfaChallengeStore(), clock=clock)
    step_up = StepUpTokens(MFA_POLICY, store=MemoryStepUpStore(), clock=clock)
    used: list[Secret] = []

    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    secret = enrolment.secret
    used += [secret, enrolment.provisioning_uri]
    code = _totp_code(secret, clock)
    used.append(code)
    log.record_event(
        audit.event_from_second_factor(
            totp.confirm_enrolment(code, secret=secret, user_id="u1"), **CTX
        )
    )
    log.record(SecurityEventType.MFA_ENABLED, actor_id="u1", details={"method": "totp"}, **CTX)
    backup = codes.generate("u1")
    used += list(backup.codes)
    log.record_event(audit.event_from_backup_code_set(backup, at=clock.now(), **CTX))

    def answer(method: str, value: str) -> Callable[[PendingChallenge], VerifiedFactor]:
        return lambda pending: factors.verify(
            pending.user_id, method=method, code=value, totp_secret=secret
        )

    clock.advance(30)
    issued = challenges.issue("u1")
    used += [issued.token, json.dumps(issued.response())]
    wrong = _wrong_code(secret, clock)
    used.append(wrong)
    with pytest.raises(InvalidMfaCodeError) as failure:
        challenges.complete(issued.token, answer("totp", wrong))
    assert failure.value.attempts_left is not None
    _failed(
        log, clock, SecurityEventType.MFA_FAILED, failure.value, method="totp", actor_id="u1", **CTX
    )
    code = _totp_code(secret, clock)
    used.append(code)
    verified = challenges.complete(issued.token, answer("totp", code))
    log.record_event(audit.event_from_mfa_challenge(verified, **CTX))

    for attempt in range(2):  # the second use of the same code is refused
        issued = challenges.issue("u1")
        used.append(issued.token)
        respond = answer("backup_code", backup.codes[0])
        if attempt == 0:
            verified = challenges.complete(issued.token, respond)
            log.record_event(audit.event_from_mfa_challenge(verified, **CTX))
            log.record_event(audit.event_from_second_factor(verified.factor, **CTX))
            continue
        with pytest.raises(InvalidMfaCodeError) as failure:
            challenges.complete(issued.token, respond)
        _failed(
            log,
            clock,
            SecurityEventType.MFA_FAILED,
            failure.value,
            method="backup_code",
            actor_id="u1",
            **CTX,
        )

    clock.advance(30)
    code = _totp_code(secret, clock)
    used.append(code)
    grant = step_up.issue(totp.verify(code, secret=secret, user_id="u1"), action=MFA_DISABLE)
    used.append(grant.token)
    done = disable_mfa("u1", step_up_token=grant.token, step_up=step_up, backup_codes=codes)
    log.record_event(audit.event_from_step_up(done, **CTX))
    log.record(SecurityEventType.MFA_DISABLED, actor_id="u1", **CTX)
    return _all(store), used


def api_key_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Create a key, use it, present a mistyped one, revoke it, use it revoked, revoke all."""
    log, store, clock = _log()
    manager = ApiKeyManager(MemoryApiKeyStore(), clock=clock, on_event=log.api_key_listener())
    created = manager.create("u1", "org-1", name="CI", scope="write")
    key = created.key
    mistyped = key[:-1] + ("A" if key[-1] != "A" else "B")
    used: list[Secret] = [key, key[len("af_") + 13 :], hash_api_key(key), mistyped]
    principal = manager.verify(key)
    log.record_event(
        audit.event_from_api_key_use(principal, at=clock.now(), ip=IP, user_agent="ci")
    )
    for presented in (mistyped, "af_" + secrets.token_urlsafe(48)):
        used.append(presented)
        with pytest.raises(InvalidApiKeyError) as failure:
            manager.verify(presented)
        _failed(log, clock, SecurityEventType.LOGIN_FAILED, failure.value, method="api_key", ip=IP)
    assert manager.revoke(created.key_id, expected_user_id="u1")
    with pytest.raises(InvalidApiKeyError) as failure:
        manager.verify(key)
    _failed(log, clock, SecurityEventType.LOGIN_FAILED, failure.value, method="api_key", ip=IP)
    others = [manager.create("u1", "org-1", name=f"k{i}", scope="read") for i in range(2)]
    used += [o.key for o in others]
    manager.revoke_user_keys("u1")
    return _all(store), used


PASSKEY_ORIGIN = "https://app.storno.example"


def passkey_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Register a passkey, log in with it, replay the login, and a cloned authenticator."""
    log, store, clock = _log()
    policy = PasskeyPolicy(
        rp_id="storno.example", rp_name="Storno", allowed_origins=(PASSKEY_ORIGIN,)
    )
    rp = PasskeyRelyingParty(policy, challenges=MemoryPasskeyChallengeStore(), clock=clock)
    manager = PasskeyManager(rp, credentials=MemoryPasskeyCredentialStore(), clock=clock)
    authenticator = SoftAuthenticator()
    used: list[Secret] = []

    options = manager.start_registration("u1", user_name="ana@example.eu").as_dict()
    used += [options["challenge"], options["user"]["id"]]
    credential = manager.finish_registration(
        authenticator.create(options, origin=PASSKEY_ORIGIN), user_id="u1", name="Laptop"
    )
    log.record_event(audit.event_from_passkey_registration(credential, **CTX))

    options = manager.start_login().as_dict()
    used.append(options["challenge"])
    response = authenticator.get(options, origin=PASSKEY_ORIGIN)
    log.record_event(audit.event_from_passkey_login(manager.finish_login(response), **CTX))
    with pytest.raises(InvalidPasskeyError) as failure:  # the same assertion again
        manager.finish_login(response)
    _failed(log, clock, SecurityEventType.LOGIN_FAILED, failure.value, method="passkey", **CTX)

    options = manager.start_login("u1").as_dict()
    used.append(options["challenge"])
    stale = authenticator.get(options, origin=PASSKEY_ORIGIN, sign_count=1)  # a clone's count
    with pytest.raises(PasskeyCloneSuspectedError) as clone:
        manager.verify_second_factor(stale, user_id="u1")
    log.record_event(audit.event_from_passkey_clone(clone.value, at=clock.now(), **CTX))
    for stored in authenticator.keys.values():
        used += [_pem(stored.private_key), *_jwk_private_parts(stored.private_key)]
    return _all(store), used


def google_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """A Google login, then an ID token for another client refused."""
    log, store, clock = _log()
    google = _google()
    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,)), fetcher=google, clock=clock
    )
    token = google.token(clock.now())
    identity = verifier.verify(token)
    log.record_event(audit.event_from_google_login(identity, at=clock.now(), actor_id="u1", **CTX))
    foreign = google.token(clock.now(), aud="someone-else.apps.googleusercontent.com")
    with pytest.raises(InvalidIdTokenError) as failure:
        verifier.verify(foreign)
    _failed(log, clock, SecurityEventType.LOGIN_FAILED, failure.value, method="google", **CTX)
    private = google.keys["key-1"]
    return _all(store), [token, foreign, _pem(private), *_jwk_private_parts(private)]


def vault_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Seal a company's storage secret, open it, fail to open it for another company, rotate."""
    log, store, clock = _log()
    old, new = VaultKey.generate(), VaultKey.generate()
    ring = VaultKeyRing(old)
    plaintext = "S3-" + secrets.token_urlsafe(30)
    binary = secrets.token_bytes(32)
    ad = "company:c1/s3_secret"
    context = {**CTX, "actor_id": "u1", "company_id": "c1"}
    sealed = ring.seal(plaintext, associated_data=ad)
    sealed_binary = ring.seal(binary, associated_data=ad + "_raw")
    log.record_event(
        audit.vault_access_event(
            "write", at=clock.now(), secret_name="s3_secret", vault_key_id=old.kid, **context
        )
    )
    assert ring.open(sealed, associated_data=ad) == plaintext.encode()
    log.record_event(
        audit.vault_access_event("read", at=clock.now(), secret_name="s3_secret", **context)
    )
    with pytest.raises(InvalidCiphertextError) as failure:
        ring.open(sealed, associated_data="company:c2/s3_secret")
    log.record_event(
        audit.vault_access_event(
            "read", at=clock.now(), secret_name="s3_secret", error=failure.value, **context
        )
    )
    rotated = VaultKeyRing(new, decrypt_only=[old]).rotate(sealed, associated_data=ad)
    log.record_event(
        audit.vault_access_event(
            "write", at=clock.now(), secret_name="s3_secret", vault_key_id=new.kid, **context
        )
    )
    used: list[Secret] = [plaintext, binary, sealed, sealed_binary, rotated]
    return _all(store), [*used, old.to_base64(), new.to_base64()]


LICENSE_VENDOR = "https://licensing.storno.test"


def license_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Issue a license; check it valid, in grace, expired; refuse a tampered token."""
    log, store, clock = _log()
    private = ed25519.Ed25519PrivateKey.generate()
    signing = LicenseSigningKey.from_private_key(private)
    issued = LicenseIssuer(signing, issuer=LICENSE_VENDOR, clock=clock).issue(
        "org-1",
        org_name="ACME SRL",
        plan="business",
        features=["efactura"],
        max_companies=5,
        max_users=20,
        valid_for=timedelta(days=30),
    )
    free = Entitlements(plan="free", features=frozenset(), max_companies=1, max_users=1)
    verifier = LicenseVerifier(
        [signing.public],
        LicensePolicy(issuer=LICENSE_VENDOR, free_plan=free),
        clock=clock,
        last_seen=MemoryLastSeenStore(),
        organization_id="org-1",
    )
    states = []
    for step in (timedelta(0), timedelta(days=31), timedelta(days=30)):
        clock.advance(step)
        status = verifier.verify(issued.token)
        states.append(status.state.value)
        log.record_event(audit.event_from_license_status(status, ip=IP))
    assert states == ["valid", "grace", "expired"]
    head, payload, signature = issued.token.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(InvalidLicenseError) as failure:
        verifier.verify(tampered)
    _failed(
        log, clock, SecurityEventType.LICENSE_CHECKED, failure.value, organization_id="org-1", ip=IP
    )
    pem = signing.private_pem().decode("ascii")
    return _all(store), [issued.token, tampered, pem, *_jwk_private_parts(private)]


def rbac_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """The Owner logs in, adds a member, changes their role, removes them, transfers ownership."""
    log, store, clock = _log()
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    password = "owner-" + secrets.token_urlsafe(12)
    stored = hasher.hash(password)
    hasher.verify(password, stored)
    session = _session_manager(log, clock).start("u-owner")
    log.record(
        SecurityEventType.LOGIN_SUCCEEDED,
        actor_id="u-owner",
        details={"method": "password", "session_id": session.session_id},
        **CTX,
    )
    owner = Membership(user_id="u-owner", organization_id="org-1", role="owner")
    admin = Membership(user_id="u-admin", organization_id="org-1", role="admin")
    me = Principal.user("u-owner", organization_id="org-1")
    added = authorize_member_addition(
        owner,
        Membership(user_id="u-new", organization_id="org-1", role="viewer"),
        principal=me,
        existing=(),
    )
    log.record_event(audit.event_from_membership_change(added, at=clock.now(), ip=IP))
    changed = authorize_membership_update(owner, added.after, principal=me, role="accountant")
    log.record_event(audit.event_from_membership_change(changed, at=clock.now(), ip=IP))
    removed = authorize_member_removal(owner, changed.after, principal=me, at=clock.now())
    log.record_event(audit.event_from_membership_change(removed, at=clock.now(), ip=IP))
    transfer = authorize_ownership_transfer(owner, admin, principal=me)
    log.record_event(audit.event_from_ownership_transfer(transfer, at=clock.now(), ip=IP))
    return _all(store), [password, stored, session.access_token, session.refresh_token]


def rate_limit_flow() -> tuple[list[SecurityEvent], list[Secret]]:
    """Password guessing from one address until the login limit refuses it."""
    log, store, clock = _log()
    limiter = RateLimiter(MemoryRateLimitStorage(), clock=clock)
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    password = "the-real-" + secrets.token_urlsafe(12)
    stored = hasher.hash(password)
    used: list[Secret] = [password, stored]
    for _ in range(100):
        guess = "guess-" + secrets.token_urlsafe(9)
        used.append(guess)
        try:
            limiter.hit("login", client_key(IP))
        except RateLimitExceededError as refusal:
            log.record_event(audit.event_from_rate_limit(refusal, at=clock.now(), ip=IP))
            break
        with pytest.raises(InvalidPasswordError) as failure:
            hasher.verify(guess, stored)
        _failed(
            log,
            clock,
            SecurityEventType.LOGIN_FAILED,
            failure.value,
            method="password",
            actor_id="u1",
            ip=IP,
        )
    return _all(store), used


#: Every flow whose events are scanned. Add new capabilities' flows here.
FLOWS: list[Flow] = [
    password_flow,
    session_flow,
    mfa_flow,
    api_key_flow,
    passkey_flow,
    google_flow,
    vault_flow,
    license_flow,
    rbac_flow,
    rate_limit_flow,
]

#: The event types each flow must produce (so a flow that silently records less is caught).
EXPECTED: dict[str, set[SecurityEventType]] = {
    "password_flow": {SecurityEventType.LOGIN_FAILED, SecurityEventType.PASSWORD_CHANGED},
    "session_flow": {
        SecurityEventType.TOKEN_REFRESHED,
        SecurityEventType.TOKEN_REUSE_DETECTED,
        SecurityEventType.LOGOUT,
        SecurityEventType.SESSIONS_REVOKED,
    },
    "mfa_flow": {
        SecurityEventType.MFA_ENABLED,
        SecurityEventType.BACKUP_CODES_REGENERATED,
        SecurityEventType.MFA_FAILED,
        SecurityEventType.MFA_VERIFIED,
        SecurityEventType.BACKUP_CODE_USED,
        SecurityEventType.STEP_UP_VERIFIED,
        SecurityEventType.MFA_DISABLED,
    },
    "api_key_flow": {
        SecurityEventType.API_KEY_CREATED,
        SecurityEventType.LOGIN_SUCCEEDED,
        SecurityEventType.LOGIN_FAILED,
        SecurityEventType.API_KEY_REVOKED,
    },
    "passkey_flow": {
        SecurityEventType.PASSKEY_REGISTERED,
        SecurityEventType.LOGIN_SUCCEEDED,
        SecurityEventType.LOGIN_FAILED,
        SecurityEventType.PASSKEY_CLONE_SUSPECTED,
    },
    "google_flow": {SecurityEventType.LOGIN_SUCCEEDED, SecurityEventType.LOGIN_FAILED},
    "vault_flow": {SecurityEventType.VAULT_ACCESSED, SecurityEventType.VAULT_UPDATED},
    "license_flow": {SecurityEventType.LICENSE_CHECKED},
    "rbac_flow": {
        SecurityEventType.MEMBER_ADDED,
        SecurityEventType.ROLE_CHANGED,
        SecurityEventType.MEMBER_REMOVED,
        SecurityEventType.OWNERSHIP_TRANSFERRED,
    },
    "rate_limit_flow": {SecurityEventType.LOGIN_FAILED, SecurityEventType.RATE_LIMITED},
}


# --- the scan --------------------------------------------------------------------------------

_MIN_PIECE = 16
_WINDOW = 16
_MIN_DECODED = 12
_SPLIT_RE = re.compile(r"[.$\n]")


def _encodings(raw: bytes) -> Iterator[str]:
    yield raw.hex()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        yield text
        yield text.rstrip("=")


def _decodings(text: str) -> Iterator[bytes]:
    """The bytes ``text`` encodes, if it is base64, base64url, base32 or hex of 12+ bytes."""
    compact = text.strip()
    attempts: list[Callable[[], bytes]] = [
        lambda: bytes.fromhex(compact),
        lambda: base64.b32decode(compact + "=" * (-len(compact) % 8)),
        lambda: base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True),
        lambda: base64.b64decode(
            compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4),
            validate=True,
        ),
    ]
    for attempt in attempts:
        try:
            raw = attempt()
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= _MIN_DECODED:
            yield raw


def _units(secret: str) -> list[str]:
    """The secret and its long pieces: JWT segments, PEM lines, bcrypt fields."""
    return [secret] + [
        p for p in _SPLIT_RE.split(secret) if len(p) >= _MIN_PIECE and not p.startswith("-----")
    ]


def needles(secret: Secret) -> set[str]:
    """What the scan looks for, lower-cased: the secret and its long pieces, the secret without
    separators (grouped codes), and the hex, base64 and base64url forms of their bytes and of
    the bytes they encode."""
    texts: set[str] = set()
    raws: list[bytes] = []
    if isinstance(secret, bytes):
        raws.append(secret)
    else:
        texts.add(secret.replace("-", "").replace(" ", ""))
        for unit in _units(secret):
            texts.add(unit)
            raws.append(unit.encode("utf-8"))
            raws.extend(_decodings(unit))
    for raw in raws:
        texts.update(_encodings(raw))
    return {t.lower() for t in texts if t}


def event_texts(event: SecurityEvent) -> list[str]:
    """Every field of the event as text, each detail key and value, its JSON line and repr."""
    texts = [event_to_json(event), repr(event), json.dumps(dict(event.details))]
    for field in attrs.fields(SecurityEvent):
        texts.append(str(getattr(event, field.name)))
    for key, value in event.details.items():
        texts += [key, str(value)]
    return [t.lower() for t in texts]


def _windows(text: str) -> set[str]:
    return {text[i : i + _WINDOW] for i in range(len(text) - _WINDOW + 1)}


def _found(needle: str, text: str) -> bool:
    if needle.isdigit():
        # a short code: only as a whole number, not inside an id or a time
        return re.search(rf"(?<![0-9a-z]){needle}(?![0-9a-z])", text) is not None
    return needle in text


class Scanner:
    """Finds the secrets in text: any run of 16 characters of a secret or of one of its
    encodings (so a truncated copy counts too), or a shorter secret (a code) whole."""

    def __init__(self, used: list[Secret]) -> None:
        self.windows: set[str] = set()
        self.short: set[str] = set()
        for secret in used:
            for needle in needles(secret):
                if len(needle) >= _WINDOW:
                    self.windows |= _windows(needle)
                else:
                    self.short.add(needle)

    def finds(self, text: str) -> bool:
        """Whether ``text`` holds a secret (case-insensitively)."""
        text = text.lower()
        return bool(self.windows & _windows(text)) or any(_found(n, text) for n in self.short)


def leaks(events: list[SecurityEvent], used: list[Secret]) -> list[str]:
    """The kinds of events in which some secret appears (see :class:`Scanner`)."""
    scanner = Scanner(used)
    return [e.type.value for e in events if any(scanner.finds(t) for t in event_texts(e))]


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__)
def test_no_secret_reaches_an_event(flow: Flow) -> None:
    events, used = flow()
    assert events, "a flow must produce events, or it proves nothing"
    assert used
    assert leaks(events, used) == []


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__)
def test_flows_record_the_expected_events(flow: Flow) -> None:
    events, _ = flow()
    assert EXPECTED[flow.__name__] <= {e.type for e in events}
    assert all(e.at.tzinfo is not None for e in events)


def test_every_flow_is_expected() -> None:
    assert {f.__name__ for f in FLOWS} == set(EXPECTED)


def test_flows_record_the_context() -> None:
    events, _ = password_flow()
    assert [e.outcome for e in events].count(Outcome.FAILURE) == 2
    events, _ = mfa_flow()
    failed = {e.details["method"]: e for e in events if e.type is SecurityEventType.MFA_FAILED}
    assert set(failed) == {"totp", "backup_code"}
    for event in failed.values():
        assert event.details["attempts_left"] == MFA_POLICY.challenge_max_failures - 1
        assert event.actor_id == "u1"
        assert event.outcome is Outcome.FAILURE
    used_code = next(e for e in events if e.type is SecurityEventType.BACKUP_CODE_USED)
    assert used_code.details["backup_code_count"] == MFA_POLICY.backup_code_count - 1
    assert all(e.ip == IP and e.organization_id == "org-1" for e in events)
    events, _ = rbac_flow()
    role = next(e for e in events if e.type is SecurityEventType.ROLE_CHANGED)
    assert (role.actor_id, role.subject_id) == ("u-owner", "u-new")
    assert (role.details["previous_role"], role.details["role"]) == ("viewer", "accountant")


# --- the scan itself is proved: a leak is caught ---------------------------------------------


def test_the_scan_catches_a_leak() -> None:
    # user agents are not checked for secrets (an attacker could otherwise suppress events);
    # a server that put a token there would be caught by the scan.
    log, store, _ = _log()
    token = secrets.token_urlsafe(32)
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", user_agent=f"x {token}")
    assert leaks(_all(store), [token]) == ["login.succeeded"]


def _encoded_forms(secret: Secret) -> list[str]:
    """How a careless mapping might write the secret (or a piece of it): as is, in another
    case, as hex, base64 or base64url, of its bytes or of the bytes it encodes."""
    if isinstance(secret, bytes):
        return [secret.hex(), secret.hex().upper(), *_encodings(secret)]
    forms = []
    for unit in _units(secret):
        forms += [unit, unit.lower(), unit.upper()]
        for raw in [unit.encode(), *_decodings(unit)]:
            forms += [raw.hex(), raw.hex().upper(), *_encodings(raw)]
    return forms


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__)
def test_the_scan_catches_every_secret_of_every_flow_in_any_common_encoding(flow: Flow) -> None:
    events, used = flow()
    base = events[0]
    for secret in used:
        for form in _encoded_forms(secret):
            # a user agent keeps 512 characters: a truncated copy must be caught as well
            leaked = attrs.evolve(base, user_agent=f"ua {form[:500]} end")
            assert leaks([leaked], [secret]) == [base.type.value], type(secret)


def leaky_event_from_api_key_use(
    principal: object, *, at: datetime, presented: str
) -> SecurityEvent:
    """A deliberately wrong mapping: it adds a "fingerprint" of the presented key as the key id
    (lower-case base64 in two dotted pieces of 20 passes the details' shape check)."""
    event = audit.event_from_api_key_use(principal, at=at, ip=IP)
    copy = base64.b64encode(presented.encode()).decode().lower()
    return attrs.evolve(event, details={**event.details, "key_id": f"{copy[:20]}.{copy[20:40]}"})


def leaky_vault_access_event(plaintext: bytes, *, at: datetime) -> SecurityEvent:
    """A deliberately wrong mapping: a vault key id that is the plaintext in hex (hex passes
    under an id key: it is how ids look)."""
    event = audit.vault_access_event("read", at=at, actor_id="u1", secret_name="s3_secret")
    return attrs.evolve(event, details={**event.details, "vault_key_id": plaintext.hex()})


def leaky_mfa_failure(error: InvalidMfaCodeError, *, code: str, at: datetime) -> SecurityEvent:
    """A deliberately wrong mapping: it records the code that was tried as the reason."""
    event = audit.event_from_error(SecurityEventType.MFA_FAILED, error, at=at, method="totp")
    return attrs.evolve(event, details={**event.details, "reason": code})


def test_the_scan_catches_leaky_mappings() -> None:
    _, _, clock = _log()
    manager = ApiKeyManager(MemoryApiKeyStore(), clock=clock)
    created = manager.create("u1", "org-1", name="CI", scope="read")
    principal = manager.verify(created.key)
    good = audit.event_from_api_key_use(principal, at=clock.now())
    bad = leaky_event_from_api_key_use(principal, at=clock.now(), presented=created.key)
    assert leaks([good], [created.key]) == []
    assert len(str(bad.details["key_id"])) == 41  # a truncated, lower-cased base64 copy
    assert leaks([bad], [created.key]) == ["login.succeeded"]

    plaintext = secrets.token_bytes(24)
    assert leaks([leaky_vault_access_event(plaintext, at=clock.now())], [plaintext]) == [
        "vault.accessed"
    ]

    code = "042917"
    failure = InvalidMfaCodeError(reason="mismatch", attempts_left=4)
    assert leaks([leaky_mfa_failure(failure, code=code, at=clock.now())], [code]) == ["mfa.failed"]
    # a short code is found as a whole number only, not inside an id or a number
    clean = audit.event_from_error(SecurityEventType.MFA_FAILED, failure, at=clock.now())
    assert leaks([attrs.evolve(clean, details={"attempts_left": 104291700})], [code]) == []


# --- the results the mappings read keep their secrets out of repr -----------------------------


def _secret_holders() -> Iterator[tuple[str, object, list[Secret]]]:
    """Capability results that carry a secret, with the secret: their ``repr`` must not show
    it (a mapping never uses ``repr``, but an application's log line might).

    Known exception, left to the passkeys capability and reported: ``PasskeyOptions``'s repr
    shows ``options_json``, which holds the WebAuthn challenge (and, for registration, the user
    handle and name).
    """
    log, _, clock = _log()
    totp = TotpAuthenticator(
        MFA_POLICY.totp, replay=MemoryTotpReplayStore(), clock=clock, lockout=None
    )
    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    yield "TotpEnrolment", enrolment, [enrolment.secret, enrolment.provisioning_uri]
    backup = BackupCodes(
        MFA_POLICY, store=MemoryBackupCodeStore(), clock=clock, lockout=None
    ).generate("u1")
    yield "BackupCodeSet", backup, list(backup.codes)
    issued = MfaChallenges(MFA_POLICY, store=MemoryMfaChallengeStore(), clock=clock).issue("u1")
    yield "IssuedChallenge", issued, [issued.token]
    factor = totp.verify(_totp_code(enrolment.secret, clock), secret=enrolment.secret, user_id="u1")
    steps = StepUpTokens(MFA_POLICY, store=MemoryStepUpStore(), clock=clock)
    grant = steps.issue(factor, action=MFA_DISABLE)
    yield "StepUpGrant", grant, [grant.token]
    created = ApiKeyManager(MemoryApiKeyStore(), clock=clock).create(
        "u1", "org-1", name="CI", scope="read"
    )
    yield "CreatedApiKey", created, [created.key]
    pair = _session_manager(log, clock).start("u1")
    yield "TokenPair", pair, [pair.access_token, pair.refresh_token]
    key = VaultKey.generate()
    yield "VaultKeyRing", VaultKeyRing(key), [key.to_base64()]
    private = ed25519.Ed25519PrivateKey.generate()
    signing = LicenseSigningKey.from_private_key(private)
    yield "LicenseSigningKey", signing, [_pem(private), *_jwk_private_parts(private)]
    licensed = LicenseIssuer(signing, issuer=LICENSE_VENDOR, clock=clock).issue(
        "org-1", org_name="ACME", plan="b", max_companies=1, max_users=1, valid_for=timedelta(1)
    )
    yield "IssuedLicense", licensed, [licensed.token]
    signer = SigningKey.from_private_key(_rsa_key())
    yield "SigningKey", signer, [_pem(_rsa_key()), *_jwk_private_parts(_rsa_key())]


def test_results_keep_their_secrets_out_of_repr() -> None:
    seen = []
    for name, holder, used in _secret_holders():
        seen.append(name)
        assert not Scanner(used).finds(repr(holder)), name
    assert len(seen) == 10
