"""XML security: hardened parsing, XMLDSig/XAdES signing and verification, schema validation.

* :func:`parse_xml` — the only way untrusted XML becomes a tree (XML-1).
* :class:`XmlSigner` / :class:`XmlVerifier` — enveloped XMLDSig RSA-SHA256 with exclusive C14N,
  XAdES-BES, and detached signature documents; verification pins a certificate or CAs and
  returns only what was signed (XML-2).
* :class:`SchemaRegistry` — XSD validation keyed by provider (XML-3).
"""

from storno_security.xmlsig.parsing import parse_xml
from storno_security.xmlsig.policy import XmlPolicy
from storno_security.xmlsig.schemas import SchemaRegistry, SchemaSource
from storno_security.xmlsig.signing import VerifiedXml, XmlSigner, XmlVerifier

__all__ = [
    "SchemaRegistry",
    "SchemaSource",
    "VerifiedXml",
    "XmlPolicy",
    "XmlSigner",
    "XmlVerifier",
    "parse_xml",
]
