"""The Falcon WSGI application: the kit's HTTP routes (``storno_security.integrations.falcon``)
and the server's own resources over one :class:`Server`."""

from __future__ import annotations

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
from storno_security.integrations.keyholders import register_holder
from storno_security.integrations.observability import (
    RequestLineWriter,
    configure_logging,
    stdout_access_log,
)

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
    api = Api(kit=server.kit, options=options, state=server, observer=server.observer)
    origins = server.settings.cors_origins
    # CORS only when origins are listed: without them the browser middleware has nothing to do
    outer = [BrowserMiddleware(cors=CorsPolicy(frozenset(origins)))] if origins else []
    app = build_app(api, MODULES, outer=outer)
    add_demo(app, server)
    return app


def _prepare(settings: Settings) -> Server:
    """This process's logging, its server, and its vault key-holder marker."""
    configure_logging(settings.log_format)
    server = build_server(settings)
    # the request line straight to stderr, where configure_logging sends every logger
    server.observer.request_lines = RequestLineWriter.for_stream(
        sys.stderr, settings.log_format, flush_after=settings.log_flush_ms / 1000
    )
    if settings.vault_key_file is None:  # `vault retire-old` waits for this process to go
        register_holder(settings.data_dir / "keys" / "vault", server.keys.vault.active_kid)
    return server


def create_app_from_env() -> Any:
    """WSGI entry point: ``gunicorn 'reference_server.app:create_app_from_env()'``; each
    request under the deadline (``STORNO_REQUEST_TIMEOUT``)."""
    server = _prepare(Settings.from_env())
    return server.deadlines.wsgi(create_app(server=server))


def create_asgi_app(settings: Settings, *, threads: int, access_log: bool = False) -> AsgiFront:
    """The ASGI application ``serve`` runs (SRV-5): slow clients wait on the event loop,
    ``STORNO_MAX_IN_FLIGHT`` requests are admitted, each answers by its deadline."""
    server = _prepare(settings)
    # one line per request on stdout (path only, never the query)
    access = stdout_access_log("reference_server.access") if access_log else None
    return AsgiFront(
        server.deadlines.wsgi(create_app(server=server)),
        threads=threads,
        max_in_flight=settings.max_in_flight,
        deadline=settings.request_timeout,
        max_body_bytes=settings.max_body_bytes,
        access_log=access,
    )
