"""Wiring: every library object the server uses, built once from :class:`Settings`.

Durable state (refresh families, API keys, backup codes, passkeys, audit, license last-seen)
lives in SQL. Short-lived shared state (session epochs and markers, MFA challenges and
step-up tokens, TOTP replay guards, MFA failure counts, passkey challenges, rate limits) goes
to Redis when ``STORNO_REDIS_URL`` is set, else to SQL (and rate limits to memory), so every
"exactly once" holds across workers in both set-ups.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import attrs

from reference_server.db import Database
from reference_server.keys import KeyMaterial, load_key_material, write_secret_file
from reference_server.settings import Settings
from storno_security.accounts import PasswordResetTokens
from storno_security.api_keys import ApiKeyManager
from storno_security.audit import AuditLog, AuditPolicy
from storno_security.clock import Clock, SystemClock
from storno_security.license import LicenseKey, LicensePolicy, LicenseVerifier
from storno_security.mfa import (
    BackupCodes,
    MfaChallenges,
    MfaLockout,
    MfaPolicy,
    SecondFactorVerifier,
    StepUpTokens,
    TotpAuthenticator,
)
from storno_security.oidc import (
    CachingJwksFetcher,
    GoogleIdTokenPolicy,
    GoogleIdTokenVerifier,
    JwksFetcher,
)
from storno_security.passkeys import PasskeyManager, PasskeyPolicy, PasskeyRelyingParty
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.ratelimit import RateLimiter, spec_policies, storage_from_uri
from storno_security.stores import sql
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    SessionManager,
    TokenPolicy,
    VerifiedTokenCache,
)
from storno_security.xmlsig import SchemaRegistry, XmlSigner, XmlVerifier

__all__ = [
    "DirectoryEmailSink",
    "EmailSink",
    "LogEmailSink",
    "MemoryEmailSink",
    "Services",
    "build_services",
    "run_now",
]

log = logging.getLogger("reference_server")


class EmailSink(Protocol):
    """Where the server sends mail (reset links). Implementations must not log the body."""

    def send(self, *, to: str, subject: str, body: str) -> None: ...


class LogEmailSink:
    """Logs that a mail was sent, to whom and about what; never the body (it holds the token)."""

    def send(self, *, to: str, subject: str, body: str) -> None:
        log.info("email sink: %r to a %d-character address (body withheld)", subject, len(to))


@attrs.define
class MemoryEmailSink:
    """Keeps sent mail in memory: for tests and local development."""

    sent: list[dict[str, str]] = attrs.field(factory=list)

    def send(self, *, to: str, subject: str, body: str) -> None:
        self.sent.append({"to": to, "subject": subject, "body": body})


class DirectoryEmailSink:
    """Writes each mail as a JSON file (0600) in a directory: a local mail catcher for
    development and tests. The files hold reset links: never use it in production."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(self, *, to: str, subject: str, body: str) -> None:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        write_secret_file(
            self._directory / name,
            json.dumps({"to": to, "subject": subject, "body": body}).encode(),
        )

    def read_all(self) -> list[dict[str, str]]:
        if not self._directory.exists():
            return []
        return [json.loads(path.read_text()) for path in sorted(self._directory.glob("*.json"))]


@attrs.define
class Services:
    """Everything a resource needs; one instance per process."""

    settings: Settings
    clock: Clock
    db: Database
    keys: KeyMaterial
    hasher: PasswordHasher
    token_policy: TokenPolicy
    access_tokens: AccessTokenIssuer
    verifier: AccessTokenVerifier
    sessions: SessionManager
    mfa_policy: MfaPolicy
    totp: TotpAuthenticator
    backup_codes: BackupCodes
    challenges: MfaChallenges
    step_up: StepUpTokens
    second_factor: SecondFactorVerifier
    lockout: MfaLockout
    api_keys: ApiKeyManager
    passkeys: PasskeyManager
    google: GoogleIdTokenVerifier | None
    license_verifier: LicenseVerifier | None
    xml_signer: XmlSigner
    xml_verifier: XmlVerifier
    schemas: SchemaRegistry
    limiter: RateLimiter
    audit: AuditLog
    email: EmailSink
    reset_tokens: PasswordResetTokens
    run_later: Callable[[Callable[[], None]], None]
    redis: Any = None

    def close(self) -> None:
        self.db.dispose()
        if self.redis is not None:
            self.redis.close()


