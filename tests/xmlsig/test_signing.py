"""XML-2: enveloped XMLDSig and XAdES-BES signing; pinned verification that returns only what
was signed; signature wrapping, wrong certificates, tampering and SHA-1 are refused."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import CanonicalizationMethod, SignatureMethod, XMLSigner, XMLVerifier
from signxml.exceptions import InvalidCertificate
from signxml.processor import XMLSignatureProcessor

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError, XmlParseError
from storno_security.xmlsig import SchemaRegistry, VerifiedXml, XmlSigner, XmlVerifier, parse_xml
from storno_security.xmlsig.signing import (
    _check_signing_certificate,
    _signing_time,
    _StoreChainVerifier,
)
from tests.xmlsig.conftest import NOW, Identity, make_signer

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
DSIG11 = "http://www.w3.org/2009/xmldsig11#"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = {"ds": DS, "xades": XADES, "cbc": CBC, "cac": CAC}


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def _without_signature(document: bytes) -> etree._Element:
    root = parse_xml(document)
    for signature in root.iter(f"{{{DS}}}Signature"):
        signature.getparent().remove(signature)
    return root


def _payable(element: etree._Element) -> str:
    return element.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS)


def _refusal(verifier: XmlVerifier, root: etree._Element) -> str:
    """Why ``verifier`` refuses the document ``root``; fails the test if it is accepted."""
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(etree.tostring(root))
    return caught.value.reason


def _tamper_amount(document: bytes) -> bytes:
    tampered = document.replace(b">12652.08</cbc:PayableAmount>", b">1.08</cbc:PayableAmount>")
    assert tampered != document
    return tampered


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.spec("XML-2")
def test_enveloped_signature_has_the_required_shape(signer: XmlSigner, ubl_invoice: bytes) -> None:
    signed = parse_xml(signer.sign(ubl_invoice))
    signature = signed.find("ds:Signature", NS)
    assert signature is not None
    assert signed[-1] is signature  # enveloped, last child of the root
    algorithms = {
        el.tag.split("}")[1]: el.get("Algorithm")
        for el in signature.iter()
        if isinstance(el.tag, str) and el.get("Algorithm")
    }
    assert algorithms["SignatureMethod"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert algorithms["CanonicalizationMethod"] == "http://www.w3.org/2001/10/xml-exc-c14n#"
    assert algorithms["DigestMethod"] == "http://www.w3.org/2001/04/xmlenc#sha256"
    transforms = [t.get("Algorithm") for t in signature.iterfind(".//ds:Transform", NS)]
    assert "http://www.w3.org/2000/09/xmldsig#enveloped-signature" in transforms
    assert "http://www.w3.org/2001/10/xml-exc-c14n#" in transforms
    cert_text = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    certificate = x509.load_der_x509_certificate(base64.b64decode(cert_text))
    assert certificate == signer.certificate


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("invoice", ["ubl_invoice", "cii_invoice"])
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_round_trip_returns_exactly_the_signed_document(
    invoice: str, trust: str, signer: XmlSigner, request: pytest.FixtureRequest
) -> None:
    document: bytes = request.getfixturevalue(invoice)
    verifier: XmlVerifier = request.getfixturevalue(trust)
    signed = signer.sign(document)
    result = verifier.verify(signed)
    assert isinstance(result, VerifiedXml)
    assert result.certificate == signer.certificate
    assert _c14n(result.element) == _c14n(_without_signature(signed))
    assert _c14n(result.element) == _c14n(parse_xml(document))
    assert result.element.find(f".//{{{DS}}}Signature") is None
    assert result.signed_bytes == _c14n(result.element)


@pytest.mark.spec("XML-2")
def test_round_trip_with_a_reference_to_the_root_id(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    document = ubl_invoice.replace(b"<Invoice ", b'<Invoice Id="inv-142" ', 1)
    signed = signer.sign(document, reference_id="inv-142")
    assert parse_xml(signed).find(".//ds:Reference", NS).get("URI") == "#inv-142"
    assert _payable(pinned.verify(signed).element) == "12652.08"
    with pytest.raises(ValueError, match="root"):
        signer.sign(document, reference_id="elsewhere")


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_xades_bes_round_trip(
    trust: str, signer: XmlSigner, ubl_invoice: bytes, request: pytest.FixtureRequest
) -> None:
    verifier: XmlVerifier = request.getfixturevalue(trust)
    signed = signer.sign_xades(ubl_invoice)
    root = parse_xml(signed)
    properties = root.find(".//xades:SignedSignatureProperties", NS)
    assert properties is not None
    assert properties.findtext("xades:SigningTime", namespaces=NS) == NOW.isoformat()
    digest = properties.findtext(".//xades:CertDigest/ds:DigestValue", namespaces=NS)
    assert (
        base64.b64decode(digest)
        == hashlib.sha256(signer.certificate.public_bytes(encoding=_DER)).digest()
    )
    assert root.find(".//ds:KeyValue", NS) is None  # the key is stated once, in the certificate
    references = root.findall(".//ds:SignedInfo/ds:Reference", NS)
    assert len(references) == 3
    assert any(r.get("Type") == "http://uri.etsi.org/01903#SignedProperties" for r in references)
    result = verifier.verify_xades(signed)
    assert _c14n(result.element) == _c14n(parse_xml(ubl_invoice))
    assert result.certificate == signer.certificate
    assert result.signing_time == NOW
    assert verifier.verify(signer.sign(ubl_invoice)).signing_time is None


@pytest.mark.spec("XML-2")
def test_xades_and_plain_verification_are_not_interchangeable(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify(signer.sign_xades(ubl_invoice))
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_xades(signer.sign(ubl_invoice))


@pytest.mark.spec("XML-2")
def test_tampered_xades_signed_properties_are_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    signed = signer.sign_xades(ubl_invoice)
    tampered = signed.replace(
        NOW.isoformat().encode(), (NOW + timedelta(days=1)).isoformat().encode()
    )
    assert tampered != signed
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_xades(tampered)


# --- trust -----------------------------------------------------------------------------------


@pytest.mark.spec("XML-2")
def test_wrong_pinned_certificate_is_refused(
    signer: XmlSigner, other_identity: Identity, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    verifier = XmlVerifier(expected_certificate=other_identity.certificate, clock=xml_clock)
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(signer.sign(ubl_invoice))
    assert str(caught.value) == "invalid XML signature"


@pytest.mark.spec("XML-2")
def test_signer_from_another_ca_is_refused(
    other_identity: Identity, by_ca: XmlVerifier, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    stranger = XmlSigner(other_identity.key, other_identity.certificate, clock=xml_clock)
    with pytest.raises(InvalidXmlSignatureError) as caught:
        by_ca.verify(stranger.sign(ubl_invoice))
    assert caught.value.reason == "untrusted_certificate"


@pytest.mark.spec("XML-2")
def test_pinned_verification_ignores_a_swapped_key_info(
    signer: XmlSigner,
    other_identity: Identity,
    pinned: XmlVerifier,
    xml_clock: FrozenClock,
    ubl_invoice: bytes,
) -> None:
    # An attacker signs with their own key and puts the pinned certificate in KeyInfo.
    stranger = XmlSigner(other_identity.key, other_identity.certificate, clock=xml_clock)
    signed = parse_xml(stranger.sign(ubl_invoice))
    cert = signed.find(".//ds:X509Certificate", NS)
    cert.text = base64.b64encode(signer.certificate.public_bytes(encoding=_DER)).decode()
    _refusal(pinned, signed)


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("shift", [timedelta(days=400), timedelta(days=-60)])
def test_certificate_outside_its_validity_is_refused_at_the_clock_time(
    shift: timedelta, signer: XmlSigner, signer_identity: Identity, ubl_invoice: bytes
) -> None:
    signed = signer.sign(ubl_invoice)
    for verifier in (
        XmlVerifier(
            expected_certificate=signer_identity.certificate, clock=FrozenClock(NOW + shift)
        ),
    ):
        with pytest.raises(InvalidXmlSignatureError):
            verifier.verify(signed)


@pytest.mark.spec("XML-2")
def test_expired_signer_is_refused_through_the_ca(
    ca: Identity, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    old = make_signer(ca, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    signed = XmlSigner(old.key, old.certificate, clock=xml_clock).sign(ubl_invoice)
    verifier = XmlVerifier(trusted_cas=[ca.certificate], clock=xml_clock)
    with pytest.raises(InvalidXmlSignatureError):
        verifier.verify(signed)


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_tampered_amount_is_refused(
    trust: str, signer: XmlSigner, ubl_invoice: bytes, request: pytest.FixtureRequest
) -> None:
    verifier: XmlVerifier = request.getfixturevalue(trust)
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(_tamper_amount(signer.sign(ubl_invoice)))
    assert caught.value.reason == "digest_mismatch"


@pytest.mark.spec("XML-2")
def test_tampered_signature_value_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = parse_xml(signer.sign(ubl_invoice))
    value = root.find(".//ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    assert _refusal(pinned, root) == "bad_signature"


@pytest.fixture(scope="module")
def signed_ubl(signer_identity: Identity, ubl_invoice: bytes) -> bytes:
    return XmlSigner(signer_identity.key, signer_identity.certificate, clock=FrozenClock(NOW)).sign(
        ubl_invoice
    )


@pytest.mark.spec("XML-2")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_change_to_signed_content_is_refused(
    data: st.DataObject, signed_ubl: bytes, signer_identity: Identity
) -> None:
    verifier = XmlVerifier(expected_certificate=signer_identity.certificate, clock=FrozenClock(NOW))
    root = parse_xml(signed_ubl)
    candidates = [
        el
        for el in root.iter()
        if isinstance(el.tag, str)
        and el.text
        and el.text.strip()
        and not any(a.tag == f"{{{DS}}}Signature" for a in [el, *el.iterancestors()])
    ]
    target = data.draw(st.sampled_from(candidates))
    new_text = data.draw(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
            lambda t: t != target.text
        )
    )
    kind = data.draw(st.sampled_from(["text", "attribute", "remove", "add"]))
    if kind == "text":
        target.text = new_text
    elif kind == "attribute":
        target.set("changed", new_text)
    elif kind == "remove":
        target.getparent().remove(target)
    else:
        etree.SubElement(target.getparent(), f"{{{CBC}}}Note").text = new_text
    _refusal(verifier, root)


# --- signature wrapping ----------------------------------------------------------------------


def _signed_with_id(signer: XmlSigner, ubl_invoice: bytes) -> etree._Element:
    document = ubl_invoice.replace(b"<Invoice ", b'<Invoice Id="inv-142" ', 1)
    return parse_xml(signer.sign(document, reference_id="inv-142"))


def _unsigned_copy(root: etree._Element) -> etree._Element:
    """A copy of ``root`` without its signature (the signed content, to be hidden elsewhere)."""
    moved = copy.deepcopy(root)
    moved.remove(moved.find("ds:Signature", NS))
    return moved


def _evil_copy(root: etree._Element) -> etree._Element:
    evil = copy.deepcopy(root)
    evil.set("Id", "evil")
    evil.remove(evil.find("ds:Signature", NS))
    evil.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS).text = "1.00"
    return evil


def _wrapping_parts(
    signer: XmlSigner, ubl_invoice: bytes
) -> tuple[etree._Element, etree._Element, etree._Element]:
    """An evil copy of a signed invoice, a copy of its signature, and its signed content."""
    original = _signed_with_id(signer, ubl_invoice)
    evil = _evil_copy(original)
    signature = copy.deepcopy(original.find("ds:Signature", NS))
    return evil, signature, _unsigned_copy(original)


@pytest.mark.parametrize(
    ("into_signature", "tag", "reasons"),
    [
        (True, f"{{{DS}}}Object", {"data_reference_count", "digest_mismatch"}),
        (False, f"{{{CBC}}}Note", {"reference_outside_data"}),
    ],
    ids=["into-a-signature-object", "into-a-wrapper"],
)
@pytest.mark.spec("XML-2")
def test_wrapping_signed_root_moved_is_refused(
    into_signature: bool,
    tag: str,
    reasons: set[str],
    signer: XmlSigner,
    pinned: XmlVerifier,
    ubl_invoice: bytes,
) -> None:
    # The signed root moved into a ds:Object of the signature, or into a wrapper element of
    # the evil copy, which then carries the signature.
    evil, signature, moved = _wrapping_parts(signer, ubl_invoice)
    etree.SubElement(signature if into_signature else evil, tag).append(moved)
    evil.append(signature)
    assert _refusal(pinned, evil) in reasons


@pytest.mark.spec("XML-2")
def test_signature_over_a_fragment_is_refused_although_signxml_accepts_it(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # A valid signature that covers one invoice line only: everything else could be forged.
    document = ubl_invoice.replace(b"<cac:InvoiceLine>", b'<cac:InvoiceLine Id="line">', 1)
    signed = XMLSigner(
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
    ).sign(
        parse_xml(document),
        key=signer_identity.key,
        cert=[signer_identity.certificate],
        reference_uri="#line",
    )
    accepted = (
        __import__("signxml")
        .XMLVerifier()
        .verify(
            etree.tostring(signed),
            x509_cert=signer_identity.certificate,
            expect_config=__import__("signxml").SignatureConfiguration(verification_time=NOW),
        )
    )
    assert accepted.signed_xml.tag == f"{{{CAC}}}InvoiceLine"
    assert _refusal(pinned, signed) == "reference_outside_data"


@pytest.mark.spec("XML-2")
def test_wrapping_second_element_with_the_same_id_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = _signed_with_id(signer, ubl_invoice)
    twin = etree.SubElement(root, f"{{{CBC}}}Note", Id="inv-142")
    twin.text = "pay to another account"
    root.remove(root.find("ds:Signature", NS))
    root.append(_signed_with_id(signer, ubl_invoice).find("ds:Signature", NS))
    _refusal(pinned, root)


@pytest.mark.spec("XML-2")
def test_wrapping_unsigned_twin_before_the_signed_root_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # The evil document keeps the id on the root and hides the signed original inside it.
    original = _signed_with_id(signer, ubl_invoice)
    evil = _evil_copy(original)
    evil.set("Id", "inv-142")
    hidden = _unsigned_copy(original)
    etree.SubElement(evil, f"{{{CBC}}}Note").append(hidden)
    evil.append(copy.deepcopy(original.find("ds:Signature", NS)))
    _refusal(pinned, evil)


@pytest.mark.spec("XML-2")
def test_namespaced_id_twin_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # signxml matches ids by local name, so a foo:Id twin is a second match, not a bystander.
    root = _signed_with_id(signer, ubl_invoice)
    twin = etree.SubElement(root, f"{{{CBC}}}Note", nsmap={"foo": "urn:foo"})
    twin.set("{urn:foo}Id", "inv-142")
    signature = root.find("ds:Signature", NS)
    root.remove(signature)
    root.append(signature)
    _refusal(pinned, root)


@pytest.mark.spec("XML-2")
def test_second_signature_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = parse_xml(signer.sign(ubl_invoice))
    note = etree.SubElement(root, f"{{{CBC}}}Note")
    note.append(copy.deepcopy(root.find("ds:Signature", NS)))
    assert _refusal(pinned, root) == "signature_count"


@pytest.mark.spec("XML-2")
def test_signature_in_an_unexpected_place_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = parse_xml(signer.sign(ubl_invoice))
    signature = root.find("ds:Signature", NS)
    root.remove(signature)
    etree.SubElement(root, f"{{{CBC}}}Note").append(signature)
    _refusal(pinned, root)


@pytest.mark.spec("XML-2")
def test_unsigned_document_is_refused(pinned: XmlVerifier, ubl_invoice: bytes) -> None:
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify(ubl_invoice)
    assert caught.value.reason == "signature_count"


@pytest.mark.spec("XML-2")
def test_comment_injection_does_not_change_what_is_returned(
    signer: XmlSigner, pinned: XmlVerifier
) -> None:
    signed = signer.sign(b"<Invoice><Payee>attacker@example.com</Payee></Invoice>")
    injected = signed.replace(b"attacker@example.com", b"attacker<!---->@example.com")
    result = pinned.verify(injected)
    assert result.element.findtext("Payee") == "attacker@example.com"


UBL_EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"


@pytest.mark.spec("XML-2")
def test_ubl_signature_in_its_extension_slot_verifies_and_stays_schema_valid(
    signer: XmlSigner, signer_identity: Identity, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    # UBL has no room for ds:Signature under the root; the signature goes in UBLExtensions,
    # through signxml's placeholder, and the verifier is told where to expect it.
    slot = (
        f'<ext:UBLExtensions xmlns:ext="{UBL_EXT}"><ext:UBLExtension><ext:ExtensionContent>'
        f'<ds:Signature xmlns:ds="{DS}" Id="placeholder"/>'
        "</ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>"
    ).encode()
    document = ubl_invoice.replace(b"  <cbc:UBLVersionID>", slot + b"\n  <cbc:UBLVersionID>", 1)
    signed = signer.sign(document)
    location = (
        f"./{{{UBL_EXT}}}UBLExtensions/{{{UBL_EXT}}}UBLExtension/{{{UBL_EXT}}}ExtensionContent/"
    )
    verifier = XmlVerifier(
        expected_certificate=signer_identity.certificate,
        clock=xml_clock,
        signature_location=location,
    )
    result = verifier.verify(signed)
    assert _payable(result.element) == "12652.08"
    with pytest.raises(InvalidXmlSignatureError):
        XmlVerifier(expected_certificate=signer_identity.certificate, clock=xml_clock).verify(
            signed
        )
    if importlib.util.find_spec("facturx") is not None:
        SchemaRegistry().validate("anaf-ubl", signed)


# --- algorithms ------------------------------------------------------------------------------


class _Sha1Signer(XMLSigner):  # type: ignore[misc]
    """A test-only signer that skips signxml's refusal of SHA-1, to make SHA-1 signatures."""

    def check_deprecated_methods(self) -> None:
        return None


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm"),
    [
        (SignatureMethod.RSA_SHA1, "http://www.w3.org/2000/09/xmldsig#sha1"),
        (SignatureMethod.RSA_SHA256, "http://www.w3.org/2000/09/xmldsig#sha1"),
        (SignatureMethod.RSA_SHA1, "http://www.w3.org/2001/04/xmlenc#sha256"),
    ],
)
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_sha1_is_refused(
    signature_algorithm: SignatureMethod,
    digest_algorithm: str,
    trust: str,
    signer_identity: Identity,
    ubl_invoice: bytes,
    request: pytest.FixtureRequest,
) -> None:
    verifier: XmlVerifier = request.getfixturevalue(trust)
    legacy = _Sha1Signer(
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = legacy.sign(
        parse_xml(ubl_invoice), key=signer_identity.key, cert=[signer_identity.certificate]
    )
    assert _refusal(verifier, signed) == "refused_input"


@pytest.mark.spec("XML-2")
def test_hmac_signature_is_refused(pinned: XmlVerifier, ubl_invoice: bytes) -> None:
    hmac_signer = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256)
    signed = hmac_signer.sign(parse_xml(ubl_invoice), key=b"shared secret known to attacker")
    _refusal(pinned, signed)


