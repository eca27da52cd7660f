"""A software WebAuthn authenticator and client for the tests: real ceremony data.

It answers ``navigator.credentials.create()`` / ``.get()`` options (as the JSON dictionaries the
server sends) with the JSON a browser would post back: a CBOR attestation object (``none`` or
``packed`` self-attestation) and assertions signed with ES256 (P-256) or RS256 keys made with
``cryptography``. Every knob a test needs to misbehave is a keyword: the origin the "browser"
reports, the relying-party id hashed into the authenticator data, the UV/UP/backup flags, the
sign count.

The server tests reuse it, so keep it free of pytest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = ["SoftAuthenticator", "StoredKey", "b64url", "b64url_decode"]

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

ES256 = -7
RS256 = -257


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class StoredKey:
    """One credential held by the authenticator."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    alg: int
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            return cbor2.dumps(
                {
                    1: 2,  # kty: EC2
                    3: ES256,
                    -1: 1,  # crv: P-256
                    -2: numbers.x.to_bytes(32, "big"),
                    -3: numbers.y.to_bytes(32, "big"),
                }
            )
        numbers = public.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return cbor2.dumps({1: 3, 3: RS256, -1: n, -2: e})  # kty: RSA

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class SoftAuthenticator:
    """A platform authenticator in software.

    Args:
        alg: ``"ES256"`` or ``"RS256"`` for new credentials.
        attestation: ``"none"`` or ``"packed"`` (self-attestation).
        aaguid: the model id reported at registration.
        backup_eligible: set the BE flag (a synced passkey); ``backed_up`` sets BS.
        counter_step: how much the sign count grows per assertion (0: no counter).
    """

    alg: Literal["ES256", "RS256"] = "ES256"
    attestation: Literal["none", "packed"] = "none"
    aaguid: bytes = field(default_factory=lambda: bytes.fromhex("00112233445566778899aabbccddeeff"))
    backup_eligible: bool = False
    backed_up: bool = False
    counter_step: int = 1
    transports: tuple[str, ...] = ("hybrid", "internal")
    keys: dict[bytes, StoredKey] = field(default_factory=dict)

    def _new_key(self) -> tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, int]:
        if self.alg == "ES256":
            return ec.generate_private_key(ec.SECP256R1()), ES256
        return rsa.generate_private_key(public_exponent=65537, key_size=2048), RS256

    def _flags(self, *, up: bool, uv: bool, at: bool) -> int:
        flags = 0
        if up:
            flags |= FLAG_UP
        if uv:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE
        if self.backed_up:
            flags |= FLAG_BS
        if at:
            flags |= FLAG_AT
        return flags

    #: what the "browser" reports as ``crossOrigin`` (a ceremony inside a cross-origin frame)
    cross_origin: bool = False

    def client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin,
                "crossOrigin": self.cross_origin,
            },
            separators=(",", ":"),
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str,
        rp_id: str | None = None,
        uv: bool = True,
        up: bool = True,
        initial_sign_count: int = 0,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """Answer registration options with a ``RegistrationResponseJSON`` dictionary."""
        rp_id = rp_id if rp_id is not None else options["rp"]["id"]
        user_handle = b64url_decode(options["user"]["id"])
        private_key, alg = self._new_key()
        if credential_id is None:
            credential_id = secrets.token_bytes(32)
        key = StoredKey(credential_id, private_key, alg, rp_id, user_handle, initial_sign_count)
        self.keys[credential_id] = key
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(up=up, uv=uv, at=True)])
            + struct.pack(">I", initial_sign_count)
            + self.aaguid
            + struct.pack(">H", len(credential_id))
            + credential_id
            + key.cose_public_key()
        )
        client_data = self.client_data("webauthn.create", options["challenge"], origin)
        if self.attestation == "none":
            statement: dict[str, Any] = {}
        else:
            signed = auth_data + hashlib.sha256(client_data).digest()
            statement = {"alg": alg, "sig": key.sign(signed)}
        attestation_object = cbor2.dumps(
            {"fmt": self.attestation, "attStmt": statement, "authData": auth_data}
        )
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": list(self.transports),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str,
        credential_id: bytes | None = None,
        rp_id: str | None = None,
        uv: bool = True,
        up: bool = True,
        sign_count: int | None = None,
        include_user_handle: bool = True,
    ) -> dict[str, Any]:
        """Answer authentication options with an ``AuthenticationResponseJSON`` dictionary.

        Without ``credential_id`` it picks the first allowed credential it holds, or (when the
        options allow any) its first credential for the relying party: a discoverable login.
        """
        rp_id = rp_id if rp_id is not None else options["rpId"]
        if credential_id is None:
            allowed = [b64url_decode(c["id"]) for c in options.get("allowCredentials", [])]
            candidates = [k for k in self.keys.values() if k.rp_id == options["rpId"]]
            if allowed:
                candidates = [k for k in candidates if k.credential_id in allowed]
            credential_id = candidates[0].credential_id
        key = self.keys[credential_id]
        if sign_count is None:
            key.sign_count += self.counter_step
            sign_count = key.sign_count
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(up=up, uv=uv, at=False)])
            + struct.pack(">I", sign_count)
        )
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        signature = key.sign(auth_data + hashlib.sha256(client_data).digest())
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if include_user_handle:
            response["userHandle"] = b64url(key.user_handle)
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
