"""What a browser needs around the API: CORS from an allow-list (:class:`CorsPolicy`,
:class:`BrowserMiddleware`) and the pages a resource serves (:class:`StaticFile`, under its
own Content-Security-Policy, which the API's middleware sends in place of the API's
``default-src 'none'``, which would forbid the page its own scripts).

:class:`BrowserMiddleware` wraps the API's middleware: first on the way in, so a preflight is
answered here without reading a credential or counting against a rate limit; last on the way
out. Without an allow-list it has nothing to do: leave it out of the app then.
"""

from __future__ import annotations

from typing import Any

import falcon

from storno_security.integrations.cors import CorsPolicy

__all__ = ["PAGE_CSP", "BrowserMiddleware", "CorsPolicy", "StaticFile"]

#: A page's own scripts, styles and API, nothing else: no inline script, no other origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


class StaticFile:
    """One file of a page (bytes read once), served under ``csp``. Not an API route: no
    credential is read and nothing is counted, as for ``/health``."""

    def __init__(self, data: bytes, *, name: str, csp: str = PAGE_CSP) -> None:
        self._data = data
        self._type = _TYPES[name.rsplit(".", 1)[-1]] + "; charset=utf-8"
        self._csp = csp

    def route(self, method: str) -> None:
        """No route of the API (the API middleware asks)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self._type
        resp.data = self._data
        resp.cache_control = ["no-cache"]
        resp.context.page_csp = self._csp


class BrowserMiddleware:
    """CORS (``cors=None``: no CORS header ever, and nothing else done)."""

    def __init__(self, *, cors: CorsPolicy | None = None) -> None:
        self._cors = cors

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = req.get_header("Access-Control-Request-Method")
        if self._cors is not None and req.method == "OPTIONS" and asked:
            origin = req.get_header("Origin")
            headers = req.get_header("Access-Control-Request-Headers") or ""
            resp.set_headers(dict(self._cors.preflight(origin, asked, headers)))
            resp.status = falcon.HTTP_204
            resp.complete = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        if self._cors is not None and not req.get_header("Access-Control-Request-Method"):
            for name, value in self._cors.headers(req.get_header("Origin")).items():
                if name == "Vary":
                    resp.append_header(name, value)
                else:
                    resp.set_header(name, value)
