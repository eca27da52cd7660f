"""A local key set that plays Google: it mints ID tokens and serves its JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "1234-storno.apps.googleusercontent.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FakeGoogle:
    """Signing keys by ``kid``; ``published`` is what the JWKS shows (rotation is a test knob)."""

    def __init__(self, kids: tuple[str, ...] = ("key-1",), *, bits: int = 2048) -> None:
        self.keys = {
            kid: rsa.generate_private_key(public_exponent=65537, key_size=bits) for kid in kids
        }
        self.published = list(kids)
        self.fetches: list[bool] = []

    def add_key(self, kid: str, *, publish: bool = True, bits: int = 2048) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if publish:
            self.published.append(kid)

    def document(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    # the JwksFetcher protocol, counting calls
    def jwks(self, *, refresh: bool = False) -> Mapping[str, Any]:
        self.fetches.append(refresh)
        return self.document()

    def claims(self, now: datetime, **changes: Any) -> dict[str, Any]:
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "azp": CLIENT_ID,
            "aud": CLIENT_ID,
            "sub": "110169484474386276334",
            "email": "ana@example.eu",
            "email_verified": True,
            "name": "Ana Popescu",
            "iat": iat,
            "exp": iat + 3600,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        now: datetime,
        *,
        kid: str = "key-1",
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        **changes: Any,
    ) -> str:
        # PyJWS over raw bytes: PyJWT's own encode would refuse odd claim types
        return jwt.PyJWS().encode(
            json.dumps(self.claims(now, **changes)).encode(),
            self.keys[kid],
            algorithm=alg,
            headers={"kid": kid, **(headers or {})},
        )

    def forged(self, now: datetime, *, header: dict[str, Any], key: bytes = b"") -> str:
        """A token with a chosen header, HMAC-signed with ``key`` (or unsigned for ``none``)."""
        signing_input = (
            b64(json.dumps(header).encode()) + "." + b64(json.dumps(self.claims(now)).encode())
        )
        if header.get("alg") == "none" and not key:
            return signing_input + "."
        mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(mac)
