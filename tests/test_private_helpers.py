"""The private helpers the capabilities share: strict base64url and JSON, RFC 7638 thumbprints,
policy validators; and the house rule that capabilities share nothing else."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import string
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

import storno_security
from storno_security._encoding import b64url_decode, b64url_encode, b64url_uint, json_object
from storno_security._jwk import jwk_thumbprint, thumbprint_members
from storno_security._jws import (
    JWS_HEADER_MEMBERS,
    compact_parts,
    numeric_date,
    numeric_date_in_range,
    restricted_header,
    segment_bytes,
    segment_json,
)
from storno_security._memo import IdentityMemo
from storno_security._pem import load_private_pem, load_public_pem, private_pem, public_pem
from storno_security._validators import (
    between,
    int_between,
    non_empty_str,
    non_empty_tuple_of,
)
from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidIdTokenError,
    InvalidKeyError,
    InvalidLicenseError,
    LicenseKeyError,
    StornoSecurityError,
)
from storno_security.license.keys import _thumbprint as license_thumbprint
from storno_security.tokens import rfc7638_thumbprint

URLSAFE = string.ascii_letters + string.digits + "-_"


def _reference_decode(text: str) -> bytes:
    """The permissive standard-library decoding, to compare the strict one with."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- base64url -------------------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text
    assert set(text) <= set(URLSAFE)
    assert b64url_decode(text) == data


@given(st.text(alphabet=URLSAFE, max_size=64))
def test_b64url_accepts_exactly_the_canonical_spellings(text: str) -> None:
    canonical = len(text) % 4 != 1 and b64url_encode(_reference_decode(text)) == text
    if canonical:
        assert b64url_decode(text) == _reference_decode(text)
    else:
        with pytest.raises(ValueError, match=r"^base64url "):
            b64url_decode(text)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=3))
def test_b64url_refuses_set_unused_bits(data: bytes, low_bits: int) -> None:
    text = b64url_encode(data)
    if len(text) % 4 == 0:
        return  # no unused bits
    unused = 4 if len(text) % 4 == 2 else 2
    index = URLSAFE.index(text[-1]) | (low_bits & ((1 << unused) - 1))
    altered = text[:-1] + URLSAFE[index]
    if altered == text:
        return
    assert _reference_decode(altered) == data  # the permissive decoder reads the same bytes
    with pytest.raises(ValueError, match=r"^base64url not canonical$"):
        b64url_decode(altered)


@pytest.mark.parametrize(
    "text",
    [
        "AA==",  # padding
        "AAA=",
        "AA=",
        "=AAA",
        "A",  # 1 modulo 4
        "AAAAA",
        "AB",  # unused low bits set
        "AAB",
        "+/8",  # the standard alphabet
        "ab+c",
        "ab/c",
        "AA AA",  # whitespace
        "AAAA\n",
        "\tAAAA",
        "AA.A",
        "AAé",  # non-ASCII
        "\uff21\uff21\uff21\uff21",  # full-width letters
        "AA\x00A",
    ],
)
def test_b64url_rejections(text: str) -> None:
    with pytest.raises(ValueError, match=r"^base64url "):
        b64url_decode(text)


@given(st.binary(max_size=64))
def test_b64url_refuses_what_the_permissive_decoder_takes(data: bytes) -> None:
    padded = base64.urlsafe_b64encode(data).decode("ascii")
    standard = base64.b64encode(data).decode("ascii")
    for variant in {padded, standard, " " + padded.rstrip("=")}:
        if variant == b64url_encode(data):
            continue
        with pytest.raises(ValueError, match=r"^base64url "):
            b64url_decode(variant)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "AA"), (1, "AQ"), (255, "_w"), (256, "AQA"), (65537, "AQAB")],
)
def test_b64url_uint(value: int, expected: str) -> None:
    assert b64url_uint(value) == expected


@given(st.integers(min_value=0, max_value=2**4096))
def test_b64url_uint_is_the_shortest_big_endian(value: int) -> None:
    raw = b64url_decode(b64url_uint(value))
    assert int.from_bytes(raw, "big") == value
    assert len(raw) == max(1, (value.bit_length() + 7) // 8)


def test_b64url_uint_refuses_negatives() -> None:
    with pytest.raises(OverflowError):
        b64url_uint(-1)


# --- JSON objects ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_json_object_round_trip(value: dict[str, Any]) -> None:
    for ascii_only in (True, False):
        raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
        assert json_object(raw) == value


@given(
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6),
    st.sampled_from(["", " ", "\n", "\t", " \r\n "]),
    st.sampled_from(["", " ", "\n", "\t", " \r\n "]),
    st.sampled_from(["", "x", "{}", "1", "]", "\u00a0"]),
)
def test_json_object_takes_white_space_around_and_nothing_else(
    value: dict[str, Any], before: str, after: str, junk: str
) -> None:
    # JSON's own white space around the object is allowed, as json.loads allows it; anything
    # after the object (even after white space) is refused, as is a non-JSON space.
    text = before + json.dumps(value) + after
    assert json_object(text.encode("utf-8")) == value == json.loads(text)
    if junk:
        with pytest.raises(ValueError, match="not a JSON object"):
            json_object((text + junk).encode("utf-8"))
        with pytest.raises(ValueError, match="not a JSON object"):
            json_object((junk + text).encode("utf-8"))


