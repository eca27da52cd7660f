"""One entry point for the code-based second factors: ``totp`` and ``backup_code``."""

from __future__ import annotations

from storno_security.errors import InvalidMfaCodeError
from storno_security.mfa.backup_codes import BackupCodes
from storno_security.mfa.factors import VerifiedFactor
from storno_security.mfa.totp import TotpAuthenticator

__all__ = ["SecondFactorVerifier"]


class SecondFactorVerifier:
    """Checks a code by its method name, as a client sends it (``{"method": ..., "code": ...}``).

    Args:
        totp: the TOTP authenticator.
        backup_codes: the backup codes.

    Thread-safe.
    """

    def __init__(self, *, totp: TotpAuthenticator, backup_codes: BackupCodes) -> None:
        self._totp = totp
        self._backup_codes = backup_codes

    def __repr__(self) -> str:
        return f"SecondFactorVerifier({self._totp!r}, {self._backup_codes!r})"

    def verify(
        self, user_id: str, *, method: str, code: str, totp_secret: str | None
    ) -> VerifiedFactor:
        """Check ``code`` as a ``method`` factor of ``user_id``; use it up on success.

        Args:
            user_id: the user.
            method: ``"totp"`` or ``"backup_code"`` (client input: anything else is refused
                like a wrong code; passkeys are verified by the passkeys capability).
            code: the code.
            totp_secret: the user's stored TOTP secret, or ``None`` if there is none.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` is empty, or ``totp_secret`` is not base32 of 128+ bits.
            InvalidMfaCodeError: unknown method, or the code is not acceptable (see
                :meth:`TotpAuthenticator.verify` and :meth:`BackupCodes.verify`).
            MfaLockedError: the user got too many codes wrong (the authenticators' shared
                :class:`~storno_security.mfa.MfaLockout`); the code was not checked.
            CorruptRecordError: a stored backup-code hash is malformed.
            StoreError: a store failed; the code was not used.
        """
        if method == "totp":
            return self._totp.verify(code, secret=totp_secret, user_id=user_id)
        if method == "backup_code":
            return self._backup_codes.verify(code, user_id=user_id)
        raise InvalidMfaCodeError(reason="unsupported_method")
