"""The kit's keys (ACC-4: the pseudonym key)."""

from __future__ import annotations

import attrs
import pytest

from tests.kit.conftest import kit_keys


@pytest.mark.spec("ACC-4")
def test_the_pseudonym_key_is_32_bytes_or_more() -> None:
    keys = kit_keys()
    assert attrs.evolve(keys, pseudonym=b"k" * 32).pseudonym == b"k" * 32
    with pytest.raises(ValueError, match="pseudonym must be at least 32 bytes"):
        attrs.evolve(keys, pseudonym=b"k" * 31)
    with pytest.raises(TypeError, match="pseudonym must be bytes"):
        attrs.evolve(keys, pseudonym="k" * 32)
    assert repr(keys.pseudonym) not in repr(keys)
