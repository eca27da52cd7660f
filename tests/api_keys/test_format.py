"""KEY-1 and KEY-2: the key format, its checksum, legacy keys and the stored hash."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import string
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.api_keys import (
    API_KEY_PREFIX,
    KEY_LENGTH,
    LEGACY_KEY_LENGTH,
    SECRET_LENGTH,
    generate_api_key,
    hash_api_key,
    is_legacy_key_id,
    legacy_key_id,
    parse_api_key,
)
from storno_security.errors import InvalidApiKeyError

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SHAPE = re.compile(r"af_[0-9A-Za-z]{12}_[0-9A-Za-z]{43}[0-9A-Za-z]{6}")


def reference_checksum(body: str) -> str:
    """CRC-32 of the body as 6 base62 digits, written independently of the library."""
    value = zlib.crc32(body.encode())
    digits = ""
    for _ in range(6):
        value, rest = divmod(value, 62)
        digits = BASE62[rest] + digits
    return digits


def build_key(key_id: str, secret: str) -> str:
    body = f"af_{key_id}_{secret}"
    return body + reference_checksum(body)


base62_text = st.text(alphabet=BASE62, min_size=1, max_size=1)
key_ids = st.text(alphabet=BASE62, min_size=12, max_size=12)
secrets_ = st.text(alphabet=BASE62, min_size=43, max_size=43)


@pytest.mark.spec("KEY-1")
def test_generated_key_has_the_documented_shape() -> None:
    seen = set()
    for _ in range(200):
        generated = generate_api_key()
        key = generated.key
        assert key.startswith(API_KEY_PREFIX)
        assert len(key) == KEY_LENGTH == 65
        assert SHAPE.fullmatch(key), key
        assert key[3:15] == generated.key_id
        assert key[-6:] == reference_checksum(key[:-6])
        seen.add(key)
    assert len(seen) == 200


@pytest.mark.spec("KEY-1")
def test_secret_has_at_least_256_bits() -> None:
    assert SECRET_LENGTH * math.log2(62) >= 256
    # the characters are spread over the whole alphabet (a coarse check that the secret is not,
    # say, hex): 200 secrets of 43 characters use almost every one of the 62 characters
    used = {c for _ in range(200) for c in generate_api_key().key[16:59]}
    assert len(used) >= 60


@pytest.mark.spec("KEY-1")
def test_checksum_matches_an_independent_crc32() -> None:
    key = build_key("A" * 12, "b" * 43)
    parsed = parse_api_key(key)
    assert parsed.key_id == "A" * 12
    assert not parsed.legacy


@pytest.mark.spec("KEY-2")
def test_stored_form_is_sha256_of_the_whole_key() -> None:
    generated = generate_api_key()
    expected = hashlib.sha256(generated.key.encode()).hexdigest()
    assert generated.key_hash == expected
    assert hash_api_key(generated.key) == expected
    assert parse_api_key(generated.key).key_hash == expected
    assert generated.key not in repr(generated)
    assert generated.key_hash not in repr(generated)


@pytest.mark.spec("KEY-1")
@given(key_id=key_ids, secret=secrets_)
def test_round_trip(key_id: str, secret: str) -> None:
    key = build_key(key_id, secret)
    parsed = parse_api_key(key)
    assert parsed.key_id == key_id
    assert parsed.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert not parsed.legacy


@pytest.mark.spec("KEY-1")
def test_generate_parse_round_trip() -> None:
    for _ in range(100):
        generated = generate_api_key()
        parsed = parse_api_key(generated.key)
        assert (parsed.key_id, parsed.key_hash) == (generated.key_id, generated.key_hash)


@pytest.mark.spec("KEY-1")
def test_every_single_character_substitution_is_caught_by_the_checksum() -> None:
    """Exhaustive over one key: each position, each other base62 character."""
    key = generate_api_key().key
    for position in range(len(key)):
        for char in BASE62 + "_-+/= .":
            if char == key[position]:
                continue
            changed = key[:position] + char + key[position + 1 :]
            with pytest.raises(InvalidApiKeyError) as info:
                parse_api_key(changed)
            assert info.value.reason == "malformed"


@pytest.mark.spec("KEY-1")
@settings(max_examples=300)
@given(data=st.data(), key_id=key_ids, secret=secrets_)
def test_any_single_character_change_is_refused_before_lookup(
    data: st.DataObject, key_id: str, secret: str
) -> None:
    key = build_key(key_id, secret)
    position = data.draw(st.integers(0, len(key) - 1))
    kind = data.draw(st.sampled_from(["substitute", "insert", "delete"]))
    char = data.draw(st.characters(codec="utf-8"))
    if kind == "substitute":
        if char == key[position]:
            return
        changed = key[:position] + char + key[position + 1 :]
    elif kind == "insert":
        changed = key[:position] + char + key[position:]
    else:
        changed = key[:position] + key[position + 1 :]
    with pytest.raises(InvalidApiKeyError) as info:
        parse_api_key(changed)
    assert info.value.reason == "malformed"


@pytest.mark.spec("KEY-1")
def test_legacy_key_parses_to_its_hash_and_derived_id() -> None:
    key = "af_" + secrets.token_hex(32)
    assert len(key) == LEGACY_KEY_LENGTH
    parsed = parse_api_key(key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert parsed.legacy
    assert parsed.key_hash == digest
    assert parsed.key_id == legacy_key_id(digest) == "legacy-" + digest[:24]
    assert is_legacy_key_id(parsed.key_id)
    assert not is_legacy_key_id(generate_api_key().key_id)


@pytest.mark.spec("KEY-1")
def test_legacy_keys_can_be_refused() -> None:
    key = "af_" + secrets.token_hex(32)
    with pytest.raises(InvalidApiKeyError) as info:
        parse_api_key(key, accept_legacy=False)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "af_",
        "Bearer af_" + "0" * 64,
        "af_" + "0" * 63,
        "af_" + "0" * 65,
        "af_" + "A" * 64,  # upper-case hex: the older platform wrote lower case
        "af_" + "g" * 64,
        "AF_" + "0" * 64,
        "af-" + "0" * 64,
        "af_" + "0" * 63 + "\u0660",  # an Arabic-Indic zero: a digit, but not ASCII
        "x" * 100_000,
        " " + generate_api_key().key,
        generate_api_key().key + "\n",
        generate_api_key().key.replace("_", "-"),
    ],
)
def test_malformed_keys_are_refused(presented: str) -> None:
    with pytest.raises(InvalidApiKeyError) as info:
        parse_api_key(presented)
    assert info.value.reason == "malformed"
    assert str(info.value) == "invalid API key"


@pytest.mark.parametrize("presented", [None, b"af_" + b"0" * 64, 42, ["af_"]])
def test_non_strings_are_malformed(presented: object) -> None:
    with pytest.raises(InvalidApiKeyError):
        parse_api_key(presented)  # type: ignore[arg-type]


def test_legacy_key_id_refuses_a_malformed_hash() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        legacy_key_id("ABC")
    with pytest.raises(ValueError, match="SHA-256"):
        legacy_key_id("A" * 64)


def test_hash_api_key_refuses_non_strings() -> None:
    with pytest.raises(TypeError):
        hash_api_key(b"af_")  # type: ignore[arg-type]


def test_the_generator_takes_the_largest_draws_and_refuses_any_beyond() -> None:
    from storno_security.api_keys.format import _ID_SPACE, _SECRET_SPACE, _generate_api_key

    largest = _generate_api_key(randbelow=lambda bound: bound - 1)
    assert parse_api_key(largest.key).key_id == largest.key_id
    assert set(largest.key_id) == {"z"}  # the last base62 digit, at every position
    draws = iter([0, 1 << 2000])  # an id in range, then a secret out of it
    with pytest.raises(ValueError, match="out of range"):
        _generate_api_key(randbelow=lambda bound: next(draws))
    with pytest.raises(ValueError, match="out of range"):
        _generate_api_key(randbelow=lambda bound: bound)
    # each draw is checked on its own: the id at its bound, then the secret at its bound
    for draws in ([_ID_SPACE, 0], [0, _SECRET_SPACE]):
        values = iter(draws)
        with pytest.raises(ValueError, match="out of range"):
            _generate_api_key(randbelow=lambda bound, values=values: next(values))


@given(st.data(), st.integers(min_value=1, max_value=50))
def test_base62_writes_every_value_in_width_digits(data: st.DataObject, width: int) -> None:
    # Each digit's place value, read back by hand: two digits at a time, an odd width's top
    # digit alone, and leading zeros kept.
    from storno_security.api_keys.format import _base62

    value = data.draw(st.integers(min_value=0, max_value=62**width - 1))
    text = _base62(value, width)
    assert len(text) == width
    assert sum(BASE62.index(c) * 62**i for i, c in enumerate(reversed(text))) == value
