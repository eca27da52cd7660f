"""The vault: secrets such as users' storage credentials sealed at rest (VLT-1..VLT-3).

AES-256-CBC with a random IV, then HMAC-SHA256 over version, key id, IV, ciphertext and the
associated data (encrypt-then-MAC), all from ``cryptography``. A :class:`VaultKeyRing` has one
active key and decrypt-only older keys; :meth:`~VaultKeyRing.rotate` re-seals a token under the
active key. Every failure to open is one opaque
:class:`~storno_security.errors.InvalidCiphertextError`.

Typical use::

    ring = VaultKeyRing.from_base64(settings.vault_key, decrypt_only=settings.old_vault_keys)
    token = ring.seal(secret_key, associated_data=f"company:{company_id}/s3_secret")
    secret_key = ring.open(token, associated_data=f"company:{company_id}/s3_secret")
"""

from storno_security.vault.keys import KID_PATTERN, MASTER_KEY_BYTES, VaultKey
from storno_security.vault.ring import TOKEN_VERSION, VaultKeyRing

__all__ = ["KID_PATTERN", "MASTER_KEY_BYTES", "TOKEN_VERSION", "VaultKey", "VaultKeyRing"]
