"""The applications bench/server.py measures beside the reference server.

* ``bare_me()``: a bare Falcon WSGI app that reads the same user row from the same SQLite file
  (one ``SELECT`` on a connection kept per thread) and answers the same JSON as the server's
  ``GET /api/v1/me`` (the answer's other fields come from a template the driver saved); no
  authentication, no middleware: the floor for that work in this framework;
* ``bare_me_headers()``: ``bare_me()`` answering with the response headers the server sends
  (its five security headers, ``RateLimit-*``, ``X-Request-Id``, ``Cache-Control``), values
  made per request as cheaply as Python allows: how much of the gap to ``bare_me()`` is the
  headers' own cost (most of it the HTTP server's, which checks and formats each one);
* ``bare_hello()``: a bare Falcon hello route, the floor for ``/health``;
* ``fastapi_users()``: ``GET /users/me`` built with fastapi-users (JWT strategy, Bearer
  transport, SQLAlchemy adapter on aiosqlite), as its documentation sets it up, for uvicorn
  (``--factory``); it runs in the bench's own virtual environment. ``prepare_fastapi_users()``
  makes its database, one user and an access token once, before its workers start (they share
  the secret through ``BENCH_JWT_SECRET``).

Settings come from the environment: ``BENCH_DIR``, ``BENCH_DB`` (the server's SQLite file),
``BENCH_USER_ID``, ``BENCH_JWT_SECRET``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

EMAIL = "bench-fu@example.eu"
PASSWORD = "a long bench passphrase"  # noqa: S105 - the bench's own


def bare_me() -> Any:
    import sqlite3

    import falcon

    database = os.environ["BENCH_DB"]
    user_id = os.environ["BENCH_USER_ID"]
    template = json.loads((Path(os.environ["BENCH_DIR"]) / "me.json").read_text())
    local = threading.local()
    query = (
        "SELECT user_id, email, name, email_confirmed_at, mfa_enabled,"
        " password_hash IS NOT NULL, created_at FROM storno_users WHERE user_id = ?"
    )

    def iso(value: str | None) -> str | None:
        return None if value is None else value.replace(" ", "T") + "Z"

    class Me:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = sqlite3.connect(database, isolation_level=None)
            row = connection.execute(query, (user_id,)).fetchone()
            uid, email, name, confirmed, mfa, has_password, created = row
            resp.media = {
                **template,
                "user": {
                    "id": uid,
                    "email": email,
                    "email_confirmed": confirmed is not None,
                    "name": name,
                    "mfa_enabled": bool(mfa),
                    "has_password": bool(has_password),
                    "created_at": iso(created),
                },
            }

    app = falcon.App()
    app.add_route("/api/v1/me", Me())
    return app


def bare_me_headers() -> Any:
    import itertools

    import falcon

    fixed = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("RateLimit-Limit", "50000"),
    ]
    counter = itertools.count(1)
    prefix = os.urandom(8).hex()

    class Headers:
        def process_response(
            self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool
        ) -> None:
            n = next(counter)
            resp.set_headers(
                [
                    *fixed,
                    ("RateLimit-Remaining", str(max(0, 50_000 - n))),
                    ("RateLimit-Reset", "1"),
                    ("X-Request-Id", f"{prefix}{n:016x}"),
                    ("Cache-Control", "no-store"),
                ]
            )

    app = bare_me()
    app.add_middleware(Headers())
    return app


def bare_hello() -> Any:
    import falcon

    class Hello:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "ok"}

    app = falcon.App()
    app.add_route("/health", Hello())
    return app


def _users() -> Any:
    from fastapi_users_app import Users

    directory = Path(os.environ["BENCH_DIR"])
    return Users(directory / "fu.db", os.environ["BENCH_JWT_SECRET"])


def prepare_fastapi_users() -> None:
    """The database, one user and its access token (``$BENCH_DIR/fu.token``)."""
    import asyncio

    users = _users()

    async def prepare() -> None:
        token = await users.first_user_token(EMAIL, PASSWORD)
        (Path(os.environ["BENCH_DIR"]) / "fu.token").write_text(token)
        await users.engine.dispose()

    asyncio.run(prepare())


def fastapi_users() -> Any:
    from fastapi import FastAPI

    return _users().mount(FastAPI())