@given(st.text(max_size=8), JSON_VALUES, JSON_VALUES)
def test_json_object_refuses_duplicate_members(name: str, first: Any, second: Any) -> None:
    member = json.dumps(name)
    top = f"{{{member}: {json.dumps(first)}, {member}: {json.dumps(second)}}}"
    nested = f'{{"outer": [1, {top}]}}'
    for text in (top, nested):
        with pytest.raises(ValueError, match="duplicate member"):
            json_object(text.encode("utf-8"))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 1}',
        b'{"a": {"b": 1, "b": 2}}',
        b'{"\\u0061": 1, "a": 2}',  # the same name spelt with an escape
        b"[]",
        b'"text"',
        b"1",
        b"null",
        b"",
        b"{",
        b'{"a": 1} {"b": 2}',
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32-le"),
        b'{"a": "\xff"}',  # not UTF-8
        b'{"a": NaN}'.replace(b"NaN", b"nan"),
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the interpreter recurses
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
)
def test_json_object_rejections(raw: bytes) -> None:
    with pytest.raises(ValueError, match="JSON"):
        json_object(raw)


# --- compact JWS ----------------------------------------------------------------------------

TOKEN_ERRORS = pytest.mark.parametrize(
    "error", [InvalidAccessTokenError, InvalidIdTokenError, InvalidLicenseError]
)


def _segment(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode("utf-8"))


@TOKEN_ERRORS
def test_compact_parts(error: type[StornoSecurityError]) -> None:
    assert compact_parts("a.b.c", max_bytes=5, error=error) == ("a", "b", "c")
    with pytest.raises(TypeError, match="token must be str"):
        compact_parts(b"a.b.c", max_bytes=100, error=error)


@TOKEN_ERRORS
@pytest.mark.parametrize(
    "token", ["a.b.c.", "a.b.cd", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "", "a.b.\u00e9"]
)
def test_compact_parts_rejections(error: type[StornoSecurityError], token: str) -> None:
    with pytest.raises(error) as caught:
        compact_parts(token, max_bytes=5, error=error)
    assert caught.value.reason == "malformed"


@TOKEN_ERRORS
@given(
    header=st.fixed_dictionaries(
        {}, optional={name: st.text(max_size=8) for name in sorted(JWS_HEADER_MEMBERS)}
    ),
    extra=st.text(min_size=1, max_size=8).filter(lambda name: name not in JWS_HEADER_MEMBERS),
)
def test_restricted_header_takes_only_alg_kid_typ(
    error: type[StornoSecurityError], header: dict[str, str], extra: str
) -> None:
    assert restricted_header(_segment(header), error) == header
    with pytest.raises(error) as caught:
        restricted_header(_segment({**header, extra: "x"}), error)
    assert caught.value.reason == "header"


@TOKEN_ERRORS
@pytest.mark.parametrize(
    "segment",
    [
        _segment({"alg": "RS256"}) + "=",
        b64url_encode(b'{"alg": "RS256", "alg": "none"}'),
        _segment(["alg"]),
        "e30",  # "{}" is e30 canonically; the next two read the same bytes
        "e31",
    ],
)
def test_segment_rejections(error: type[StornoSecurityError], segment: str) -> None:
    if segment == "e30":
        assert segment_json(segment, error) == {}
        return
    with pytest.raises(error) as caught:
        segment_json(segment, error)
    assert caught.value.reason == "malformed"
    with pytest.raises(error):
        restricted_header(segment, error)


@TOKEN_ERRORS
def test_segment_bytes(error: type[StornoSecurityError]) -> None:
    assert segment_bytes("AQID", error) == b"\x01\x02\x03"
    for bad in ("AQI=", "AQJ", "AQ+D", "A"):
        with pytest.raises(error) as caught:
            segment_bytes(bad, error)
        assert caught.value.reason == "malformed"


