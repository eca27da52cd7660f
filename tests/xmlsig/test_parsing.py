"""XML-1: every document goes through the hardened parser, and the hostile ones fail fast."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from storno_security.errors import XmlParseError
from storno_security.xmlsig import SchemaRegistry, XmlPolicy, XmlSigner, XmlVerifier, parse_xml
from storno_security.xmlsig.parsing import _check_tree, _RefusingResolver
from tests.xmlsig.hostile import HOSTILE_NAMES, SECRET, assert_no_connection, hostile_documents


@pytest.mark.spec("XML-1")
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_document_is_refused_reads_nothing_connects_nowhere(
    name: str, secret_file: Path, listening_port: socket.socket
) -> None:
    document = hostile_documents(secret_file, listening_port.getsockname()[1])[name]
    # refused before any expansion (how fast is benched in bench/xmlsig.py, not timed here)
    with pytest.raises(XmlParseError) as caught:
        parse_xml(document)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.__dict__)
    assert caught.value.__cause__ is None
    assert str(caught.value) == "XML document refused"
    assert caught.value.reason in {"dtd", "entity", "external", "malformed"}
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-1")
def test_python_sockets_are_not_used_either(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path, listening_port: socket.socket
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("a socket connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for document in hostile_documents(secret_file, listening_port.getsockname()[1]).values():
        with contextlib.suppress(XmlParseError):
            parse_xml(document)


@pytest.mark.spec("XML-1")
def test_xinclude_is_never_processed(secret_file: Path, listening_port: socket.socket) -> None:
    document = hostile_documents(secret_file, listening_port.getsockname()[1])["xinclude"]
    root = parse_xml(document)
    assert SECRET not in etree.tostring(root).decode()
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"


@pytest.mark.spec("XML-1")
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_entry_point_uses_the_hardened_parser(
    name: str,
    secret_file: Path,
    listening_port: socket.socket,
    signer: XmlSigner,
    pinned: XmlVerifier,
) -> None:
    document = hostile_documents(secret_file, listening_port.getsockname()[1])[name]
    registry = SchemaRegistry(builtin=False)
    calls = [
        lambda: signer.sign(document),
        lambda: signer.sign_xades(document),
        lambda: signer.sign_detached(document, uri="a.xml"),
        lambda: pinned.verify(document),
        lambda: pinned.verify_xades(document),
        lambda: pinned.verify_detached(document, data=b"<a/>"),
        lambda: pinned.verify_detached(b"<a/>", data=document),
        lambda: registry.validate("anaf-ubl", document),
    ]
    for call in calls:
        with pytest.raises(XmlParseError):
            call()
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-1")
def test_size_limit_is_checked_before_parsing() -> None:
    policy = XmlPolicy(max_bytes=1024)
    parse_xml(b"<a>" + b"x" * 1000 + b"</a>", policy=policy)
    with pytest.raises(XmlParseError) as caught:
        parse_xml(b"<a>" + b"x" * 1100 + b"</a>", policy=policy)
    assert caught.value.reason == "too_large"


@pytest.mark.spec("XML-1")
def test_depth_limit() -> None:
    policy = XmlPolicy(max_depth=10)
    parse_xml(b"<a>" * 10 + b"</a>" * 10, policy=policy)
    with pytest.raises(XmlParseError) as caught:
        parse_xml(b"<a>" * 11 + b"</a>" * 11, policy=policy)
    assert caught.value.reason == "too_deep"


@pytest.mark.spec("XML-1")
def test_default_depth_limit_stops_a_deep_document_early() -> None:
    with pytest.raises(XmlParseError) as caught:
        parse_xml(b"<a>" * 100_000)  # never closed: refused on depth, not on syntax
    assert caught.value.reason == "too_deep"


@pytest.mark.spec("XML-1")
def test_element_count_limit() -> None:
    policy = XmlPolicy(max_elements=100)
    parse_xml(b"<r>" + b"<a/>" * 99 + b"</r>", policy=policy)
    with pytest.raises(XmlParseError) as caught:
        parse_xml(b"<r>" + b"<a/>" * 100 + b"</r>", policy=policy)
    assert caught.value.reason == "too_large"


@pytest.mark.parametrize(
    "document", [b"", b"<a>", b"not xml", b"<a></b>", b"<a/><b/>", b"\xff\xfe<\x00"]
)
@pytest.mark.spec("XML-1")
def test_malformed_documents_are_refused(document: bytes) -> None:
    with pytest.raises(XmlParseError):
        parse_xml(document)


@pytest.mark.spec("XML-1")
def test_huge_text_node_is_refused_without_huge_tree() -> None:
    # libxml2 refuses text nodes over 10 MB unless huge_tree is on; we never turn it on.
    big = b"<a>" + b"x" * (10_000_001) + b"</a>"
    with pytest.raises(XmlParseError):
        parse_xml(big, policy=XmlPolicy(max_bytes=20_000_000))


@pytest.mark.spec("XML-1")
def test_only_bytes_are_accepted() -> None:
    with pytest.raises(TypeError):
        parse_xml("<a/>")  # type: ignore[arg-type]


@pytest.mark.spec("XML-1")
def test_encodings_and_namespaces_survive(ubl_invoice: bytes) -> None:
    root = parse_xml(ubl_invoice)
    assert root.tag == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><a>ăîșț</a>'.encode("utf-16")
    assert parse_xml(utf16).text == "ăîșț"


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": 10}, {"max_depth": 1000}, {"max_elements": 0}, {"max_depth": True}],
)
def test_policy_refuses_impossible_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        XmlPolicy(**kwargs)


@pytest.mark.spec("XML-1")
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda t: f"<a>{t}</a>".encode()))
def test_arbitrary_bytes_give_a_tree_or_our_error(data: bytes) -> None:
    with contextlib.suppress(XmlParseError):
        parse_xml(data)


@pytest.mark.spec("XML-1")
@pytest.mark.parametrize("tail", [b"<", b"</r>", b""])
def test_a_malformed_document_that_asked_for_a_dtd_is_refused_as_external(
    tail: bytes, listening_port: socket.socket
) -> None:
    # The parser asked for the external DTD, then failed on what follows (or on the missing
    # root): the request is the reason, whatever the syntax error.
    url = f"http://127.0.0.1:{listening_port.getsockname()[1]}/d.dtd"
    document = f'<!DOCTYPE r SYSTEM "{url}">'.encode() + (b"<r/>" + tail if tail else b"")
    with pytest.raises(XmlParseError) as caught:
        parse_xml(document)
    assert caught.value.reason == "external"
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-1")
def test_the_tree_check_refuses_a_request_or_an_entity_node_on_its_own() -> None:
    """The last check after parsing holds even where the parser's own refusals came first: a
    recorded request, or an entity reference node, in a tree without any DTD."""
    root = etree.fromstring(b"<r/>")
    asked = _RefusingResolver()
    asked.requested = True
    with pytest.raises(XmlParseError) as caught:
        _check_tree(root, asked)
    assert caught.value.reason == "external"
    _check_tree(root, _RefusingResolver())  # a clean tree passes
    root.append(etree.Entity("x"))
    with pytest.raises(XmlParseError) as caught:
        _check_tree(root, _RefusingResolver())
    assert caught.value.reason == "entity"
