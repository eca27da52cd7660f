"""The Falcon WSGI application: ``create_app(settings)`` wires everything from the library."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from reference_server.errors import handle_error
from reference_server.http import WsgiApp
from reference_server.middleware import (
    AuthMiddleware,
    RateLimitMiddleware,
    RequestIdMiddleware,
    SecurityHeaders,
)
from reference_server.resources import MODULES
from reference_server.services import EmailSink, Services, build_services
from reference_server.settings import Settings
from storno_security.clock import Clock
from storno_security.oidc import JwksFetcher

__all__ = ["create_app", "create_app_from_env"]


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    clock: Clock | None = None,
    email: EmailSink | None = None,
    google_fetcher: JwksFetcher | None = None,
) -> WsgiApp:
    """Build the application. ``services`` (tests) wins over ``settings``.

    Raises:
        reference_server.settings.SettingsError: a setting is malformed.
        reference_server.keys.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
    """
    if services is None:
        services = build_services(
            settings or Settings.from_env(),
            clock=clock,
            email=email,
            google_fetcher=google_fetcher,
        )
    middleware: list[Any] = [
        RequestIdMiddleware(),
        SecurityHeaders(hsts=services.settings.public_url.startswith("https://")),
        AuthMiddleware(services),
        RateLimitMiddleware(services),
    ]
    app: WsgiApp = falcon.App(middleware=middleware, cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.secure_cookies_by_default = services.settings.cookie_secure
    app.add_error_handler(Exception, handle_error)
    app.add_error_handler(falcon.HTTPError, handle_error)
    for module in MODULES:
        module.register(app, services)
    return app


def create_app_from_env() -> WsgiApp:
    """Entry point for gunicorn: ``gunicorn 'reference_server.app:create_app_from_env()'``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(Settings.from_env())
