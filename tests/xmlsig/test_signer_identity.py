"""XML-2 regressions from the security review of ``storno_security.xmlsig``.

1. The reported signer certificate is exactly the leaf that chained to a trusted CA; a second
   certificate with the same key from another issuer is refused, wherever it sits.
2. The number of references and certificates is capped before signxml spends CPU on them.
3. Every hostile signature element ends in our opaque error, never in a stray exception.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import CanonicalizationMethod, SignatureMethod, XMLSigner, XMLVerifier

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError, XmlError
from storno_security.xmlsig import XmlPolicy, XmlSigner, XmlVerifier, parse_xml
from tests.xmlsig.conftest import NOW, Identity, make_ca, make_signer

DS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11 = "http://www.w3.org/2009/xmldsig11#"
NS = {"ds": DS}


def _b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()


def _same_key_from(
    issuer: Identity, victim: x509.Certificate, common_name: str
) -> x509.Certificate:
    """A certificate for ``victim``'s public key, any subject, issued by ``issuer``."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(victim.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def bob_sa(signer_identity: Identity) -> x509.Certificate:
    """The attacker's relabel of Alice's key: ``CN=Bob SA`` from the attacker's own CA."""
    return _same_key_from(make_ca("Evil CA"), signer_identity.certificate, "Bob SA")


def _insert_certificate(signed: bytes, certificate: x509.Certificate, *, before: bool) -> bytes:
    root = parse_xml(signed)
    data = root.find(".//ds:KeyInfo/ds:X509Data", NS)
    element = etree.Element(f"{{{DS}}}X509Certificate")
    element.text = _b64(certificate)
    data.insert(0 if before else len(data), element)
    return bytes(etree.tostring(root))


def _refused(verify: Callable[[], Any]) -> None:
    """The relabelled signature is refused: a certificate in it is outside the trusted chain."""
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verify()
    assert caught.value.reason == "untrusted_certificate"


# --- 1. the reported signer certificate ------------------------------------------------------


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("before", [True, False], ids=["fake-first", "fake-last"])
def test_same_key_certificate_from_a_foreign_issuer_cannot_relabel_a_signature(
    before: bool,
    signer: XmlSigner,
    by_ca: XmlVerifier,
    bob_sa: x509.Certificate,
    ubl_invoice: bytes,
) -> None:
    # Alice signs; a third party adds CN=Bob SA (Evil CA, Alice's key) to the unsigned KeyInfo.
    signed = signer.sign(ubl_invoice)
    assert by_ca.verify(signed).certificate == signer.certificate
    relabelled = _insert_certificate(signed, bob_sa, before=before)
    _refused(lambda: by_ca.verify(relabelled))


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("xades", [False, True])
@pytest.mark.parametrize("before", [True, False], ids=["fake-first", "fake-last"])
def test_same_key_certificate_cannot_relabel_a_detached_signature(
    before: bool,
    xades: bool,
    signer: XmlSigner,
    by_ca: XmlVerifier,
    bob_sa: x509.Certificate,
    ubl_invoice: bytes,
) -> None:
    signature = signer.sign_detached(ubl_invoice, uri="4213456789.xml", xades=xades)
    assert by_ca.verify_detached(signature, data=ubl_invoice).certificate == signer.certificate
    relabelled = _insert_certificate(signature, bob_sa, before=before)
    _refused(lambda: by_ca.verify_detached(relabelled, data=ubl_invoice))


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("fake_first", [True, False], ids=["fake-first", "fake-last"])
def test_a_signer_cannot_relabel_their_own_xades_signature(
    fake_first: bool,
    signer_identity: Identity,
    by_ca: XmlVerifier,
    bob_sa: x509.Certificate,
    xml_clock: FrozenClock,
    ubl_invoice: bytes,
) -> None:
    # Alice signs KeyInfo and SigningCertificateV2 herself, naming her own relabel of her key.
    real = signer_identity.certificate
    first, second = (bob_sa, real) if fake_first else (real, bob_sa)
    forger = XmlSigner(signer_identity.key, first, chain=[second], clock=xml_clock)
    signed = forger.sign_xades(ubl_invoice)
    _refused(lambda: by_ca.verify_xades(signed))