# --- RFC 7638 thumbprints --------------------------------------------------------------------

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
    "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0"
    "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
# RFC 8037 appendix A.2 and A.3: the example Ed25519 public key and its thumbprint.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc7638_rsa_vector() -> None:
    n = int.from_bytes(b64url_decode(RFC7638_N), "big")
    key = rsa.RSAPublicNumbers(e=65537, n=n).public_key()
    assert thumbprint_members(key) == {"e": "AQAB", "kty": "RSA", "n": RFC7638_N}
    assert jwk_thumbprint(key) == RFC7638_THUMBPRINT
    assert rfc7638_thumbprint(key) == RFC7638_THUMBPRINT  # the public name in tokens
    assert license_thumbprint(key) == RFC7638_THUMBPRINT


def test_rfc8037_ed25519_vector() -> None:
    key = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(RFC8037_X))
    assert thumbprint_members(key) == {"crv": "Ed25519", "kty": "OKP", "x": RFC8037_X}
    assert jwk_thumbprint(key) == RFC8037_THUMBPRINT
    assert license_thumbprint(key) == RFC8037_THUMBPRINT


def _by_hand(members: dict[str, str]) -> str:
    canonical = "{" + ",".join(f'"{k}":"{members[k]}"' for k in sorted(members)) + "}"
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_thumbprint_agrees_with_pyjwt_jwk(curve: ec.EllipticCurve) -> None:
    for _ in range(8):  # some coordinates have leading zero bytes: they are kept
        key = ec.generate_private_key(curve).public_key()
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
        members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
        assert thumbprint_members(key) == members
        assert jwk_thumbprint(key) == _by_hand(members)


def test_okp_thumbprints() -> None:
    for key, crv in (
        (ed25519.Ed25519PrivateKey.generate().public_key(), "Ed25519"),
        (ed448.Ed448PrivateKey.generate().public_key(), "Ed448"),
        (x25519.X25519PrivateKey.generate().public_key(), "X25519"),
    ):
        members = thumbprint_members(key)
        assert members["crv"] == crv
        assert members["kty"] == "OKP"
        assert jwk_thumbprint(key) == _by_hand(members)


def test_thumbprint_differs_per_key() -> None:
    keys = [ed25519.Ed25519PrivateKey.generate().public_key() for _ in range(4)]
    assert len({jwk_thumbprint(key) for key in keys}) == 4


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()).public_key(), id="secp256k1"),
        pytest.param(lambda: dsa.generate_private_key(2048).public_key(), id="dsa"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa-private"),
        pytest.param(lambda: b"not a key", id="bytes"),
    ],
)
def test_thumbprint_refuses_other_keys(key: Any) -> None:
    with pytest.raises(TypeError):
        jwk_thumbprint(key())


# --- PEM ------------------------------------------------------------------------------------

KEY_ERRORS = pytest.mark.parametrize("error", [InvalidKeyError, LicenseKeyError])


@KEY_ERRORS
@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_pem_round_trip(error: type[StornoSecurityError], password: bytes | None) -> None:
    for private in (
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(65537, 2048),
    ):
        text = private_pem(private, password=password)
        assert text.startswith(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----" if password else b"-----BEGIN PRIVATE KEY-----"
        )
        loaded = load_private_pem(text.decode("ascii"), password=password, error=error)
        assert jwk_thumbprint(loaded.public_key()) == jwk_thumbprint(private.public_key())
        public = public_pem(private.public_key())
        assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
        again = load_public_pem(public, error=error)
        assert jwk_thumbprint(again) == jwk_thumbprint(private.public_key())


@KEY_ERRORS
def test_pem_rejections(error: type[StornoSecurityError]) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    locked = private_pem(private, password=b"right")
    cases: list[tuple[Any, bytes | None, str]] = [
        (locked, b"wrong", "malformed"),
        (locked, None, "malformed"),
        (private_pem(private), b"unexpected", "malformed"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None, "malformed"),
        ("not a pem \u00e9", None, "malformed"),
        (12345, None, "wrong_type"),
    ]
    for pem, password, reason in cases:
        with pytest.raises(error) as caught:
            load_private_pem(pem, password=password, error=error)
        assert caught.value.reason == reason
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None or caught.value.__suppress_context__
    public_cases: list[tuple[Any, str]] = [(locked, "malformed"), (None, "wrong_type")]
    for pem, reason in public_cases:
        with pytest.raises(error) as caught:
            load_public_pem(pem, error=error)
        assert caught.value.reason == reason


