"""XMLDSig and XAdES-BES signing and verification on ``signxml`` (XML-2).

Signing: enveloped XMLDSig, RSA-SHA256, SHA-256 digests, exclusive C14N, the signer certificate
(and chain) in ``KeyInfo``; XAdES-BES through signxml's XAdES support, with the signing time from
the injected clock; a detached signature document over a separate file.

Verification pins trust: either one expected certificate, or a set of trusted CA certificates
through which the certificate in ``KeyInfo`` must chain. The algorithms come from this module's
allow-list, never from the document (SHA-1 is refused). It returns only what was signed
(signxml's ``signed_xml``), and it requires the data reference to cover the whole document (the
empty URI or the root's id): every other reference must point inside the ``ds:Signature``, so a
signed element moved elsewhere, a second element with the same id, or a reference to a fragment
are refused.

Before signxml spends any CPU, the located signature is checked for its shape: the number of
references (one for plain enveloped XMLDSig, ``XmlPolicy.max_references`` for XAdES and
detached), of transforms per reference and of certificates are capped. The key comes from a
certificate, never from the document: a ``KeyValue`` or ``DEREncodedKeyValue`` beside it (many
signers add one) is parsed here and must state exactly the public key of the pinned or
CA-validated certificate, or the signature is refused. With ``trusted_cas``, the reported
certificate is the leaf that chained to a trusted CA, every other certificate in the signature
must belong to that chain, and a XAdES ``SigningCertificate(V2)`` must name that leaf first.

Dates taken from the document (XAdES ``SigningTime``) are read by a strict, ASCII-only
``xsd:dateTime`` parser; one at the edge of the calendar is refused with the same opaque error.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import attrs
import cryptography.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, SignXMLException
from signxml.signer import XMLSigner
from signxml.util import X509CertChainVerifier
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from storno_security.clock import Clock
from storno_security.errors import InvalidXmlSignatureError, XmlParseError
from storno_security.xmlsig.parsing import hardened_parser, parse_xml
from storno_security.xmlsig.policy import XmlPolicy

__all__ = [
    "ACCEPTED_DIGEST_METHODS",
    "ACCEPTED_SIGNATURE_METHODS",
    "MIN_RSA_BITS",
    "VerifiedXml",
    "XmlSigner",
    "XmlVerifier",
]

#: The smallest RSA modulus a signer accepts.
MIN_RSA_BITS = 2048

_DS = "http://www.w3.org/2000/09/xmldsig#"
_DSIG11 = "http://www.w3.org/2009/xmldsig11#"
_XADES = "http://uri.etsi.org/01903/v1.3.2#"
_NS = {"ds": _DS}
_ID_ATTRIBUTES = ("Id", "ID", "id")
#: Most transforms one reference may list; each canonicalising one is a pass over the document.
_MAX_TRANSFORMS = 4
#: The only transforms a reference may list: the enveloped-signature transform and the
#: canonicalisations. Others (base64, XPath, XSLT) make what is signed differ from what the
#: document shows, or run code over it; no e-invoicing profile uses them.
_TRANSFORMS = frozenset(
    {f"{_DS}enveloped-signature", *(method.value for method in CanonicalizationMethod)}
)
_KEY_INFO = f"{{{_DS}}}KeyInfo"
_KEY_VALUE = f"{{{_DS}}}KeyValue"
_DER_KEY_VALUE = f"{{{_DSIG11}}}DEREncodedKeyValue"
#: Key statements beside the certificate: accepted only when they state the certificate's key.
_KEY_VALUE_TAGS = (_KEY_VALUE, _DER_KEY_VALUE)
#: ``dsig11:NamedCurve`` URIs of the curves an ``ECKeyValue`` may name (RFC 4051 style OIDs).
_NAMED_CURVES: Final[dict[str, ec.EllipticCurve]] = {
    "urn:oid:1.2.840.10045.3.1.7": ec.SECP256R1(),
    "urn:oid:1.3.132.0.34": ec.SECP384R1(),
    "urn:oid:1.3.132.0.35": ec.SECP521R1(),
}
#: XML whitespace (S in XML 1.0): the only characters allowed between base64 characters.
_XML_SPACE: Final = {ord(c): None for c in " \t\r\n"}
#: ``xsd:dateTime`` with a required time zone, ASCII digits only, years 0001 to 9999.
_XSD_DATETIME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,12}))?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)

#: Signature methods a verifier accepts. No SHA-1, no HMAC, no DSA.
ACCEPTED_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
#: Digest methods a verifier accepts. No SHA-1.
ACCEPTED_DIGEST_METHODS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)

#: Everything signxml, lxml, cryptography and base64 raise on a hostile or broken signature.
_VERIFY_FAILURES = (
    SignXMLException,
    cryptography.exceptions.InvalidSignature,
    etree.LxmlError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    NotImplementedError,
    OverflowError,  # a date or number at the edge of its range, in signxml or cryptography
    cryptography.exceptions.UnsupportedAlgorithm,
)


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    return {
        "InvalidDigest": "digest_mismatch",
        "InvalidCertificate": "untrusted_certificate",
        "InvalidSignature": "bad_signature",
        "DocumentInvalid": "malformed_signature",
    }.get(name, "malformed_signature" if name != "InvalidInput" else "refused_input")


# --- signing ---------------------------------------------------------------------------------


class _ClockedXAdESSigner(XAdESSigner):
    """signxml's XAdES signer with the signing time taken from an injected clock."""

    def __init__(self, *, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock

    def add_signing_time(
        self, signed_signature_properties: etree._Element, sig_root: Any, signing_settings: Any
    ) -> None:
        element = etree.SubElement(
            signed_signature_properties, f"{{{_XADES}}}SigningTime", nsmap=self.namespaces
        )
        element.text = self._clock.now().isoformat(timespec="seconds")

    def _add_reference_to_signed_info(
        self, sig_root: etree._Element, node_to_reference: etree._Element, **attributes: str
    ) -> None:
        # signxml digests SignedProperties and KeyInfo with the signer's C14N but writes no
        # Transforms, so a verifier falls back to inclusive C14N and the digest cannot match
        # under exclusive C14N. Name the transform explicitly; the digest is still signxml's.
        signed_info = sig_root.find("ds:SignedInfo", _NS)
        reference = etree.SubElement(signed_info, f"{{{_DS}}}Reference", nsmap=self.namespaces)
        reference.set("URI", f"#{node_to_reference.get('Id')}")
        for name, value in attributes.items():
            reference.set(name, value)
        transforms = etree.SubElement(reference, f"{{{_DS}}}Transforms")
        etree.SubElement(transforms, f"{{{_DS}}}Transform", Algorithm=self.c14n_alg.value)
        etree.SubElement(reference, f"{{{_DS}}}DigestMethod", Algorithm=self.digest_alg.value)
        digest_value = etree.SubElement(reference, f"{{{_DS}}}DigestValue")
        canonical = self._c14n(node_to_reference, algorithm=self.c14n_alg)
        digest_value.text = base64.b64encode(
            self._get_digest(canonical, algorithm=self.digest_alg)
        ).decode("ascii")


@contextlib.contextmanager
def _canonicalisable() -> Iterator[None]:
    """Turn lxml's refusal to canonicalise the document into :class:`XmlParseError`.

    Well-formed XML can still be beyond exclusive C14N: a namespace declared with a relative
    URI (``xmlns="invoice"``) is one. Such a document cannot be signed; it is bad input
    (``reason="not_canonicalisable"``), not a failure of the signer.
    """
    try:
        yield
    except etree.C14NError:
        raise XmlParseError(reason="not_canonicalisable") from None


def _check_signing_material(
    private_key: object, certificate: object, chain: Sequence[object]
) -> tuple[rsa.RSAPrivateKey, x509.Certificate, tuple[x509.Certificate, ...]]:
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("private_key must be an RSA private key (cryptography)")
    if private_key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if not isinstance(certificate, x509.Certificate):
        raise TypeError("certificate must be a cryptography x509.Certificate")
    if not all(isinstance(cert, x509.Certificate) for cert in chain):
        raise TypeError("chain must hold x509.Certificate objects")
    if certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ValueError("certificate does not belong to private_key")
    return private_key, certificate, tuple(chain)  # type: ignore[arg-type]


def _serialize(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))


