"""Every SQL store on one engine in one bundle, with Redis for the short-lived shared state
and the rate limits when a Redis URL is given."""

from __future__ import annotations

from typing import Any

from storno_security.kit.storage import StoreBundle
from storno_security.stores import sql as s
from storno_security.stores._ratelimit_uri import storage_from_uri

__all__ = ["sql_bundle"]


def sql_bundle(
    engine: Any,
    *,
    redis_url: str | None = None,
    redis_prefix: str = "storno:",
    rate_limits: str | None = None,
    redis_timeout: float = 1.0,
) -> StoreBundle:
    """A :class:`~storno_security.kit.StoreBundle` on ``engine`` (schema created by
    :func:`~storno_security.stores.sql.create_schema`).

    Durable state is always in SQL: users and organizations, refresh families, API keys,
    passkeys, backup codes, audit, and the session epochs and revocation markers, so
    revocation survives any restart (REF-6). With ``redis_url``, the short-lived records that
    every worker must share at high rate (MFA challenges and failures, TOTP replay guards,
    step-up tokens, passkey challenges) and the rate limits go to Redis; the Redis must never
    evict them (``maxmemory-policy noeviction``, checked by the application at start-up).

    Args:
        engine: from :func:`~storno_security.stores.sql.create_engine`.
        redis_url: a Redis URL, or ``None`` for SQL only.
        redis_prefix: the prefix of every Redis key.
        rate_limits: the rate-limit storage URI (default: the Redis URL when given, else
            ``memory://``).
        redis_timeout: seconds to wait for Redis to connect or answer (the stores' client
            and the rate limits').

    Raises:
        ValueError: a malformed URL.
    """
    closers: list[Any] = [engine.dispose]
    dependencies: list[tuple[str, Any]] = []
    shared: dict[str, Any] = {
        "totp_replay": s.SqlTotpReplayStore(engine),
        "mfa_challenges": s.SqlMfaChallengeStore(engine),
        "step_up": s.SqlStepUpStore(engine),
        "mfa_failures": s.SqlMfaFailureStore(engine),
        "passkey_challenges": s.SqlPasskeyChallengeStore(engine),
    }
    if redis_url is not None:
        import redis

        from storno_security.stores import redis as r

        client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=redis_timeout, socket_timeout=redis_timeout
        )
        closers.append(client.close)
        dependencies.append(("redis", _redis_probe(client)))
        shared = {
            "totp_replay": r.RedisTotpReplayStore(client, prefix=redis_prefix),
            "mfa_challenges": r.RedisMfaChallengeStore(client, prefix=redis_prefix),
            "step_up": r.RedisStepUpStore(client, prefix=redis_prefix),
            "mfa_failures": r.RedisMfaFailureStore(client, prefix=redis_prefix),
            "passkey_challenges": r.RedisPasskeyChallengeStore(client, prefix=redis_prefix),
        }
    uri = rate_limits or (redis_url if redis_url is not None else "memory://")
    return StoreBundle(
        directory=s.SqlDirectoryStore(engine),
        refresh_families=s.SqlRefreshFamilyStore(engine),
        session_state=s.SqlSessionStateStore(engine),
        backup_codes=s.SqlBackupCodeStore(engine),
        api_keys=s.SqlApiKeyStore(engine),
        passkey_credentials=s.SqlPasskeyCredentialStore(engine),
        reset_tokens=s.SqlResetTokenStore(engine),
        email_confirmations=s.SqlEmailConfirmationStore(engine),
        audit=s.SqlAuditStore(engine),
        license_last_seen=s.SqlLastSeenStore(engine),
        rate_limits=storage_from_uri(
            uri, prefix=redis_prefix, connect_timeout=redis_timeout, timeout=redis_timeout
        ),
        account_overview=s.SqlAccountOverviewStore(engine),
        closers=tuple(closers),
        dependencies=tuple(dependencies),
        **shared,
    )


def _redis_probe(client: Any) -> Any:
    def probe() -> bool:
        try:
            return bool(client.ping())
        except Exception:  # any failure means "not ready"; the reason is not the probe's
            return False

    return probe
