"""The Falcon WSGI application: every resource module's routes over one :class:`Server`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon

from reference_server.errors import handle_error
from reference_server.middleware import Middleware
from reference_server.resources import MODULES
from reference_server.settings import Settings
from reference_server.web import Ctx, Route, WsgiApp, read_json, validate_body
from reference_server.wiring import Server, build_server

__all__ = ["PathResource", "all_routes", "create_app", "create_app_from_env"]


def all_routes() -> list[Route]:
    """Every route of every resource module, in declaration order."""
    return [route for module in MODULES for route in module.routes.routes]


class PathResource:
    """The routes of one path; Falcon calls ``on_<method>``."""

    def __init__(self, server: Server, path: str, routes: list[Route]) -> None:
        self._server = server
        self._routes: dict[str, Route] = {}
        for route in routes:
            if route.method in self._routes:
                raise RuntimeError(f"two handlers for {route.method} {path}")
            self._routes[route.method] = route
            setattr(self, f"on_{route.method.lower()}", self._responder(route))

    def route(self, method: str) -> Route | None:
        return self._routes.get(method)

    def _responder(self, route: Route) -> Callable[..., None]:
        server = self._server
        max_bytes = server.settings.max_body_bytes

        def respond(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
            body: dict[str, Any] = {}
            if route.body is not None and (route.body_required or req.content_length):
                body = read_json(req, max_bytes=max_bytes)
                validate_body(route, body)
            route.handler(Ctx(req, resp, server), body, **params)

        return respond


def create_app(settings: Settings | None = None, *, server: Server | None = None) -> WsgiApp:
    """Build the application. ``server`` (tests) wins over ``settings``.

    Raises:
        reference_server.settings.SettingsError: a setting is malformed.
        reference_server.keys.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
    """
    if server is None:
        server = build_server(settings or Settings.from_env())
    app: WsgiApp = falcon.App(middleware=[Middleware(server)], cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.secure_cookies_by_default = server.settings.cookie_secure
    app.add_error_handler(Exception, handle_error)
    app.add_error_handler(falcon.HTTPError, handle_error)
    by_path: dict[str, list[Route]] = {}
    for route in all_routes():
        by_path.setdefault(route.path, []).append(route)
    for path, routes in by_path.items():
        app.add_route(path, PathResource(server, path, routes))
    return app


def create_app_from_env() -> WsgiApp:
    """Entry point for gunicorn: ``gunicorn 'reference_server.app:create_app_from_env()'``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(Settings.from_env())