class _Chain(NamedTuple):
    """A root CA, an intermediate CA and a leaf; a verifier that trusts the root only, and the
    leaf's signer with the intermediate in KeyInfo."""

    root_ca: Identity
    intermediate: Identity
    leaf: Identity
    verifier: XmlVerifier
    signer: XmlSigner


@pytest.fixture
def chain(xml_clock: FrozenClock) -> _Chain:
    root_ca = make_ca("Chain Root CA")
    intermediate = _intermediate(root_ca)
    leaf = make_signer(intermediate, "Chained Signer")
    verifier = XmlVerifier(trusted_cas=[root_ca.certificate], clock=xml_clock)
    signer = XmlSigner(
        leaf.key, leaf.certificate, chain=[intermediate.certificate], clock=xml_clock
    )
    return _Chain(root_ca, intermediate, leaf, verifier, signer)


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_the_validated_leaf_is_reported_whatever_the_key_info_order(
    chain: _Chain, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    verifier, signer, leaf = chain.verifier, chain.signer, chain.leaf
    for signed in (signer.sign(ubl_invoice), _reverse_key_info(signer.sign(ubl_invoice))):
        assert verifier.verify(signed).certificate == leaf.certificate
    assert verifier.verify_xades(signer.sign_xades(ubl_invoice)).certificate == leaf.certificate
    with_root = XmlSigner(
        leaf.key,
        leaf.certificate,
        chain=[chain.intermediate.certificate, chain.root_ca.certificate],
        clock=xml_clock,
    )
    assert verifier.verify(with_root.sign(ubl_invoice)).certificate == leaf.certificate


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_a_trusted_certificate_off_the_signer_chain_is_refused(
    signer: XmlSigner, ca: Identity, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    # Another trusted CA's certificate is no forgery, but it is not part of what was validated.
    other_root = make_ca("Second Trusted Root")
    verifier = XmlVerifier(trusted_cas=[ca.certificate, other_root.certificate], clock=xml_clock)
    signed = signer.sign(ubl_invoice)
    assert verifier.verify(signed).certificate == signer.certificate
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(_insert_certificate(signed, other_root.certificate, before=False))
    assert caught.value.reason == "untrusted_certificate"


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_a_certificate_outside_key_info_is_held_to_the_same_rule(
    signer: XmlSigner, by_ca: XmlVerifier, bob_sa: x509.Certificate, ubl_invoice: bytes
) -> None:
    # signxml reads the first X509Data only; a second one must not carry a relabel either.
    root = parse_xml(signer.sign(ubl_invoice))
    key_info = root.find(".//ds:KeyInfo", NS)
    second = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    etree.SubElement(second, f"{{{DS}}}X509Certificate").text = _b64(bob_sa)
    with pytest.raises(InvalidXmlSignatureError) as caught:
        by_ca.verify(etree.tostring(root))
    assert caught.value.reason == "untrusted_certificate"


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_xades_signing_certificate_must_name_the_validated_leaf(
    chain: _Chain, ubl_invoice: bytes
) -> None:
    # SigningCertificateV2 names the intermediate first (its chain is in KeyInfo, all of it
    # trusted): the signed property does not name the certificate whose key signed.
    signed = parse_xml(chain.signer.sign_xades(ubl_invoice))
    resigned = _resign_xades_with_swapped_cert_digests(signed, chain.leaf)
    with pytest.raises(InvalidXmlSignatureError):
        chain.verifier.verify_xades(resigned)


def _intermediate(root_ca: Identity) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Chain Intermediate CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_ca.key.public_key()), False
        )
        .sign(root_ca.key, hashes.SHA256())
    )
    return Identity(key, certificate)


def _reverse_key_info(signed: bytes) -> bytes:
    root = parse_xml(signed)
    data = root.find(".//ds:KeyInfo/ds:X509Data", NS)
    certificates = list(data)
    assert len(certificates) == 2
    for element in certificates:
        data.remove(element)
    for element in reversed(certificates):
        data.append(element)
    return bytes(etree.tostring(root))


