"""XML-2 interoperability with an independent implementation: Debian's ``xmlsec1`` (libxmlsec1
on OpenSSL) signs what :class:`XmlVerifier` must accept, and verifies what :class:`XmlSigner`
makes; a tampered document fails on both sides.

``xmlsec1`` runs as a subprocess with a timeout. Without it these tests skip with a reason; under
``CI=true`` they fail (``.ci/run`` installs it). ``xmlsec1`` verifies strictly: with a CA, the key
comes only from the ``X509Data`` certificate that chains to it (``--enabled-key-data x509``); with
a pinned certificate, only from that certificate (``--enabled-key-data key-name`` turns every key
source in ``KeyInfo`` off). Its default would take a ``KeyValue`` from the document as the key.

``xmlsec1`` 1.2 cannot write an ``ECKeyValue``; for the ECDSA cases "with KeyValue" the test adds
a ``dsig11:ECKeyValue`` to the (unsigned) ``KeyInfo`` after ``xmlsec1`` signed, as DSS-style
signers write it.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError
from storno_security.xmlsig import XmlSigner, XmlVerifier, parse_xml
from tests.conftest import missing_service
from tests.xmlsig.conftest import DATA, NOW, Identity, _name, make_ca, make_signer

DS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11 = "http://www.w3.org/2009/xmldsig11#"
UBL_EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"
NS = {"ds": DS}
UBL_LOCATION = (
    f"./{{{UBL_EXT}}}UBLExtensions/{{{UBL_EXT}}}UBLExtension/{{{UBL_EXT}}}ExtensionContent/"
)
DATA_URI = "4213456789.xml"
VERIFICATION_TIME = NOW.strftime("%Y-%m-%d %H:%M:%S")
TIMEOUT_SECONDS = 60

SIGNATURE_METHODS = {
    "rsa": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ecdsa": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

#: (what is signed, how): plain enveloped over a CII invoice, enveloped inside a UBL invoice's
#: ext:UBLExtensions, and detached over a separate UBL file, digested as raw bytes (no
#: transforms) or as exclusive C14N of the parsed file.
FORMS = ("enveloped", "ubl", "detached-raw", "detached-c14n")
AMOUNTS = {"cii": (b">1332.00</ram:GrandTotalAmount>", b">1.00</ram:GrandTotalAmount>")}
UBL_AMOUNT = (b">12652.08</cbc:PayableAmount>", b">1.08</cbc:PayableAmount>")


@attrs.frozen
class Pki:
    """Keys and certificates in memory and as PEM files in ``directory``."""

    directory: Path
    ca: Identity
    identities: dict[str, Any]  # algorithm -> Identity (RSA) or (key, certificate) for EC
    other: Identity

    def key_file(self, algorithm: str) -> str:
        return str(self.directory / f"{algorithm}.key")

    def cert_file(self, algorithm: str) -> str:
        return str(self.directory / f"{algorithm}.crt")

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.crt")

    def certificate(self, algorithm: str) -> x509.Certificate:
        return self.identities[algorithm].certificate  # type: ignore[no-any-return]


def _ec_signer(ca: Identity) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("Test EC Signer"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Identity(key, certificate)  # type: ignore[arg-type]


def _pem(identity: Identity) -> tuple[bytes, bytes]:
    key = identity.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, identity.certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    path = shutil.which("xmlsec1")
    if path is None:
        missing_service("xmlsec1", "not on PATH; apt-get install xmlsec1")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, ca: Identity, signer_identity: Identity) -> Pki:
    directory = tmp_path_factory.mktemp("xmlsec1-pki")
    identities: dict[str, Any] = {"rsa": signer_identity, "ecdsa": _ec_signer(ca)}
    for algorithm, identity in identities.items():
        key, certificate = _pem(identity)
        (directory / f"{algorithm}.key").write_bytes(key)
        (directory / f"{algorithm}.crt").write_bytes(certificate)
    (directory / "ca.crt").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    return Pki(directory, ca, identities, make_signer(make_ca("Other Root CA"), "Other Signer"))


def _run(xmlsec1: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [xmlsec1, *args], cwd=cwd, capture_output=True, timeout=TIMEOUT_SECONDS, check=False
    )


def _xmlsec1_verifies(
    xmlsec1: str, pki: Pki, signed: Path, *, algorithm: str, trust: str, cwd: Path
) -> bool:
    if trust == "by_ca":
        trust_args = ["--trusted-pem", pki.ca_file, "--enabled-key-data", "x509"]
    else:
        trust_args = [
            "--pubkey-cert-pem",
            pki.cert_file(algorithm),
            "--enabled-key-data",
            "key-name",
        ]
    result = _run(
        xmlsec1,
        "--verify",
        *trust_args,
        "--verification-gmt-time",
        VERIFICATION_TIME,
        "--id-attr:Id",
        "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
        "--id-attr:Id",
        f"{DS}:KeyInfo",
        signed.name,
        cwd=cwd,
    )
    return result.returncode == 0


# --- xmlsec1 signs, XmlVerifier verifies -----------------------------------------------------


def _signature_template(*, algorithm: str, form: str, key_value: bool) -> str:
    if form.startswith("detached"):
        uri = DATA_URI
        transforms = [EXC_C14N] if form == "detached-c14n" else []
    else:
        uri = ""
        transforms = [ENVELOPED, EXC_C14N]
    transform_xml = "".join(f'<ds:Transform Algorithm="{t}"/>' for t in transforms)
    transforms_xml = f"<ds:Transforms>{transform_xml}</ds:Transforms>" if transforms else ""
    # xmlsec1 fills an empty KeyValue with RSAKeyValue; it cannot write an EC one.
    key_value_xml = "<ds:KeyValue/>" if key_value and algorithm == "rsa" else ""
    return (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        f'<ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/>'
        f'<ds:SignatureMethod Algorithm="{SIGNATURE_METHODS[algorithm]}"/>'
        f'<ds:Reference URI="{uri}">{transforms_xml}'
        f'<ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue/></ds:Reference>'
        "</ds:SignedInfo><ds:SignatureValue/>"
        f"<ds:KeyInfo>{key_value_xml}<ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>"
        "</ds:Signature>"
    )


def _template(form: str, signature: str) -> tuple[bytes, bytes | None]:
    """The template xmlsec1 signs, and the separate data file of a detached form."""
    if form == "enveloped":
        cii = (DATA / "cii-invoice.xml").read_bytes()
        closing = b"</rsm:CrossIndustryInvoice>"
        return cii.replace(closing, signature.encode() + closing), None
    ubl = (DATA / "ubl-invoice.xml").read_bytes()
    if form == "ubl":
        slot = (
            f'<ext:UBLExtensions xmlns:ext="{UBL_EXT}"><ext:UBLExtension><ext:ExtensionContent>'
            f"{signature}</ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>\n  "
        ).encode()
        return ubl.replace(b"<cbc:UBLVersionID>", slot + b"<cbc:UBLVersionID>", 1), None
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + signature.encode(), ubl


def _ec_key_value(certificate: x509.Certificate) -> etree._Element:
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_value = etree.Element(f"{{{DS}}}KeyValue")
    ec_key_value = etree.SubElement(key_value, f"{{{DSIG11}}}ECKeyValue", nsmap={"dsig11": DSIG11})
    etree.SubElement(ec_key_value, f"{{{DSIG11}}}NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
    etree.SubElement(ec_key_value, f"{{{DSIG11}}}PublicKey").text = base64.b64encode(point).decode()
    return key_value


def _tamper(form: str, signed: bytes, data: bytes | None) -> tuple[bytes, bytes | None]:
    if form == "enveloped":
        old, new = AMOUNTS["cii"]
        return signed.replace(old, new), data
    if form == "ubl":
        return signed.replace(*UBL_AMOUNT), data
    assert data is not None
    return signed, data.replace(*UBL_AMOUNT)


def _our_verify(
    pki: Pki, *, algorithm: str, trust: str, form: str, signed: bytes, data: bytes | None
) -> x509.Certificate:
    clock = FrozenClock(NOW)
    location = UBL_LOCATION if form == "ubl" else "./"
    if trust == "by_ca":
        verifier = XmlVerifier(
            trusted_cas=[pki.ca.certificate], clock=clock, signature_location=location
        )
    else:
        verifier = XmlVerifier(
            expected_certificate=pki.certificate(algorithm),
            clock=clock,
            signature_location=location,
        )
    if data is not None:
        return verifier.verify_detached(signed, data=data, data_uri=DATA_URI).certificate
    return verifier.verify(signed).certificate


def _sign_with_xmlsec1(
    xmlsec1: str, pki: Pki, tmp_path: Path, *, algorithm: str, form: str, key_value: bool
) -> tuple[bytes, bytes | None]:
    template, data = _template(
        form, _signature_template(algorithm=algorithm, form=form, key_value=key_value)
    )
    (tmp_path / "template.xml").write_bytes(template)
    if data is not None:
        (tmp_path / DATA_URI).write_bytes(data)
    result = _run(
        xmlsec1,
        "--sign",
        "--privkey-pem",
        f"{pki.key_file(algorithm)},{pki.cert_file(algorithm)}",
        "--output",
        "signed.xml",
        "template.xml",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    signed = (tmp_path / "signed.xml").read_bytes()
    if key_value and algorithm == "ecdsa":
        root = parse_xml(signed)
        key_info = next(root.iter(f"{{{DS}}}KeyInfo"))
        key_info.insert(0, _ec_key_value(pki.certificate(algorithm)))
        signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        (tmp_path / "signed.xml").write_bytes(signed)
    has_key_value = parse_xml(signed).find(".//ds:KeyInfo/ds:KeyValue", NS) is not None
    assert has_key_value == key_value
    return signed, data


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key_value", [False, True], ids=["x509", "x509+keyvalue"])
@pytest.mark.parametrize("algorithm", ["rsa", "ecdsa"])
def test_xmlsec1_signature_verifies_here_and_tampering_fails_on_both_sides(
    xmlsec1: str, pki: Pki, tmp_path: Path, algorithm: str, key_value: bool, form: str
) -> None:
    signed, data = _sign_with_xmlsec1(
        xmlsec1, pki, tmp_path, algorithm=algorithm, form=form, key_value=key_value
    )
    for trust in ("pinned", "by_ca"):
        assert _xmlsec1_verifies(
            xmlsec1, pki, tmp_path / "signed.xml", algorithm=algorithm, trust=trust, cwd=tmp_path
        ), trust
        certificate = _our_verify(
            pki, algorithm=algorithm, trust=trust, form=form, signed=signed, data=data
        )
        assert certificate == pki.certificate(algorithm)

    tampered, tampered_data = _tamper(form, signed, data)
    assert (tampered, tampered_data) != (signed, data)
    (tmp_path / "signed.xml").write_bytes(tampered)
    if tampered_data is not None:
        (tmp_path / DATA_URI).write_bytes(tampered_data)
    for trust in ("pinned", "by_ca"):
        assert not _xmlsec1_verifies(
            xmlsec1, pki, tmp_path / "signed.xml", algorithm=algorithm, trust=trust, cwd=tmp_path
        ), trust
        with pytest.raises(InvalidXmlSignatureError) as caught:
            _our_verify(
                pki,
                algorithm=algorithm,
                trust=trust,
                form=form,
                signed=tampered,
                data=tampered_data,
            )
        assert caught.value.reason in {"digest_mismatch", "bad_signature"}


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("form", ["enveloped", "ubl", "detached-raw"])
@pytest.mark.parametrize("algorithm", ["rsa", "ecdsa"])
def test_xmlsec1_signature_with_a_key_value_of_another_key_is_refused(
    xmlsec1: str, pki: Pki, tmp_path: Path, algorithm: str, form: str
) -> None:
    # The signature and the certificate are good; the KeyValue beside them names another key.
    signed, data = _sign_with_xmlsec1(
        xmlsec1, pki, tmp_path, algorithm=algorithm, form=form, key_value=True
    )
    root = parse_xml(signed)
    key_value = next(root.iter(f"{{{DS}}}KeyValue"))
    if algorithm == "rsa":
        modulus = key_value.find("ds:RSAKeyValue/ds:Modulus", NS)
        other = pki.other.key.public_key().public_numbers().n
        modulus.text = base64.b64encode(other.to_bytes(256, "big")).decode()
    else:
        key_value.getparent().replace(key_value, _ec_key_value(_ec_signer(pki.ca).certificate))
    forged = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for trust in ("pinned", "by_ca"):
        with pytest.raises(InvalidXmlSignatureError) as caught:
            _our_verify(pki, algorithm=algorithm, trust=trust, form=form, signed=forged, data=data)
        assert caught.value.reason == "key_value_mismatch"


# --- XmlSigner signs, xmlsec1 verifies -------------------------------------------------------


OUR_FORMS: dict[str, Callable[[XmlSigner, bytes], tuple[bytes, bytes | None]]] = {
    "enveloped": lambda signer, ubl: (signer.sign(ubl), None),
    "ubl": lambda signer, ubl: (
        signer.sign(
            ubl.replace(
                b"<cbc:UBLVersionID>",
                (
                    f'<ext:UBLExtensions xmlns:ext="{UBL_EXT}"><ext:UBLExtension>'
                    f'<ext:ExtensionContent><ds:Signature xmlns:ds="{DS}" Id="placeholder"/>'
                    "</ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>\n  "
                ).encode()
                + b"<cbc:UBLVersionID>",
                1,
            )
        ),
        None,
    ),
    "xades": lambda signer, ubl: (signer.sign_xades(ubl), None),
    "detached": lambda signer, ubl: (signer.sign_detached(ubl, uri=DATA_URI), ubl),
    "detached-xades": lambda signer, ubl: (
        signer.sign_detached(ubl, uri=DATA_URI, xades=True),
        ubl,
    ),
}


@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("form", sorted(OUR_FORMS))
def test_our_signature_verifies_with_xmlsec1_and_tampering_fails_on_both_sides(
    xmlsec1: str, pki: Pki, tmp_path: Path, form: str, ubl_invoice: bytes
) -> None:
    identity = pki.identities["rsa"]
    signer = XmlSigner(identity.key, identity.certificate, clock=FrozenClock(NOW))
    signed, data = OUR_FORMS[form](signer, ubl_invoice)
    (tmp_path / "signed.xml").write_bytes(signed)
    if data is not None:
        (tmp_path / DATA_URI).write_bytes(data)
    for trust in ("pinned", "by_ca"):
        assert _xmlsec1_verifies(
            xmlsec1, pki, tmp_path / "signed.xml", algorithm="rsa", trust=trust, cwd=tmp_path
        ), trust
        assert _ours_round_trip(pki, trust=trust, form=form, signed=signed, data=data)

    tampered, tampered_data = _tamper("detached" if data else "ubl", signed, data)
    assert (tampered, tampered_data) != (signed, data)
    (tmp_path / "signed.xml").write_bytes(tampered)
    if tampered_data is not None:
        (tmp_path / DATA_URI).write_bytes(tampered_data)
    for trust in ("pinned", "by_ca"):
        assert not _xmlsec1_verifies(
            xmlsec1, pki, tmp_path / "signed.xml", algorithm="rsa", trust=trust, cwd=tmp_path
        ), trust
        with pytest.raises(InvalidXmlSignatureError):
            _ours_round_trip(pki, trust=trust, form=form, signed=tampered, data=tampered_data)


def _ours_round_trip(pki: Pki, *, trust: str, form: str, signed: bytes, data: bytes | None) -> bool:
    clock = FrozenClock(NOW)
    location = UBL_LOCATION if form == "ubl" else "./"
    verifier = (
        XmlVerifier(trusted_cas=[pki.ca.certificate], clock=clock, signature_location=location)
        if trust == "by_ca"
        else XmlVerifier(
            expected_certificate=pki.certificate("rsa"), clock=clock, signature_location=location
        )
    )
    if data is not None:
        result = verifier.verify_detached(signed, data=data, data_uri=DATA_URI)
    elif form == "xades":
        result = verifier.verify_xades(signed)
    else:
        result = verifier.verify(signed)
    return result.certificate == pki.certificate("rsa")


@pytest.mark.spec("XML-2")
def test_xmlsec1_with_its_default_key_sources_would_trust_a_key_value(
    xmlsec1: str, pki: Pki, tmp_path: Path
) -> None:
    # Why the interop checks restrict xmlsec1's key sources: by default it takes KeyValue from
    # the document, so a signature by any key "verifies" against an unrelated certificate.
    _sign_with_xmlsec1(xmlsec1, pki, tmp_path, algorithm="rsa", form="enveloped", key_value=True)
    lax = _run(
        xmlsec1, "--verify", "--pubkey-cert-pem", pki.cert_file("ecdsa"), "signed.xml", cwd=tmp_path
    )
    assert lax.returncode == 0
    assert not _xmlsec1_verifies(
        xmlsec1, pki, tmp_path / "signed.xml", algorithm="ecdsa", trust="pinned", cwd=tmp_path
    )


@pytest.mark.spec("XML-2")
def test_the_xmlsec1_commands_in_the_guide_verify_ours_and_refuse_a_stranger(
    xmlsec1: str, pki: Pki, tmp_path: Path, ubl_invoice: bytes
) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "xml-signing.md").read_text(encoding="utf-8")
    commands = [
        line.split()
        for block in re.findall(r"```sh\n(.*?)```", guide, flags=re.DOTALL | re.ASCII)
        for line in block.splitlines()
        if line.startswith("xmlsec1 --verify")
    ]
    assert len(commands) == 2
    identity = pki.identities["rsa"]
    signer = XmlSigner(identity.key, identity.certificate, clock=FrozenClock(NOW))
    (tmp_path / "signed.xml").write_bytes(signer.sign(ubl_invoice))
    stranger = pki.other.certificate.public_bytes(serialization.Encoding.PEM)
    for trusted in (True, False):
        (tmp_path / "ca.pem").write_bytes(
            pki.ca.certificate.public_bytes(serialization.Encoding.PEM) if trusted else stranger
        )
        (tmp_path / "signer.pem").write_bytes(
            identity.certificate.public_bytes(serialization.Encoding.PEM) if trusted else stranger
        )
        for command in commands:
            # the test certificates are valid around NOW, not necessarily today
            args = [*command[1:-1], "--verification-gmt-time", VERIFICATION_TIME, command[-1]]
            assert (_run(xmlsec1, *args, cwd=tmp_path).returncode == 0) is trusted, command
