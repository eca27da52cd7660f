"""CORS as an explicit allow-list, for any framework: which headers answer a request from another
origin, and how a preflight is answered.

Only an origin on the list gets CORS headers at all, and with them
``Access-Control-Allow-Credentials: true``; every other origin gets none, so its scripts can
neither read an answer nor send credentials in a preflighted request. There is no wildcard: a
``*`` with credentials would let any site act for the signed-in user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

import attrs

__all__ = ["CorsPolicy"]

_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_HEADERS: Final = ("authorization", "content-type", "x-request-id", "x-organization", "x-company")
_EXPOSED: Final = "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id"


def _checked(origins: Iterable[str]) -> frozenset[str]:
    result = set()
    for origin in origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(f"a CORS origin is scheme://host[:port], got {origin!r}")
        result.add(origin.lower())
    return frozenset(result)


@attrs.frozen
class CorsPolicy:
    """The origins whose scripts may call the API with credentials.

    Attributes:
        origins: exact origins (``https://app.example.eu``); no wildcard, no path.
        max_age: seconds a browser may cache a preflight answer.
    """

    origins: frozenset[str] = attrs.field(converter=_checked)
    max_age: int = 600

    def allows(self, origin: str | None) -> bool:
        return origin is not None and origin.lower() in self.origins

    def headers(self, origin: str | None) -> Mapping[str, str]:
        """Headers for an actual request: CORS ones only for a listed origin; ``Vary: Origin``
        always, so no cache serves one origin's answer to another."""
        if origin is None or not self.allows(origin):
            return {"Vary": "Origin"}
        return {
            "Vary": "Origin",
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": _EXPOSED,
        }

    def preflight(self, origin: str | None, method: str, request_headers: str) -> Mapping[str, str]:
        """Headers answering a preflight (``OPTIONS`` with ``Access-Control-Request-Method``):
        the allowed methods and headers for a listed origin asking for no other; else only
        ``Vary``, which the browser takes as a refusal."""
        asked = {h.strip().lower() for h in request_headers.split(",") if h.strip()}
        if not self.allows(origin) or method.upper() not in _METHODS or not asked <= set(_HEADERS):
            return {"Vary": "Origin"}
        return {
            **self.headers(origin),
            "Access-Control-Allow-Methods": ", ".join(_METHODS),
            "Access-Control-Allow-Headers": ", ".join(_HEADERS),
            "Access-Control-Max-Age": str(self.max_age),
        }
