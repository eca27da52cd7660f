"""The applications bench/server.py measures beside the reference server.

* ``bare_me()``: a bare Falcon WSGI app that reads the same user row from the same SQLite file
  (one ``SELECT`` on a connection kept per thread) and answers the same JSON as the server's
  ``GET /api/v1/me`` (the answer's other fields come from a template the driver saved); no
  authentication, no middleware: the floor for that work in this framework;
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
from collections.abc import AsyncIterator
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


def bare_hello() -> Any:
    import falcon

    class Hello:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "ok"}

    app = falcon.App()
    app.add_route("/health", Hello())
    return app


def _fastapi_users_parts() -> dict[str, Any]:
    import uuid

    from fastapi import Depends
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
    from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
    from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase

    secret = os.environ["BENCH_JWT_SECRET"]

    class Base(DeclarativeBase):
        pass

    class User(SQLAlchemyBaseUserTableUUID, Base):
        pass

    class UserRead(schemas.BaseUser[uuid.UUID]):
        pass

    class UserCreate(schemas.BaseUserCreate):
        pass

    class UserUpdate(schemas.BaseUserUpdate):
        pass

    engine = create_async_engine(f"sqlite+aiosqlite:///{Path(os.environ['BENCH_DIR'])}/fu.db")
    session_maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_async_session() -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    async def get_user_db(session: AsyncSession = Depends(get_async_session)) -> AsyncIterator[Any]:
        yield SQLAlchemyUserDatabase(session, User)

    class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):  # type: ignore[misc]
        reset_password_token_secret = secret
        verification_token_secret = secret

    async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncIterator[Any]:
        yield UserManager(user_db)

    def get_jwt_strategy() -> JWTStrategy[Any, Any]:
        return JWTStrategy(secret=secret, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=get_jwt_strategy,
    )
    return {
        "Base": Base,
        "User": User,
        "UserRead": UserRead,
        "UserCreate": UserCreate,
        "UserUpdate": UserUpdate,
        "UserManager": UserManager,
        "engine": engine,
        "session_maker": session_maker,
        "backend": backend,
        "get_jwt_strategy": get_jwt_strategy,
        "users": FastAPIUsers[User, uuid.UUID](get_user_manager, [backend]),
        "SQLAlchemyUserDatabase": SQLAlchemyUserDatabase,
    }


def prepare_fastapi_users() -> None:
    """The database, one user and its access token (``$BENCH_DIR/fu.token``)."""
    import asyncio

    parts = _fastapi_users_parts()

    async def prepare() -> None:
        async with parts["engine"].begin() as conn:
            await conn.run_sync(parts["Base"].metadata.create_all)
        async with parts["session_maker"]() as session:
            manager = parts["UserManager"](parts["SQLAlchemyUserDatabase"](session, parts["User"]))
            user = await manager.create(parts["UserCreate"](email=EMAIL, password=PASSWORD))
            token = await parts["get_jwt_strategy"]().write_token(user)
        (Path(os.environ["BENCH_DIR"]) / "fu.token").write_text(token)
        await parts["engine"].dispose()

    asyncio.run(prepare())


def fastapi_users() -> Any:
    from fastapi import FastAPI

    parts = _fastapi_users_parts()
    users = parts["users"]
    app = FastAPI()
    app.include_router(users.get_auth_router(parts["backend"]), prefix="/auth/jwt")
    app.include_router(
        users.get_users_router(parts["UserRead"], parts["UserUpdate"]), prefix="/users"
    )
    return app
