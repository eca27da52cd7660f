"""The cipher and MAC layers of the vault, driven by the Wycheproof vectors (VLT-1).

Vectors: C2SP/wycheproof ``testvectors_v1`` (see ``tests/vectors/wycheproof/SOURCE.txt``),
copied unchanged. AES-CBC-PKCS5 covers 128-, 192- and 256-bit keys (the layer is plain AES-CBC;
the vault always gives it 256-bit keys). HMAC-SHA256 covers full 256-bit tags and 128-bit
truncated ones: the vault never accepts a truncated tag, so for those only the computed tag's
prefix is compared, and verification must refuse the short tag whatever it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from storno_security._compare import constant_time_equal
from storno_security.errors import InvalidCiphertextError
from storno_security.vault._layers import (
    _cbc_decrypt,
    _cbc_encrypt,
    _frame,
    _hmac_sha256,
    _hmac_sha256_verify,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "wycheproof"


def _cases(name: str) -> list[Any]:
    data = json.loads((VECTORS / name).read_text())
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}-{test['result']}")
        for group in data["testGroups"]
        for test in group["tests"]
    ]


AES_CASES = _cases("aes_cbc_pkcs5_test.json")
HMAC_CASES = _cases("hmac_sha256_test.json")


def test_vector_files_are_complete() -> None:
    assert len(AES_CASES) == 216
    assert len(HMAC_CASES) == 174


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize(("group", "test"), AES_CASES)
def test_wycheproof_aes_cbc_pkcs5(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, iv = bytes.fromhex(test["key"]), bytes.fromhex(test["iv"])
    msg, ct = bytes.fromhex(test["msg"]), bytes.fromhex(test["ct"])
    assert len(key) * 8 == group["keySize"]
    if test["result"] == "valid":
        assert _cbc_encrypt(key, iv, msg) == ct
        assert _cbc_decrypt(key, iv, ct) == msg
    else:
        with pytest.raises(InvalidCiphertextError) as info:
            _cbc_decrypt(key, iv, ct)
        assert info.value.reason in {"padding", "malformed"}


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize(("group", "test"), HMAC_CASES)
def test_wycheproof_hmac_sha256(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, msg, tag = (bytes.fromhex(test[k]) for k in ("key", "msg", "tag"))
    assert len(tag) * 8 == group["tagSize"]
    valid = test["result"] == "valid"
    computed = _hmac_sha256(key, msg)
    assert len(computed) == 32
    assert constant_time_equal(computed[: len(tag)], tag) is valid
    if len(tag) == 32 and valid:
        _hmac_sha256_verify(key, msg, tag)  # does not raise
    else:  # a wrong tag, or a truncated one (never accepted by the vault)
        with pytest.raises(InvalidCiphertextError) as info:
            _hmac_sha256_verify(key, msg, tag)
        assert info.value.reason == "mac"


def test_frame_prefixes_every_field_with_its_length() -> None:
    assert _frame(b"ab", b"") == b"\x00" * 7 + b"\x02ab" + b"\x00" * 8
    # Moving a byte from one field to the next changes the frame.
    assert _frame(b"ab", b"c") != _frame(b"a", b"bc")
    assert _frame(b"abc") != _frame(b"ab", b"c")


def test_cbc_decrypt_refuses_partial_blocks() -> None:
    with pytest.raises(InvalidCiphertextError) as info:
        _cbc_decrypt(b"k" * 32, b"i" * 16, b"x" * 17)
    assert info.value.reason == "malformed"
