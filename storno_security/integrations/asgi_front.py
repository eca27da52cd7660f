"""A WSGI application served by an ASGI server (SRV-5): slow clients wait on the event loop,
not in a thread; admission is bounded (load shedding); every request has a deadline.

:class:`AsgiFront` reads each request whole on the event loop (a client sending its headers or
body slowly costs a coroutine, never a request thread), then runs the WSGI application in a
thread pool and answers from the loop:

* at most ``max_in_flight`` requests are admitted (running or queued for a thread); above it a
  request answers ``503`` with ``Retry-After`` at once, before reading its body;
* a request still unanswered ``deadline`` seconds after admission answers ``503`` (its thread
  finishes in the background, bounded by :class:`~.deadline.RequestDeadlines`);
* probes (``/health``, ``/ready``) skip admission and run on threads of their own, so a queue
  of slow requests never makes a liveness probe late.

:class:`UvicornWorker` is the gunicorn worker class that runs it: uvicorn's, with uvicorn's
proxy-header rewriting off (the application decides which proxies it trusts) and the worker
set to exit when its master dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storno_security.integrations.deadline import DEADLINE_ENVIRON_KEY

__all__ = ["AsgiFront", "die_with_parent"]

log = logging.getLogger("storno_security.integrations")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class AsgiFront:
    """An ASGI application running ``app`` (WSGI) under admission control and a deadline.

    Args:
        app: the WSGI application.
        threads: request threads.
        max_in_flight: requests admitted at once (running or waiting for a thread).
        deadline: seconds from admission to the answer.
        max_body_bytes: larger bodies answer 413 without being read.
        probes: paths that skip admission and run on a thread of their own each.
        monotonic: the clock of deadlines (the one :class:`~.deadline.RequestDeadlines` reads).
        access_log: where to log one line per request (peer, method, path without the query
            string, status, size, duration), or ``None``.
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        threads: int,
        max_in_flight: int,
        deadline: float,
        max_body_bytes: int,
        probes: Collection[str] = ("/health", "/ready"),
        monotonic: Callable[[], float] = time.monotonic,
        access_log: logging.Logger | None = None,
    ) -> None:
        if threads < 1 or max_in_flight < 1 or not deadline > 0:
            raise ValueError("threads, max_in_flight and deadline must be positive")
        self._app = app
        self._max_in_flight = max_in_flight
        self._deadline = deadline
        self._max_body = max_body_bytes
        self._requests = ThreadPoolExecutor(threads, thread_name_prefix="storno-request")
        # one thread per probe: a readiness check stuck on a hung database never delays the
        # liveness check behind it
        self._probe_threads = {
            path: ThreadPoolExecutor(1, thread_name_prefix="storno-probe") for path in probes
        }
        self._monotonic = monotonic
        self.in_flight = 0
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not served
            return
        started = self._monotonic()
        answer = await self._answer(scope, receive)
        await _send(send, answer)
        if self.access_log is not None:
            client = scope.get("client") or ("-", 0)
            self.access_log.info(
                '%s "%s %s HTTP/%s" %d %d %.3fs',
                client[0],
                scope["method"],
                scope["path"],  # never the query string: a token in a URL stays out of logs
                scope.get("http_version", "1.1"),
                answer[0],
                len(answer[2]),
                self._monotonic() - started,
            )

    async def _answer(self, scope: Scope, receive: Receive) -> _Answer:
        body = await self._body(scope, receive)  # before admission: a slow body holds no slot
        if body is None:
            return _refusal(413, "payload_too_large", "The body is too large.")
        path = scope["path"]
        probe = path in self._probe_threads
        if not probe and self.in_flight >= self._max_in_flight:
            return _refusal(503, "overloaded", "The server is busy. Retry shortly.")
        if not probe:
            self.in_flight += 1
        deadline = self._monotonic() + self._deadline
        environ = _environ(scope, body)
        environ[DEADLINE_ENVIRON_KEY] = deadline
        pool = self._probe_threads[path] if probe else self._requests
        future = asyncio.get_running_loop().run_in_executor(pool, _run, self._app, environ)
        try:
            # the application answers by the deadline itself (RequestDeadlines); a grace
            # second lets it say why before the front answers "timeout"
            return await asyncio.wait_for(asyncio.shield(future), self._deadline + 1.0)
        except TimeoutError:
            log.warning("%s %s: no answer by the deadline: 503 timeout", scope["method"], path)
            return _refusal(503, "timeout", "The request took too long. Retry shortly.")
        finally:
            if not probe:
                if future.done():
                    self.in_flight -= 1
                else:  # the thread is still busy: it counts until it finishes
                    future.add_done_callback(self._release)

    def _release(self, future: asyncio.Future[_Answer]) -> None:
        self.in_flight -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a late failure was answered already

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def close(self) -> None:
        self._requests.shutdown(wait=False, cancel_futures=True)
        for pool in self._probe_threads.values():
            pool.shutdown(wait=False, cancel_futures=True)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send(send: Send, answer: _Answer) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refusal(status: int, code: str, message: str) -> _Answer:
    body = json.dumps({"error": message, "code": code}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    return status, headers, body


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # WSGI carries the path as latin-1 text of its UTF-8 bytes (PEP 3333)
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0] if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:  # read whole: its length is known, whether it came chunked or not
        environ["CONTENT_LENGTH"] = str(len(body))
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name
        if key == "CONTENT_LENGTH" and body:
            continue
        if key in environ:  # a repeated header: one value, as RFC 9110 joins them
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


def _run(app: WsgiApp, environ: dict[str, Any]) -> _Answer:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return _no_write

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            close()
    status, headers = started
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if not any(k == b"content-length" for k, _ in encoded):
        encoded.append((b"content-length", str(len(body)).encode()))
    return int(status.split(" ", 1)[0]), encoded, body


def _no_write(data: bytes) -> None:  # pragma: no cover - the Falcon app never calls write()
    raise RuntimeError("write() is not supported; return the body")


_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (a gunicorn worker
    whose master was killed would otherwise keep the port). If the parent is already gone
    (it died before this call), send it now. Does nothing on other systems."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - a parent-pid check remains
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
