"""Two-factor login: TOTP enrolment, an MFA challenge after the password, backup codes, step-up.

A frozen clock stands in for the wall clock so that the example can move to the next 30-second
TOTP step instead of waiting for it. pyotp plays the user's authenticator app.

Run: python examples/mfa_flow.py
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyotp

from storno_security import (
    FrozenClock,
    InvalidMfaCodeError,
    InvalidStepUpTokenError,
    PasswordHasher,
    PasswordPolicy,
)
from storno_security.mfa import (
    MFA_DISABLE,
    BackupCodes,
    MfaChallenges,
    MfaLockout,
    MfaPolicy,
    PendingChallenge,
    SecondFactorVerifier,
    StepUpTokens,
    TotpAuthenticator,
    VerifiedFactor,
    disable_mfa,
)
from storno_security.stores.memory import (
    MemoryBackupCodeStore,
    MemoryMfaChallengeStore,
    MemoryMfaFailureStore,
    MemoryStepUpStore,
    MemoryTotpReplayStore,
)


def main() -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC))
    # Backup codes and passwords are bcrypt-hashed. The insecure_for_tests presets use cost 4 so
    # that this example runs in well under a second; production keeps MfaPolicy() (cost 10 for
    # backup codes) and PasswordPolicy() (cost 12).
    policy = MfaPolicy.insecure_for_tests()
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    # One lockout shared by both code factors: 10 wrong codes per user per hour, then every
    # code is refused (MfaLockedError) until the window passes, however many challenges.
    lockout = MfaLockout(policy, store=MemoryMfaFailureStore(), clock=clock)
    totp = TotpAuthenticator(
        policy.totp, replay=MemoryTotpReplayStore(), clock=clock, lockout=lockout
    )
    backup_codes = BackupCodes(policy, store=MemoryBackupCodeStore(), clock=clock, lockout=lockout)
    factors = SecondFactorVerifier(totp=totp, backup_codes=backup_codes)
    challenges = MfaChallenges(policy, store=MemoryMfaChallengeStore(), clock=clock)
    step_up = StepUpTokens(policy, store=MemoryStepUpStore(), clock=clock)

    user_id = "user-1"
    password_hash = hasher.hash("a long and memorable passphrase")

    def authenticator_app(secret: str) -> str:
        """What the phone shows right now (same RFC 6238 maths as Google Authenticator)."""
        return pyotp.TOTP(secret).at(clock.now())

    # 1. Enrolment. Show the URI as a QR code (and the secret as text) once; nothing is stored
    #    until the user proves the app works by typing its first code.
    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    print("scan this:", enrolment.provisioning_uri)
    totp.confirm_enrolment(
        authenticator_app(enrolment.secret), secret=enrolment.secret, user_id=user_id
    )
    totp_secret = enrolment.secret  # the app keeps it with the user, encrypted (see vault.py)
    recovery = backup_codes.generate(user_id)  # show these once, e.g. "print and keep safe"
    print("TOTP enabled; backup codes issued:", len(recovery.codes))

    # 2. Login. The password is right and MFA is on: answer with a challenge, not with tokens.
    clock.advance(30)  # the next TOTP step: the enrolment code has been used up
    hasher.verify("a long and memorable passphrase", password_hash)
    issued = challenges.issue(user_id)
    body = issued.response()
    print("login response:", {**body, "mfa_token": "<43 characters>"})

    # 3. POST /api/auth/mfa/verify {"mfa_token", "method", "code"}: the user types the code.
    code = authenticator_app(totp_secret)

    def check(method: str, answer: str) -> Callable[[PendingChallenge], VerifiedFactor]:
        # complete() hands us the pending challenge: only now do we know whose secret to load.
        return lambda pending: factors.verify(
            pending.user_id, method=method, code=answer, totp_secret=totp_secret
        )

    result = challenges.complete(body["mfa_token"], check("totp", code))
    print("MFA passed for", result.user_id, "with", result.method, "-> start the session")

    # 4. Someone who saw that code over the user's shoulder tries it within the same 30 s.
    second = challenges.issue(user_id)
    try:
        challenges.complete(second.token, check("totp", code))
    except InvalidMfaCodeError as exc:
        print("same TOTP code again:", exc.reason, "- attempts left:", exc.attempts_left)

    # 5. The phone is lost: a backup code answers the same challenge, and is then used up.
    result = challenges.complete(second.token, check("backup_code", recovery.codes[0]))
    print("backup code accepted; codes left:", result.factor.backup_codes_left)

    # 6. Step-up: turning MFA off needs a fresh second factor, bought as a one-action token.
    clock.advance(30)
    factor = factors.verify(
        user_id, method="totp", code=authenticator_app(totp_secret), totp_secret=totp_secret
    )
    grant = step_up.issue(factor, action=MFA_DISABLE)  # send grant.token to the client
    print(f"step-up token for {grant.action!r}, valid until {grant.expires_at:%H:%M:%S} UTC")
    disable_mfa(user_id, step_up_token=grant.token, step_up=step_up, backup_codes=backup_codes)
    print("MFA disabled with a step-up token; backup codes left:", backup_codes.remaining(user_id))
    # ...then delete the TOTP secret and SessionManager.revoke_all(user_id, reason="mfa_disabled").
    try:
        disable_mfa(user_id, step_up_token=grant.token, step_up=step_up, backup_codes=backup_codes)
    except InvalidStepUpTokenError as exc:
        print("step-up token used twice:", exc.reason)


if __name__ == "__main__":
    main()
