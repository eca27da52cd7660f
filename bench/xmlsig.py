"""XML signing and verification speed, against baselines measured in the same run.

Builds a ~20 KB UBL 2.1 invoice (the test invoice with more lines), then prints ops/s for:
  * bare RSA-2048 PKCS#1 v1.5 SHA-256 sign and verify of the same bytes (cryptography);
  * the hardened parse alone;
  * ``XmlSigner.sign`` (enveloped XMLDSig, exclusive C14N) and ``XmlSigner.sign_xades``;
  * ``XmlVerifier.verify`` with a pinned certificate and with a CA, and ``verify_xades``;
  * ``XmlVerifier.verify_detached`` (the ANAF form);
and the cost of each against the bare RSA operation. XML signing is dominated by parsing,
canonicalisation and signxml's defensive re-serialisations, not by RSA; the ratios show how much.
Last, hostile documents (nested entities, an external entity, a DTD) must be refused in no more
time than the hardened parse of the benign invoice takes (XML-1: refused before any expansion).

Run: python bench/xmlsig.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import measure
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from storno_security.clock import FrozenClock
from storno_security.errors import XmlParseError
from storno_security.xmlsig import XmlSigner, XmlVerifier, parse_xml

INVOICE = Path(__file__).parent.parent / "tests" / "xmlsig" / "data" / "ubl-invoice.xml"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(
    subject: str,
    public: rsa.RSAPublicKey,
    *,
    ca_key: rsa.RSAPrivateKey,
    serial: int,
    now: datetime,
    is_ca: bool,
) -> x509.Certificate:
    """A certificate for ``public`` issued (and signed) by "Bench CA" with ``ca_key``."""
    if is_ca:  # key_cert_sign, crl_sign; the subject key identifier
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        identifier: x509.ExtensionType = x509.SubjectKeyIdentifier.from_public_key(public)
    else:  # digital_signature, content_commitment; the authority key identifier
        usage = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
        identifier = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name("Bench CA"))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(identifier, False)
        .sign(ca_key, hashes.SHA256())
    )


def _certificates(now: datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("Bench CA", ca_key.public_key(), ca_key=ca_key, serial=1, now=now, is_ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = _certificate(
        "Bench Signer", key.public_key(), ca_key=ca_key, serial=2, now=now, is_ca=False
    )
    return key, certificate, ca


def _invoice(target_bytes: int) -> bytes:
    text = INVOICE.read_bytes()
    start = text.index(b"  <cac:InvoiceLine>")
    end = text.index(b"</Invoice>")
    lines = text[start:end]
    body = text[:end]
    while len(body) < target_bytes - len(b"</Invoice>\n"):
        body += lines
    return body + b"</Invoice>\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()

    now = datetime.now(UTC)
    clock = FrozenClock(now)
    key, certificate, ca = _certificates(now)
    document = _invoice(20_000)
    signer = XmlSigner(key, certificate, clock=clock)
    pinned = XmlVerifier(expected_certificate=certificate, clock=clock)
    by_ca = XmlVerifier(trusted_cas=[ca], clock=clock)
    signed = signer.sign(document)
    signed_xades = signer.sign_xades(document)
    detached = signer.sign_detached(document, uri="invoice.xml")
    pinned.verify(signed)
    by_ca.verify(signed)
    pinned.verify_xades(signed_xades)
    pinned.verify_detached(detached, data=document)

    public = key.public_key()
    raw_signature = key.sign(document, padding.PKCS1v15(), hashes.SHA256())

    def timed(fn: Callable[[], object]) -> float:
        """Median µs/op; XML operations are slow, so few calls warm up and make a round."""
        return measure(fn, args.seconds, warmup=5, minimum=5)[0]

    figures = {
        "bare RSA-SHA256 sign": timed(
            lambda: key.sign(document, padding.PKCS1v15(), hashes.SHA256())
        ),
        "bare RSA-SHA256 verify": timed(
            lambda: public.verify(raw_signature, document, padding.PKCS1v15(), hashes.SHA256())
        ),
        "hardened parse": timed(lambda: parse_xml(document)),
        "sign (XMLDSig)": timed(lambda: signer.sign(document)),
        "sign (XAdES-BES)": timed(lambda: signer.sign_xades(document)),
        "verify, pinned cert": timed(lambda: pinned.verify(signed)),
        "verify, CA chain": timed(lambda: by_ca.verify(signed)),
        "verify XAdES, pinned": timed(lambda: pinned.verify_xades(signed_xades)),
        "verify detached (ANAF)": timed(lambda: pinned.verify_detached(detached, data=document)),
    }
    width = max(map(len, figures))
    print(
        f"XML signing, RSA-2048, invoice {len(document)} bytes "
        f"({len(signed)} signed), Python {sys.version.split()[0]}"
    )
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:9.1f} µs/op  {1e6 / value:8.0f} ops/s")
    rsa_sign = figures["bare RSA-SHA256 sign"]
    rsa_verify = figures["bare RSA-SHA256 verify"]
    print("  cost against the bare RSA operation on the same bytes:")
    for name in ("sign (XMLDSig)", "sign (XAdES-BES)"):
        print(f"    {name:<{width}}  {figures[name] / rsa_sign:7.2f}x bare sign")
    for name in (
        "verify, pinned cert",
        "verify, CA chain",
        "verify XAdES, pinned",
        "verify detached (ANAF)",
    ):
        print(f"    {name:<{width}}  {figures[name] / rsa_verify:7.2f}x bare verify")
    return _hostile(figures["hardened parse"], timed)


_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)
_HOSTILE = {
    "nested entities (a billion laughs)": _LAUGHS,
    "external entity": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "external DTD": b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>',
}


def _hostile(benign_parse: float, timed: Callable[[Callable[[], object]], float]) -> int:
    def refused(document: bytes) -> Callable[[], object]:
        def parse() -> object:
            try:
                parse_xml(document)
            except XmlParseError:
                return None
            raise AssertionError("a hostile document was accepted")

        return parse

    print(f"  hostile documents (target: refused in <= the benign parse, {benign_parse:.1f} µs)")
    missed = 0
    for name, document in _HOSTILE.items():
        cost = timed(refused(document))
        met = cost <= benign_parse
        missed += not met
        print(f"    {name:<36} {cost:9.1f} µs  {'met' if met else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
