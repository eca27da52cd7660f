"""Signing an e-invoice: XMLDSig over a UBL invoice, verified against a CA; tampering and hostile
XML refused.

The CA and the signer's certificate are throw-away ones made here with ``cryptography``; in
production the signer's key and certificate come from a qualified trust service provider and
the verifier trusts that provider's CA.

Run: python examples/xml_sign.py
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from storno_security import InvalidXmlSignatureError, SystemClock, XmlParseError
from storno_security.xmlsig import XmlSigner, XmlVerifier, parse_xml

INVOICE = b"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
         xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
         xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>
  <cbc:ID>INV-2026-0042</cbc:ID>
  <cbc:IssueDate>2026-03-02</cbc:IssueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>RON</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party><cac:PartyName>
    <cbc:Name>ACME SRL</cbc:Name>
  </cac:PartyName></cac:Party></cac:AccountingSupplierParty>
  <cac:LegalMonetaryTotal>
    <cbc:PayableAmount currencyID="RON">1190.00</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
</Invoice>
"""

# The "billion laughs": ten nested entities, each ten times the one before; expanding it would
# take gigabytes of memory. The hardened parser refuses any DTD before expanding anything.
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Invoice>&lol9;</Invoice>
"""


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    now: datetime,
) -> x509.Certificate:
    """A certificate for ``key``: a self-signed CA when ``issuer`` is None, else a signing leaf."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer is not None else (name, key)
    is_ca = issuer is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,  # the leaf signs documents
                content_commitment=not is_ca,  # ...and stands behind them (non-repudiation)
                key_cert_sign=is_ca,  # the CA signs certificates
                crl_sign=is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def main() -> None:
    clock = SystemClock()
    now = clock.now()
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = certificate("Example Qualified CA", ca_key, issuer=None, now=now)
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer_cert = certificate(
        "ACME SRL e-invoicing", signer_key, issuer=(ca_cert.subject, ca_key), now=now
    )

    # Sign: enveloped XMLDSig, RSA-SHA256, exclusive C14N, the certificate in KeyInfo. (A UBL
    # invoice that carries a <ds:Signature Id="placeholder"/> in ext:UBLExtensions gets the
    # signature there instead; verify it with XmlVerifier(..., signature_location=...).)
    signed = XmlSigner(signer_key, signer_cert, clock=clock).sign(INVOICE)
    print("signed invoice:", len(signed), "bytes")

    # Verify against the CA: the certificate in the document must chain to it. Use only what
    # verify() returns (the signed content, re-parsed), never the bytes you were given.
    verifier = XmlVerifier(trusted_cas=[ca_cert], clock=clock)
    result = verifier.verify(signed)
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
    amount = result.element.findtext(".//cbc:PayableAmount", namespaces=ns)
    print("verified: signed by", result.certificate.subject.rfc4514_string(), "- amount", amount)

    # Someone lowers the amount after signing: the digest no longer matches.
    tampered = signed.replace(b">1190.00<", b">119.00<")
    try:
        verifier.verify(tampered)
    except InvalidXmlSignatureError as exc:
        print("tampered amount:", exc, f"(reason: {exc.reason})")

    # Hostile XML never becomes a tree: parse_xml is the only way in (verify uses it too).
    try:
        parse_xml(BILLION_LAUGHS)
    except XmlParseError as exc:
        print("billion laughs:", exc, f"(reason: {exc.reason})")


if __name__ == "__main__":
    main()
