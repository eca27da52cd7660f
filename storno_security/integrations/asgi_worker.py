"""The gunicorn worker class that serves an :class:`~.asgi_front.AsgiFront` (SRV-5): uvicorn's
event loop reads requests, so slow clients hold no thread. uvicorn's own proxy-header rewriting
is off (the application reads ``X-Forwarded-For`` from the proxies it trusts, and only those),
and the worker exits when its master dies."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker as _UvicornWorker  # type: ignore[import-untyped]

from storno_security.integrations.asgi_front import die_with_parent

__all__ = ["UvicornWorker"]


class UvicornWorker(_UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, without proxy headers, bound to its master's life."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
        "access_log": False,  # uvicorn's would log query strings; the front logs without
        "server_header": False,
    }

    def init_process(self) -> None:
        die_with_parent(self.ppid)
        super().init_process()