def _background_runner() -> Callable[[Callable[[], None]], None]:
    """Runs work after the answer is sent (one thread): so its time does not show in the answer."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storno-background")

    def run(task: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                task()
            except Exception:  # a background failure is logged, never lost silently
                log.exception("background task failed")

        executor.submit(guarded)

    return run


def run_now(task: Callable[[], None]) -> None:
    """Runs work at once, in the request (tests: the mail is there when the answer is)."""
    task()


def _email_sink(settings: Settings) -> EmailSink:
    if settings.email_sink == "memory":
        return MemoryEmailSink()
    if settings.email_sink == "directory":
        log.warning("STORNO_EMAIL_SINK=directory writes mail (with reset links) to disk")
        return DirectoryEmailSink(settings.data_dir / "mail")
    return LogEmailSink()


def _google_jwks_loader(url: str) -> Callable[[], Mapping[str, Any]]:
    def load() -> Mapping[str, Any]:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - fixed https URL
            data: Mapping[str, Any] = json.loads(response.read(1_000_000))
            return data

    return load


GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    email: EmailSink | None = None,
    google_fetcher: JwksFetcher | None = None,
    create_keys: bool = True,
    run_later: Callable[[Callable[[], None]], None] | None = None,
) -> Services:
    """Build every store and capability from ``settings``; create the schema.

    Raises:
        reference_server.keys.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
    """
    clock = clock or SystemClock()
    keys = load_key_material(
        settings.data_dir,
        jwt_key_file=settings.jwt_key_file,
        vault_key_file=settings.vault_key_file,
        xml_key_file=settings.xml_key_file,
        xml_cert_file=settings.xml_cert_file,
        create=create_keys,
        now=clock.now(),
    )
    db = Database(settings.effective_database_url)
    db.create_schema()
    engine = db.engine

    redis_client: Any = None
    if settings.redis_url:
        import redis

        from storno_security.stores import redis as redis_stores

        redis_client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0
        )
        redis_stores.require_noeviction(redis_client)
        prefix = settings.redis_prefix
        session_state: Any = redis_stores.RedisSessionStateStore(redis_client, prefix=prefix)
        replay: Any = redis_stores.RedisTotpReplayStore(redis_client, prefix=prefix)
        challenge_store: Any = redis_stores.RedisMfaChallengeStore(redis_client, prefix=prefix)
        step_up_store: Any = redis_stores.RedisStepUpStore(redis_client, prefix=prefix)
        failures: Any = redis_stores.RedisMfaFailureStore(redis_client, prefix=prefix)
        passkey_challenges: Any = redis_stores.RedisPasskeyChallengeStore(
            redis_client, prefix=prefix
        )
    else:
        session_state = sql.SqlSessionStateStore(engine)
        replay = sql.SqlTotpReplayStore(engine)
        challenge_store = sql.SqlMfaChallengeStore(engine)
        step_up_store = sql.SqlStepUpStore(engine)
        failures = sql.SqlMfaFailureStore(engine)
        passkey_challenges = sql.SqlPasskeyChallengeStore(engine)

    audit = AuditLog(
        sql.SqlAuditStore(engine),
        clock=clock,
        policy=AuditPolicy(retention=timedelta(days=settings.audit_retention_days)),
        pseudonym_key=keys.pseudonym,
    )

    cost = settings.password_cost
    if cost < 10:
        log.warning("STORNO_PASSWORD_COST=%d is below 10: for tests only", cost)
    hasher = PasswordHasher(PasswordPolicy(cost=cost, insecure_low_cost=cost < 10))

    token_policy = TokenPolicy(
        issuer=settings.effective_token_issuer, audience=settings.token_audience
    )
    access_tokens = AccessTokenIssuer(keys.jwt, token_policy, clock=clock)
    verifier = AccessTokenVerifier(
        keys.jwt, token_policy, clock=clock, sessions=session_state, cache=VerifiedTokenCache()
    )
    sessions = SessionManager(
        issuer=access_tokens,
        policy=token_policy,
        families=sql.SqlRefreshFamilyStore(engine),
        sessions=session_state,
        clock=clock,
        on_event=audit.session_listener(),
    )

    mfa_policy = MfaPolicy()
    lockout = MfaLockout(mfa_policy, store=failures, clock=clock)
    totp = TotpAuthenticator(mfa_policy.totp, replay=replay, clock=clock, lockout=lockout)
    backup_codes = BackupCodes(
        mfa_policy, store=sql.SqlBackupCodeStore(engine), clock=clock, lockout=lockout
    )

    relying_party = PasskeyRelyingParty(
        PasskeyPolicy(
            rp_id=settings.rp_id, rp_name="storno-security", allowed_origins=(settings.origin,)
        ),
        challenges=passkey_challenges,
        clock=clock,
    )

    google = None
    if settings.google_client_id:
        fetcher = google_fetcher or CachingJwksFetcher(
            _google_jwks_loader(GOOGLE_JWKS_URL), clock=clock
        )
        google = GoogleIdTokenVerifier(
            GoogleIdTokenPolicy(client_ids=(settings.google_client_id,)),
            fetcher=fetcher,
            clock=clock,
        )

    license_verifier = None
    if settings.license_public_key_file is not None:
        license_key = LicenseKey.from_pem(settings.license_public_key_file.read_bytes())
        license_verifier = LicenseVerifier(
            [license_key],
            LicensePolicy(issuer=settings.license_issuer),
            clock=clock,
            last_seen=sql.SqlLastSeenStore(engine),
            instance_id=settings.instance_id,
        )

    limiter = RateLimiter(
        storage_from_uri(settings.effective_ratelimit_uri, prefix=settings.redis_prefix),
        clock=clock,
        policies=spec_policies(api_fail_open=settings.api_fail_open),
    )

    return Services(
        settings=settings,
        clock=clock,
        db=db,
        keys=keys,
        hasher=hasher,
        token_policy=token_policy,
        access_tokens=access_tokens,
        verifier=verifier,
        sessions=sessions,
        mfa_policy=mfa_policy,
        totp=totp,
        backup_codes=backup_codes,
        challenges=MfaChallenges(mfa_policy, store=challenge_store, clock=clock),
        step_up=StepUpTokens(mfa_policy, store=step_up_store, clock=clock),
        second_factor=SecondFactorVerifier(totp=totp, backup_codes=backup_codes),
        lockout=lockout,
        api_keys=ApiKeyManager(
            sql.SqlApiKeyStore(engine), clock=clock, on_event=audit.api_key_listener()
        ),
        passkeys=PasskeyManager(
            relying_party, credentials=sql.SqlPasskeyCredentialStore(engine), clock=clock
        ),
        google=google,
        license_verifier=license_verifier,
        xml_signer=XmlSigner(keys.xml.private_key, keys.xml.certificate, clock=clock),
        xml_verifier=XmlVerifier(expected_certificate=keys.xml.certificate, clock=clock),
        schemas=SchemaRegistry(),
        limiter=limiter,
        audit=audit,
        email=email or _email_sink(settings),
        reset_tokens=PasswordResetTokens(sql.SqlResetTokenStore(engine), clock=clock),
        run_later=run_later or _background_runner(),
        redis=redis_client,
    )
