"""The two applications of bench/frameworks.py, as uvicorn factories (``--factory``).

* ``ours``: FastAPI with storno-security's integration on SQLite (``sql_bundle``; the
  per-request reads made on the loop, as the integration does on SQLite by default);
* ``ours_aiosqlite``: the same with the per-request reads through aiosqlite
  (``inline_sqlite=False``);
* ``fastapi_users``: the same ``GET /users/me`` built with fastapi-users' JWT strategy and its
  SQLAlchemy adapter on SQLite (aiosqlite), as its documentation sets it up. It runs in the
  bench's own virtual environment (``bench/.venv-fastapi-users``), where only it is installed.

Each factory makes its database and one user in ``$BENCH_DIR``, and writes an access token of
that user to ``$BENCH_DIR/<name>.token`` before the server listens.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

EMAIL = "bench@example.eu"
PASSWORD = "a long bench passphrase"  # noqa: S105 - the bench's own


def _directory() -> Path:
    return Path(os.environ["BENCH_DIR"])


def ours(*, inline_sqlite: bool = True) -> Any:
    """storno-security's FastAPI integration: ``GET /users/me`` answers the verified caller;
    ``GET /users/me/profile`` also reads the account row (in the ``io`` lane)."""
    from fastapi import Depends, FastAPI

    from storno_security.integrations.fastapi import Caller, setup
    from storno_security.kit import Kit, KitKeys, KitPolicy
    from storno_security.stores.sql import create_engine, create_schema, sql_bundle

    directory = _directory()
    url = f"sqlite:///{directory / ('ours.db' if inline_sqlite else 'ours_aiosqlite.db')}"
    engine = create_engine(url)
    create_schema(engine)
    kit = Kit(
        sql_bundle(engine),
        policy=KitPolicy.for_api(issuer="https://bench.example.eu", audience="bench"),
        keys=KitKeys.generate(rsa_bits=2048),
    )
    registration = kit.register(EMAIL, PASSWORD)
    assert registration.session is not None
    name = "ours" if inline_sqlite else "ours_aiosqlite"
    (directory / f"{name}.token").write_text(registration.session.tokens.access_token)

    app = FastAPI()
    # wrk sends X-Forwarded-For from loopback: each request counts against its own address
    security = setup(
        app, kit, database_url=url, trusted_proxies=["127.0.0.1"], inline_sqlite=inline_sqlite
    )

    @app.get("/users/me")
    async def me(caller: Caller = Depends(security.authenticated)) -> dict[str, Any]:
        return {"id": caller.user_id, "kind": caller.kind}

    @app.get("/users/me/profile")
    async def profile(caller: Caller = Depends(security.authenticated)) -> dict[str, Any]:
        user = await security.offload.io(kit.get_user, caller.user_id)
        return {"id": user.user_id, "email": user.email, "mfa_enabled": user.mfa_enabled}

    return app


def ours_aiosqlite() -> Any:
    """``ours`` with the per-request reads through aiosqlite."""
    return ours(inline_sqlite=False)


def fastapi_users() -> Any:
    """fastapi-users (JWT strategy, Bearer transport, SQLAlchemy adapter on aiosqlite):
    ``GET /users/me`` from its users router."""
    from fastapi import FastAPI
    from fastapi_users_app import Users

    directory = _directory()
    users = Users(directory / "users.db", secrets.token_hex(32))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token = await users.first_user_token(EMAIL, PASSWORD)
        (directory / "fastapi_users.token").write_text(token)
        yield
        await users.engine.dispose()

    return users.mount(FastAPI(lifespan=lifespan))