def _resign_xades_with_swapped_cert_digests(root: etree._Element, leaf: Identity) -> bytes:
    """Swap the two SigningCertificateV2 entries, then redo every digest and the signature."""
    xades = "http://uri.etsi.org/01903/v1.3.2#"
    v2 = root.find(f".//{{{xades}}}SigningCertificateV2")
    first, second = list(v2)
    v2.remove(first)
    v2.append(first)
    assert next(iter(v2)) is second
    signature = root.find("ds:Signature", NS)
    signed_info = signature.find("ds:SignedInfo", NS)
    for reference in signed_info.iterfind("ds:Reference", NS):
        uri = reference.get("URI")
        if not uri:
            continue
        target = root.xpath("//*[@Id=$id]", id=uri[1:])[0]
        canonical = etree.tostring(target, method="c14n", exclusive=True)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(canonical)
        reference.find("ds:DigestValue", NS).text = base64.b64encode(digest.finalize()).decode()
    canonical_info = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = leaf.key.sign(canonical_info, padding.PKCS1v15(), hashes.SHA256())
    signature.find("ds:SignatureValue", NS).text = base64.b64encode(value).decode()
    return bytes(etree.tostring(root))


# --- 2. caps before signxml ------------------------------------------------------------------


@pytest.fixture
def signxml_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls into signxml's verifier (the plain and the XAdES one both go through it)."""
    calls: list[int] = []
    original = XMLVerifier.verify

    def spy(self: XMLVerifier, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XMLVerifier, "verify", spy)
    return calls


def _with_copies(signed: bytes, path: str, count: int) -> bytes:
    """Append copies of the first element at ``path`` (in the signature) up to ``count``."""
    root = parse_xml(signed)
    signature = root if root.tag == f"{{{DS}}}Signature" else root.find(".//ds:Signature", NS)
    element = signature.find(path, NS)
    parent = element.getparent()
    present = len(signature.findall(path, NS))
    for _ in range(count - present):
        parent.insert(parent.index(element) + 1, copy.deepcopy(element))
    assert len(signature.findall(path, NS)) == count
    return bytes(etree.tostring(root))


