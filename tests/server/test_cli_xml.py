"""``storno-security xml``: signing to standard output, the signed bytes printed exactly as
signed, and the one-line refusals for a certificate that is not PEM or an output that cannot be
written."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from reference_server.cli import main
from reference_server.cli._common import DS
from reference_server.wiring import build_server
from storno_security.integrations.keyfiles import load_xml_material
from tests.server.test_cli import DOCUMENT, data_dir, refusal, run, settings_for

__all__ = ["data_dir"]

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def test_xml_sign_to_stdout_then_verify_from_a_file(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    source = tmp_path / "in.xml"
    source.write_bytes(DOCUMENT)
    code, out, err = run(capsys, "xml", "sign", str(source), "-")
    assert code == 0, err
    assert "<ID>F-1</ID>" in out
    assert "SignatureValue" in out
    assert err.startswith("storno-security: signed (XMLDSig) by CN=")
    signed = tmp_path / "signed.xml"
    signed.write_text(out)
    code, out, err = run(capsys, "xml", "verify", str(signed))
    assert code == 0, err
    assert "<ID>F-1</ID>" in out


def test_xml_sign_into_a_missing_directory_fails_in_one_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    source, target = tmp_path / "in.xml", tmp_path / "missing" / "signed.xml"
    source.write_bytes(DOCUMENT)
    err = refusal(capsys, "xml", "sign", str(source), str(target))
    assert err == f"storno-security: error: {target}: cannot write (No such file or directory)\n"


def test_xml_verify_refuses_a_certificate_that_is_not_pem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed, cert = tmp_path / "signed.xml", tmp_path / "trusted.crt"
    signed.write_bytes(DOCUMENT)
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    err = refusal(capsys, "xml", "verify", str(signed), "--cert", str(cert))
    assert err == f"storno-security: error: {cert} is not a PEM certificate\n"


def test_xml_verify_prints_the_canonical_signed_bytes_then_a_newline(
    data_dir: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    document = DOCUMENT + b"\n"
    server = build_server(settings_for(data_dir))
    try:
        signature = server.xml_signer.sign_detached(document, uri="F-1.xml")
    finally:
        server.close()
    (tmp_path / "F-1.xml").write_bytes(document)
    (tmp_path / "F-1.sig.xml").write_bytes(signature)
    code = main(
        [
            "xml",
            "verify",
            str(tmp_path / "F-1.sig.xml"),
            "--detached-data",
            str(tmp_path / "F-1.xml"),
        ]
    )
    out, err = capsysbinary.readouterr()
    assert code == 0, err
    assert out == document
    assert b"valid detached signature by CN=" in err


def _signed_through_base64(data_dir: Path, content: bytes) -> bytes:
    """A document whose signature covers ``content`` carried as base64 text of its root (an
    enveloped reference with the base64 transform): what is signed is ``content``, not the
    document around it."""
    material = load_xml_material(data_dir / "keys" / "xml", create=False)
    ds = f"{{{DS}}}"
    root = etree.Element("{urn:example:wrap}Envelope", nsmap={None: "urn:example:wrap"})
    root.text = base64.b64encode(content).decode()
    signature = etree.SubElement(root, f"{ds}Signature", nsmap={"ds": DS})
    info = etree.SubElement(signature, f"{ds}SignedInfo")
    etree.SubElement(info, f"{ds}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(info, f"{ds}SignatureMethod", Algorithm=RSA_SHA256)
    reference = etree.SubElement(info, f"{ds}Reference", URI="")
    transforms = etree.SubElement(reference, f"{ds}Transforms")
    etree.SubElement(transforms, f"{ds}Transform", Algorithm=f"{DS}enveloped-signature")
    etree.SubElement(transforms, f"{ds}Transform", Algorithm=f"{DS}base64")
    etree.SubElement(reference, f"{ds}DigestMethod", Algorithm=SHA256)
    digest = hashlib.sha256(content).digest()
    etree.SubElement(reference, f"{ds}DigestValue").text = base64.b64encode(digest).decode()
    value = etree.SubElement(signature, f"{ds}SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(signature, f"{ds}KeyInfo"), f"{ds}X509Data")
    der = material.certificate.public_bytes(serialization.Encoding.DER)
    etree.SubElement(x509_data, f"{ds}X509Certificate").text = base64.b64encode(der).decode()
    signed_info = etree.tostring(info, method="c14n", exclusive=True)
    raw = material.private_key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
    value.text = base64.b64encode(raw).decode()
    return bytes(etree.tostring(root))


def test_xml_verify_refuses_a_signature_over_hidden_base64_content(
    data_dir: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # A valid signature whose reference decodes the document's base64 text: what is signed
    # (an invoice) is not what the document shows (an envelope). Refused, nothing printed.
    assert main(["keys", "generate"]) == 0
    content = b'<Invoice xmlns="urn:example:invoice"><ID>F-9</ID></Invoice>\n'
    signed = tmp_path / "wrapped.xml"
    signed.write_bytes(_signed_through_base64(data_dir, content))
    capsysbinary.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["xml", "verify", str(signed)])
    out, err = capsysbinary.readouterr()
    assert exited.value.code == 1
    assert out == b""
    assert err.count(b"\n") == 1, err  # one line for the operator
    assert b"transform_refused" in err
