"""Multi-factor authentication: TOTP with a replay guard, backup codes, MFA login challenges,
step-up verification (MFA-1..MFA-4, MFA-6; MFA-5's passkey answers plug into challenges) and a
per-user limit on wrong codes (NIST SP 800-63B section 5.2.2).

Typical wiring::

    policy = MfaPolicy()
    clock = SystemClock()
    lockout = MfaLockout(policy, store=MemoryMfaFailureStore(), clock=clock)
    totp = TotpAuthenticator(
        policy.totp, replay=MemoryTotpReplayStore(), clock=clock, lockout=lockout
    )
    codes = BackupCodes(policy, store=MemoryBackupCodeStore(), clock=clock, lockout=lockout)
    factors = SecondFactorVerifier(totp=totp, backup_codes=codes)
    challenges = MfaChallenges(policy, store=MemoryMfaChallengeStore(), clock=clock)
    step_up = StepUpTokens(policy, store=MemoryStepUpStore(), clock=clock)

See ``docs/mfa.md``.
"""

from storno_security.mfa.backup_codes import BACKUP_CODE_ALPHABET, BackupCodes, BackupCodeSet
from storno_security.mfa.challenges import (
    IssuedChallenge,
    MfaChallenges,
    PendingChallenge,
    VerifiedChallenge,
)
from storno_security.mfa.factors import DEFAULT_METHODS, MFA_METHODS, MfaMethod, VerifiedFactor
from storno_security.mfa.lockout import MfaLockout
from storno_security.mfa.policy import TOTP_ALGORITHMS, MfaPolicy, TotpPolicy
from storno_security.mfa.step_up import (
    ACCOUNT_DELETE,
    API_KEY_CREATE,
    BACKUP_CODES_REGENERATE,
    GOOGLE_LINK,
    MFA_DISABLE,
    PASSKEY_REGISTER,
    VAULT_READ,
    StepUpGrant,
    StepUpTokens,
    VerifiedStepUp,
    disable_mfa,
)
from storno_security.mfa.storage import (
    BackupCodeStore,
    FailureCount,
    MfaChallengeStore,
    MfaFailureStore,
    StepUpStore,
    StoredBackupCode,
    StoredChallenge,
    StoredStepUp,
    TotpReplayStore,
)
from storno_security.mfa.totp import TotpAuthenticator, TotpEnrolment
from storno_security.mfa.verifier import SecondFactorVerifier

__all__ = [
    "ACCOUNT_DELETE",
    "API_KEY_CREATE",
    "BACKUP_CODES_REGENERATE",
    "BACKUP_CODE_ALPHABET",
    "DEFAULT_METHODS",
    "GOOGLE_LINK",
    "MFA_DISABLE",
    "MFA_METHODS",
    "PASSKEY_REGISTER",
    "TOTP_ALGORITHMS",
    "VAULT_READ",
    "BackupCodeSet",
    "BackupCodeStore",
    "BackupCodes",
    "FailureCount",
    "IssuedChallenge",
    "MfaChallengeStore",
    "MfaChallenges",
    "MfaFailureStore",
    "MfaLockout",
    "MfaMethod",
    "MfaPolicy",
    "PendingChallenge",
    "SecondFactorVerifier",
    "StepUpGrant",
    "StepUpStore",
    "StepUpTokens",
    "StoredBackupCode",
    "StoredChallenge",
    "StoredStepUp",
    "TotpAuthenticator",
    "TotpEnrolment",
    "TotpPolicy",
    "TotpReplayStore",
    "VerifiedChallenge",
    "VerifiedFactor",
    "VerifiedStepUp",
    "disable_mfa",
]