# --- policy validators -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Policy:
    lifetime: timedelta = attrs.field(
        default=timedelta(minutes=1), validator=between(timedelta(seconds=1), timedelta(hours=1))
    )
    count: int = attrs.field(default=5, validator=int_between(1, 10))
    size: int = attrs.field(default=512, validator=int_between(512, 1024, wrong_type=ValueError))
    name: str = attrs.field(default="x", validator=non_empty_str)
    algorithms: tuple[str, ...] = attrs.field(
        default=("RS256",), validator=non_empty_tuple_of(frozenset({"RS256", "PS256"}))
    )


@given(st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)))
def test_between_keeps_the_bounds(value: timedelta) -> None:
    if timedelta(seconds=1) <= value <= timedelta(hours=1):
        assert _Policy(lifetime=value).lifetime == value
    else:
        with pytest.raises(ValueError, match="lifetime must be between 0:00:01 and 1:00:00"):
            _Policy(lifetime=value)


@pytest.mark.parametrize("value", [60, 60.0, "1 minute", None])
def test_between_wants_a_timedelta(value: object) -> None:
    with pytest.raises(TypeError, match="lifetime must be a timedelta"):
        _Policy(lifetime=value)  # type: ignore[arg-type]


@given(st.integers(min_value=-100, max_value=2000))
def test_int_between_keeps_the_bounds(value: int) -> None:
    if 1 <= value <= 10:
        assert _Policy(count=value).count == value
    else:
        with pytest.raises(ValueError, match="count must be an int between 1 and 10"):
            _Policy(count=value)
    if 512 <= value <= 1024:
        assert _Policy(size=value).size == value
    else:
        with pytest.raises(ValueError, match="size must be an int between 512 and 1024"):
            _Policy(size=value)


@pytest.mark.parametrize("value", [True, False, 5.0, "5", None])
def test_int_between_refuses_bools_and_non_ints(value: object) -> None:
    with pytest.raises(TypeError, match="count must be an int"):
        _Policy(count=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size must be an int"):
        _Policy(size=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", " ", "\t\n", None, 1, b"name"])
def test_non_empty_str(value: object) -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        _Policy(name=value)  # type: ignore[arg-type]
    assert _Policy(name=" a ").name == " a "


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((), "algorithms must be a non-empty tuple"),
        (["RS256"], "algorithms must be a non-empty tuple"),
        ("RS256", "algorithms must be a non-empty tuple"),
        (
            ("RS256", "none"),
            r"algorithms not allowed: \['none'\]; choose from \['PS256', 'RS256'\]",
        ),
        (("HS256",), "algorithms not allowed"),
    ],
)
def test_non_empty_tuple_of(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _Policy(algorithms=value)  # type: ignore[arg-type]
    assert _Policy(algorithms=("PS256", "RS256")).algorithms == ("PS256", "RS256")


def test_rsa_allow_lists_are_the_shared_one() -> None:
    from storno_security._jws import RSA_ALGORITHMS
    from storno_security.oidc.policy import RSA_ALGORITHMS as OIDC_RSA
    from storno_security.tokens.policy import RSA_ALGORITHMS as TOKENS_RSA

    assert TOKENS_RSA is RSA_ALGORITHMS
    assert OIDC_RSA is RSA_ALGORITHMS
    assert {"RS256", "PS256"} <= RSA_ALGORITHMS
    assert not any(alg.startswith(("HS", "ES", "Ed", "none")) for alg in RSA_ALGORITHMS)


# --- the house rule --------------------------------------------------------------------------

PACKAGE = Path(storno_security.__file__).parent
#: The layers above the capabilities: the kit composes them, the stores and the async path
#: implement their protocols, the integrations adapt the kit to frameworks.
LAYERS = frozenset({"stores", "kit", "aio", "integrations"})
CAPABILITIES = frozenset(
    path.name
    for path in PACKAGE.iterdir()
    if path.is_dir() and (path / "__init__.py").exists() and path.name not in LAYERS
)
SHARED_PRIVATE = frozenset(path.stem for path in PACKAGE.glob("_*.py") if path.stem != "__init__")
# What a capability may import from another part of the library: the errors, the clock, the
# shared event record, and the shared private helpers (bcrypt included). The import-linter
# contracts (tests/test_architecture.py) check the same on the real import graph.
ALLOWED = frozenset({"errors", "clock", "events"}) | SHARED_PRIVATE


def _imported_parts(path: Path) -> list[str]:
    """The first component below ``storno_security`` of every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "storno_security" and len(parts) > 1:
                found.append(parts[1])
    return found


def test_shared_private_modules_exist() -> None:
    assert {"_compare", "_encoding", "_jwk", "_jws", "_pem", "_validators"} <= SHARED_PRIVATE
    assert {"tokens", "license", "oidc", "vault", "mfa", "passkeys", "xmlsig"} <= CAPABILITIES


def test_capabilities_import_each_other_only_through_the_shared_modules() -> None:
    offences = []
    for capability in sorted(CAPABILITIES):
        for path in sorted((PACKAGE / capability).rglob("*.py")):
            for part in _imported_parts(path):
                if part != capability and part not in ALLOWED:
                    offences.append(f"{path.relative_to(PACKAGE)} imports {part}")
    assert offences == []


def test_shared_private_modules_import_no_capability() -> None:
    for name in sorted(SHARED_PRIVATE):
        path = PACKAGE / f"{name}.py"
        for part in _imported_parts(path):
            assert part in SHARED_PRIVATE | {"errors", "clock"}, f"{path.name} imports {part}"


def test_no_capability_keeps_its_own_base64url_or_json_parser() -> None:
    """The strict decoders live in ``_encoding`` only: no copy drifts from the checked one."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE or path.parts[-3:-1] == ("storno_security", "stores"):
            continue
        text = path.read_text()
        assert "object_pairs_hook" not in text, path
        if path.relative_to(PACKAGE).as_posix() != "vault/keys.py":  # any base64 of a master key
            assert "strict_mode=True" not in text, path
        assert "urlsafe_b64encode" not in text, path


# --- exact edges (each kills a mutant that the tests above let live) --------------------------


@pytest.mark.parametrize("text", ["A", "AAAAA", "AAAAAAAAA"])
def test_a_base64url_length_of_one_modulo_four_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="base64url length"):
        b64url_decode(text)


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        (-62_135_596_800, True),  # 0001-01-01T00:00:00Z
        (-62_135_596_801, False),
        (253_402_300_799, True),  # 9999-12-31T23:59:59Z
        (253_402_300_800, False),
    ],
)
def test_numeric_dates_end_exactly_at_the_calendar(value: int, inside: bool) -> None:
    assert numeric_date_in_range(value) is inside
    assert (numeric_date(value) is not None) is inside


