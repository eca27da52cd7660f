"""``storno-security xml``: signing to standard output, the signed bytes printed exactly as
signed, and the one-line refusals for a certificate that is not PEM or an output that cannot be
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_server.cli import main
from reference_server.wiring import build_server
from tests.server.test_cli import DOCUMENT, data_dir, run, settings_for

__all__ = ["data_dir"]


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
    code, out, err = run(capsys, "xml", "sign", str(source), str(target))
    assert code == 1
    assert out == ""
    assert err == f"storno-security: error: {target}: cannot write (No such file or directory)\n"


def test_xml_verify_refuses_a_certificate_that_is_not_pem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed, cert = tmp_path / "signed.xml", tmp_path / "trusted.crt"
    signed.write_bytes(DOCUMENT)
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    code, out, err = run(capsys, "xml", "verify", str(signed), "--cert", str(cert))
    assert code == 1
    assert out == ""
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
