"""The Falcon WSGI application: the kit's HTTP routes (``storno_security.integrations.falcon``)
and the server's own resources over one :class:`Server`."""

from __future__ import annotations

import logging
import sys
from typing import Any

from reference_server.demo import add_demo
from reference_server.resources import MODULES
from reference_server.settings import Settings
from reference_server.wiring import Server, build_server
from storno_security.integrations.asgi_front import AsgiFront
from storno_security.integrations.falcon.app import build_app
from storno_security.integrations.falcon.browser import BrowserMiddleware, CorsPolicy
from storno_security.integrations.falcon.routing import Api, ApiOptions, WsgiApp

__all__ = ["create_app", "create_app_from_env", "create_asgi_app"]


def create_app(settings: Settings | None = None, *, server: Server | None = None) -> WsgiApp:
    """Build the application. ``server`` (tests) wins over ``settings``.

    Raises:
        reference_server.settings.SettingsError: a setting is malformed.
        storno_security.integrations.keyfiles.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
    """
    if server is None:
        server = build_server(settings or Settings.from_env())
    options = ApiOptions(
        public_url=server.settings.public_url,
        cookie_secure=server.settings.cookie_secure,
        max_body_bytes=server.settings.max_body_bytes,
        trusted_proxies=server.settings.trusted_proxies,
        title="storno-security reference server",
    )
    api = Api(kit=server.kit, options=options, state=server)
    origins = server.settings.cors_origins
    browser = BrowserMiddleware(cors=CorsPolicy(frozenset(origins)) if origins else None)
    app = build_app(api, MODULES, outer=[browser])
    add_demo(app, server)
    return app


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def create_app_from_env() -> Any:
    """WSGI entry point: ``gunicorn 'reference_server.app:create_app_from_env()'``; each
    request under the deadline (``STORNO_REQUEST_TIMEOUT``)."""
    _logging()
    server = build_server(Settings.from_env())
    return server.deadlines.wsgi(create_app(server=server))


def create_asgi_app(settings: Settings, *, threads: int, access_log: bool = False) -> AsgiFront:
    """The ASGI application ``serve`` runs (SRV-5): slow clients wait on the event loop,
    ``STORNO_MAX_IN_FLIGHT`` requests are admitted, each answers by its deadline."""
    _logging()
    server = build_server(settings)
    access = logging.getLogger("reference_server.access") if access_log else None
    if access is not None:  # one line per request on stdout (path only, never the query)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access.addHandler(handler)
        access.propagate = False
    return AsgiFront(
        server.deadlines.wsgi(create_app(server=server)),
        threads=threads,
        max_in_flight=settings.max_in_flight,
        deadline=settings.request_timeout,
        max_body_bytes=settings.max_body_bytes,
        access_log=access,
    )
