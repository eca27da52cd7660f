"""TOTP (RFC 6238) enrolment and verification with a replay guard (MFA-1, MFA-2).

The HOTP arithmetic (RFC 4226) is ``cryptography``'s (pyotp's for 9 and 10 digits, which
``cryptography`` does not make), over the key decoded once per verification; pyotp makes the
provisioning URI. This module adds what those leave to their caller: secrets of the policy's
length from :mod:`secrets`, a strict code format, constant-time comparison of every candidate in
the window (no early exit), the replay guard, and the per-user limit on wrong codes
(:class:`~storno_security.mfa.MfaLockout`). A code is accepted only if its time step is later
than every step accepted before for that user, recorded by one atomic compare-and-set in a
:class:`~storno_security.mfa.storage.TotpReplayStore`; so a step is never accepted twice
(MFA-2), and neither is an earlier step after a later one (RFC 6238 section 5.2).

The secret is the application's to store (encrypted, e.g. with the vault) and to pass in on every
verification, like a password hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

from storno_security._compare import constant_time_equal
from storno_security.clock import Clock
from storno_security.errors import InvalidMfaCodeError
from storno_security.mfa.factors import VerifiedFactor
from storno_security.mfa.lockout import MfaLockout
from storno_security.mfa.policy import TotpPolicy
from storno_security.mfa.storage import TotpReplayStore

__all__ = ["TotpAuthenticator", "TotpEnrolment"]

_DIGESTS: Final[dict[str, Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}
_HOTP_HASHES: Final[dict[str, Callable[[], hashes.SHA1 | hashes.SHA256 | hashes.SHA512]]] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA512": hashes.SHA512,
}
_HOTP_MAX_DIGITS: Final = 8  # cryptography's HOTP makes 6 to 8 digits
_BASE32_RE: Final = re.compile(r"[A-Z2-7]+=*")
_MIN_SECRET_BYTES: Final = 16
_SEPARATORS: Final = str.maketrans("", "", " -")
_MAX_LABEL: Final = 255


@attrs.frozen(kw_only=True)
class TotpEnrolment:
    """A new TOTP secret, to show once (as text and as a QR code of the URI) and then store.

    Attributes:
        secret: base32 (RFC 4648, no padding) of the secret: what the application stores and
            passes to :meth:`TotpAuthenticator.confirm_enrolment` and
            :meth:`TotpAuthenticator.verify`.
        provisioning_uri: ``otpauth://totp/...`` for authenticator apps.
        account_name: the label shown in the app (e.g. the user's email).
        issuer: the service name shown in the app.
    """

    secret: str = attrs.field(repr=False)
    provisioning_uri: str = attrs.field(repr=False)
    account_name: str
    issuer: str


class TotpAuthenticator:
    """Enrols and verifies TOTP authenticators under one :class:`TotpPolicy`.

    Args:
        policy: the TOTP policy; defaults to ``TotpPolicy()`` (SHA-1, 6 digits, 30 s, ±1 step).
        replay: where the last accepted step of each user is kept (MFA-2).
        clock: the time source.
        lockout: the per-user limit on wrong codes, shared with :class:`BackupCodes`.
            Required: pass ``None`` only to opt out on purpose (then nothing limits how many
            codes of one user are tried but each challenge's own 5 and the rate limits).

    Raises:
        TypeError: ``policy`` or ``lockout`` has the wrong type.

    Thread-safe.
    """

    def __init__(
        self,
        policy: TotpPolicy | None = None,
        *,
        replay: TotpReplayStore,
        clock: Clock,
        lockout: MfaLockout | None,
    ) -> None:
        if policy is not None and not isinstance(policy, TotpPolicy):
            raise TypeError("policy must be a TotpPolicy")
        if lockout is not None and not isinstance(lockout, MfaLockout):
            raise TypeError("lockout must be an MfaLockout")
        self.policy = policy if policy is not None else TotpPolicy()
        self._replay = replay
        self._clock = clock
        self._lockout = lockout
        self._digest = _DIGESTS[self.policy.algorithm]

    def __repr__(self) -> str:
        return f"TotpAuthenticator({self.policy!r})"

    # --- enrolment ---------------------------------------------------------------------------

    def begin_enrolment(self, *, account_name: str, issuer: str) -> TotpEnrolment:
        """Make a new secret of ``policy.secret_bytes`` random bytes (160 bits by default).

        Nothing is stored: show the secret and URI once, keep the secret with the pending
        enrolment, and call :meth:`confirm_enrolment` with the first code the user's app shows.

        Raises:
            TypeError: an argument is not a str.
            ValueError: an argument is empty, longer than 255 characters, or has control
                characters.
        """
        account_name = _check_label("account_name", account_name)
        issuer = _check_label("issuer", issuer)
        secret = base64.b32encode(secrets.token_bytes(self.policy.secret_bytes))
        text = secret.decode("ascii").rstrip("=")
        return TotpEnrolment(
            secret=text,
            provisioning_uri=self.provisioning_uri(text, account_name=account_name, issuer=issuer),
            account_name=account_name,
            issuer=issuer,
        )

    def provisioning_uri(self, secret: str, *, account_name: str, issuer: str) -> str:
        """The ``otpauth://totp/Issuer:account?secret=...&issuer=...`` URI of ``secret``.

        Raises:
            TypeError: an argument is not a str.
            ValueError: ``secret`` is not base32 of at least 128 bits, or a label is empty,
                too long or has control characters.
        """
        account_name = _check_label("account_name", account_name)
        issuer = _check_label("issuer", issuer)
        self._decode(secret)
        otp = pyotp.TOTP(
            secret.rstrip("="),
            digits=self.policy.digits,
            digest=self._digest,
            interval=self.policy.period,
        )
        uri: str = otp.provisioning_uri(name=account_name, issuer_name=issuer)
        return uri

    def confirm_enrolment(self, code: str, *, secret: str, user_id: str) -> VerifiedFactor:
        """Check the first code of a new authenticator (MFA-1: enabling needs one valid code).

        The accepted step is recorded, so the same code cannot then log in (MFA-2). On success
        the caller stores ``secret`` as the user's, turns MFA on and hands out backup codes.

        The code is checked against a secret just made, not against the user's factor, so the
        per-user limit on wrong codes neither counts it, nor refuses it, nor is cleared by it.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``secret`` is not base32 of at least 128 bits, or ``user_id`` is empty.
            InvalidMfaCodeError: the code is malformed, wrong, outside the window, or replayed.
            StoreError: the replay store failed; the code was not accepted.
        """
        return self._verify(code, secret=secret, user_id=user_id, lockout=None)

    # --- verification ------------------------------------------------------------------------

    def verify(self, code: str, *, secret: str | None, user_id: str) -> VerifiedFactor:
        """Check a TOTP code of ``user_id`` and record its step so it never passes again.

        With a ``lockout``, a well-formed code of a user who has a secret is counted against
        the user before it is evaluated, and a code that passes clears the count.

        Args:
            code: what the user typed; spaces and hyphens are ignored.
            secret: the user's stored secret, or ``None`` when the user has no authenticator
                (then the code is refused like a wrong one).
            user_id: the user; the replay guard is per user.

        Returns:
            A :class:`VerifiedFactor` with ``method="totp"`` and the accepted ``totp_step``.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``secret`` is not base32 of at least 128 bits, or ``user_id`` is empty.
            InvalidMfaCodeError: malformed, wrong, outside the ±window, replayed (MFA-2), or
                no secret; ``reason`` says which.
            MfaLockedError: the user got too many codes wrong in the lockout's window; the code
                was not evaluated.
            StoreError: the replay or the lockout store failed; the code was not accepted. (If
                the lockout store fails to clear the count after a right code, that code's step
                is spent: the user enters the next code.)
        """
        return self._verify(code, secret=secret, user_id=user_id, lockout=self._lockout)

    def _verify(
        self, code: str, *, secret: str | None, user_id: str, lockout: MfaLockout | None
    ) -> VerifiedFactor:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        key = self._decode(secret) if secret is not None else None
        candidate = _normalize_code(code, self.policy.digits).encode("ascii")
        if key is None:
            raise InvalidMfaCodeError(reason="not_enrolled")
        if lockout is not None:
            lockout.count_attempt(user_id)
        code_of = self._code_maker(key)
        now = self._clock.now()
        period = self.policy.period
        current = int(now.timestamp()) // period
        window = self.policy.window
        matches = []
        for step in range(max(current - window, 0), current + window + 1):
            # every candidate is computed and compared: no early exit on a match
            if constant_time_equal(code_of(step), candidate):
                matches.append(step)
        if not matches:
            raise InvalidMfaCodeError(reason="mismatch")
        for step in matches:  # more than one only on a code collision within the window
            # The record must outlive the last moment any host could accept this step: the end
            # of its window, plus one period for clock skew between application hosts.
            until = datetime.fromtimestamp((step + window + 2) * period, tz=UTC)
            if self._replay.record_step(user_id, step, now=now, until=until):
                if lockout is not None:
                    lockout.clear(user_id)
                return VerifiedFactor(
                    user_id=user_id, method="totp", verified_at=now, totp_step=step
                )
        raise InvalidMfaCodeError(reason="replayed")

    def _code_maker(self, key: bytes) -> Callable[[int], bytes]:
        """The HOTP code of each step under ``key``, as ASCII digits."""
        digits = self.policy.digits
        if digits <= _HOTP_MAX_DIGITS:
            return HOTP(key, digits, _HOTP_HASHES[self.policy.algorithm]()).generate
        otp = _KeyedOtp(key, digits=digits, digest=self._digest)
        return lambda step: otp.generate_otp(step).encode("ascii")

    @staticmethod
    def _decode(secret: object) -> bytes:
        """The key of a stored secret: upper-case base32 of at least 128 bits."""
        if not isinstance(secret, str):
            raise TypeError(f"secret must be a str, not {type(secret).__name__}")
        if _BASE32_RE.fullmatch(secret) is None:
            raise ValueError("secret must be upper-case base32")
        padded = secret.rstrip("=")
        padded += "=" * (-len(padded) % 8)
        try:
            key = base64.b32decode(padded)
        except binascii.Error:
            raise ValueError("secret must be base32") from None
        if len(key) < _MIN_SECRET_BYTES:
            raise ValueError(f"secret must have at least {_MIN_SECRET_BYTES * 8} bits")
        return key


class _KeyedOtp(pyotp.OTP):
    """pyotp's HOTP over a key decoded once (pyotp itself decodes its base32 secret again for
    every code it makes)."""

    def __init__(self, key: bytes, *, digits: int, digest: Any) -> None:
        self._key = key
        super().__init__("", digits=digits, digest=digest)

    def byte_secret(self) -> bytes:
        return self._key


def _normalize_code(code: object, digits: int) -> str:
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    if len(code) > 64:
        raise InvalidMfaCodeError(reason="malformed")
    candidate = code.translate(_SEPARATORS)
    if len(candidate) != digits or not (candidate.isascii() and candidate.isdigit()):
        raise InvalidMfaCodeError(reason="malformed")
    return candidate


def _check_label(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > _MAX_LABEL:
        raise ValueError(f"{name} is longer than {_MAX_LABEL} characters")
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ValueError(f"{name} must not contain control characters")
    return value
