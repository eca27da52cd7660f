"""Backup codes: one set of single-use codes per user, shown once, stored bcrypt-hashed (MFA-3).

Format
------
A code is 12 characters of an unambiguous alphabet (digits 2-9 and upper-case letters without
``I``, ``L`` and ``O``: 31 symbols), shown in three groups of four, e.g. ``K7QM-ZP3H-9XRT``.
Input is case-insensitive and ignores spaces and hyphens.

The first character is the code's *hint*: distinct within a set and stored in clear next to the
hash, so a presented code is checked against the one hash with its hint, never ten (one bcrypt
per attempt, like a password check; an unknown hint costs the same, through the dummy hash of
:class:`~storno_security.passwords.PasswordHasher`). The other 11 characters are secret:
31^11, about 2^54.5, from :mod:`secrets`. The whole code is what bcrypt hashes.

Using a code is one atomic store operation (a conditional ``UPDATE``, a lock in memory): of any
number of concurrent uses of one code, exactly one succeeds. Generating a set replaces the
previous set whole, in one transaction.
"""

from __future__ import annotations

import random
import secrets
from typing import Final

import attrs

from storno_security._bcrypt import PasswordHasher
from storno_security.clock import Clock
from storno_security.errors import (
    CorruptRecordError,
    InvalidMfaCodeError,
    InvalidPasswordError,
    UnsupportedHashError,
)
from storno_security.mfa._common import mfa_policy
from storno_security.mfa.factors import VerifiedFactor
from storno_security.mfa.lockout import MfaLockout
from storno_security.mfa.policy import MfaPolicy
from storno_security.mfa.storage import BackupCodeStore, StoredBackupCode

__all__ = ["BACKUP_CODE_ALPHABET", "BackupCodeSet", "BackupCodes"]

#: The symbols of a backup code: no ``0``/``O``, ``1``/``I``/``L`` to confuse.
BACKUP_CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_LENGTH: Final = 12
_GROUP: Final = 4
_SEPARATORS: Final = str.maketrans("", "", " -")


@attrs.frozen(kw_only=True)
class BackupCodeSet:
    """A new set of backup codes: show it once, never store it.

    Attributes:
        user_id: the owner.
        codes: the codes, grouped for reading (``XXXX-XXXX-XXXX``).
    """

    user_id: str
    codes: tuple[str, ...] = attrs.field(repr=False)


class BackupCodes:
    """Generates, verifies and deletes users' backup codes.

    Args:
        policy: the MFA policy (codes per set, bcrypt cost); defaults to ``MfaPolicy()``.
        store: where the hashes live.
        clock: the time source.
        lockout: the per-user limit on wrong codes, shared with :class:`TotpAuthenticator`.
            Required: pass ``None`` only to opt out on purpose.

    Raises:
        TypeError: ``policy`` or ``lockout`` has the wrong type.

    Thread-safe.
    """

    def __init__(
        self,
        policy: MfaPolicy | None = None,
        *,
        store: BackupCodeStore,
        clock: Clock,
        lockout: MfaLockout | None,
    ) -> None:
        self.policy = mfa_policy(policy)
        if lockout is not None and not isinstance(lockout, MfaLockout):
            raise TypeError("lockout must be an MfaLockout")
        self._hasher = PasswordHasher(self.policy.backup_code_hashing)
        self._store = store
        self._clock = clock
        self._lockout = lockout

    def __repr__(self) -> str:
        return f"BackupCodes(count={self.policy.backup_code_count})"

    def generate(self, user_id: str) -> BackupCodeSet:
        """Make a new set of ``policy.backup_code_count`` codes, replacing the user's old set
        whole (MFA-3). Call when MFA is enabled and whenever the user asks for new codes.

        Raises:
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; the old set is unchanged.
        """
        _check_user(user_id)
        hints = random.SystemRandom().sample(BACKUP_CODE_ALPHABET, self.policy.backup_code_count)
        codes: list[str] = []
        stored: list[StoredBackupCode] = []
        for hint in hints:
            code = hint + "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(_LENGTH - 1))
            codes.append("-".join(code[i : i + _GROUP] for i in range(0, _LENGTH, _GROUP)))
            stored.append(
                StoredBackupCode(
                    code_id=secrets.token_hex(16), hint=hint, code_hash=self._hasher.hash(code)
                )
            )
        self._store.replace_codes(user_id, stored, now=self._clock.now())
        return BackupCodeSet(user_id=user_id, codes=tuple(codes))

    def verify(self, code: str, *, user_id: str) -> VerifiedFactor:
        """Check a backup code of ``user_id`` and use it up, atomically (MFA-3).

        Costs one bcrypt check of the policy's cost, whether or not a code with that hint
        exists. With a ``lockout``, a well-formed code is counted against the user before it
        is checked, and a code that passes clears the count.

        Returns:
            A :class:`VerifiedFactor` with ``method="backup_code"`` and ``backup_codes_left``.

        Raises:
            TypeError: ``code`` is not a str.
            ValueError: ``user_id`` is empty.
            InvalidMfaCodeError: malformed, wrong, used already, or replaced; ``reason`` says
                which.
            MfaLockedError: the user got too many codes wrong in the lockout's window; the code
                was not checked.
            CorruptRecordError: the stored hash is not a bcrypt hash this library wrote.
            StoreError: the store or the lockout store failed; the code was not used. (If the
                lockout store fails to clear the count after a right code, that code is used up.)
        """
        _check_user(user_id)
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        # ASCII only: str.upper() turns look-alikes into code letters (U+017F long s into "S").
        ascii_code = len(code) <= 64 and code.isascii()
        candidate = code.translate(_SEPARATORS).upper() if ascii_code else ""
        if len(candidate) != _LENGTH or any(ch not in BACKUP_CODE_ALPHABET for ch in candidate):
            raise InvalidMfaCodeError(reason="malformed")
        stored = self._store.find_code(user_id, candidate[0])
        if self._lockout is not None:
            self._lockout.count_attempt(user_id)
        try:
            self._hasher.verify(candidate, None if stored is None else stored.code_hash)
        except InvalidPasswordError:
            raise InvalidMfaCodeError(reason="mismatch") from None
        except UnsupportedHashError:
            raise CorruptRecordError(reason="bad_backup_code_hash") from None
        if stored is None:  # pragma: no cover - verify(…, None) always raises
            raise InvalidMfaCodeError(reason="mismatch")
        now = self._clock.now()
        if not self._store.use_code(user_id, stored.code_id, now=now):
            raise InvalidMfaCodeError(reason="used")
        if self._lockout is not None:
            self._lockout.clear(user_id)
        return VerifiedFactor(
            user_id=user_id,
            method="backup_code",
            verified_at=now,
            backup_codes_left=self._store.count_unused(user_id),
        )

    def remaining(self, user_id: str) -> int:
        """How many unused codes the user has left (so the application can warn).

        Raises:
            ValueError: ``user_id`` is empty.
            StoreError: the store failed.
        """
        _check_user(user_id)
        return self._store.count_unused(user_id)

    def delete(self, user_id: str) -> None:
        """Delete the user's codes (when MFA is disabled).

        Raises:
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; nothing was deleted.
        """
        _check_user(user_id)
        self._store.replace_codes(user_id, (), now=self._clock.now())


def _check_user(user_id: object) -> None:
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
