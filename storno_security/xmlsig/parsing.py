"""Hardened XML parsing (XML-1): the only way this package turns bytes into an lxml tree.

No DTD is loaded or accepted, no entity is resolved or accepted, nothing is fetched (every URL the
parser would open goes to a resolver that refuses it), ``huge_tree`` stays off, and the size,
depth and element count come from an :class:`~storno_security.xmlsig.policy.XmlPolicy`.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from storno_security.errors import XmlParseError
from storno_security.xmlsig.policy import XmlPolicy

__all__ = ["hardened_parser", "parse_xml"]

_CHUNK = 64 * 1024


class _RefusingResolver(etree.Resolver):  # type: ignore[misc]
    """Answers every request to load a URL (DTD, entity, XInclude) with nothing, and records it."""

    def __init__(self) -> None:
        super().__init__()
        self.requested = False

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        self.requested = True
        return self.resolve_string("", context)


def _parser_options() -> dict[str, Any]:
    return {
        "resolve_entities": False,
        "load_dtd": False,
        "dtd_validation": False,
        "no_network": True,
        "huge_tree": False,
        "remove_blank_text": False,
        "recover": False,
        "collect_ids": False,
    }


def hardened_parser() -> etree.XMLParser:
    """A fresh parser with every dangerous feature off and a resolver that refuses all loads.

    For library code that must hand a parser to lxml or signxml; documents from outside go
    through :func:`parse_xml`, which adds the policy's limits.
    """
    parser = etree.XMLParser(**_parser_options())
    parser.resolvers.add(_RefusingResolver())
    return parser


def _check_tree(root: etree._Element, resolver: _RefusingResolver) -> None:
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlParseError(reason="dtd")
    if resolver.requested:
        raise XmlParseError(reason="external")
    for _ in root.iter(etree.Entity):
        raise XmlParseError(reason="entity")


class _Counter:
    """Tracks depth and element count from the pull parser's events; raises on a limit."""

    def __init__(self, policy: XmlPolicy) -> None:
        self._policy = policy
        self._depth = 0
        self._elements = 0

    def consume(self, parser: etree.XMLPullParser) -> None:
        for event, _element in parser.read_events():
            if event == "start":
                self._depth += 1
                self._elements += 1
                if self._depth > self._policy.max_depth:
                    raise XmlParseError(reason="too_deep")
                if self._elements > self._policy.max_elements:
                    raise XmlParseError(reason="too_large")
            else:
                self._depth -= 1


def parse_xml(data: bytes, *, policy: XmlPolicy | None = None) -> etree._Element:
    """Parse untrusted XML bytes into an lxml element, refusing anything dangerous.

    Args:
        data: the document, as bytes (the encoding comes from the XML declaration or UTF-8).
        policy: limits; the default :class:`XmlPolicy` when omitted.

    Returns:
        The root element of the parsed document.

    Raises:
        TypeError: ``data`` is not bytes.
        XmlParseError: the document is malformed, has a DTD or an entity, asks for an external
            resource, or is over the policy's size, depth or element limits (``reason`` says which).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("data must be bytes")
    data = bytes(data)
    policy = policy if policy is not None else XmlPolicy()
    if len(data) > policy.max_bytes:
        raise XmlParseError(reason="too_large")
    resolver = _RefusingResolver()
    parser = etree.XMLPullParser(events=("start", "end"), **_parser_options())
    parser.resolvers.add(resolver)
    counter = _Counter(policy)
    try:
        for offset in range(0, max(len(data), 1), _CHUNK):
            parser.feed(data[offset : offset + _CHUNK])
            if resolver.requested:
                raise XmlParseError(reason="external")
            counter.consume(parser)
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        if resolver.requested:
            raise XmlParseError(reason="external") from None
        counter.consume(parser)  # a limit hit in the failed chunk names the real reason
        text = str(exc).lower()
        reason = "entity" if "entity" in text else "dtd" if "doctype" in text else "malformed"
        raise XmlParseError(reason=reason) from None
    if root is None:  # pragma: no cover - lxml raises XMLSyntaxError instead of giving no root
        raise XmlParseError(reason="malformed")
    _check_tree(root, resolver)
    return root
