"""fastapi-users' ``GET /users/me`` as its documentation sets it up (JWT strategy, Bearer
transport, SQLAlchemy adapter on aiosqlite): the peer both server benches measure against. It
runs in the bench's own virtual environment, where fastapi-users is installed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase


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


class Users:
    """One fastapi-users set-up over the SQLite file ``database``, signing with ``secret``."""

    def __init__(self, database: Path, secret: str) -> None:
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
        self.session_maker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.secret = secret

        async def get_async_session() -> AsyncIterator[AsyncSession]:
            async with self.session_maker() as session:
                yield session

        async def get_user_db(
            session: AsyncSession = Depends(get_async_session),
        ) -> AsyncIterator[Any]:
            yield SQLAlchemyUserDatabase(session, User)

        async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncIterator[Any]:
            yield self.manager(user_db)

        self.backend = AuthenticationBackend(
            name="jwt",
            transport=BearerTransport(tokenUrl="auth/jwt/login"),
            get_strategy=self.strategy,
        )
        self.users = FastAPIUsers[User, uuid.UUID](get_user_manager, [self.backend])

    def strategy(self) -> JWTStrategy[Any, Any]:
        return JWTStrategy(secret=self.secret, lifetime_seconds=3600)

    def manager(self, user_db: Any) -> Any:
        secret = self.secret

        class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):  # type: ignore[misc]
            reset_password_token_secret = secret
            verification_token_secret = secret

        return UserManager(user_db)

    async def first_user_token(self, email: str, password: str) -> str:
        """Create the tables and one user; that user's access token."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with self.session_maker() as session:
            manager = self.manager(SQLAlchemyUserDatabase(session, User))
            user = await manager.create(UserCreate(email=email, password=password))
            return str(await self.strategy().write_token(user))

    def mount(self, app: FastAPI) -> FastAPI:
        """``/auth/jwt`` and ``/users`` on ``app``."""
        app.include_router(self.users.get_auth_router(self.backend), prefix="/auth/jwt")
        app.include_router(self.users.get_users_router(UserRead, UserUpdate), prefix="/users")
        return app
