"""Error answers (SRV-2): every exception becomes ``{"error", "code", "request_id", ...}``.

The library's errors are mapped by :func:`storno_security.integrations.http.describe_error`
(the one map the framework integrations share); :class:`ApiError` is what the server decides
itself (malformed requests, missing credentials). Anything else is logged with its trace and
answers 500; an expected 503 (a dependency down) logs one line, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from storno_security.integrations.http import describe_error

__all__ = ["ApiError", "handle_error"]

log = logging.getLogger("reference_server")

_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error the server itself decides: status, stable code, safe message, extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def _respond(
    req: falcon.Request,
    resp: falcon.Response,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    body.setdefault("request_id", getattr(req.context, "request_id", None))
    resp.status = falcon.code_to_http_status(status)
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def handle_error(
    req: falcon.Request, resp: falcon.Response, exc: BaseException, params: Any
) -> None:
    """Falcon's one error handler."""
    request_id = getattr(req.context, "request_id", "-")
    if isinstance(exc, ApiError):
        _respond(
            req,
            resp,
            exc.status,
            {"error": exc.message, "code": exc.code, **exc.extra},
            exc.headers,
        )
        return
    if isinstance(exc, falcon.HTTPError):
        status = int(exc.status_code)
        code = _HTTP_CODES.get(status, "http_error")
        _respond(
            req,
            resp,
            status,
            {"error": exc.title or "Error", "code": code},
            dict(exc.headers or {}),
        )
        return
    described = describe_error(exc)
    if described is None:
        log.error("request %s: unexpected %s", request_id, type(exc).__name__, exc_info=exc)
        _respond(req, resp, 500, {"error": "Internal server error.", "code": "internal_error"})
        return
    if described.status == 503:
        # Expected when a dependency is down: one line, no traceback (a flood of them would
        # bury the log exactly when it is read).
        log.warning("request %s: %s (%s)", request_id, described.code, type(exc).__name__)
    elif described.status >= 500:
        log.error("request %s failed: %s", request_id, type(exc).__name__, exc_info=exc)
    _respond(req, resp, described.status, described.body(), dict(described.headers))
