"""The Falcon application of an API: every route of the given route modules over one kit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import falcon

from storno_security.integrations.falcon.errors import handle_error
from storno_security.integrations.falcon.middleware import (
    Middleware,
    RequestHook,
    ResponseHook,
)
from storno_security.integrations.falcon.routing import (
    Api,
    Ctx,
    Route,
    Routes,
    WsgiApp,
    read_json,
    validate_body,
)

__all__ = ["PathResource", "build_app"]


class PathResource:
    """The routes of one path; Falcon calls ``on_<method>``."""

    def __init__(self, api: Api[Any], path: str, routes: list[Route]) -> None:
        self._api = api
        self._routes: dict[str, Route] = {}
        for route in routes:
            if route.method in self._routes:
                raise RuntimeError(f"two handlers for {route.method} {path}")
            self._routes[route.method] = route
            setattr(self, f"on_{route.method.lower()}", self._responder(route))

    def route(self, method: str) -> Route | None:
        return self._routes.get(method)

    def _responder(self, route: Route) -> Callable[..., None]:
        api = self._api
        max_bytes = api.options.max_body_bytes

        def respond(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
            body: dict[str, Any] = {}
            if route.body is not None and (route.body_required or req.content_length):
                body = read_json(req, max_bytes=max_bytes)
                validate_body(route, body)
            route.handler(Ctx(req, resp, api), body, **params)

        return respond


def build_app(
    api: Api[Any],
    modules: Iterable[Routes],
    *,
    outer: Sequence[Any] = (),
    on_request: Iterable[RequestHook] = (),
    on_response: Iterable[ResponseHook] = (),
) -> WsgiApp:
    """A Falcon WSGI application serving ``modules``' routes with ``api``'s kit and options:
    the one middleware, the one error handler, ``/openapi.json`` from the same declarations.
    ``outer`` middleware wraps it (in first, out last), as
    :class:`~storno_security.integrations.falcon.browser.BrowserMiddleware`;
    ``on_request``/``on_response``: the middleware's hooks (see
    :mod:`~storno_security.integrations.falcon.middleware`).

    Raises:
        RuntimeError: two handlers for one method and path.
    """
    api.routes = [route for module in modules for route in module.routes]
    middleware = Middleware(api, on_request=tuple(on_request), on_response=tuple(on_response))
    app: WsgiApp = falcon.App(middleware=[*outer, middleware], cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.secure_cookies_by_default = api.options.cookie_secure
    app.add_error_handler(Exception, handle_error)
    app.add_error_handler(falcon.HTTPError, handle_error)
    by_path: dict[str, list[Route]] = {}
    for route in api.routes:
        by_path.setdefault(route.path, []).append(route)
    for path, routes in by_path.items():
        app.add_route(path, PathResource(api, path, routes))
    return app
