"""Access-token verification speed, against baselines measured in the same run.

Prints µs/op for:
  * raw RSA verify (cryptography, PKCS#1 v1.5 + SHA-256 over the signing input);
  * ``jwt.decode`` with a preloaded public key (issuer, audience and expiry checked);
  * our verifier on first sight (no cache: header, key lookup, signature, claims, session check);
  * our verifier on a repeated token (cache hit: SHA-256 + dict lookup + session check);
and the ratios. Targets (issue 2): first sight <= 1.1x jwt.decode; repeated >= 10x faster.

Run: python bench/tokens.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import UTC, datetime

import jwt
from _common import measure
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    SigningKey,
    TokenPolicy,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()

    key = SigningKey.generate(bits=2048)
    ring = KeyRing(key)
    # The wall clock, so that jwt.decode (which reads it) and our verifier agree on "now".
    clock = FrozenClock(datetime.now(UTC))
    policy = TokenPolicy(issuer="https://api.bench.test", audience="bench")
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    token = issuer.issue("user-1", session_id="session-1", epoch=0).token
    public = key.private_key.public_key()

    signing_input, _, signature_b64 = token.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    message = signing_input.encode()

    def raw_rsa() -> None:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    def pyjwt_decode() -> None:
        jwt.decode(
            token, public, algorithms=["RS256"], audience=policy.audience, issuer=policy.issuer
        )

    sessions = MemorySessionStateStore()
    cold = AccessTokenVerifier(
        ring,
        TokenPolicy(issuer=policy.issuer, audience=policy.audience, verified_cache_size=0),
        clock=clock,
        sessions=sessions,
    )
    warm = AccessTokenVerifier(ring, policy, clock=clock, sessions=sessions)
    warm.verify(token)

    def first_sight() -> None:
        cold.verify(token)

    def repeated() -> None:
        warm.verify(token)

    figures = {
        "raw RSA verify": measure(raw_rsa, args.seconds)[0],
        "jwt.decode (preloaded key)": measure(pyjwt_decode, args.seconds)[0],
        "ours, first sight": measure(first_sight, args.seconds)[0],
        "ours, repeated (cache)": measure(repeated, args.seconds)[0],
    }
    width = max(map(len, figures))
    print(
        f"access-token verify, RSA-2048, token {len(token)} bytes, Python {sys.version.split()[0]}"
    )
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:8.2f} µs/op")
    decode = figures["jwt.decode (preloaded key)"]
    raw = figures["raw RSA verify"]
    first = figures["ours, first sight"]
    again = figures["ours, repeated (cache)"]
    print(f"  first sight / jwt.decode     = {first / decode:5.2f}x  (target <= 1.10x)")
    print(f"  first sight / raw RSA        = {first / raw:5.2f}x")
    print(f"  jwt.decode / repeated        = {decode / again:5.1f}x faster  (target >= 10x)")
    print(f"  raw RSA / repeated           = {raw / again:5.1f}x faster")
    ok = first / decode <= 1.10 and decode / again >= 10
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
