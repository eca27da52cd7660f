"""The demo page: static HTML and JS from the package, on the API's origin, under a policy that
allows only its own scripts. On by default for a localhost public URL (``STORNO_DEMO_PAGE``).

With a development mail sink (memory or directory) on a server that listens on loopback and
answers at localhost, ``GET /demo/mail?to=`` shows the page the mail sent to an address, so a
confirmation link can be followed without a mail server. It never exists otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import falcon

from reference_server.mail import DirectoryEmailSink, MemoryEmailSink
from reference_server.wiring import Server
from storno_security.integrations.falcon.browser import StaticFile

__all__ = ["add_demo"]

#: The page answers at the confirmation link the server mails too.
_PAGE_PATHS = ("/demo", "/confirm-email")


def _file(name: str) -> StaticFile:
    data = resources.files("reference_server").joinpath("static", name).read_bytes()
    return StaticFile(data, name=name)


class _Mail:
    def __init__(self, read: Callable[[], list[dict[str, str]]]) -> None:
        self._read = read

    def route(self, method: str) -> None:
        """Development only, on loopback: not an API route."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        to = (req.get_param("to") or "").strip().lower()
        mine = [m for m in self._read() if m["to"].lower() == to][-5:]
        resp.media = {"mail": [{"subject": m["subject"], "body": m["body"]} for m in mine[::-1]]}


def add_demo(app: Any, server: Server) -> None:
    """Serve the page (and, in development, the mail) when the settings turn it on."""
    settings = server.settings
    if not settings.demo_page_on:
        return
    page = _file("demo.html")
    for path in _PAGE_PATHS:
        app.add_route(path, page)
    for name in ("demo.js", "demo.css"):
        app.add_route(f"/demo/{name}", _file(name))
    if not (settings.is_local and settings.host in ("127.0.0.1", "::1", "localhost")):
        return
    sink = server.email
    if isinstance(sink, MemoryEmailSink):
        app.add_route("/demo/mail", _Mail(lambda: list(sink.sent)))
    elif isinstance(sink, DirectoryEmailSink):
        app.add_route("/demo/mail", _Mail(sink.read_all))
