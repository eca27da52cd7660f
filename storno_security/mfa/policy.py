"""The MFA policies: frozen, validated, defaults from the spec (MFA-1, MFA-3, MFA-4, MFA-6) and,
for the per-user limit on wrong codes, from NIST SP 800-63B section 5.2.2."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import attrs

from storno_security._bcrypt_policy import PasswordPolicy
from storno_security._validators import between, int_between

__all__ = ["TOTP_ALGORITHMS", "MfaPolicy", "TotpPolicy"]

#: The HMAC algorithms a TOTP policy may name (RFC 6238 section 1.2). SHA-1 is the default and
#: what authenticator apps support; the others exist for the RFC's test vectors and for apps
#: that support them.
TOTP_ALGORITHMS = frozenset({"SHA1", "SHA256", "SHA512"})

TotpAlgorithm = Literal["SHA1", "SHA256", "SHA512"]


def _check_algorithm(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in TOTP_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(TOTP_ALGORITHMS)}")


@attrs.frozen(kw_only=True)
class TotpPolicy:
    """How TOTP codes are made and checked (RFC 6238).

    Attributes:
        algorithm: the HMAC hash: ``"SHA1"`` (default, MFA-1), ``"SHA256"`` or ``"SHA512"``.
        digits: code length, 6 (default) to 10.
        period: the time step in seconds, default 30.
        window: how many steps before and after the current one are accepted; default 1
            (MFA-1), at most 2.
        secret_bytes: length of new secrets; default 20 (160 bits, RFC 4226's recommendation);
            at least 16 (128 bits).
    """

    algorithm: TotpAlgorithm = attrs.field(default="SHA1", validator=_check_algorithm)
    digits: int = attrs.field(default=6, validator=int_between(6, 10))
    period: int = attrs.field(default=30, validator=int_between(15, 300))
    window: int = attrs.field(default=1, validator=int_between(0, 2))
    secret_bytes: int = attrs.field(default=20, validator=int_between(16, 64))


@attrs.frozen(kw_only=True)
class MfaPolicy:
    """Everything MFA: TOTP, backup codes, login challenges and step-up tokens.

    Attributes:
        totp: the TOTP policy.
        backup_code_count: codes per set; default 10 (MFA-3).
        backup_code_hashing: the bcrypt policy of backup-code hashes. Default cost 10: a backup
            code carries 54 bits from a random source, so the cost only has to make an offline
            search of a stolen table hopeless, not to protect a guessable password (see
            ``docs/mfa.md``).
        challenge_lifetime: how long an MFA login challenge lives; default 5 minutes (MFA-4).
        challenge_max_failures: wrong codes a challenge takes before it dies; default 5 (MFA-4).
        max_failures_per_user: second-factor codes a user may get wrong within one
            ``failure_window`` before every code of theirs, even a right one, is refused until
            the window ends (:class:`~storno_security.mfa.MfaLockout`); default 10, at most 100
            (NIST SP 800-63B section 5.2.2). A right code clears the count. Whatever the number
            of challenges or client addresses, a 6-digit TOTP code then takes about 33,000
            hours of guessing on average (see ``docs/mfa.md``).
        failure_window: how long a user's count of wrong codes runs from its first failure;
            default 1 hour (1 minute to 24 hours).
        step_up_lifetime: how long a step-up verification token lives; default 120 s (MFA-6).
        step_up_max_factor_age: how recently the second factor behind a step-up token must have
            been verified; default 60 s.
    """

    totp: TotpPolicy = attrs.field(
        factory=TotpPolicy, validator=attrs.validators.instance_of(TotpPolicy)
    )
    backup_code_count: int = attrs.field(default=10, validator=int_between(5, 20))
    backup_code_hashing: PasswordPolicy = attrs.field(
        factory=lambda: PasswordPolicy(cost=10),
        validator=attrs.validators.instance_of(PasswordPolicy),
    )
    challenge_lifetime: timedelta = attrs.field(
        default=timedelta(minutes=5), validator=between(timedelta(seconds=30), timedelta(hours=1))
    )
    challenge_max_failures: int = attrs.field(default=5, validator=int_between(1, 20))
    max_failures_per_user: int = attrs.field(default=10, validator=int_between(1, 100))
    failure_window: timedelta = attrs.field(
        default=timedelta(hours=1), validator=between(timedelta(minutes=1), timedelta(hours=24))
    )
    step_up_lifetime: timedelta = attrs.field(
        default=timedelta(seconds=120),
        validator=between(timedelta(seconds=10), timedelta(minutes=15)),
    )
    step_up_max_factor_age: timedelta = attrs.field(
        default=timedelta(seconds=60), validator=between(timedelta(0), timedelta(minutes=15))
    )

    @backup_code_hashing.validator
    def _check_hashing(
        self, attribute: attrs.Attribute[PasswordPolicy], value: PasswordPolicy
    ) -> None:
        if value.min_length > 12:
            raise ValueError("backup_code_hashing.min_length must be at most 12 (a code's length)")

    @classmethod
    def insecure_for_tests(cls) -> MfaPolicy:
        """The spec's policy with backup codes hashed at bcrypt cost 4, so test suites run
        fast. Never use it in production."""
        return cls(backup_code_hashing=PasswordPolicy.insecure_for_tests())