def _refused_before_signxml(
    verifier: XmlVerifier, signed: bytes, reason: str, signxml_calls: list[int]
) -> None:
    """``signed`` is refused for ``reason`` and signxml never ran."""
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(signed)
    assert caught.value.reason == reason
    assert signxml_calls == []


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_fifty_references_are_refused_before_signxml_runs(
    signer: XmlSigner, by_ca: XmlVerifier, ubl_invoice: bytes, signxml_calls: list[int]
) -> None:
    verifier_calls = (
        lambda: by_ca.verify(
            _with_copies(signer.sign(ubl_invoice), "ds:SignedInfo/ds:Reference", 50)
        ),
        lambda: by_ca.verify_xades(
            _with_copies(signer.sign_xades(ubl_invoice), "ds:SignedInfo/ds:Reference", 50)
        ),
        lambda: by_ca.verify_detached(
            _with_copies(
                signer.sign_detached(ubl_invoice, uri="f.xml", xades=True),
                "ds:SignedInfo/ds:Reference",
                50,
            ),
            data=ubl_invoice,
        ),
    )
    for call in verifier_calls:
        with pytest.raises(InvalidXmlSignatureError) as caught:
            call()
        assert caught.value.reason == "too_many_references"
    assert signxml_calls == []


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_plain_xmldsig_allows_one_reference_only(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes, signxml_calls: list[int]
) -> None:
    signed = _with_copies(signer.sign(ubl_invoice), "ds:SignedInfo/ds:Reference", 2)
    _refused_before_signxml(pinned, signed, "too_many_references", signxml_calls)


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_reference_with_many_transforms_is_refused_before_signxml_runs(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes, signxml_calls: list[int]
) -> None:
    # Each canonicalisation transform re-serialises the whole document: the same cost, per
    # transform instead of per reference.
    path = "ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform"
    signed = _with_copies(signer.sign(ubl_invoice), path, 40)
    _refused_before_signxml(pinned, signed, "too_many_transforms", signxml_calls)


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
def test_many_certificates_are_refused_before_signxml_runs(
    trust: str,
    signer: XmlSigner,
    ubl_invoice: bytes,
    signxml_calls: list[int],
    request: pytest.FixtureRequest,
) -> None:
    verifier: XmlVerifier = request.getfixturevalue(trust)
    path = "ds:KeyInfo/ds:X509Data/ds:X509Certificate"
    signed = _with_copies(signer.sign(ubl_invoice), path, 50)
    _refused_before_signxml(verifier, signed, "too_many_certificates", signxml_calls)


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_the_caps_are_policy_fields(
    signer_identity: Identity, xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    policy = XmlPolicy()
    assert (policy.max_references, policy.max_certificates) == (3, 4)
    signer = XmlSigner(signer_identity.key, signer_identity.certificate, chain=[], clock=xml_clock)
    tight = XmlVerifier(
        expected_certificate=signer_identity.certificate,
        clock=xml_clock,
        policy=XmlPolicy(max_references=2),
    )
    with pytest.raises(InvalidXmlSignatureError) as caught:
        tight.verify_xades(signer.sign_xades(ubl_invoice))  # document, KeyInfo, properties
    assert caught.value.reason == "too_many_references"
    one_certificate = XmlVerifier(
        expected_certificate=signer_identity.certificate,
        clock=xml_clock,
        policy=XmlPolicy(max_certificates=1),
    )
    assert one_certificate.verify(signer.sign(ubl_invoice)).certificate == signer.certificate
    two = _with_copies(signer.sign(ubl_invoice), "ds:KeyInfo/ds:X509Data/ds:X509Certificate", 2)
    with pytest.raises(InvalidXmlSignatureError):
        one_certificate.verify(two)
    for bad in ({"max_references": 0}, {"max_references": 33}, {"max_certificates": 0}):
        with pytest.raises(ValueError, match="must be an int between 1 and 32"):
            XmlPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_certificates"):
        XmlPolicy(max_certificates="4")  # type: ignore[arg-type]


# --- 3. opaque errors ------------------------------------------------------------------------


def _key_value_signature(identity: Identity, document: bytes, method: SignatureMethod) -> bytes:
    signer = XMLSigner(
        signature_algorithm=method,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        parse_xml(document),
        key=identity.key,
        cert=[identity.certificate],
        always_add_key_value=True,
    )
    assert signed.find(".//ds:KeyInfo/ds:KeyValue", NS) is not None
    return bytes(etree.tostring(signed))


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
@pytest.mark.parametrize("method", [SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.RSA_SHA256])
def test_key_value_of_the_certificate_key_is_accepted(
    method: SignatureMethod,
    trust: str,
    signer_identity: Identity,
    ubl_invoice: bytes,
    request: pytest.FixtureRequest,
) -> None:
    # Issue 17: third-party signers add KeyValue beside the certificate; it states the same key.
    verifier: XmlVerifier = request.getfixturevalue(trust)
    signed = _key_value_signature(signer_identity, ubl_invoice, method)
    assert verifier.verify(signed).certificate == signer_identity.certificate


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("trust", ["pinned", "by_ca"])
@pytest.mark.parametrize("method", [SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.RSA_SHA256])
def test_key_value_of_another_key_is_refused_opaquely(
    method: SignatureMethod,
    trust: str,
    signer_identity: Identity,
    other_identity: Identity,
    ubl_invoice: bytes,
    request: pytest.FixtureRequest,
) -> None:
    # RSA-PSS with a KeyValue made signxml raise NotImplementedError (a 500, not a refusal).
    verifier: XmlVerifier = request.getfixturevalue(trust)
    root = parse_xml(_key_value_signature(signer_identity, ubl_invoice, method))
    numbers = other_identity.key.public_key().public_numbers()
    modulus = root.find(".//ds:KeyInfo/ds:KeyValue/ds:RSAKeyValue/ds:Modulus", NS)
    modulus.text = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify(etree.tostring(root))
    assert caught.value.reason == "key_value_mismatch"
    assert str(caught.value) == "invalid XML signature"


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_der_encoded_key_value_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = parse_xml(signer.sign(ubl_invoice))
    key_info = root.find(".//ds:KeyInfo", NS)
    etree.SubElement(key_info, f"{{{DSIG11}}}DEREncodedKeyValue").text = "AAAA"
    with pytest.raises(InvalidXmlSignatureError) as caught:
        pinned.verify(etree.tostring(root))
    assert caught.value.reason == "key_value_refused"


@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_pss_signatures_without_key_value_still_verify(
    signer_identity: Identity, pinned: XmlVerifier, ubl_invoice: bytes
) -> None:
    root = parse_xml(
        _key_value_signature(signer_identity, ubl_invoice, SignatureMethod.SHA256_RSA_MGF1)
    )
    key_value = root.find(".//ds:KeyInfo/ds:KeyValue", NS)
    key_value.getparent().remove(key_value)  # KeyInfo is not signed
    assert pinned.verify(etree.tostring(root)).certificate == signer_identity.certificate


_ALGORITHMS = [m.value for m in SignatureMethod] + [
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2000/09/xmldsig#base64",
    "http://www.w3.org/TR/1999/REC-xpath-19991116",
    "urn:unknown",
    "",
]
_TEXT = st.one_of(
    st.text("ABCDEFabcdef0123456789+/=", max_size=40),
    st.sampled_from(["", "AAAA", "AQAB", "=", "////", "AAECAwQ="]),
)
_KEY_INFO_CHILDREN = [
    "ds:KeyValue",
    "ds:KeyValue/ds:RSAKeyValue/ds:Modulus",
    "ds:KeyValue/ds:RSAKeyValue/ds:Exponent",
    "ds:KeyValue/ds:DSAKeyValue/ds:P",
    "ds:KeyValue/dsig11:ECKeyValue/dsig11:PublicKey",
    "dsig11:DEREncodedKeyValue",
    "ds:X509Data",
    "ds:X509Data/ds:X509Certificate",
    "ds:X509Data/ds:X509IssuerSerial/ds:X509IssuerName",
    "ds:X509Data/dsig11:X509Digest",
    "ds:RetrievalMethod",
    "ds:KeyName",
]


def _add_path(parent: etree._Element, path: str, text: str) -> None:
    namespaces = {"ds": DS, "dsig11": DSIG11}
    for step in path.split("/"):
        prefix, local = step.split(":")
        parent = etree.SubElement(parent, f"{{{namespaces[prefix]}}}{local}")
    parent.text = text


@st.composite
def _mutations(draw: st.DrawFn) -> list[tuple[str, Any, Any]]:
    steps = st.one_of(
        st.tuples(
            st.just("algorithm"),
            st.sampled_from(
                ["SignatureMethod", "Transform", "CanonicalizationMethod", "DigestMethod"]
            ),
            st.sampled_from(_ALGORITHMS),
        ),
        st.tuples(st.just("key_info_add"), st.sampled_from(_KEY_INFO_CHILDREN), _TEXT),
        st.tuples(st.just("rsa_key_value"), st.sampled_from(["AQAB", "Aw==", "AA=="]), _TEXT),
        st.tuples(
            st.just("remove"),
            st.sampled_from(
                [
                    "ds:KeyInfo",
                    "ds:KeyInfo/ds:X509Data",
                    ".//ds:X509Certificate",
                    ".//ds:Transforms",
                    ".//ds:Transform",
                    "ds:SignedInfo/ds:SignatureMethod",
                ]
            ),
            st.none(),
        ),
        st.tuples(st.just("certificate_text"), st.none(), _TEXT),
        st.tuples(
            st.just("duplicate"),
            st.sampled_from(
                [".//ds:Transform", ".//ds:X509Data", ".//ds:X509Certificate", "ds:KeyInfo"]
            ),
            st.none(),
        ),
    )
    return draw(st.lists(steps, min_size=1, max_size=4))


def _mutate(signed: bytes, mutations: list[tuple[str, Any, Any]]) -> bytes:
    root = parse_xml(signed)
    signature = root.find(".//ds:Signature", NS)
    for kind, target, value in mutations:
        if kind == "algorithm":
            for element in signature.iter(f"{{{DS}}}{target}"):
                element.set("Algorithm", value)
                break
        elif kind == "key_info_add":
            key_info = signature.find("ds:KeyInfo", NS)
            if key_info is not None:
                _add_path(key_info, target, value)
        elif kind == "rsa_key_value":  # schema-valid, so it reaches signxml's key matching
            key_info = signature.find("ds:KeyInfo", NS)
            if key_info is not None:
                _add_path(key_info, "ds:KeyValue/ds:RSAKeyValue/ds:Modulus", value)
                key_info[-1][0].append(etree.Element(f"{{{DS}}}Exponent"))
                key_info[-1][0][-1].text = target
        elif kind == "remove":
            element = signature.find(target, NS)
            if element is not None:
                element.getparent().remove(element)
        elif kind == "certificate_text":
            element = signature.find(".//ds:X509Certificate", NS)
            if element is not None:
                element.text = value
        else:
            element = signature.find(target, NS)
            if element is not None:
                element.addnext(copy.deepcopy(element))
    return bytes(etree.tostring(root))


@pytest.fixture(scope="module")
def signed_forms(signer_identity: Identity, ubl_invoice: bytes) -> dict[str, bytes]:
    signer = XmlSigner(signer_identity.key, signer_identity.certificate, clock=FrozenClock(NOW))
    pss = XMLSigner(
        signature_algorithm=SignatureMethod.SHA256_RSA_MGF1,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    pss_signed = pss.sign(
        parse_xml(ubl_invoice), key=signer_identity.key, cert=[signer_identity.certificate]
    )
    return {
        "plain": signer.sign(ubl_invoice),
        "xades": signer.sign_xades(ubl_invoice),
        "pss": bytes(etree.tostring(pss_signed)),
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    form=st.sampled_from(["plain", "xades", "pss"]),
    by_ca=st.booleans(),
    mutations=_mutations(),
)
@pytest.mark.finding("internal review of xmlsig")
@pytest.mark.spec("XML-2")
def test_mutated_signature_elements_raise_only_our_errors(
    form: str,
    by_ca: bool,
    mutations: list[tuple[str, Any, Any]],
    signed_forms: dict[str, bytes],
    signer_identity: Identity,
    ca: Identity,
) -> None:
    clock = FrozenClock(NOW)
    verifier = (
        XmlVerifier(trusted_cas=[ca.certificate], clock=clock)
        if by_ca
        else XmlVerifier(expected_certificate=signer_identity.certificate, clock=clock)
    )
    mutated = _mutate(signed_forms[form], mutations)
    verify = verifier.verify_xades if form == "xades" else verifier.verify
    try:
        result = verify(mutated)
    except XmlError:
        return
    # Accepted: then it is still Alice's signature over the same content.
    assert result.certificate == signer_identity.certificate
    assert result.signed_bytes == verify(signed_forms[form]).signed_bytes


# --- 4. the signed XAdES SigningCertificate names the reported signer ---------------------------

XADES = "http://uri.etsi.org/01903/v1.3.2#"


def _resign_xades(root: etree._Element, identity: Identity) -> bytes:
    """Redo every ``#id`` digest and the signature value after the signed properties changed."""
    signature = root.find("ds:Signature", NS)
    signed_info = signature.find("ds:SignedInfo", NS)
    for reference in signed_info.iterfind("ds:Reference", NS):
        uri = reference.get("URI")
        if not uri:
            continue
        target = root.xpath("//*[@Id=$id]", id=uri[1:])[0]
        digest = hashes.Hash(hashes.SHA256())
        digest.update(etree.tostring(target, method="c14n", exclusive=True))
        reference.find("ds:DigestValue", NS).text = base64.b64encode(digest.finalize()).decode()
    canonical_info = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = identity.key.sign(canonical_info, padding.PKCS1v15(), hashes.SHA256())
    signature.find("ds:SignatureValue", NS).text = base64.b64encode(value).decode()
    return bytes(etree.tostring(root))


def _signing_certificate(root: etree._Element) -> etree._Element:
    found = root.find(f".//{{{XADES}}}SigningCertificateV2")
    assert found is not None
    return found


@pytest.mark.spec("XML-2")
def test_a_legacy_signing_certificate_naming_the_signer_is_accepted(
    signer: XmlSigner, signer_identity: Identity, by_ca: XmlVerifier, ubl_invoice: bytes
) -> None:
    # XAdES 1.3.2 signers without V2 write xades:SigningCertificate; its first entry counts too.
    root = parse_xml(signer.sign_xades(ubl_invoice))
    legacy = _signing_certificate(root)
    legacy.tag = f"{{{XADES}}}SigningCertificate"
    issuer_serial = etree.SubElement(legacy.find(f"{{{XADES}}}Cert"), f"{{{XADES}}}IssuerSerial")
    certificate = signer_identity.certificate
    etree.SubElement(
        issuer_serial, f"{{{DS}}}X509IssuerName"
    ).text = certificate.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{{{DS}}}X509SerialNumber").text = str(
        certificate.serial_number
    )
    resigned = _resign_xades(root, signer_identity)
    assert by_ca.verify_xades(resigned).certificate == signer_identity.certificate


@pytest.mark.spec("XML-2")
def test_a_signing_certificate_digest_in_loose_base64_is_refused(
    signer: XmlSigner, signer_identity: Identity, by_ca: XmlVerifier, ubl_invoice: bytes
) -> None:
    # signxml's base64 skips characters outside the alphabet; the digest must be strict base64.
    root = parse_xml(signer.sign_xades(ubl_invoice))
    value = _signing_certificate(root).find(
        f"{{{XADES}}}Cert/{{{XADES}}}CertDigest/ds:DigestValue", NS
    )
    value.text = f"!{value.text}"
    with pytest.raises(InvalidXmlSignatureError) as caught:
        by_ca.verify_xades(_resign_xades(root, signer_identity))
    assert caught.value.reason == "signing_certificate_mismatch"


@pytest.mark.spec("XML-2")
def test_a_signing_certificate_naming_the_ca_that_shares_the_leafs_key_is_refused(
    xml_clock: FrozenClock, ubl_invoice: bytes
) -> None:
    """A root CA issued a leaf for its own key. KeyInfo lists the root first, and so does the
    signed SigningCertificateV2: signxml takes the first certificate with the signing key (the
    root) as the signer, but the chain verifier validated the leaf, which is what would be
    reported. The signed property does not name it: refused."""
    root_ca = make_ca("Same Key Root CA")
    leaf = _same_key_from(root_ca, root_ca.certificate, "Same Key Leaf")
    signer = XmlSigner(root_ca.key, root_ca.certificate, chain=[leaf], clock=xml_clock)
    verifier = XmlVerifier(trusted_cas=[root_ca.certificate], clock=xml_clock)
    assert verifier.verify(signer.sign(ubl_invoice)).certificate == leaf
    with pytest.raises(InvalidXmlSignatureError) as caught:
        verifier.verify_xades(signer.sign_xades(ubl_invoice))
    assert caught.value.reason == "signing_certificate_mismatch"


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("junk", ["AAAA", "MAA="])  # zero bytes; an empty DER sequence
def test_an_unreadable_certificate_in_a_second_x509_data_is_refused(
    junk: str, signer: XmlSigner, by_ca: XmlVerifier, ubl_invoice: bytes
) -> None:
    # signxml reads the first X509Data only; what it never parsed cannot be let through either.
    root = parse_xml(signer.sign(ubl_invoice))
    second = etree.SubElement(root.find(".//ds:KeyInfo", NS), f"{{{DS}}}X509Data")
    etree.SubElement(second, f"{{{DS}}}X509Certificate").text = junk
    with pytest.raises(InvalidXmlSignatureError) as caught:
        by_ca.verify(etree.tostring(root))
    assert caught.value.reason == "untrusted_certificate"
