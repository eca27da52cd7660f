"""Issue 14: dates at the edges of the calendar in signed data never escape as ``OverflowError`` or
``ValueError``. The XAdES ``SigningTime`` is read by a strict ASCII ``xsd:dateTime`` parser, and
certificate validity windows from year 0001 to 9999 end in a result or the opaque
:class:`InvalidXmlSignatureError`. Every regex of the package is ASCII-only."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import storno_security.xmlsig
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError
from storno_security.xmlsig import XmlSigner, XmlVerifier, parsing, policy, schemas, signing
from storno_security.xmlsig.signing import _xsd_datetime
from tests.xmlsig.conftest import NOW, Identity, _name

PACKAGE = Path(storno_security.xmlsig.__file__).parent

# --- the SigningTime parser --------------------------------------------------------------------

#: Digits that are digits to ``str.isdigit``/``\d`` but not ASCII: Arabic-Indic, fullwidth,
#: Devanagari, superscript two.
NON_ASCII_DIGITS = "\u0660\u0661\u0669\uff10\uff19\u0966\u00b2"

EDGE_TEXTS = [
    "0001-01-01T00:00:00+01:00",  # before 0001-01-01 in UTC: OverflowError in astimezone
    "9999-12-31T23:59:59-01:00",  # after 9999-12-31 in UTC
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00-14:00",
    "0000-01-01T00:00:00Z",  # year 0
    "-0001-01-01T00:00:00Z",  # xsd allows negative years; datetime does not
    "10000-01-01T00:00:00Z",  # and years over 9999
    "2026-03-01T24:00:00Z",  # xsd end of day
    "2016-12-31T23:59:60Z",  # a leap second
    "2026-02-29T12:00:00Z",
    "2026-13-01T12:00:00Z",
    "2026-03-01T12:00:00+14:01",
    "2026-03-01T12:00:00+24:00",
    "2026-03-01T12:00:00+23:59",
    "2026-03-01T12:00:00+00:60",
    "2026-03-01T12:00:00",  # no time zone
    "2026-03-01",
    "20260301T120000Z",  # ISO basic form: fromisoformat takes it, xsd does not
    "2026-03-01 12:00:00Z",
    "2026-03-01T12:00:00.Z",
    "2026-03-01T12:00:00.1234567890123Z",
    "\uff12\uff10\uff12\uff16-03-01T12:00:00Z",  # fullwidth digits
    "2026-03-01T12:00:00\u0660Z",
    "2026-03-01T12:00:00Z\u00a0",  # a non-XML space
    "",
]


@st.composite
def _near_xsd_datetimes(draw: st.DrawFn) -> str:
    """Text shaped like ``xsd:dateTime`` with every field drawn from around its edges."""

    def field(width: int, edges: list[int]) -> str:
        value = draw(st.one_of(st.sampled_from(edges), st.integers(0, 10**width - 1)))
        return str(value).zfill(width)

    year = draw(
        st.one_of(
            st.sampled_from(["0000", "0001", "9999", "1970", "-0001", "10000"]),
            st.integers(0, 9999).map(lambda y: str(y).zfill(4)),
        )
    )
    text = (
        f"{year}-{field(2, [0, 1, 2, 12, 13])}-{field(2, [0, 1, 28, 29, 30, 31, 32])}"
        f"T{field(2, [0, 23, 24])}:{field(2, [0, 59, 60])}:{field(2, [0, 59, 60, 61])}"
    )
    text += draw(st.sampled_from(["", ".0", ".999999", ".9999999", ".123456789012"]))
    text += draw(
        st.one_of(
            st.sampled_from(["Z", "+00:00", "-00:00", "+14:00", "-14:00", "+14:01", "+23:59"]),
            st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61)).map(
                lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}"
            ),
            st.just(""),
        )
    )
    if draw(st.booleans()):  # swap one ASCII digit for a non-ASCII one
        positions = [i for i, c in enumerate(text) if c.isdigit()]
        index = draw(st.sampled_from(positions))
        text = text[:index] + draw(st.sampled_from(NON_ASCII_DIGITS)) + text[index + 1 :]
    return text


def _expected(text: str) -> datetime | None:
    """An independent reading: what the text means, or ``None`` when it must be refused."""
    if not text.isascii():
        return None
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,12})?(Z|[+-]\d\d:\d\d)",
        text.strip(" \t\r\n"),
        re.ASCII,
    )
    if match is None:
        return None
    zone = match[8]
    offset = (
        0 if zone == "Z" else (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[0] == "-" else 1)
    )
    if zone != "Z" and (int(zone[4:6]) > 59 or abs(offset) > 14 * 60):
        return None
    micro = int((match[7] or ".")[1:].ljust(6, "0")[:6])
    try:
        local = datetime(*(int(match[i]) for i in range(1, 7)), micro)  # type: ignore[misc]
    except ValueError:
        return None
    instant = local - timedelta(minutes=offset)  # may overflow: then it is not representable
    return instant.replace(tzinfo=UTC)


def _expected_or_none(text: str) -> datetime | None:
    try:
        return _expected(text)
    except OverflowError:
        return None


@pytest.mark.spec("XML-2")
@settings(max_examples=600, deadline=None)
@given(text=st.one_of(_near_xsd_datetimes(), st.sampled_from(EDGE_TEXTS), st.text(max_size=40)))
@example(text="0001-01-01T00:00:00+01:00")
@example(text="9999-12-31T23:59:59-01:00")
def test_signing_time_parser_returns_utc_or_refuses_opaquely(text: str) -> None:
    expected = _expected_or_none(text)
    if expected is None:
        with pytest.raises(InvalidXmlSignatureError) as caught:
            _xsd_datetime(text)
        assert caught.value.reason == "signing_time"
        return
    value = _xsd_datetime(text)
    assert value == expected, text
    assert value.tzinfo is UTC


@pytest.mark.spec("XML-2")
@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_signing_time_round_trips_every_representable_instant(
    moment: datetime, offset_minutes: int
) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.isoformat(timespec="microseconds")
    assert _xsd_datetime(text) == moment
    assert _xsd_datetime(text.replace("+00:00", "Z")) == moment


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_edge_signing_times_in_a_signed_xades_document(
    text: str, signer_identity: Identity, ubl_invoice: bytes
) -> None:
    # The SigningTime is signed, so each edge value gets a valid signature of its own.
    signer = XmlSigner(signer_identity.key, signer_identity.certificate, clock=_TextClock(text))
    signed = signer.sign_xades(ubl_invoice)
    assert f"SigningTime>{text}</".encode() in signed or not text
    verifier = XmlVerifier(expected_certificate=signer_identity.certificate, clock=FrozenClock(NOW))
    expected = _expected_or_none(text)
    if expected is None:
        with pytest.raises(InvalidXmlSignatureError) as caught:
            verifier.verify_xades(signed)
        # signxml's XAdES schema check refuses what is no xsd:dateTime at all; the rest, such
        # as a year-0001 time that is before 0001-01-01 in UTC, reaches our parser.
        assert caught.value.reason in {"signing_time", "malformed_signature"}
        if text in EDGE_TEXTS[:4] or text.startswith(("-0001", "10000", "2026-03-01T24")):
            assert caught.value.reason == "signing_time"
    else:
        assert verifier.verify_xades(signed).signing_time == expected


class _TextClock:
    """A clock whose ``now().isoformat()`` is any text: how a signer writes SigningTime."""

    def __init__(self, text: str) -> None:
        self._text = text

    def now(self) -> _TextClock:
        return self

    def isoformat(self, timespec: str = "auto") -> str:
        return self._text


# --- certificate validity at the edges --------------------------------------------------------


@pytest.fixture(scope="module")
def edge_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    ca: Identity, key: rsa.RSAPrivateKey, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Edge Signer"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )


_CERT_TIMES = st.one_of(
    st.sampled_from(
        [
            datetime(1950, 1, 1, tzinfo=UTC),
            datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime
            datetime(2050, 1, 1, tzinfo=UTC),  # the first GeneralizedTime
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            NOW,
        ]
    ),
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    ),
)
_CLOCK_TIMES = st.one_of(
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC),
            NOW,
        ]
    ),
    st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)),
)


@pytest.mark.spec("XML-2")
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(not_before=_CERT_TIMES, not_after=_CERT_TIMES, now=_CLOCK_TIMES)
@example(
    not_before=datetime(1950, 1, 1, tzinfo=UTC),
    not_after=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    now=NOW,
)
@example(
    not_before=datetime(1950, 1, 1, tzinfo=UTC),
    not_after=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    now=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)
@example(
    not_before=datetime(2050, 1, 1, tzinfo=UTC),
    not_after=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    now=datetime(1, 1, 1, tzinfo=UTC),
)
def test_certificate_validity_at_any_date_gives_a_result_or_the_opaque_error(
    not_before: datetime,
    not_after: datetime,
    now: datetime,
    ca: Identity,
    edge_key: rsa.RSAPrivateKey,
    ubl_invoice: bytes,
) -> None:
    assume(not_before < not_after)
    certificate = _certificate(ca, edge_key, not_before, not_after)
    signed = XmlSigner(edge_key, certificate, clock=FrozenClock(NOW)).sign_xades(ubl_invoice)
    clock = FrozenClock(now)
    ca_valid = ca.certificate.not_valid_before_utc <= now <= ca.certificate.not_valid_after_utc
    valid = not_before <= now <= not_after
    for verifier, should_pass in (
        (XmlVerifier(expected_certificate=certificate, clock=clock), valid),
        (XmlVerifier(trusted_cas=[ca.certificate], clock=clock), valid and ca_valid),
    ):
        try:
            result = verifier.verify_xades(signed)
        except InvalidXmlSignatureError:
            assert not should_pass or now in (not_before, not_after)
        else:
            assert should_pass or now in (not_before, not_after)
            assert result.certificate == certificate


def _with_not_before_year_one(ca: Identity, key: rsa.RSAPrivateKey) -> x509.Certificate:
    """A certificate valid from 0001-01-01 to 9999-12-31 (the builder stops at 1950): built for
    2050, its GeneralizedTime patched to year 1 (same length) and the TBS signed again."""
    built = _certificate(
        ca, key, datetime(2050, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    der = built.public_bytes(Encoding.DER)
    tbs = built.tbs_certificate_bytes
    patched_tbs = tbs.replace(b"20500101000000Z", b"00010101000000Z")
    assert patched_tbs != tbs
    signature = ca.key.sign(patched_tbs, padding.PKCS1v15(), hashes.SHA256())
    assert len(signature) == len(built.signature)
    patched = der.replace(tbs, patched_tbs).replace(built.signature, signature)
    return x509.load_der_x509_certificate(patched)


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize(
    "now",
    [datetime(1, 1, 1, tzinfo=UTC), NOW, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)],
    ids=["year-1", "now", "year-9999"],
)
def test_a_certificate_from_year_one_gives_a_result_or_the_opaque_error(
    now: datetime, ca: Identity, edge_key: rsa.RSAPrivateKey, ubl_invoice: bytes
) -> None:
    certificate = _with_not_before_year_one(ca, edge_key)
    assert certificate.not_valid_before_utc == datetime(1, 1, 1, tzinfo=UTC)
    signed = XmlSigner(edge_key, certificate, clock=FrozenClock(NOW)).sign_xades(ubl_invoice)
    clock = FrozenClock(now)
    pinned = XmlVerifier(expected_certificate=certificate, clock=clock)
    assert pinned.verify_xades(signed).certificate == certificate
    try:
        XmlVerifier(trusted_cas=[ca.certificate], clock=clock).verify_xades(signed)
    except InvalidXmlSignatureError:
        assert now != NOW  # the CA itself is valid only around NOW


# --- ASCII-only regexes ------------------------------------------------------------------------

_RE_CALLS = {
    "compile",
    "match",
    "fullmatch",
    "search",
    "findall",
    "finditer",
    "sub",
    "subn",
    "split",
}


def _regex_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "re"
        and node.func.attr in _RE_CALLS
    ]


def _is_ascii_flagged(call: ast.Call) -> bool:
    arguments = [*call.args[1:], *(keyword.value for keyword in call.keywords)]
    return any(
        "re.ASCII" in ast.unparse(argument) or ast.unparse(argument) == "re.A"
        for argument in arguments
    )


@pytest.mark.spec("XML-2")
def test_every_regex_in_the_xml_package_is_ascii_only() -> None:
    # \d, \w, \s and \b match non-ASCII digits, letters and spaces in str patterns; with
    # re.ASCII they do not. Every pattern here carries the flag, so no later edit can add a
    # \d that quietly takes "\uff12" for a 2.
    found = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _regex_calls(ast.parse(path.read_text())):
            found += 1
            assert _is_ascii_flagged(call), f"{path.name}:{call.lineno}"
    for module in (signing, parsing, schemas, policy):
        for value in vars(module).values():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                assert value.flags & re.ASCII, value.pattern
    assert found, "the SigningTime parser is a regex: the scan must see it"
