"""Every memory store in one bundle (per process: tests and single-process applications)."""

from __future__ import annotations

from storno_security.kit.storage import StoreBundle
from storno_security.stores import memory as m

__all__ = ["memory_bundle"]


def memory_bundle() -> StoreBundle:
    """A :class:`~storno_security.kit.StoreBundle` of fresh memory stores."""
    return StoreBundle(
        directory=m.MemoryDirectoryStore(),
        refresh_families=m.MemoryRefreshFamilyStore(),
        session_state=m.MemorySessionStateStore(),
        totp_replay=m.MemoryTotpReplayStore(),
        backup_codes=m.MemoryBackupCodeStore(),
        mfa_challenges=m.MemoryMfaChallengeStore(),
        step_up=m.MemoryStepUpStore(),
        mfa_failures=m.MemoryMfaFailureStore(),
        api_keys=m.MemoryApiKeyStore(),
        passkey_challenges=m.MemoryPasskeyChallengeStore(),
        passkey_credentials=m.MemoryPasskeyCredentialStore(),
        reset_tokens=m.MemoryResetTokenStore(),
        email_confirmations=m.MemoryEmailConfirmationStore(),
        audit=m.MemoryAuditStore(),
        license_last_seen=m.MemoryLastSeenStore(),
        rate_limits=m.MemoryRateLimitStorage(),
    )
