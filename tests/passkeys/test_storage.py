"""The storage helpers of passkeys: the fixed-length key a store indexes a credential by."""

from __future__ import annotations

import hashlib

import pytest

from storno_security.passkeys.storage import credential_key


def test_a_credential_is_keyed_by_the_sha256_of_its_id() -> None:
    credential_id = bytes(range(200))  # longer than any index column: the key stays 64 chars
    assert credential_key(credential_id) == hashlib.sha256(credential_id).hexdigest()
    assert len(credential_key(credential_id)) == 64


def test_a_credential_id_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(TypeError, match="credential_id must be bytes, not str"):
        credential_key("Y3JlZGVudGlhbA")  # type: ignore[arg-type]