def test_compact_parts_takes_exactly_max_bytes_and_no_more() -> None:
    class Refused(storno_security.errors.StornoSecurityError):
        pass

    token = "a." + "b" * 6 + ".c"  # 10 bytes
    assert compact_parts(token, max_bytes=10, error=Refused) == ("a", "bbbbbb", "c")
    with pytest.raises(Refused):
        compact_parts(token, max_bytes=9, error=Refused)
    with pytest.raises(TypeError, match="token must be str"):
        compact_parts(token.encode(), max_bytes=10, error=Refused)


def test_padding_inside_base64url_is_refused_not_skipped() -> None:
    # a lenient decoder stops at the padding and reads "AAAA====AAAA" as "AAAA"
    with pytest.raises(ValueError, match="base64url alphabet"):
        b64url_decode("AAAA====AAAA")


# --- the identity memo -----------------------------------------------------------------------


@attrs.frozen
class _Record:
    value: int


def test_an_identity_memo_answers_for_the_very_object_only() -> None:
    memo: IdentityMemo[_Record, str] = IdentityMemo()
    kept = _Record(1)
    memo.keep(kept, "one")
    assert memo.get(kept) == "one"
    assert memo.get(_Record(1)) is None  # equal, but another object: another state
    memo.keep(kept, "named", extra="org")
    assert memo.get(kept, "org") == "named"
    assert memo.get(kept) == "one"
    assert memo.get(kept, "other") is None


def test_an_identity_memo_holds_its_sources_so_no_id_is_reused_while_kept() -> None:
    memo: IdentityMemo[_Record, int] = IdentityMemo()
    for n in range(100):
        memo.keep(_Record(n), n)  # nothing else holds these records
    assert len(memo) == 100
    for key, (source, value) in list(memo._kept.items()):
        assert key[0] == id(source)
        assert memo.get(source) == value == source.value


def test_an_identity_memo_is_bounded_and_drops_its_oldest_sixteenth() -> None:
    memo: IdentityMemo[_Record, int] = IdentityMemo(size=64)
    records = [_Record(n) for n in range(64)]
    for record in records:
        memo.keep(record, record.value)
    assert len(memo) == 64
    newest = _Record(64)
    memo.keep(newest, 64)
    assert len(memo) == 64 - 4 + 1
    assert [memo.get(r) for r in records[:4]] == [None] * 4
    assert memo.get(records[4]) == 4
    assert memo.get(newest) == 64


@pytest.mark.parametrize("size", [0, 15, -1])
def test_an_identity_memo_refuses_a_size_below_16(size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        IdentityMemo(size=size)
