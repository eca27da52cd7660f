"""The XML policy: frozen, validated, limits for every document the library reads (XML-1)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["XmlPolicy"]


def _int_between(low: int, high: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be an int between {low} and {high}")

    return check


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

    max_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=_int_between(1024, 1 << 30))
    max_depth: int = attrs.field(default=64, validator=_int_between(4, 256))
    max_elements: int = attrs.field(default=200_000, validator=_int_between(16, 10_000_000))
