"""The vault: a company's storage credential sealed at rest, bound to its owner, and key rotation.

Run: python examples/vault.py
"""

from __future__ import annotations

from storno_security import InvalidCiphertextError
from storno_security.vault import VaultKey, VaultKeyRing


def main() -> None:
    # Once, at deployment: generate a 64-byte master key and keep its base64 in the secret
    # store (environment, KMS, ...). The application loads it at start-up.
    setting = VaultKey.generate().to_base64()
    ring = VaultKeyRing.from_base64(setting)

    # Seal the S3 secret of company 1001. The associated data names the owner and the field:
    # it is not stored in the token, and must be given again, byte for byte, to open it.
    s3_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS docs sample
    where = "company:1001/s3_secret_key"
    token = ring.seal(s3_secret, associated_data=where)
    print("stored in the company row:", token[:24] + "...", f"(key id {ring.active_kid})")
    print("opened:", ring.open(token, associated_data=where).decode() == s3_secret)

    # Someone with write access to the table copies the token into company 2002's row, hoping
    # the application will use company 1001's credentials on 2002's behalf. Refused: one opaque
    # error for every failure; the reason is for the logs only.
    try:
        ring.open(token, associated_data="company:2002/s3_secret_key")
    except InvalidCiphertextError as exc:
        print("moved to another company:", exc, f"(reason: {exc.reason})")

    # Rotation: a new active key; the old one stays, decrypt-only, until every token is re-sealed.
    new_key = VaultKey.generate()
    old_key = VaultKey.from_base64(setting)
    rotated_ring = VaultKeyRing(new_key, decrypt_only=[old_key])
    print("needs rotation:", rotated_ring.needs_rotation(token))
    resealed = rotated_ring.rotate(token, associated_data=where)  # a background job, row by row
    print(
        "re-sealed under",
        resealed.split(".")[1],
        "- still opens:",
        rotated_ring.open(resealed, associated_data=where).decode() == s3_secret,
    )
    print("needs rotation now:", rotated_ring.needs_rotation(resealed))

    # When no token names the old key any more, drop it: tokens still under it stop opening.
    final_ring = VaultKeyRing(new_key)
    try:
        final_ring.open(token, associated_data=where)
    except InvalidCiphertextError as exc:
        print("old token after the old key is gone:", exc.reason)


if __name__ == "__main__":
    main()