class XmlSigner:
    """Signs XML documents with one RSA key and its certificate.

    Args:
        private_key: the signer's RSA private key (at least 2048 bits).
        certificate: the signer's certificate; it must hold ``private_key``'s public key.
        chain: intermediate certificates to put in ``KeyInfo`` after the signer's.
        clock: the source of the XAdES signing time.
        policy: limits for the documents given to sign.

    Raises:
        TypeError: a key or certificate of the wrong type.
        ValueError: a key under 2048 bits, or a certificate for another key.
    """

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        *,
        chain: Sequence[x509.Certificate] = (),
        clock: Clock,
        policy: XmlPolicy | None = None,
    ) -> None:
        self._key, self._certificate, self._chain = _check_signing_material(
            private_key, certificate, chain
        )
        self._clock = clock
        self._policy = policy if policy is not None else XmlPolicy()

    def __repr__(self) -> str:
        return f"XmlSigner(subject={self._certificate.subject.rfc4514_string()!r})"

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate."""
        return self._certificate

    def _settings(self) -> dict[str, Any]:
        return {
            "signature_algorithm": SignatureMethod.RSA_SHA256,
            "digest_algorithm": DigestAlgorithm.SHA256,
            "c14n_algorithm": CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        }

    def _certs(self) -> list[x509.Certificate]:
        return [self._certificate, *self._chain]

    def sign(self, document: bytes, *, reference_id: str | None = None) -> bytes:
        """Sign a whole document with an enveloped XMLDSig signature (RSA-SHA256, exc-C14N).

        The ``ds:Signature`` becomes the last child of the root element, or replaces a
        ``<ds:Signature Id="placeholder"/>`` element if the document has one (UBL puts it in
        ``ext:UBLExtensions``).

        Args:
            document: the document to sign; parsed with the hardened parser.
            reference_id: reference the root by this id (``URI="#id"``) instead of the empty URI;
                the root must carry it as its ``Id`` attribute.

        Returns:
            The signed document, UTF-8 with an XML declaration.

        Raises:
            XmlParseError: the document is refused by the parser, or cannot be canonicalised
                (a namespace with a relative URI).
            ValueError: ``reference_id`` is not the root's ``Id``.
        """
        root = parse_xml(document, policy=self._policy)
        reference: str | None = None
        if reference_id is not None:
            if root.get("Id") != reference_id:
                raise ValueError("reference_id must be the Id attribute of the root element")
            reference = f"#{reference_id}"
        signer = XMLSigner(method=SignatureConstructionMethod.enveloped, **self._settings())
        with _canonicalisable():
            signed = signer.sign(root, key=self._key, cert=self._certs(), reference_uri=reference)
        return _serialize(signed)

    def sign_xades(self, document: bytes) -> bytes:
        """Sign a whole document with an enveloped XAdES-BES signature.

        The signature carries ``SigningTime`` (from the clock), ``SigningCertificateV2`` and a
        ``DataObjectFormat``; ``SignedInfo`` references the document, ``KeyInfo`` and the signed
        properties.

        Args:
            document: the document to sign; parsed with the hardened parser.

        Returns:
            The signed document, UTF-8 with an XML declaration.

        Raises:
            XmlParseError: the document is refused by the parser, or cannot be canonicalised
                (a namespace with a relative URI).
        """
        root = parse_xml(document, policy=self._policy)
        signer = _ClockedXAdESSigner(
            clock=self._clock, method=SignatureConstructionMethod.enveloped, **self._settings()
        )
        # No KeyValue beside the certificate: two statements of the key are one too many.
        with _canonicalisable():
            signed = signer.sign(
                root, key=self._key, cert=self._certs(), always_add_key_value=False
            )
        return _serialize(signed)

    def sign_detached(self, document: bytes, *, uri: str, xades: bool = False) -> bytes:
        """Make a separate signature document over ``document`` (the ANAF response form).

        The signature's data reference has ``URI=uri`` (the file name the document travels
        under) and an exclusive C14N transform; the returned bytes are the ``ds:Signature``
        document alone.

        Args:
            document: the signed file's content; parsed with the hardened parser.
            uri: the reference URI naming the file, e.g. ``"4213456.xml"``; not a fragment.
            xades: add XAdES-BES signed properties.

        Returns:
            The detached signature document.

        Raises:
            XmlParseError: the document is refused by the parser, or cannot be canonicalised
                (a namespace with a relative URI).
            ValueError: ``uri`` is empty or a fragment (``#...``).
        """
        if not isinstance(uri, str) or not uri or uri.startswith("#"):
            raise ValueError("uri must name the signed file, not a fragment")
        root = parse_xml(document, policy=self._policy)
        if xades:
            signer: XMLSigner = _ClockedXAdESSigner(
                clock=self._clock, method=SignatureConstructionMethod.detached, **self._settings()
            )
        else:
            signer = XMLSigner(method=SignatureConstructionMethod.detached, **self._settings())
        with _canonicalisable():
            signature = signer.sign(
                root,
                key=self._key,
                cert=self._certs(),
                reference_uri=uri,
                always_add_key_value=False,
            )
        return _serialize(signature)


# --- verification ----------------------------------------------------------------------------


@attrs.frozen
class VerifiedXml:
    """What a signature covered, and who signed it. Use ``element``, never the input document.

    Attributes:
        element: the signed element, re-parsed from the canonical bytes that were signed.
        signed_bytes: the exact (canonical) bytes whose digest the signature covers.
        certificate: the certificate whose key verified the signature: the pinned one, or
            exactly the leaf that chained to a trusted CA.
        signing_time: the signed XAdES ``SigningTime`` (aware), or ``None`` for plain XMLDSig.
            It is the signer's claim, covered by the signature, not a trusted timestamp.
    """

    element: etree._Element = attrs.field(repr=False)
    signed_bytes: bytes = attrs.field(repr=False)
    certificate: x509.Certificate
    signing_time: datetime | None = None


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


class _StoreChainVerifier(X509CertChainVerifier):
    """signxml's chain verifier with the trust store in memory, which records what it validated.

    signxml hands over the ``X509Certificate`` list of ``KeyInfo`` and uses the certificate this
    returns to check the signature. The leaf is the first certificate, else the last (signxml's
    order); every certificate given must belong to the validated chain, so no second
    certificate for the same key (from any issuer) can ride along and be reported instead.
    """

    def __init__(self, cas: Sequence[x509.Certificate], verification_time: datetime) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            ca_pem_file="<in memory>", verification_time=verification_time
        )
        self._trusted = x509.verification.Store(list(cas))
        self.validated: tuple[x509.Certificate, ...] = ()

    @property
    def store(self) -> x509.verification.Store:
        return self._trusted

    def verify(self, cert_chain: Sequence[x509.Certificate]) -> x509.Certificate:
        certificates = list(cert_chain)
        if not certificates:
            raise InvalidCertificate("no certificate")
        verifier: x509.verification.ClientVerifier = self.verifier
        for leaf, others in (
            (certificates[0], certificates[1:]),
            (certificates[-1], certificates[:-1]),
        ):
            try:
                chain: tuple[x509.Certificate, ...] = tuple(verifier.verify(leaf, others).chain)
            except x509.verification.VerificationError:
                continue
            members = {_der(member) for member in chain}
            if any(_der(certificate) not in members for certificate in certificates):
                raise InvalidCertificate("a certificate outside the validated chain")
            self.validated = chain
            return chain[0]
        raise InvalidCertificate("no certificate chains to a trusted CA")


class _PlainVerifier(XMLVerifier):
    trusted_cas: Sequence[x509.Certificate] = ()
    chain_verifier: _StoreChainVerifier | None = None

    def get_cert_chain_verifier(self, ca_pem_file: Any, ee_policy: Any, ca_policy: Any) -> Any:
        now = self._get_cert_verification_time()  # type: ignore[no-untyped-call]
        self.chain_verifier = _StoreChainVerifier(self.trusted_cas, now)
        return self.chain_verifier


class _XAdESVerifier(XAdESVerifier, _PlainVerifier):
    """signxml's XAdES verifier with :class:`_PlainVerifier`'s trust store."""


def _find_by_id(root: etree._Element, value: str) -> list[etree._Element]:
    # The same lookup as signxml's (any attribute whose local name is an id name, in this
    # order), so that "the element signxml verified" and "the element we check" are one.
    for attribute in _ID_ATTRIBUTES:
        found = root.xpath("//*[@*[local-name() = $name] = $value]", name=attribute, value=value)
        if found:
            return list(found)
    return []


def _signing_time(results: Sequence[VerifyResult]) -> datetime:
    """The SigningTime from the SignedProperties that signxml verified (not from the input)."""
    for result in results:
        properties = getattr(result, "signed_properties", None)
        if properties is None:
            continue
        return _xsd_datetime(properties.findtext(f"{{{_XADES}}}SigningTime") or "")
    raise InvalidXmlSignatureError(reason="signing_time")


def _xsd_datetime(text: str) -> datetime:
    """An ``xsd:dateTime`` with a time zone, as an aware UTC datetime.

    Strict: ASCII digits, years 0001 to 9999, a time zone within ±14:00, fractions of a second
    cut to microseconds. A value Python cannot hold (year 0, 24:00:00, a leap second, a UTC
    instant before 0001-01-01 or after 9999-12-31) is refused, never raised as
    ``ValueError``/``OverflowError``.

    Raises:
        InvalidXmlSignatureError: ``reason="signing_time"`` for any text that is not such a time.
    """
    match = _XSD_DATETIME.fullmatch(text.strip(" \t\r\n"))
    if match is None:
        raise InvalidXmlSignatureError(reason="signing_time")
    year, month, day, hour, minute, second, fraction, zulu, sign, tz_hour, tz_minute = (
        match.groups()
    )
    offset = timedelta(0)
    if zulu is None:
        hours, minutes = int(tz_hour), int(tz_minute)
        if minutes > 59 or hours > 14 or (hours == 14 and minutes):
            raise InvalidXmlSignatureError(reason="signing_time")
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "").ljust(6, "0")[:6]),
            tzinfo=timezone(offset),
        )
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidXmlSignatureError(reason="signing_time") from None


def _is_inside(element: etree._Element, ancestor: etree._Element) -> bool:
    return any(parent is ancestor for parent in element.iterancestors())


def _public_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_shape(signature: etree._Element, *, references: int, certificates: int) -> None:
    """Refuse a signature whose shape would make signxml work hard or trust the document's key.

    Runs before signxml: it re-serialises the whole document for every reference and every
    canonicalising transform before its own checks.
    """
    found = signature.findall("ds:SignedInfo/ds:Reference", _NS)
    if len(found) > references:
        raise InvalidXmlSignatureError(reason="too_many_references")
    for reference in found:
        transforms = reference.findall("ds:Transforms/ds:Transform", _NS)
        if len(transforms) > _MAX_TRANSFORMS:
            raise InvalidXmlSignatureError(reason="too_many_transforms")
        if any(t.get("Algorithm") not in _TRANSFORMS for t in transforms):
            raise InvalidXmlSignatureError(reason="transform_refused")
    if sum(1 for _ in signature.iter(f"{{{_DS}}}X509Certificate")) > certificates:
        raise InvalidXmlSignatureError(reason="too_many_certificates")


def _key_values(signature: etree._Element) -> list[tuple[object, ...]]:
    """Every public key that ``KeyValue`` / ``DEREncodedKeyValue`` state, parsed strictly.

    Each may appear once, as a child of the signature's own ``KeyInfo``; a ``KeyValue`` holds
    one ``RSAKeyValue`` (``Modulus``, ``Exponent``) or one ``dsig11:ECKeyValue``
    (``NamedCurve`` on P-256/384/521, ``PublicKey``). Anything else, or a value that does not
    parse, is refused (``key_value_refused``): a key statement is matched or refused, never
    skipped. Runs before signxml, which is told to ignore these elements.
    """
    statements = list(signature.iter(*_KEY_VALUE_TAGS))
    tags = [element.tag for element in statements]
    if len(set(tags)) != len(tags):
        raise InvalidXmlSignatureError(reason="key_value_refused")
    keys = []
    for element in statements:
        parent = element.getparent()
        if parent is None or parent.tag != _KEY_INFO or parent.getparent() is not signature:
            raise InvalidXmlSignatureError(reason="key_value_refused")
        try:
            if element.tag == _DER_KEY_VALUE:
                keys.append(_key_identity(_der_public_key(element)))
            else:
                keys.append(_key_value(element))
        except (ValueError, TypeError, cryptography.exceptions.UnsupportedAlgorithm):
            raise InvalidXmlSignatureError(reason="key_value_refused") from None
    return keys


def _children(element: etree._Element, *tags: str) -> list[etree._Element]:
    """The element children of ``element``, which must be exactly ``tags`` in this order, with
    only whitespace (and comments) around them."""
    if (element.text or "").strip(" \t\r\n"):
        raise ValueError("text in a key value")
    children = [child for child in element if isinstance(child.tag, str)]
    if [child.tag for child in children] != list(tags):
        raise ValueError("unexpected key value structure")
    if any((child.tail or "").strip(" \t\r\n") for child in element):
        raise ValueError("text in a key value")
    return children


def _crypto_binary(element: etree._Element) -> bytes:
    """``ds:CryptoBinary`` / ``base64Binary`` content: base64 with XML whitespace only."""
    if len(element):
        raise ValueError("elements in a base64 value")
    value = _xml_b64decode(element.text or "")
    if not value:
        raise ValueError("empty base64 value")
    return value


def _key_value(element: etree._Element) -> tuple[object, ...]:
    inner = [child for child in element if isinstance(child.tag, str)]
    if len(inner) != 1:
        raise ValueError("a KeyValue holds one key")
    [key_value] = _children(element, inner[0].tag)
    if key_value.tag == f"{{{_DS}}}RSAKeyValue":
        modulus, exponent = _children(key_value, f"{{{_DS}}}Modulus", f"{{{_DS}}}Exponent")
        n = int.from_bytes(_crypto_binary(modulus), "big")
        e = int.from_bytes(_crypto_binary(exponent), "big")
        return ("rsa", n, e)
    if key_value.tag == f"{{{_DSIG11}}}ECKeyValue":
        curve_element, point = _children(
            key_value, f"{{{_DSIG11}}}NamedCurve", f"{{{_DSIG11}}}PublicKey"
        )
        curve = _NAMED_CURVES.get(curve_element.get("URI", ""))
        if curve is None or len(curve_element):
            raise ValueError("unsupported curve")
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, _crypto_binary(point))
        return _key_identity(key)
    raise ValueError("unsupported key value")


def _der_public_key(element: etree._Element) -> PublicKeyTypes:
    return serialization.load_der_public_key(_crypto_binary(element))


def _key_identity(key: PublicKeyTypes) -> tuple[object, ...]:
    """A comparable statement of a public key: RSA and EC by their numbers, others by SPKI."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return ("rsa", numbers.n, numbers.e)
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_numbers()
        return ("ec", key.curve.name, point.x, point.y)
    return (
        "spki",
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def _check_key_values(stated: Sequence[tuple[object, ...]], leaf: x509.Certificate) -> None:
    """Every key the signature states beside its certificates must be the trusted leaf's."""
    if stated and any(key != _key_identity(leaf.public_key()) for key in stated):
        raise InvalidXmlSignatureError(reason="key_value_mismatch")


def _certificates_in(signature: etree._Element) -> list[x509.Certificate]:
    certificates = []
    for element in signature.iter(f"{{{_DS}}}X509Certificate"):
        try:
            der = _xml_b64decode(element.text or "")
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise InvalidXmlSignatureError(reason="untrusted_certificate") from None
    return certificates


def _check_signing_certificate(results: Sequence[VerifyResult], leaf: x509.Certificate) -> None:
    """The first signed XAdES ``SigningCertificate(V2)`` entry must be the digest of ``leaf``."""
    for result in results:
        properties = getattr(result, "signed_properties", None)
        if properties is None:
            continue
        digest = properties.find(
            f"{{{_XADES}}}SigningCertificateV2/{{{_XADES}}}Cert/{{{_XADES}}}CertDigest"
        )
        if digest is None:
            digest = properties.find(
                f"{{{_XADES}}}SigningCertificate/{{{_XADES}}}Cert/{{{_XADES}}}CertDigest"
            )
        if digest is None:  # pragma: no cover - signxml and its schema require a CertDigest
            break
        try:
            method = digest.find("ds:DigestMethod", _NS)
            algorithm = DigestAlgorithm(method.get("Algorithm") if method is not None else "")
            value = _xml_b64decode(digest.findtext("ds:DigestValue", "", _NS))
        except ValueError:
            break
        if value == leaf.fingerprint(algorithm.implementation()):
            return
        break
    raise InvalidXmlSignatureError(reason="signing_certificate_mismatch")


class XmlVerifier:
    """Verifies XMLDSig and XAdES signatures against pinned trust.

    Give exactly one of ``expected_certificate`` (the signature must verify with this
    certificate's key; the ``KeyInfo`` is not trusted) or ``trusted_cas`` (the first, else the
    last, ``X509Certificate`` in ``KeyInfo`` must chain to one of them, with the
    digitalSignature key usage; every other certificate in the signature must be part of that
    chain; the leaf is the reported signer). Certificate validity is checked at the clock's
    time. The policy's ``max_references`` and ``max_certificates`` cap the signature's shape.

    Args:
        expected_certificate: the one certificate trusted to sign.
        trusted_cas: CA certificates trusted to issue signer certificates.
        clock: the time at which certificates must be valid.
        policy: limits for every document and signature read.
        signature_location: where the enveloped ``ds:Signature`` must be, as signxml's
            ``location`` XPath prefix; default ``"./"`` (a child of the root). UBL documents
            use ``"./{ext}UBLExtensions/{ext}UBLExtension/{ext}ExtensionContent/"`` style paths.

    Raises:
        ValueError: neither or both of ``expected_certificate`` and ``trusted_cas``, or an empty
            ``trusted_cas``.
        TypeError: a certificate that is not a ``cryptography`` certificate.
    """

    def __init__(
        self,
        *,
        expected_certificate: x509.Certificate | None = None,
        trusted_cas: Sequence[x509.Certificate] | None = None,
        clock: Clock,
        policy: XmlPolicy | None = None,
        signature_location: str = "./",
    ) -> None:
        if (expected_certificate is None) == (trusted_cas is None):
            raise ValueError("give exactly one of expected_certificate and trusted_cas")
        if expected_certificate is not None and not isinstance(
            expected_certificate, x509.Certificate
        ):
            raise TypeError("expected_certificate must be a cryptography x509.Certificate")
        cas = tuple(trusted_cas) if trusted_cas is not None else ()
        if trusted_cas is not None and not cas:
            raise ValueError("trusted_cas must hold at least one certificate")
        if not all(isinstance(ca, x509.Certificate) for ca in cas):
            raise TypeError("trusted_cas must hold x509.Certificate objects")
        if not isinstance(signature_location, str) or not signature_location.endswith("/"):
            raise ValueError("signature_location must be an XPath prefix ending in '/'")
        self._expected = expected_certificate
        self._cas = cas
        self._clock = clock
        self._policy = policy if policy is not None else XmlPolicy()
        self._location = signature_location

    def verify(self, document: bytes) -> VerifiedXml:
        """Verify an enveloped XMLDSig signature over the whole document.

        Args:
            document: the signed document.

        Returns:
            The signed element (the document without its signature, re-parsed from the signed
            canonical bytes) and the signer's certificate.

        Raises:
            XmlParseError: the document is refused by the hardened parser.
            InvalidXmlSignatureError: the signature is missing, invalid, made with a forbidden
                algorithm or an untrusted certificate, carries a certificate outside the
                validated chain, a ``KeyValue`` or ``DEREncodedKeyValue`` that is not the
                certificate's key (or cannot be read), more references, transforms or
                certificates than allowed, or does not cover the whole document.
        """
        root = parse_xml(document, policy=self._policy)
        return self._verify(root, xades=False, location=self._location)

    def verify_xades(self, document: bytes) -> VerifiedXml:
        """Verify an enveloped XAdES-BES signature over the whole document.

        Besides the XMLDSig checks, the signed ``SigningCertificate(V2)`` digest must match the
        certificate that verified the signature.

        Args:
            document: the signed document.

        Returns:
            The signed element and the signer's certificate.

        Raises:
            XmlParseError: the document is refused by the hardened parser.
            InvalidXmlSignatureError: as for :meth:`verify`, or the XAdES signed properties are
                missing or do not match, or the signed ``SigningTime`` is not an
                ``xsd:dateTime`` with a time zone that a datetime can hold.
        """
        root = parse_xml(document, policy=self._policy)
        return self._verify(root, xades=True, location=self._location)

    def verify_detached(
        self, signature: bytes, *, data: bytes, data_uri: str | None = None
    ) -> VerifiedXml:
        """Verify a detached signature document over a separate file (the ANAF response form).

        The signature must have exactly one reference to an external URI, which is answered
        with ``data`` (after the hardened parser accepted it); its other references (XAdES
        signed properties, ``KeyInfo``) must point inside the signature. Both plain XMLDSig and
        XAdES detached signatures are accepted; a signature with XAdES signed properties is
        checked as XAdES.

        Args:
            signature: the signature document (its root is ``ds:Signature``).
            data: the signed file's bytes.
            data_uri: if given, the external reference's URI must be exactly this.

        Returns:
            The signed data element and the signer's certificate.

        Raises:
            XmlParseError: the signature document or the data is refused by the hardened parser.
            InvalidXmlSignatureError: the signature is invalid, untrusted, does not reference
                exactly one external file, or references another file than ``data_uri``.
        """
        signature_root = parse_xml(signature, policy=self._policy)
        data_root = parse_xml(data, policy=self._policy)
        if signature_root.tag != f"{{{_DS}}}Signature":
            raise InvalidXmlSignatureError(reason="not_a_signature")
        raw = bytes(data)
        calls: list[str] = []

        def resolve(uri: str) -> Any:
            calls.append(uri)
            if data_uri is not None and uri != data_uri:
                return None
            reference = next(
                (
                    ref
                    for ref in signature_root.iterfind("ds:SignedInfo/ds:Reference", _NS)
                    if ref.get("URI") == uri
                ),
                None,
            )
            has_transforms = reference is not None and (
                reference.find("ds:Transforms/ds:Transform", _NS) is not None
            )
            # With transforms the digest is over canonical XML; without, over the file's bytes.
            return data_root if has_transforms else raw

        xades = any(
            ref.get("Type") == "http://uri.etsi.org/01903#SignedProperties"
            for ref in signature_root.iterfind("ds:SignedInfo/ds:Reference", _NS)
        )
        result = self._verify(signature_root, xades=xades, location="./", uri_resolver=resolve)
        if len(calls) != 1:  # pragma: no cover - one data reference was required, resolved once
            raise InvalidXmlSignatureError(reason="external_reference_count")
        return result

    def _run_signxml(
        self,
        root: etree._Element,
        *,
        xades: bool,
        location: str,
        expect_references: int | bool,
        uri_resolver: Callable[[str], Any] | None,
    ) -> tuple[list[VerifyResult], tuple[x509.Certificate, ...]]:
        """signxml's results, and the chain whose first certificate's key verified: the pinned
        certificate alone, or the chain that the chain verifier validated (leaf first)."""
        now = self._clock.now()
        config_class = XAdESSignatureConfiguration if xades else SignatureConfiguration
        config = config_class(
            location=location,
            expect_references=expect_references,
            signature_methods=ACCEPTED_SIGNATURE_METHODS,
            digest_algorithms=ACCEPTED_DIGEST_METHODS,
            verification_time=now,
            # KeyValue / DEREncodedKeyValue were parsed by _key_values and are matched against
            # the trusted certificate by _check_key_values; signxml's own, partial matching
            # (first element only, NotImplementedError for RSA-PSS) stays off.
            ignore_ambiguous_key_info=True,
        )
        verifier = _XAdESVerifier() if xades else _PlainVerifier()
        verifier.trusted_cas = self._cas
        try:
            results = verifier.verify(
                root,
                x509_cert=self._expected,
                expect_config=config,
                parser=hardened_parser(),
                uri_resolver=uri_resolver,
            )
        except _VERIFY_FAILURES as exc:
            raise InvalidXmlSignatureError(reason=_reason(exc)) from None
        if self._expected is not None:
            chain: tuple[x509.Certificate, ...] = (self._expected,)
        elif verifier.chain_verifier is not None and verifier.chain_verifier.validated:
            chain = verifier.chain_verifier.validated
        else:  # pragma: no cover - unpinned, signxml always runs the chain verifier
            raise InvalidXmlSignatureError(reason="signer_certificate_missing")
        return (list(results) if isinstance(results, list) else [results]), chain

    def _verify(
        self,
        root: etree._Element,
        *,
        xades: bool,
        location: str,
        uri_resolver: Callable[[str], Any] | None = None,
    ) -> VerifiedXml:
        detached = uri_resolver is not None
        if root.tag == f"{{{_DS}}}Signature":
            signature_element = root
            if not detached:
                raise InvalidXmlSignatureError(reason="enveloping_refused")
        else:
            found = root.findall(f"{location}ds:Signature", _NS)
            if len(found) != 1:
                raise InvalidXmlSignatureError(reason="signature_count")
            signature_element = found[0]
        # Exactly one ds:Signature in the whole document, nested ones included.
        all_signatures = list(root.iter(f"{{{_DS}}}Signature"))
        if len(all_signatures) != 1:
            raise InvalidXmlSignatureError(reason="signature_count")
        _check_shape(
            signature_element,
            references=self._policy.max_references if detached or xades else 1,
            certificates=self._policy.max_certificates,
        )
        stated_keys = _key_values(signature_element)
        expect: int | bool = True if detached or xades else 1
        results, chain = self._run_signxml(
            root,
            xades=xades,
            location=location,
            expect_references=expect,
            uri_resolver=uri_resolver,
        )
        references = results[0].signature_xml.findall("ds:SignedInfo/ds:Reference", _NS)
        if len(references) != len(results):  # pragma: no cover - signxml: a result per Reference
            raise InvalidXmlSignatureError(reason="reference_count")
        data_results: list[VerifyResult] = []
        for reference, result in zip(references, results, strict=True):
            uri = reference.get("URI")
            if uri is None:
                raise InvalidXmlSignatureError(reason="reference_without_uri")
            if uri == "":
                if detached:  # pragma: no cover - digests the signature, own digest included
                    raise InvalidXmlSignatureError(reason="reference_outside_data")
                data_results.append(result)
            elif uri.startswith("#"):
                targets = _find_by_id(root, uri[1:])
                if len(targets) != 1:
                    raise InvalidXmlSignatureError(reason="ambiguous_reference")
                if targets[0] is root and not detached:
                    data_results.append(result)
                elif not _is_inside(targets[0], signature_element):
                    raise InvalidXmlSignatureError(reason="reference_outside_data")
            elif detached:
                data_results.append(result)
            else:
                raise InvalidXmlSignatureError(reason="external_reference")
        if len(data_results) != 1 or data_results[0].signed_xml is None:
            raise InvalidXmlSignatureError(reason="data_reference_count")
        data = data_results[0]
        return VerifiedXml(
            element=data.signed_xml,
            signed_bytes=bytes(data.signed_data),
            certificate=self._signer_certificate(
                data, chain, results, xades=xades, stated_keys=stated_keys
            ),
            signing_time=_signing_time(results) if xades else None,
        )

    def _signer_certificate(
        self,
        data: VerifyResult,
        chain: Sequence[x509.Certificate],
        results: Sequence[VerifyResult],
        *,
        xades: bool,
        stated_keys: Sequence[tuple[object, ...]],
    ) -> x509.Certificate:
        """The chain's leaf, once it is certain that its key verified, that every key stated
        beside it is its key, and that no other certificate in the signature could be taken
        for the signer."""
        leaf = chain[0]
        if _public_pem(leaf) != data.signature_key:
            raise InvalidXmlSignatureError(reason="signer_certificate_missing")
        _check_key_values(stated_keys, leaf)
        if self._expected is None:
            # The chain verifier saw the first X509Data only; hold every certificate anywhere
            # in the signature to the same rule: it belongs to the validated chain.
            members = {_der(member) for member in chain}
            if any(_der(cert) not in members for cert in _certificates_in(data.signature_xml)):
                raise InvalidXmlSignatureError(reason="untrusted_certificate")
        if xades:
            _check_signing_certificate(results, leaf)
        return leaf


def _xml_b64decode(text: str) -> bytes:
    """Strict base64 (standard alphabet, padded) with XML whitespace, and only that, removed.

    Raises:
        ValueError: any other character (Unicode spaces and digits included) or bad padding.
    """
    return base64.b64decode(text.translate(_XML_SPACE), validate=True)