# --- detached (ANAF) -------------------------------------------------------------------------


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("xades", [False, True])
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_detached_signature_over_a_separate_invoice_file(
    xades: bool, trust: str, signer: XmlSigner, ubl_invoice: bytes, request: pytest.FixtureRequest
) -> None:
    verifier: XmlVerifier = request.getfixturevalue(trust)
    signature = signer.sign_detached(ubl_invoice, uri="4213456789.xml", xades=xades)
    root = parse_xml(signature)
    assert root.tag == f"{{{DS}}}Signature"
    assert root.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "4213456789.xml"
    assert b"PayableAmount" not in signature  # the invoice is not inside the signature
    result = verifier.verify_detached(signature, data=ubl_invoice, data_uri="4213456789.xml")
    assert _c14n(result.element) == _c14n(parse_xml(ubl_invoice))
    assert result.certificate == signer.certificate
    assert verifier.verify_detached(signature, data=ubl_invoice).certificate == signer.certificate


@pytest.mark.spec("XML-2")
def test_detached_signature_refuses_a_tampered_invoice(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    signature = signer.sign_detached(ubl_invoice, uri="4213456789.xml")
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_detached(signature, data=_tamper_amount(ubl_invoice))


@pytest.mark.spec("XML-2")
def test_detached_signature_refuses_another_file_name(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    signature = signer.sign_detached(ubl_invoice, uri="4213456789.xml")
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_detached(signature, data=ubl_invoice, data_uri="other.xml")


@pytest.mark.spec("XML-2")
def test_detached_signature_over_raw_file_bytes_without_transforms(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # A reference with no transforms digests the file's bytes as they are. The file here is
    # already canonical, so signxml (which canonicalizes when signing) makes a valid vector.
    canonical = _c14n(parse_xml(ubl_invoice))
    legacy = XMLSigner(
        method=__import__("signxml").methods.detached,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )

    def drop_empty_transforms(sig_root: etree._Element, signing_settings: object) -> None:
        for transforms in sig_root.findall(".//ds:Transforms", NS):
            transforms.getparent().remove(transforms)

    legacy.signature_annotators.append(drop_empty_transforms)  # runs before SignedInfo is signed
    signature = legacy.sign(
        parse_xml(canonical),
        key=signer_identity.key,
        cert=[signer_identity.certificate],
        reference_uri="factura.xml",
        exclude_c14n_transform_element=True,
    )
    assert signature.find(".//ds:Transforms", NS) is None
    signature_bytes = etree.tostring(signature)
    result = pinned.verify_detached(signature_bytes, data=canonical, data_uri="factura.xml")
    assert result.signed_bytes == canonical
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_detached(signature_bytes, data=canonical + b"\n", data_uri="factura.xml")


@pytest.mark.spec("XML-2")
def test_enveloped_signature_is_not_a_detached_one(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    with pytest.raises(InvalidXmlSignatureError):
        pinned.verify_detached(signer.sign(ubl_invoice), data=ubl_invoice)


@pytest.mark.spec("XML-2")
def test_detached_sign_refuses_a_fragment_uri(signer: XmlSigner, ubl_invoice: bytes) -> None:
    for uri in ("", "#inv"):
        with pytest.raises(ValueError, match="fragment"):
            signer.sign_detached(ubl_invoice, uri=uri)


# --- construction ----------------------------------------------------------------------------


@pytest.mark.spec("XML-2")
def test_signer_refuses_weak_or_mismatched_keys(
    signer_identity: Identity, other_identity: Identity, xml_clock: FrozenClock
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        XmlSigner(weak, signer_identity.certificate, clock=xml_clock)
    with pytest.raises(ValueError, match="belong"):
        XmlSigner(other_identity.key, signer_identity.certificate, clock=xml_clock)
    with pytest.raises(TypeError):
        XmlSigner(b"pem", signer_identity.certificate, clock=xml_clock)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        XmlSigner(signer_identity.key, b"pem", clock=xml_clock)  # type: ignore[arg-type]


def test_signer_repr_shows_no_key(signer: XmlSigner) -> None:
    text = repr(signer)
    assert "Test Signer" in text
    assert "PRIVATE" not in text


@pytest.mark.spec("XML-2")
def test_verifier_needs_exactly_one_trust_anchor(
    signer_identity: Identity, ca: Identity, xml_clock: FrozenClock
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        XmlVerifier(clock=xml_clock)
    with pytest.raises(ValueError, match="exactly one"):
        XmlVerifier(
            expected_certificate=signer_identity.certificate,
            trusted_cas=[ca.certificate],
            clock=xml_clock,
        )
    with pytest.raises(ValueError, match="at least one"):
        XmlVerifier(trusted_cas=[], clock=xml_clock)
    with pytest.raises(TypeError):
        XmlVerifier(trusted_cas=[b"pem"], clock=xml_clock)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="XPath"):
        XmlVerifier(trusted_cas=[ca.certificate], clock=xml_clock, signature_location=".//x")


@pytest.mark.spec("XML-2")
def test_verify_refuses_hostile_xml_before_signature_checks(pinned: XmlVerifier) -> None:
    with pytest.raises(XmlParseError):
        pinned.verify(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')


from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

_DER = Encoding.DER


# --- references the verifier refuses after signxml accepted them -----------------------------


def test_signer_refuses_a_chain_of_something_else(
    signer_identity: Identity, xml_clock: FrozenClock
) -> None:
    with pytest.raises(TypeError, match=r"chain must hold x509\.Certificate objects"):
        XmlSigner(
            signer_identity.key,
            signer_identity.certificate,
            chain=[signer_identity.certificate.public_bytes(_DER)],  # type: ignore[list-item]
            clock=xml_clock,
        )


def test_verifier_refuses_a_pinned_certificate_of_something_else(
    signer_identity: Identity, xml_clock: FrozenClock
) -> None:
    with pytest.raises(TypeError, match="expected_certificate must be a cryptography"):
        XmlVerifier(
            expected_certificate=signer_identity.certificate.public_bytes(_DER),  # type: ignore[arg-type]
            clock=xml_clock,
        )


@pytest.mark.spec("XML-2")
def test_a_detached_signature_document_is_not_an_enveloped_signature(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # Its root is ds:Signature: verify() would take it as an enveloping signature.
    signature = signer.sign_detached(ubl_invoice, uri="4213456789.xml")
    for verify in (pinned.verify, pinned.verify_xades):
        with pytest.raises(InvalidXmlSignatureError) as caught:
            verify(signature)
        assert caught.value.reason == "enveloping_refused"


@pytest.mark.spec("XML-2")
def test_a_root_identified_by_an_upper_case_id_attribute_verifies(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # signxml resolves "#x" through Id, then ID, then id; the whole-document check does too.
    document = ubl_invoice.replace(b"<Invoice ", b'<Invoice ID="inv-142" ', 1)
    signed = XMLSigner(
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
    ).sign(
        parse_xml(document),
        key=signer_identity.key,
        cert=[signer_identity.certificate],
        reference_uri="#inv-142",
    )
    result = pinned.verify(etree.tostring(signed))
    assert result.element.get("ID") == "inv-142"
    assert _payable(result.element) == "12652.08"


@pytest.mark.spec("XML-2")
def test_an_enveloping_signature_offered_as_detached_signs_no_file(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    # Its only data reference points at a ds:Object inside the signature: no external file
    # was signed, whatever data is given beside it.
    signature = XMLSigner(
        method=__import__("signxml").methods.enveloping,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(parse_xml(ubl_invoice), key=signer_identity.key, cert=[signer_identity.certificate])
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify_detached(etree.tostring(signature), data=ubl_invoice)
    assert caught.value.reason == "data_reference_count"


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize(("transform", "reason"), [("base64", "transform_refused")])
def test_a_detached_signature_over_its_own_document_is_refused(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes, transform: str, reason: str
) -> None:
    """``URI=""`` in a signature document is the signature itself. With a base64 transform it
    digests the signature's (whitespace) text, which signxml takes as empty bytes: a valid
    signature over nothing. No reference may use the base64 transform at all; with the
    transforms that remain, ``URI=""`` digests the signature with its own digest value in it."""

    def over_nothing(sig_root: etree._Element, signing_settings: object) -> None:
        reference = sig_root.find("ds:SignedInfo/ds:Reference", NS)
        reference.set("URI", "")
        transforms = reference.find("ds:Transforms", NS)
        for old in list(transforms):
            transforms.remove(old)
        etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=f"{DS}{transform}")
        reference.find("ds:DigestValue", NS).text = base64.b64encode(
            hashlib.sha256(b"").digest()
        ).decode()

    signer = XMLSigner(
        method=__import__("signxml").methods.detached,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.signature_annotators.append(over_nothing)  # runs before SignedInfo is signed
    signature = signer.sign(
        parse_xml(ubl_invoice),
        key=signer_identity.key,
        cert=[signer_identity.certificate],
        reference_uri="4213456789.xml",
    )
    signature.text = "\n"
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify_detached(etree.tostring(signature), data=ubl_invoice)
    assert caught.value.reason == reason


@pytest.fixture
def loosen_signxml(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, etree._Element]], None]:
    """Make signxml resolve references loosely, as XMLDSig libraries have done: a reference
    without a URI as the whole document, ``#x`` as the first element with any attribute of
    value ``x`` (no id rules, no ambiguity check), and external URIs fetched from ``files``.
    Call it after signing; the verifier's own reference checks must refuse what this lets
    through."""

    def loosen(files: dict[str, etree._Element]) -> None:
        def resolve(
            self: XMLSignatureProcessor, doc_root: etree._Element, reference: Any, **_: Any
        ) -> etree._Element:
            uri = reference.get("URI")
            if not uri:
                return doc_root
            if uri.startswith("#"):
                return doc_root.xpath("//*[@* = $value]", value=uri[1:])[0]
            return files[uri]

        monkeypatch.setattr(XMLSignatureProcessor, "_resolve_reference", resolve)

    return loosen


def _enveloped(identity: Identity, root: etree._Element, **options: Any) -> etree._Element:
    signer = XMLSigner(c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    annotate = options.pop("annotate", None)
    if annotate is not None:
        signer.signature_annotators.append(annotate)
    return signer.sign(root, key=identity.key, cert=[identity.certificate], **options)


@pytest.mark.spec("XML-2")
def test_a_reference_without_a_uri_is_refused(
    signer_identity: Identity,
    pinned: XmlVerifier,
    ubl_invoice: bytes,
    loosen_signxml: Callable[[dict[str, etree._Element]], None],
) -> None:
    def drop_uri(sig_root: etree._Element, signing_settings: object) -> None:
        del sig_root.find("ds:SignedInfo/ds:Reference", NS).attrib["URI"]

    signed = etree.tostring(_enveloped(signer_identity, parse_xml(ubl_invoice), annotate=drop_uri))
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify(signed)
    assert caught.value.reason == "refused_input"  # signxml itself refuses it
    loosen_signxml({})
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify(signed)
    assert caught.value.reason == "reference_without_uri"


@pytest.mark.spec("XML-2")
def test_a_fragment_reference_must_resolve_to_exactly_one_element_by_id(
    signer: XmlSigner,
    signer_identity: Identity,
    pinned: XmlVerifier,
    ubl_invoice: bytes,
    loosen_signxml: Callable[[dict[str, etree._Element]], None],
) -> None:
    # A twin with the signed root's id in a ds:Object of the signature (which the enveloped
    # transform cuts away, so the digest still matches); "first match" picks the root.
    root = _signed_with_id(signer, ubl_invoice)
    etree.SubElement(root.find("ds:Signature", NS), f"{{{DS}}}Object", Id="inv-142")
    twin = etree.tostring(root)
    # The root named by an attribute that is no id at all.
    document = ubl_invoice.replace(b"<Invoice ", b'<Invoice ref="inv-142" ', 1)
    by_ref = etree.tostring(
        _enveloped(
            signer_identity, parse_xml(document), reference_uri="#inv-142", id_attribute="ref"
        )
    )
    loosen_signxml({})
    for signed in (twin, by_ref):
        with pytest.raises(InvalidXmlSignatureError) as caught:
            pinned.verify(signed)
        assert caught.value.reason == "ambiguous_reference"


@pytest.mark.spec("XML-2")
def test_an_enveloped_signature_over_another_file_is_refused(
    signer_identity: Identity,
    pinned: XmlVerifier,
    ubl_invoice: bytes,
    cii_invoice: bytes,
    loosen_signxml: Callable[[dict[str, etree._Element]], None],
) -> None:
    # A signature over another file, dropped into this document: it signs nothing here.
    other = parse_xml(cii_invoice)
    signature = XMLSigner(
        method=__import__("signxml").methods.detached,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(
        other, key=signer_identity.key, cert=[signer_identity.certificate], reference_uri="o.xml"
    )
    root = parse_xml(ubl_invoice)
    root.append(signature)
    loosen_signxml({"o.xml": other})
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify(etree.tostring(root))
    assert caught.value.reason == "external_reference"


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_a_signature_verified_with_a_key_other_than_the_certificates_is_refused(
    trust: str,
    signer_identity: Identity,
    ubl_invoice: bytes,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Mallory signs with her key beside Alice's certificate. A signxml that took the key from
    somewhere else than the certificate (as it does with a DEREncodedKeyValue when no
    certificate is required) would accept it; the signer must be the certificate whose key
    verified."""
    verifier: XmlVerifier = request.getfixturevalue(trust)
    mallory = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = etree.tostring(
        XMLSigner(c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0).sign(
            parse_xml(ubl_invoice), key=mallory, cert=[signer_identity.certificate]
        )
    )
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(signed)
    assert caught.value.reason == "bad_signature"

    der = etree.Element(f"{{{DSIG11}}}DEREncodedKeyValue")
    der.text = base64.b64encode(
        mallory.public_key().public_bytes(_DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    original = XMLVerifier._verify_signature_with_pubkey

    def with_the_stated_key(self: XMLVerifier, **kwargs: Any) -> Any:
        return original(self, **{**kwargs, "der_encoded_key_value": der})

    monkeypatch.setattr(XMLVerifier, "_verify_signature_with_pubkey", with_the_stated_key)
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(signed)
    assert caught.value.reason == "signer_certificate_missing"


def test_the_chain_verifier_refuses_an_empty_chain(ca: Identity) -> None:
    verifier = _StoreChainVerifier([ca.certificate], NOW)
    with pytest.raises(InvalidCertificate, match="no certificate"):
        verifier.verify([])
    assert verifier.validated == ()


def test_without_signed_properties_no_signing_certificate_matches(
    signer_identity: Identity,
) -> None:
    with pytest.raises(InvalidXmlSignatureError) as caught:
        _check_signing_certificate([], signer_identity.certificate)
    assert caught.value.reason == "signing_certificate_mismatch"


def test_results_without_signed_properties_have_no_signing_time() -> None:
    # signxml's XAdES verifier always yields a result with signed properties; without one,
    # there is no signed SigningTime to report.
    with pytest.raises(InvalidXmlSignatureError) as caught:
        _signing_time([])
    assert caught.value.reason == "signing_time"
