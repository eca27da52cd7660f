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
    """

    max_bytes: int = attrs.field(
        default=10 * 1024 * 1024, validator=int_between(1024, 1 << 30, wrong_type=ValueError)
    )
    max_depth: int = attrs.field(default=64, validator=int_between(4, 256, wrong_type=ValueError))
    max_elements: int = attrs.field(
        default=200_000, validator=int_between(16, 10_000_000, wrong_type=ValueError)
    )
