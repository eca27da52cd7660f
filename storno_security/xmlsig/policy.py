"""The XML policy: frozen, validated, limits for every document the library reads (XML-1)."""

from __future__ import annotations

import attrs

from storno_security._validators import int_between

__all__ = ["XmlPolicy"]


@attrs.frozen(kw_only=True)
class XmlPolicy:
    """Limits applied to every XML document before anything else looks at it.

    DTDs, entities and network access are never allowed; there is no switch for them.

    Attributes:
        max_bytes: larger documents are refused before parsing. Default 10 MiB (an e-invoice
            with embedded attachments stays well below).
        max_depth: deepest element nesting accepted. Default 64 (UBL invoices nest about 10).
        max_elements: most elements accepted in one document. Default 200,000.
        max_references: most ``ds:Reference`` elements in a XAdES or detached signature
            (the document, the signed properties, ``KeyInfo``). Default 3, from 1 to 32. A plain
            enveloped XMLDSig signature always has exactly one. Counted before any digest is
            computed: each reference costs a pass over the whole document.
        max_certificates: most ``X509Certificate`` elements in one signature (the signer and
            its chain). Default 4, from 1 to 32.
    """

    max_bytes: int = attrs.field(
        default=10 * 1024 * 1024, validator=int_between(1024, 1 << 30, wrong_type=ValueError)
    )
    max_depth: int = attrs.field(default=64, validator=int_between(4, 256, wrong_type=ValueError))
    max_elements: int = attrs.field(
        default=200_000, validator=int_between(16, 10_000_000, wrong_type=ValueError)
    )
    max_references: int = attrs.field(
        default=3, validator=int_between(1, 32, wrong_type=ValueError)
    )
    max_certificates: int = attrs.field(
        default=4, validator=int_between(1, 32, wrong_type=ValueError)
    )
