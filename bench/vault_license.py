"""Vault and license speed, against baselines measured in the same run.

Prints µs/op for:
  * vault seal and open of a 64-byte secret, against the bare primitives they wrap
    (``cryptography`` AES-256-CBC + PKCS#7 + HMAC-SHA256 over the same bytes, no framing,
    no parsing, no checks);
  * license verification (memory last-seen store) with an Ed25519 and an RSA-2048 key, against
    ``jwt.decode`` with the same preloaded key (signature, ``iss`` and ``exp`` checked).

Run: python bench/vault_license.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta

import jwt
from _common import measure
from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from storno_security.clock import FrozenClock
from storno_security.license import (
    LicenseIssuer,
    LicensePolicy,
    LicenseSigningKey,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore
from storno_security.vault import VaultKey, VaultKeyRing

SECRET = os.urandom(64)
AD = b"company:42/s3_secret_key"


def bare_seal(enc_key: bytes, mac_key: bytes) -> bytes:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(SECRET) + padder.finalize()
    encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(iv + ciphertext + AD)
    return iv + ciphertext + mac.finalize()


def bare_open(enc_key: bytes, mac_key: bytes, blob: bytes) -> bytes:
    iv, ciphertext, tag = blob[:16], blob[16:-32], blob[-32:]
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(iv + ciphertext + AD)
    mac.verify(tag)
    decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds
    print(f"Python {sys.version.split()[0]}")

    key = VaultKey.generate()
    ring = VaultKeyRing(key)
    token = ring.seal(SECRET, associated_data=AD)
    enc_key, mac_key = os.urandom(32), os.urandom(32)
    blob = bare_seal(enc_key, mac_key)
    figures = {
        "vault seal": measure(lambda: ring.seal(SECRET, associated_data=AD), seconds)[0],
        "bare seal": measure(lambda: bare_seal(enc_key, mac_key), seconds)[0],
        "vault open": measure(lambda: ring.open(token, associated_data=AD), seconds)[0],
        "bare open": measure(lambda: bare_open(enc_key, mac_key, blob), seconds)[0],
    }
    print(f"vault, 64-byte secret, token {len(token)} chars")
    for name, value in figures.items():
        print(f"  {name:<12} {value:8.2f} µs/op")
    print(f"  seal overhead {figures['vault seal'] / figures['bare seal']:5.2f}x bare")
    print(f"  open overhead {figures['vault open'] / figures['bare open']:5.2f}x bare")

    # The wall clock, so that jwt.decode (which reads it) and our verifier agree on "now".
    clock = FrozenClock(datetime.now(UTC))
    policy = LicensePolicy(issuer="https://vendor.bench.test")
    for name, signing in (
        ("Ed25519", LicenseSigningKey.generate()),
        ("RSA-2048", LicenseSigningKey.generate("RS256", rsa_bits=2048)),
    ):
        license_token = (
            LicenseIssuer(signing, issuer=policy.issuer, clock=clock)
            .issue(
                "org-1",
                org_name="Bench SRL",
                plan="business",
                features=["efactura"],
                max_companies=5,
                max_users=20,
                valid_for=timedelta(days=365),
            )
            .token
        )
        verifier = LicenseVerifier(
            [signing.public],
            policy,
            clock=clock,
            last_seen=MemoryLastSeenStore(),
            organization_id="org-1",
        )
        public = signing.public.key

        def ours(v: LicenseVerifier = verifier, t: str = license_token) -> None:
            v.verify(t)

        def pyjwt(t: str = license_token, k: object = public, a: str = signing.algorithm) -> None:
            jwt.decode(t, k, algorithms=[a], issuer=policy.issuer)  # type: ignore[arg-type]

        mine, theirs = measure(ours, seconds)[0], measure(pyjwt, seconds)[0]
        print(f"license verify, {name}, token {len(license_token)} chars")
        print(f"  ours        {mine:8.2f} µs/op")
        print(f"  jwt.decode  {theirs:8.2f} µs/op")
        print(f"  ours / jwt.decode = {mine / theirs:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
