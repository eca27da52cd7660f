"""Error answers (SRV-2): every exception becomes ``{"error", "code", "request_id", ...}``,
by the answer every integration gives (:func:`~storno_security.integrations._common.answer_error`:
the library's errors through the one map, :class:`ApiError` as it says, anything else a 500 with
nothing of it in the body; an expected 503 logs one line, never a traceback)."""

from __future__ import annotations

from typing import Any

import falcon

from storno_security.integrations._common import HTTP_CODES, ApiError, answer_error

__all__ = ["ApiError", "handle_error"]


def handle_error(
    req: falcon.Request, resp: falcon.Response, exc: BaseException, params: Any
) -> None:
    """Falcon's one error handler."""
    request_id = getattr(req.context, "request_id", None)
    req.context.error = exc  # for the request's log line and metrics
    if isinstance(exc, falcon.HTTPError):
        status = int(exc.status_code)
        body: dict[str, Any] = {
            "error": exc.title or "Error",
            "code": HTTP_CODES.get(status, "http_error"),
            "request_id": request_id,
        }
        headers = dict(exc.headers or {})
    else:
        status, body, headers = answer_error(exc, request_id)
    resp.status = falcon.code_to_http_status(status)
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON
    for name, value in headers.items():
        resp.set_header(name, value)
