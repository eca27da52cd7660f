"""bcrypt password hashing without silent truncation (PW-1..PW-5): shared by the passwords
capability (which publishes it) and the backup codes of MFA (MFA-3), which are hashed the same
way; one copy, so neither capability imports the other.

Hash format
-----------
New hashes are ``$bcrypt-hmac-sha256$v1`` followed by an ordinary ``$2b$`` bcrypt string::

    $bcrypt-hmac-sha256$v1$2b$12$<22-char salt><31-char digest>

The password is first normalised (Unicode NFKC, as NIST SP 800-63B asks), then reduced with
HMAC-SHA256 keyed by the bcrypt salt, and the base64 of that 32-byte MAC (44 ASCII bytes, no NUL)
is what bcrypt hashes. So every byte of a password up to ``max_bytes`` counts (bcrypt alone reads
only 72), and a leaked unsalted SHA-256 of the password elsewhere cannot be fed to this hash
("password shucking"), because the key is the per-hash salt.

Plain bcrypt hashes (``$2a$``, ``$2b$`` and PHP's ``$2y$``, as made by ``PASSWORD_DEFAULT``)
verify unchanged, and :meth:`PasswordHasher.needs_rehash` is true for them, so a login moves
them to the new form. A password over 72 bytes never matches a plain bcrypt hash: matching it
would mean truncating it, which PW-2 forbids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from typing import NoReturn

import attrs
import bcrypt

from storno_security._bcrypt_policy import PasswordPolicy
from storno_security.errors import (
    InvalidPasswordError,
    PasswordPolicyError,
    UnsupportedHashError,
)

__all__ = ["PasswordHasher", "VerifiedPassword"]

_PREFIX = "$bcrypt-hmac-sha256$v1"
_BCRYPT_RE = re.compile(r"\$(2[aby])\$([0-9]{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})")
_BCRYPT_MAX_BYTES = 72
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@attrs.frozen
class _ParsedHash:
    prehashed: bool
    cost: int
    salt: str
    bcrypt_hash: bytes


@attrs.frozen
class VerifiedPassword:
    """A successful verification.

    Attributes:
        new_hash: when the stored hash was below the policy (older scheme or lower cost), a
            fresh hash of the same password under the current policy, which the caller should
            store (PW-3); otherwise ``None``.
    """

    new_hash: str | None = attrs.field(default=None, repr=False)

    @property
    def needs_rehash(self) -> bool:
        """Whether :attr:`new_hash` holds a replacement to store."""
        return self.new_hash is not None


class PasswordHasher:
    """Hashes and verifies passwords under one frozen :class:`PasswordPolicy`.

    Args:
        policy: the policy; defaults to ``PasswordPolicy()`` (bcrypt cost 12).

    Thread-safe.
    """

    def __init__(self, policy: PasswordPolicy | None = None) -> None:
        if policy is not None and not isinstance(policy, PasswordPolicy):
            raise TypeError("policy must be a PasswordPolicy")
        self.policy = policy if policy is not None else PasswordPolicy()
        # A well-formed hash of the policy's cost that no password matches: a random salt and a
        # random digest. Checking it costs exactly what a real check costs (PW-4), and building
        # it costs nothing, so there is no slow first call to tell unknown users apart.
        self._dummy = _dummy_hash(self.policy.cost)
        self._dummies: dict[int, _ParsedHash] = {}

    def __repr__(self) -> str:
        return f"PasswordHasher({self.policy!r})"

    # --- checks --------------------------------------------------------------------------

    def check_new_password(self, password: str) -> None:
        """Check a password chosen by a user against the policy (PW-2, PW-5).

        Raises:
            TypeError: ``password`` is not a ``str``.
            PasswordPolicyError: too short (fewer than ``min_length`` characters) or too long
                (more than ``max_bytes`` UTF-8 bytes). The message states the rule.
        """
        normalized = self._normalize(password)
        # Count characters as typed *and* after NFKC, and take the smaller: a single code point
        # such as U+FDFA expands to 18 under NFKC and must not pass an 8-character minimum.
        if min(len(password), len(normalized)) < self.policy.min_length:
            raise PasswordPolicyError(
                f"password must have at least {self.policy.min_length} characters",
                reason="too_short",
            )

    def _normalize(self, password: str) -> str:
        if not isinstance(password, str):
            raise TypeError(f"password must be str, not {type(password).__name__}")
        try:
            raw = password.encode("utf-8")
        except UnicodeEncodeError:
            raise PasswordPolicyError(
                "password is not valid Unicode text", reason="not_text"
            ) from None
        if len(raw) > self.policy.max_bytes:
            raise PasswordPolicyError(
                f"password must be at most {self.policy.max_bytes} bytes long",
                reason="too_long",
            )
        return unicodedata.normalize("NFKC", password)

    # --- hashing -------------------------------------------------------------------------

    def hash(self, password: str) -> str:
        """Hash a new password under the policy.

        Raises:
            TypeError: ``password`` is not a ``str``.
            PasswordPolicyError: the password breaks the policy (see :meth:`check_new_password`).
        """
        self.check_new_password(password)
        return self._hash_normalized(self._normalize(password))

    def _hash_normalized(self, normalized: str) -> str:
        salt_config = bcrypt.gensalt(rounds=self.policy.cost, prefix=b"2b")
        salt = salt_config.decode("ascii")[7:29]
        digest = bcrypt.hashpw(_prehash(normalized, salt), salt_config)
        return _PREFIX + digest.decode("ascii")

    def needs_rehash(self, stored_hash: str | bytes) -> bool:
        """Whether ``stored_hash`` is below the policy: older scheme or lower cost (PW-3).

        Raises:
            UnsupportedHashError: ``stored_hash`` is not a hash this library can read.
        """
        parsed = _parse(stored_hash)
        return not parsed.prehashed or parsed.cost < self.policy.cost

    # --- verification --------------------------------------------------------------------

    def verify(self, password: str, stored_hash: str | bytes | None) -> VerifiedPassword:
        """Check ``password`` against ``stored_hash``.

        Pass ``stored_hash=None`` when the account does not exist: a dummy hash of the policy's
        cost is checked so the answer takes as long as a wrong password for a real account, and
        the same error is raised (PW-4, ACC-1).

        Returns:
            A :class:`VerifiedPassword`; its ``new_hash`` is set when the stored hash should be
            replaced (PW-3).

        Raises:
            TypeError: ``password`` is not a ``str``.
            PasswordPolicyError: the password is longer than ``max_bytes`` (refused before any
                hashing).
            InvalidPasswordError: wrong password, or no such account.
            UnsupportedHashError: ``stored_hash`` is malformed or of an unknown scheme.
        """
        normalized = self._normalize(password)
        if stored_hash is None:
            self._burn(normalized)
        parsed = _parse(stored_hash)
        if parsed.prehashed:
            candidate = _prehash(normalized, parsed.salt)
        else:
            raw = password.encode("utf-8")
            if len(raw) > _BCRYPT_MAX_BYTES:
                # Matching would need truncation (PW-2). Spend the same time, then refuse.
                self._burn(normalized, reason="legacy_hash_over_72_bytes")
            candidate = raw
        matched = bcrypt.checkpw(candidate, parsed.bcrypt_hash)
        if parsed.cost < self.policy.cost:
            self._pad(parsed.cost)
        if not matched:
            raise InvalidPasswordError(reason="mismatch")
        if parsed.prehashed and parsed.cost >= self.policy.cost:
            return VerifiedPassword()
        return VerifiedPassword(new_hash=self._hash_normalized(normalized))

    def _pad(self, cost: int) -> None:
        """Top a check of a cheaper (legacy) hash up to the policy's cost (PW-4).

        A hash of cost ``c`` below the policy cost ``P`` is checked in a quarter of the time per
        two steps of cost, which would tell the accounts that still hold a migrated hash from
        unknown ones. ``2**(P - c) - 1`` further checks at cost ``c`` make the total work equal
        to one check at cost ``P``, whether the password matched or not.
        """
        dummy = self._dummies.get(cost)
        if dummy is None:
            dummy = self._dummies.setdefault(cost, _dummy_hash(cost))
        probe = _prehash("", dummy.salt)
        for _ in range(2 ** (self.policy.cost - cost) - 1):
            bcrypt.checkpw(probe, dummy.bcrypt_hash)

    def _burn(self, normalized: str, *, reason: str = "unknown_user") -> NoReturn:
        """Spend one policy-cost bcrypt check, then raise the same error as a wrong password."""
        dummy = self._dummy
        bcrypt.checkpw(_prehash(normalized, dummy.salt), dummy.bcrypt_hash)
        raise InvalidPasswordError(reason=reason)


def _dummy_hash(cost: int) -> _ParsedHash:
    """A well-formed hash of ``cost`` that no password matches: random salt, random digest."""
    salt_config = bcrypt.gensalt(rounds=cost, prefix=b"2b").decode("ascii")
    digest = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return _parse(_PREFIX + salt_config + digest)


def _prehash(normalized: str, salt: str) -> bytes:
    mac = hmac.new(salt.encode("ascii"), normalized.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac)


def _parse(stored_hash: str | bytes | None) -> _ParsedHash:
    if isinstance(stored_hash, bytes):
        try:
            stored_hash = stored_hash.decode("ascii")
        except UnicodeDecodeError:
            raise UnsupportedHashError(reason="not_ascii") from None
    if not isinstance(stored_hash, str):
        raise UnsupportedHashError(reason="not_text")
    prehashed = stored_hash.startswith(_PREFIX + "$")
    body = stored_hash[len(_PREFIX) :] if prehashed else stored_hash
    match = _BCRYPT_RE.fullmatch(body)
    if match is None or (prehashed and match.group(1) != "2b"):
        raise UnsupportedHashError(reason="malformed")
    cost = int(match.group(2))
    if not 4 <= cost <= 31:
        raise UnsupportedHashError(reason="bad_cost")
    return _ParsedHash(
        prehashed=prehashed,
        cost=cost,
        salt=match.group(3),
        bcrypt_hash=body.encode("ascii"),
    )
