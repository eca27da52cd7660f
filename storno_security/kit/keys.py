"""The secret keys the kit's flows use, in one value the application loads once."""

from __future__ import annotations

import secrets

import attrs

from storno_security.tokens.keys import KeyRing
from storno_security.vault.keys import VaultKey
from storno_security.vault.ring import VaultKeyRing

__all__ = ["KitKeys"]

_MIN_PSEUDONYM_KEY = 32


def _pseudonym_key(instance: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if not isinstance(value, bytes):
        raise TypeError("pseudonym must be bytes")
    if len(value) < _MIN_PSEUDONYM_KEY:
        raise ValueError(f"pseudonym must be at least {_MIN_PSEUDONYM_KEY} bytes")


@attrs.frozen(kw_only=True)
class KitKeys:
    """The kit's keys. Load them from where the application keeps secrets; never from the
    database the stores use.

    Attributes:
        jwt: signs and verifies access tokens (JWT-1, JWT-3).
        vault: seals TOTP secrets and the application's credentials (VLT-1..3).
        pseudonym: keys the pseudonyms of deleted users in the audit trail (ACC-4); at least
            32 bytes.
    """

    jwt: KeyRing = attrs.field(validator=attrs.validators.instance_of(KeyRing))
    vault: VaultKeyRing = attrs.field(validator=attrs.validators.instance_of(VaultKeyRing))
    pseudonym: bytes = attrs.field(repr=False, validator=_pseudonym_key)

    @classmethod
    def generate(cls, *, rsa_bits: int = 3072) -> KitKeys:
        """Fresh keys, for tests and single-process development (they die with the process:
        every token, sealed secret and pseudonym is lost with them)."""
        return cls(
            jwt=KeyRing.generate(bits=rsa_bits),
            vault=VaultKeyRing(VaultKey.generate()),
            pseudonym=secrets.token_bytes(32),
        )
