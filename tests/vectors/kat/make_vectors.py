"""Write the known-answer vectors of this directory, byte for byte.

    python tests/vectors/kat/make_vectors.py            # rewrite the JSON files here
    python tests/vectors/kat/make_vectors.py --out DIR  # write them to DIR instead

This is a second, independent implementation of the documented formats: it imports nothing
from ``storno_security``. HKDF (RFC 5869), the length-prefixed framing, base62, the CRC-32
checksum and base64url are written out here; only AES-256-CBC comes from ``cryptography``.
Every input is fixed (labels hashed with SHA-512, or literal values), so two runs give the
same bytes. ``tests/vectors/kat/test_known_answers.py`` runs it and compares.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HERE = Path(__file__).parent


def _fixed(label: str, size: int) -> bytes:
    """``size`` bytes that anyone can recompute from ``label``."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"storno-security KAT {label} {counter}".encode()).digest()
        counter += 1
    return out[:size]


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- vault tokens ------------------------------------------------------------------------------

VAULT_INFO_ENC = b"storno-vault v1 aes-256-cbc key"
VAULT_INFO_MAC = b"storno-vault v1 hmac-sha256 key"
VAULT_INFO_KID = b"storno-vault v1 key id"


def _hkdf_sha256(master: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with an empty salt (HashLen zero bytes)."""
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _frame(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">Q", len(field)) + field for field in fields)


def _vault_token(
    master: bytes, kid: str | None, iv: bytes, plaintext: bytes, ad: bytes
) -> dict[str, Any]:
    derived_kid = _b64url(_hkdf_sha256(master, VAULT_INFO_KID, 9))
    kid = derived_kid if kid is None else kid
    enc_key = _hkdf_sha256(master, VAULT_INFO_ENC, 32)
    mac_key = _hkdf_sha256(master, VAULT_INFO_MAC, 32)
    pad = 16 - len(plaintext) % 16
    padded = plaintext + bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac_input = _frame(b"storno-vault", b"v1", kid.encode("ascii"), iv, ciphertext, ad)
    tag = hmac.new(mac_key, mac_input, hashlib.sha256).digest()
    return {
        "derived_kid": derived_kid,
        "enc_key_hex": enc_key.hex(),
        "mac_key_hex": mac_key.hex(),
        "ciphertext_hex": ciphertext.hex(),
        "tag_hex": tag.hex(),
        "token": f"v1.{kid}.{_b64url(iv + ciphertext + tag)}",
    }


def vault_tokens() -> dict[str, Any]:
    master_a = bytes(range(64))
    master_b = _fixed("vault master B", 64)
    cases: list[tuple[str, bytes, str | None, bytes, bytes, bytes]] = [
        # name, master, explicit kid, iv, plaintext, associated data
        ("empty plaintext", master_a, None, bytes(16), b"", b"company:42/s3_secret_key"),
        ("one byte", master_a, None, _fixed("iv 1", 16), b"x", b"company:42/s3_secret_key"),
        (
            "exactly one block (a whole padding block follows)",
            master_a,
            None,
            _fixed("iv 2", 16),
            b"0123456789abcdef",
            b"company:42/s3_secret_key",
        ),
        (
            "multi-block",
            master_a,
            None,
            _fixed("iv 3", 16),
            b"AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" * 3,
            b"company:42/s3_secret_key",
        ),
        (
            "non-ASCII plaintext and associated data (UTF-8)",
            master_a,
            None,
            _fixed("iv 4", 16),
            "cheie secretă: ȘȚĂÎÂ €".encode(),
            "société:ß/clé-ăîșț/密钥".encode(),
        ),
        ("empty associated data", master_a, None, _fixed("iv 5", 16), b"secret", b""),
        (
            "binary associated data",
            master_a,
            None,
            _fixed("iv 6", 16),
            b"secret",
            bytes(range(256)),
        ),
        (
            "rotation: second key, derived id",
            master_b,
            None,
            _fixed("iv 7", 16),
            b"re-sealed under the new key",
            b"company:42/s3_secret_key",
        ),
        (
            "rotation: second key, explicit id",
            master_b,
            "2026-q1",
            _fixed("iv 8", 16),
            b"re-sealed under the new key",
            b"company:42/s3_secret_key",
        ),
        ("all-ones IV", master_b, None, b"\xff" * 16, _fixed("plaintext", 100), b"ad"),
    ]
    vectors = []
    for name, master, kid, iv, plaintext, ad in cases:
        vector: dict[str, Any] = {
            "name": name,
            "master_key_b64": base64.b64encode(master).decode("ascii"),
            "kid": kid,
            "iv_hex": iv.hex(),
            "plaintext_hex": plaintext.hex(),
            "associated_data_hex": ad.hex(),
        }
        vector.update(_vault_token(master, kid, iv, plaintext, ad))
        vectors.append(vector)
    sealed = vectors[1]["token"]
    body = sealed.split(".")[2]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    flipped = bytearray(raw)
    flipped[20] ^= 0x01
    refused = [
        {"name": "other associated data", "token": sealed, "associated_data_hex": b"x".hex()},
        {
            "name": "a ciphertext bit flipped",
            "token": f"v1.{sealed.split('.')[1]}.{_b64url(bytes(flipped))}",
            "associated_data_hex": vectors[1]["associated_data_hex"],
        },
        {
            "name": "tag cut by one byte",
            "token": f"v1.{sealed.split('.')[1]}.{_b64url(raw[:-1])}",
            "associated_data_hex": vectors[1]["associated_data_hex"],
        },
        {
            "name": "version v2",
            "token": "v2." + sealed[3:],
            "associated_data_hex": vectors[1]["associated_data_hex"],
        },
        {
            "name": "padded base64url",
            "token": sealed + "=",
            "associated_data_hex": vectors[1]["associated_data_hex"],
        },
    ]
    return {
        "format": "v1.<kid>.<base64url(IV || AES-256-CBC(PKCS#7) ciphertext || HMAC-SHA256 tag)>",
        "vectors": vectors,
        "refused": refused,
    }


# --- API keys ----------------------------------------------------------------------------------

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_SPACE = 62**12
SECRET_SPACE = 62**43


def _base62(value: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    assert value == 0
    return digits


def _api_key(id_value: int, secret_value: int) -> dict[str, Any]:
    key_id = _base62(id_value, 12)
    body = f"af_{key_id}_{_base62(secret_value, 43)}"
    checksum = _base62(zlib.crc32(body.encode("ascii")), 6)
    key = body + checksum
    return {
        # decimal strings: the numbers do not fit the 53-bit integers of many JSON readers
        "randbelow": [
            {"bound": str(ID_SPACE), "value": str(id_value)},
            {"bound": str(SECRET_SPACE), "value": str(secret_value)},
        ],
        "key": key,
        "key_id": key_id,
        "checksum": checksum,
        "key_hash": _sha256_hex(key),
    }


def api_keys() -> dict[str, Any]:
    draws = [
        ("smallest draws", 0, 0),
        ("largest draws", ID_SPACE - 1, SECRET_SPACE - 1),
        ("one", 1, 1),
    ]
    for index in range(4):
        id_value = int.from_bytes(_fixed(f"api key id {index}", 16), "big") % ID_SPACE
        secret_value = int.from_bytes(_fixed(f"api key secret {index}", 40), "big") % SECRET_SPACE
        draws.append((f"fixed draw {index}", id_value, secret_value))
    vectors = [{"name": name, **_api_key(i, s)} for name, i, s in draws]
    legacy = []
    for index in range(3):
        key = "af_" + _fixed(f"legacy api key {index}", 32).hex()
        key_hash = _sha256_hex(key)
        legacy.append({"key": key, "key_hash": key_hash, "key_id": "legacy-" + key_hash[:24]})
    good = vectors[3]["key"]
    wrong_checksum = good[:-1] + ("0" if good[-1] != "0" else "1")
    refused = [
        {"name": "wrong checksum", "key": wrong_checksum},
        {"name": "one character changed in the secret", "key": good[:20] + "!" + good[21:]},
        {"name": "Bearer scheme", "key": "Bearer " + good},
        {"name": "one character short", "key": good[:-1]},
        {"name": "one character long", "key": good + "0"},
        {"name": "other prefix", "key": "ak_" + good[3:]},
        {"name": "separator missing", "key": good[:15] + "-" + good[16:]},
        {"name": "legacy with uppercase hex", "key": "af_" + legacy[0]["key"][3:].upper()},
        {"name": "legacy one digit short", "key": legacy[0]["key"][:-1]},
        {"name": "non-ASCII digit", "key": good[:10] + "\uff10" + good[11:]},
        {"name": "trailing newline", "key": good + "\n"},
    ]
    return {
        "format": "af_ + 12 base62 (id) + _ + 43 base62 (secret) + 6 base62 (CRC-32 checksum)",
        "vectors": vectors,
        "legacy": legacy,
        "refused": refused,
    }


# --- refresh and reset tokens ------------------------------------------------------------------


def refresh_tokens() -> dict[str, Any]:
    vectors = []
    for name, raw in [
        ("zeros", bytes(32)),
        ("ones", b"\xff" * 32),
        ("fixed 0", _fixed("refresh 0", 32)),
        ("fixed 1", _fixed("refresh 1", 32)),
    ]:
        token = _b64url(raw)
        vectors.append(
            {"name": name, "random_hex": raw.hex(), "token": token, "sha256": _sha256_hex(token)}
        )
    token = vectors[2]["token"]
    accepted = [
        {
            "name": "last character with its two unused bits set (not canonical base64url)",
            "token": token[:-1] + BASE64URL[BASE64URL.index(token[-1]) | 3],
            "note": "the format check looks at length and alphabet only; the lookup is by "
            "SHA-256 of the text, so another spelling never finds the stored token",
        },
        {"name": "the end of the alphabet, - and _ included", "token": BASE64URL[-43:]},
    ]
    refused = [
        {"name": "42 characters", "token": token[:-1]},
        {"name": "44 characters", "token": token + "A"},
        {"name": "padding", "token": token + "="},
        {"name": "standard alphabet +", "token": "+" + token[1:]},
        {"name": "standard alphabet /", "token": "/" + token[1:]},
        {"name": "space", "token": token[:-1] + " "},
        {"name": "trailing newline", "token": token[:-1] + "\n"},
        {"name": "non-ASCII letter", "token": "\u00e9" + token[1:]},
        {"name": "fullwidth digit", "token": "\uff10" + token[1:]},
        {"name": "empty", "token": ""},
    ]
    return {
        "format": "43 characters: unpadded base64url of 32 random bytes",
        "random_bytes": 32,
        "vectors": vectors,
        "accepted": accepted,
        "refused": refused,
    }


def reset_tokens() -> dict[str, Any]:
    vectors = []
    for name, raw in [
        ("zeros, 32 bytes (the default)", bytes(32)),
        ("fixed, 32 bytes", _fixed("reset 0", 32)),
        ("fixed, 48 bytes", _fixed("reset 1", 48)),
        ("fixed, 64 bytes (the most a policy allows)", _fixed("reset 2", 64)),
    ]:
        token = "rst_" + _b64url(raw)
        vectors.append(
            {
                "name": name,
                "token_bytes": len(raw),
                "random_hex": raw.hex(),
                "token": token,
                "sha256": _sha256_hex(token),
            }
        )
    short = vectors[1]["token"]
    long = vectors[3]["token"]
    accepted = [
        {"name": "43 characters after the prefix", "token": short},
        {"name": "86 characters after the prefix", "token": long},
        {
            "name": "45 characters after the prefix (no byte length gives it)",
            "token": short + "AB",
            "note": "any length from 43 to 86 passes the format check, so tokens of an earlier "
            "policy keep working; the lookup is by SHA-256 of the text",
        },
    ]
    refused = [
        {"name": "no prefix", "token": short[4:]},
        {"name": "uppercase prefix", "token": "RST_" + short[4:]},
        {"name": "42 characters after the prefix", "token": short[:-1]},
        {"name": "87 characters after the prefix", "token": long + "A"},
        {"name": "padding", "token": short + "="},
        {"name": "standard alphabet +", "token": short[:-1] + "+"},
        {"name": "standard alphabet /", "token": short[:-1] + "/"},
        {"name": "space inside", "token": short[:20] + " " + short[21:]},
        {"name": "trailing newline", "token": short + "\n"},
        {"name": "non-ASCII letter", "token": short[:-1] + "\u00e9"},
        {"name": "fullwidth digit", "token": short[:-1] + "\uff10"},
    ]
    return {
        "format": "rst_ + unpadded base64url of 32 to 64 random bytes (policy.token_bytes)",
        "vectors": vectors,
        "accepted": accepted,
        "refused": refused,
    }


FILES = {
    "vault_tokens.json": vault_tokens,
    "api_keys.json": api_keys,
    "refresh_tokens.json": refresh_tokens,
    "reset_tokens.json": reset_tokens,
}


def render(make: Any) -> bytes:
    return (json.dumps(make(), indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, make in FILES.items():
        (out / name).write_bytes(render(make))


if __name__ == "__main__":
    main()
