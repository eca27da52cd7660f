"""XML-2 regression from the security review of the reference server (branch r-data).

A namespace declared with a relative URI (``xmlns="invoice"``) is well-formed XML that exclusive
C14N refuses: lxml raises ``C14NError``. Signing such a document must end in our
:class:`~storno_security.errors.XmlParseError` (bad input), never in a stray lxml exception
(which a server answers with 500); verifying one must end in the opaque
:class:`~storno_security.errors.InvalidXmlSignatureError`.
"""

from __future__ import annotations

import pytest

from storno_security.errors import InvalidXmlSignatureError, XmlParseError
from storno_security.xmlsig import XmlSigner, XmlVerifier

RELATIVE = [
    b'<Invoice xmlns="invoice"><ID>1</ID></Invoice>',
    b'<i:Invoice xmlns:i="urn-less/relative"><i:ID>1</i:ID></i:Invoice>',
    b'<Invoice><Line xmlns="../lines"><ID>1</ID></Line></Invoice>',
]


@pytest.mark.finding("internal review of the server (XML)")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("document", RELATIVE)
def test_signing_a_document_with_a_relative_namespace_uri_is_a_parse_error(
    signer: XmlSigner, document: bytes
) -> None:
    with pytest.raises(XmlParseError) as enveloped:
        signer.sign(document)
    assert enveloped.value.reason == "not_canonicalisable"
    with pytest.raises(XmlParseError):
        signer.sign_xades(document)
    with pytest.raises(XmlParseError):
        signer.sign_detached(document, uri="invoice.xml")
    with pytest.raises(XmlParseError):
        signer.sign_detached(document, uri="invoice.xml", xades=True)


@pytest.mark.finding("internal review of the server (XML)")
@pytest.mark.spec("XML-2")
def test_an_absolute_namespace_still_signs(signer: XmlSigner, pinned: XmlVerifier) -> None:
    signed = signer.sign(b'<Invoice xmlns="urn:example:invoice"><ID>1</ID></Invoice>')
    assert pinned.verify(signed).element.tag == "{urn:example:invoice}Invoice"


@pytest.mark.finding("internal review of the server (XML)")
@pytest.mark.spec("XML-2")
@pytest.mark.parametrize("xades", [False, True])
def test_verifying_a_signature_whose_namespace_was_made_relative_is_refused(
    signer: XmlSigner, pinned: XmlVerifier, xades: bool
) -> None:
    absolute = b'<Invoice xmlns="urn:example:invoice"><ID>1</ID></Invoice>'
    signed = signer.sign_xades(absolute) if xades else signer.sign(absolute)
    tampered = signed.replace(b'xmlns="urn:example:invoice"', b'xmlns="invoice"', 1)
    assert tampered != signed
    verify = pinned.verify_xades if xades else pinned.verify
    with pytest.raises((InvalidXmlSignatureError, XmlParseError)):
        verify(tampered)
