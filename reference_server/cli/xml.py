"""``xml``: signing and verifying XML documents from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from reference_server.cli._common import (
    DS,
    SIGNED_PROPERTIES,
    CliError,
    Parser,
    UsageError,
    fingerprint,
    keys_dir,
    note,
    read_input,
    settings_of,
)
from reference_server.settings import Settings
from storno_security.clock import SystemClock
from storno_security.integrations.keyfiles import (
    load_xml_material,
)
from storno_security.xmlsig import XmlVerifier, parse_xml

# -- xml ------------------------------------------------------------------------------------------


def _server_certificate(settings: Settings) -> x509.Certificate:
    path = settings.xml_cert_file or keys_dir(settings) / "xml" / "signer.crt"
    return _load_certificate(path)


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_input(str(path)))
    except ValueError:
        raise CliError(f"{path} is not a PEM certificate") from None


def cmd_xml_sign(args: argparse.Namespace) -> int:
    from storno_security.xmlsig import XmlSigner

    if (args.key is None) != (args.cert is None):
        raise UsageError("--key and --cert go together")
    if args.key is not None:
        material = load_xml_material(
            Path(args.key).parent, key_file=Path(args.key), cert_file=Path(args.cert), create=False
        )
    else:
        settings = settings_of(args)
        material = load_xml_material(
            keys_dir(settings) / "xml",
            key_file=settings.xml_key_file,
            cert_file=settings.xml_cert_file,
            create=False,
        )
    signer = XmlSigner(material.private_key, material.certificate, clock=SystemClock())
    document = read_input(args.input)
    signed = signer.sign_xades(document) if args.xades else signer.sign(document)
    if args.output == "-":
        sys.stdout.buffer.write(signed)
        sys.stdout.flush()
    else:
        try:
            Path(args.output).write_bytes(signed)
        except OSError as exc:
            raise CliError(f"{args.output}: cannot write ({exc.strerror})") from None
    note(
        f"signed ({'XAdES-BES' if args.xades else 'XMLDSig'}) by "
        f"{material.certificate.subject.rfc4514_string()}"
    )
    return 0


def _is_xades(document: bytes) -> bool:
    root = parse_xml(document)
    return any(
        reference.get("Type") == SIGNED_PROPERTIES for reference in root.iter(f"{{{DS}}}Reference")
    )


def cmd_xml_verify(args: argparse.Namespace) -> int:
    if args.cert is not None:
        certificate = _load_certificate(Path(args.cert))
    else:
        certificate = _server_certificate(settings_of(args))
    verifier = XmlVerifier(expected_certificate=certificate, clock=SystemClock())
    document = read_input(args.input)
    if args.detached_data is not None:
        result = verifier.verify_detached(document, data=read_input(args.detached_data))
        kind = "detached"
    elif _is_xades(document):
        result = verifier.verify_xades(document)
        kind = "XAdES-BES"
    else:
        result = verifier.verify(document)
        kind = "XMLDSig"
    # stdout: exactly the bytes the signature covers, the only part to trust.
    sys.stdout.buffer.write(result.signed_bytes)
    if not result.signed_bytes.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    when = f", signing time {result.signing_time.isoformat()}" if result.signing_time else ""
    note(
        f"valid {kind} signature by {result.certificate.subject.rfc4514_string()} "
        f"(sha256 {fingerprint(result.certificate)}){when}"
    )
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    xml = commands.add_parser("xml", help="sign and verify XML", description="XML signatures.")
    xml_commands = xml.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    xml_commands.required = True
    sign = xml_commands.add_parser(
        "sign",
        parents=[data],
        help="sign a document (enveloped XMLDSig or XAdES-BES)",
        description="Sign IN into OUT (- for stdout) with the server's XML key, or --key/--cert.",
    )
    sign.add_argument("input", metavar="IN", help="the document (- for stdin)")
    sign.add_argument("output", metavar="OUT", help="where to write the signed document")
    sign.add_argument("--xades", action="store_true", help="XAdES-BES instead of plain XMLDSig")
    sign.add_argument("--key", metavar="FILE", help="RSA private key (PEM, mode 0600)")
    sign.add_argument("--cert", metavar="FILE", help="its certificate (PEM)")
    sign.set_defaults(func=cmd_xml_sign)
    xverify = xml_commands.add_parser(
        "verify",
        parents=[data],
        help="verify a signed document; print what was signed",
        description="Verify IN against the server's certificate or --cert. On success the "
        "signed bytes go to stdout (use them, not IN) and the signer to stderr; exit 1 with "
        "the reason otherwise.",
    )
    xverify.add_argument("input", metavar="IN", help="the signed document (- for stdin)")
    xverify.add_argument("--cert", metavar="FILE", help="the one certificate trusted to sign")
    xverify.add_argument(
        "--detached-data", metavar="FILE", help="IN is a detached signature over this file"
    )
    xverify.set_defaults(func=cmd_xml_verify)
