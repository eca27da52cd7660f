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
    routes = RouteTable()
    for module in MODULES:
        module.register(routes, services)
    routes.install(app)
    return app


class RouteTable:
    """Collects every module's routes; a path served by several modules (``/api/v1/me``: the
    profile verbs and the GDPR ``DELETE``) becomes one resource. Falcon keeps one resource per
    path, so a second ``add_route`` would silently drop the first one's verbs."""

    def __init__(self) -> None:
        self._routes: dict[str, list[object]] = {}

    def add_route(self, uri_template: str, resource: object) -> None:
        self._routes.setdefault(uri_template, []).append(resource)

    def install(self, app: WsgiApp) -> None:
        for path, resources in self._routes.items():
            app.add_route(
                path, resources[0] if len(resources) == 1 else _Composite(path, resources)
            )


class _Composite:
    """One path's responders taken from several resources; two resources answering the same
    method is a wiring mistake refused at start-up."""

    def __init__(self, path: str, resources: list[object]) -> None:
        self.rate_limits: dict[str, str] = {}
        for resource in resources:
            for name in dir(resource):
                if not name.startswith("on_"):
                    continue
                if hasattr(self, name):
                    raise RuntimeError(f"two resources answer {name} on {path}")
                setattr(self, name, getattr(resource, name))
            self.rate_limits.update(getattr(resource, "rate_limits", {}))


def create_app_from_env() -> WsgiApp:
    """Entry point for gunicorn: ``gunicorn 'reference_server.app:create_app_from_env()'``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(Settings.from_env())
