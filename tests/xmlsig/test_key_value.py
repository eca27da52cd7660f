"""XML-2, issue 17: a ``KeyValue`` / ``DEREncodedKeyValue`` beside the certificate is accepted when
it states the pinned (or CA-validated) certificate's public key, and refused when it states any
other key, cannot be read, or sits anywhere but the signature's own ``KeyInfo``. The key that
verifies is always the certificate's; the statement is only checked, never used."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import CanonicalizationMethod, SignatureMethod, XMLSigner
from signxml.xades import XAdESSigner

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError
from storno_security.xmlsig import XmlVerifier, parse_xml
from tests.xmlsig.conftest import NOW, Identity, _name

DS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11 = "http://www.w3.org/2009/xmldsig11#"
NS = {"ds": DS, "dsig11": DSIG11}
P256 = "urn:oid:1.2.840.10045.3.1.7"


def _ec_identity(ca: Identity, curve: ec.EllipticCurve) -> Identity:
    key = ec.generate_private_key(curve)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(f"EC {curve.name}"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
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
    return Identity(key, certificate)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ec_identity(ca: Identity) -> Identity:
    return _ec_identity(ca, ec.SECP256R1())


def _signed(
    identity: Identity, document: bytes, *, method: SignatureMethod, xades: bool = False
) -> etree._Element:
    """A signature made by signxml with ``KeyValue`` beside the certificate (its option)."""
    # signxml's XAdES signer writes no Transforms on its extra references: with its default
    # (inclusive) C14N, a verifier's default matches.
    signer = (
        XAdESSigner(signature_algorithm=method)
        if xades
        else XMLSigner(
            signature_algorithm=method,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
    )
    signed = signer.sign(
        parse_xml(document),
        key=identity.key,
        cert=[identity.certificate],
        always_add_key_value=True,
    )
    assert signed.find(".//ds:KeyInfo/ds:KeyValue", NS) is not None
    return signed


def _verifiers(identity: Identity, ca: Identity) -> dict[str, XmlVerifier]:
    clock = FrozenClock(NOW)
    return {
        "pinned": XmlVerifier(expected_certificate=identity.certificate, clock=clock),
        "by_ca": XmlVerifier(trusted_cas=[ca.certificate], clock=clock),
    }


def _refusal(verifier: XmlVerifier, root: etree._Element, *, xades: bool = False) -> str:
    verify = verifier.verify_xades if xades else verifier.verify
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verify(etree.tostring(root))
    assert str(caught.value) == "invalid XML signature"
    return caught.value.reason


def _der_key_value(key: object) -> etree._Element:
    element = etree.Element(f"{{{DSIG11}}}DEREncodedKeyValue", nsmap={"dsig11": DSIG11})
    der = key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    element.text = base64.b64encode(der).decode()
    return element


def _key_info(root: etree._Element) -> etree._Element:
    found = root.find(".//ds:Signature/ds:KeyInfo", NS)
    assert found is not None
    return found


# --- accepted: the statement is the certificate's key ----------------------------------------


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize(
    "method",
    [SignatureMethod.RSA_SHA256, SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.RSA_SHA512],
)
def test_rsa_key_value_of_the_certificate_is_accepted(
    method: SignatureMethod, signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=method)
    for verifier in _verifiers(signer_identity, ca).values():
        assert verifier.verify(etree.tostring(root)).certificate == signer_identity.certificate


@pytest.mark.spec("XML-2")
def test_ec_key_value_of_the_certificate_is_accepted(
    ec_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(ec_identity, ubl_invoice, method=SignatureMethod.ECDSA_SHA256)
    assert root.find(".//dsig11:ECKeyValue/dsig11:NamedCurve", NS).get("URI") == P256
    for verifier in _verifiers(ec_identity, ca).values():
        assert verifier.verify(etree.tostring(root)).certificate == ec_identity.certificate


@pytest.mark.spec("XML-2")
def test_xades_with_a_signed_key_value_of_the_certificate_is_accepted(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256, xades=True)
    for verifier in _verifiers(signer_identity, ca).values():
        result = verifier.verify_xades(etree.tostring(root))
        assert result.certificate == signer_identity.certificate


@pytest.mark.spec("XML-2")
def test_der_encoded_key_value_of_the_certificate_is_accepted_alone_and_with_key_value(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    _key_info(root).append(_der_key_value(signer_identity.certificate.public_key()))
    for verifier in _verifiers(signer_identity, ca).values():
        assert verifier.verify(etree.tostring(root)).certificate == signer_identity.certificate
    key_value = _key_info(root).find("ds:KeyValue", NS)
    _key_info(root).remove(key_value)
    for verifier in _verifiers(signer_identity, ca).values():
        assert verifier.verify(etree.tostring(root)).certificate == signer_identity.certificate


@pytest.mark.spec("XML-2")
def test_rsa_key_value_with_leading_zero_octets_and_xml_whitespace_is_the_same_key(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # Java signers write the modulus with a sign octet and wrap base64 at 76 characters.
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    modulus = root.find(".//ds:RSAKeyValue/ds:Modulus", NS)
    n = signer_identity.key.public_key().public_numbers().n
    text = base64.b64encode(b"\x00" + n.to_bytes(256, "big")).decode()
    modulus.text = "\n" + "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\t\n"
    for verifier in _verifiers(signer_identity, ca).values():
        assert verifier.verify(etree.tostring(root)).certificate == signer_identity.certificate


# --- refused: another key ---------------------------------------------------------------------


@pytest.mark.spec("XML-2")
def test_rsa_key_value_of_another_key_is_refused(
    signer_identity: Identity, other_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    other = other_identity.key.public_key().public_numbers()
    root.find(".//ds:RSAKeyValue/ds:Modulus", NS).text = base64.b64encode(
        other.n.to_bytes(256, "big")
    ).decode()
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_mismatch"


@pytest.mark.spec("XML-2")
def test_rsa_key_value_with_another_exponent_is_refused(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    root.find(".//ds:RSAKeyValue/ds:Exponent", NS).text = "Aw=="  # 3, not 65537
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_mismatch"


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["same-curve", "P-384"])
def test_ec_key_value_of_another_key_is_refused(
    curve: ec.EllipticCurve, ec_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(ec_identity, ubl_invoice, method=SignatureMethod.ECDSA_SHA256)
    other = _ec_identity(ca, curve)
    other_root = _signed(other, ubl_invoice, method=SignatureMethod.ECDSA_SHA256)
    key_value = _key_info(root).find("ds:KeyValue", NS)
    key_value.getparent().replace(key_value, _key_info(other_root).find("ds:KeyValue", NS))
    for verifier in _verifiers(ec_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_mismatch"


@pytest.mark.spec("XML-2")
def test_der_encoded_key_value_of_another_key_is_refused_even_beside_a_matching_key_value(
    signer_identity: Identity, other_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    _key_info(root).append(_der_key_value(other_identity.certificate.public_key()))
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_mismatch"


@pytest.mark.spec("XML-2")
def test_key_value_of_the_ca_instead_of_the_leaf_is_refused(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # A key that is in the validated chain, but not the signer's, is still another key.
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    ca_n = ca.certificate.public_key().public_numbers().n  # type: ignore[union-attr]
    root.find(".//ds:RSAKeyValue/ds:Modulus", NS).text = base64.b64encode(
        ca_n.to_bytes(256, "big")
    ).decode()
    assert _refusal(_verifiers(signer_identity, ca)["by_ca"], root) == "key_value_mismatch"


@pytest.mark.spec("XML-2")
def test_xades_with_a_signed_key_value_of_another_key_is_refused(
    signer_identity: Identity, other_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # The signer signed KeyInfo, KeyValue included, but the KeyValue is not its key.
    class _LyingSigner(XAdESSigner):  # type: ignore[misc]
        def _serialize_key_value(self, key: object, key_info_node: etree._Element) -> None:
            super()._serialize_key_value(other_identity.key, key_info_node)

    signer = _LyingSigner(signature_algorithm=SignatureMethod.RSA_SHA256)
    root = signer.sign(
        parse_xml(ubl_invoice),
        key=signer_identity.key,
        cert=[signer_identity.certificate],
        always_add_key_value=True,
    )
    other = other_identity.key.public_key().public_numbers()
    stated = root.find(".//ds:RSAKeyValue/ds:Modulus", NS).text
    assert base64.b64decode(stated) == other.n.to_bytes(256, "big")
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root, xades=True) == "key_value_mismatch"


# --- refused: unreadable or misplaced -----------------------------------------------------------


def _rsa_key_value_xml(modulus: str, exponent: str = "AQAB", extra: str = "") -> etree._Element:
    return etree.fromstring(
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus>'
        f"<ds:Exponent>{exponent}</ds:Exponent>{extra}</ds:RSAKeyValue></ds:KeyValue>"
    )


MALFORMED = {
    "empty": f'<ds:KeyValue xmlns:ds="{DS}"/>',
    "text only": f'<ds:KeyValue xmlns:ds="{DS}">AQAB</ds:KeyValue>',
    "text before the key": (
        f'<ds:KeyValue xmlns:ds="{DS}">AQAB<ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "two keys": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue><ds:RSAKeyValue><ds:Modulus>AQAB"
        "</ds:Modulus><ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "exponent first": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Exponent>AQAB</ds:Exponent>'
        "<ds:Modulus>AQAB</ds:Modulus></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "no exponent": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "</ds:RSAKeyValue></ds:KeyValue>"
    ),
    "extra child": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent><ds:P>AQAB</ds:P></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "text beside": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>x'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "not base64": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>A*AB</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "unicode space in base64": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQ\u00a0AB</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "empty exponent": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "<ds:Exponent/></ds:RSAKeyValue></ds:KeyValue>"
    ),
    "dsa": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ds:DSAKeyValue><ds:P>AQAB</ds:P><ds:Q>AQAB</ds:Q>'
        "<ds:G>AQAB</ds:G><ds:Y>AQAB</ds:Y></ds:DSAKeyValue></ds:KeyValue>"
    ),
    "unknown curve": (
        f'<ds:KeyValue xmlns:ds="{DS}"><dsig11:ECKeyValue xmlns:dsig11="{DSIG11}">'
        '<dsig11:NamedCurve URI="urn:oid:1.3.132.0.10"/><dsig11:PublicKey>BAAA</dsig11:PublicKey>'
        "</dsig11:ECKeyValue></ds:KeyValue>"
    ),
    "point not on the curve": (
        f'<ds:KeyValue xmlns:ds="{DS}"><dsig11:ECKeyValue xmlns:dsig11="{DSIG11}">'
        f'<dsig11:NamedCurve URI="{P256}"/><dsig11:PublicKey>'
        + base64.b64encode(b"\x04" + b"\x01" * 64).decode()
        + "</dsig11:PublicKey></dsig11:ECKeyValue></ds:KeyValue>"
    ),
    "explicit curve parameters": (
        f'<ds:KeyValue xmlns:ds="{DS}"><dsig11:ECKeyValue xmlns:dsig11="{DSIG11}">'
        "<dsig11:ECParameters/><dsig11:PublicKey>BAAA</dsig11:PublicKey>"
        "</dsig11:ECKeyValue></ds:KeyValue>"
    ),
    "rfc 4050 ecdsa": (
        f'<ds:KeyValue xmlns:ds="{DS}"><ECDSAKeyValue '
        'xmlns="http://www.w3.org/2001/04/xmldsig-more#"/></ds:KeyValue>'
    ),
    "der not a key": (
        f'<dsig11:DEREncodedKeyValue xmlns:dsig11="{DSIG11}">AAAA</dsig11:DEREncodedKeyValue>'
    ),
    "der with an element inside": (
        f'<dsig11:DEREncodedKeyValue xmlns:dsig11="{DSIG11}"><x/></dsig11:DEREncodedKeyValue>'
    ),
}


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_unreadable_key_statements_are_refused(
    name: str, signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    key_value = _key_info(root).find("ds:KeyValue", NS)
    key_value.getparent().replace(key_value, etree.fromstring(MALFORMED[name]))
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_refused"


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("where", ["object", "x509data", "second key value", "nested key info"])
def test_a_matching_key_value_anywhere_but_key_info_is_refused(
    where: str, signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    key_info = _key_info(root)
    key_value = key_info.find("ds:KeyValue", NS)
    copy = etree.fromstring(etree.tostring(key_value))
    if where == "object":
        etree.SubElement(root.find(".//ds:Signature", NS), f"{{{DS}}}Object").append(copy)
    elif where == "x509data":
        key_info.find("ds:X509Data", NS).append(copy)
    elif where == "second key value":
        key_info.append(copy)
    else:
        etree.SubElement(key_info, f"{{{DS}}}KeyInfo").append(copy)
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_refused"


@pytest.mark.spec("XML-2")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modulus=st.one_of(
        st.binary(min_size=1, max_size=300),
        st.integers(min_value=1, max_value=2**2048).map(lambda n: n.to_bytes(257, "big")),
    ),
    exponent=st.binary(min_size=1, max_size=8),
)
def test_any_other_rsa_key_value_is_refused(
    modulus: bytes, exponent: bytes, signed_with_key_value: tuple[Identity, bytes], ca: Identity
) -> None:
    identity, signed = signed_with_key_value
    numbers = identity.key.public_key().public_numbers()
    same = (int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")) == (
        numbers.n,
        numbers.e,
    )
    root = parse_xml(signed)
    root.find(".//ds:RSAKeyValue/ds:Modulus", NS).text = base64.b64encode(modulus).decode()
    root.find(".//ds:RSAKeyValue/ds:Exponent", NS).text = base64.b64encode(exponent).decode()
    for verifier in _verifiers(identity, ca).values():
        if same:
            assert verifier.verify(etree.tostring(root)).certificate == identity.certificate
        else:
            assert _refusal(verifier, root) == "key_value_mismatch"


@pytest.fixture(scope="module")
def signed_with_key_value(signer_identity: Identity, ubl_invoice: bytes) -> tuple[Identity, bytes]:
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    return signer_identity, etree.tostring(root)


@pytest.mark.spec("XML-2")
def test_the_key_value_is_never_used_to_verify(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # A document signed by Mallory's key with Mallory's KeyValue, next to Alice's certificate:
    # the KeyValue "matches" the signature but not the certificate, and is refused.
    mallory = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    root = signer.sign(
        parse_xml(ubl_invoice),
        key=mallory,
        cert=[signer_identity.certificate],
        always_add_key_value=True,
    )
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) in {"bad_signature", "key_value_mismatch"}


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("statement", ["key value", "der"])
def test_the_only_key_statement_moved_out_of_key_info_is_refused(
    statement: str, signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # Not a second copy: the one statement the signature has, in a ds:Object of the signature.
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    key_info = _key_info(root)
    key_value = key_info.find("ds:KeyValue", NS)
    key_info.remove(key_value)
    if statement == "der":
        key_value = _der_key_value(signer_identity.certificate.public_key())
    etree.SubElement(root.find(".//ds:Signature", NS), f"{{{DS}}}Object").append(key_value)
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_refused"


@pytest.mark.spec("XML-2")
def test_a_der_encoded_key_of_another_type_is_refused(
    signer_identity: Identity, ca: Identity, ubl_invoice: bytes
) -> None:
    # An Ed25519 key parses, but is not the certificate's RSA key.
    root = _signed(signer_identity, ubl_invoice, method=SignatureMethod.RSA_SHA256)
    _key_info(root).append(_der_key_value(ed25519.Ed25519PrivateKey.generate().public_key()))
    for verifier in _verifiers(signer_identity, ca).values():
        assert _refusal(verifier, root) == "key_value_mismatch"
