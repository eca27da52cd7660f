"""The kit in a FastAPI application: set up in one call, then dependencies.

Needs the ``fastapi`` extra (and ``async`` for native async SQL or Redis reads)::

    from fastapi import Depends, FastAPI
    from storno_security.integrations.fastapi import Caller, setup

    app = FastAPI()
    security = setup(app, kit, database_url=DATABASE_URL)   # handlers, middleware, /api/auth

    @app.get("/invoices")
    async def invoices(auth=Depends(security.require_permission("invoice.view"))):
        return {"organization": auth.organization_id}

:func:`setup` installs what every request needs: the request context (the request id, the
client address and user agent that every security event carries, and ``X-Request-Id`` and the
``RateLimit-*`` headers on the answer), the exception handlers that answer every error as the
reference server does (``{"error", "code", "request_id", ...}``), and, unless told not to, the
auth router (register, confirm, login with MFA, refresh, logout, passkeys, API keys). The
dependencies:

* :meth:`StornoFastAPI.caller`: the caller or ``None``; a ``Bearer`` access token or a bare
  ``af_`` API key, verified by the async verbs; counts the request against the API rate limit
  (authenticated or not) of the client's address;
* :meth:`StornoFastAPI.authenticated`: the caller, or 401;
* :meth:`StornoFastAPI.user`: a signed-in person (never an API key), or 401/403;
* :meth:`StornoFastAPI.require_permission`: the kit's access decision with ``X-Organization``
  and ``X-Company`` (RBAC-3), an :class:`~storno_security.rbac.Authorization`;
* :meth:`StornoFastAPI.rate_limit`: one named policy against the client's address.

Per request nothing blocks the loop: tokens, keys, rate limits and the session state go through
:class:`~storno_security.aio.AsyncVerbs`; the kit's flows (bcrypt, synchronous stores) run in
its :class:`~storno_security.aio.Offloader`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Depends, FastAPI, Header, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storno_security.aio import AsyncVerbs, Offloader
from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidApiKeyError,
    StornoSecurityError,
)
from storno_security.events import enter_request_context, leave_request_context
from storno_security.integrations._common import (
    HTTP_CODES,
    ApiError,
    TrustedProxies,
    answer_error,
    authentication_required,
    keys_refused,
    limit_key,
    request_id_from,
)
from storno_security.integrations.http import rate_limit_headers
from storno_security.kit import Caller, Kit
from storno_security.ratelimit import API_AUTHENTICATED, API_UNAUTHENTICATED, RateLimitStatus
from storno_security.rbac import Authorization

__all__ = ["ApiError", "Caller", "StornoFastAPI", "setup"]

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="accessToken",
    bearerFormat="JWT",
    description="An access token from the login: `Authorization: Bearer <token>`.",
)
_API_KEY = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    scheme_name="apiKey",
    description="An API key, bare: `Authorization: af_...`.",
)


class StornoFastAPI:
    """The kit's integration with one FastAPI application (see the module docstring).

    Args:
        kit: the kit.
        verbs: the async verbs (default: :meth:`AsyncVerbs.for_kit` with the URLs below).
        database_url: the kit's SQL database, for native async reads.
        redis_url: the kit's Redis, for native async rate limits.
        offload: the thread pools for the kit's flows.
        trusted_proxies: addresses or networks of your reverse proxies, whose
            ``X-Forwarded-For`` names the client (none by default).
        limit_api: count every authenticated request against the API rate limits
            (``api_authenticated`` / ``api_unauthenticated``), as the reference server does.
        inline_sqlite: on SQLite, make the per-request reads on the loop (a WAL reader takes
            no lock) rather than through aiosqlite (see :class:`AsyncVerbs`).

    Raises:
        TypeError: ``kit`` is not a Kit.
        ValueError: a malformed URL or proxy network.
    """

    def __init__(
        self,
        kit: Kit,
        *,
        verbs: AsyncVerbs | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
        offload: Offloader | None = None,
        trusted_proxies: Iterable[str] = (),
        limit_api: bool = True,
        inline_sqlite: bool = True,
    ) -> None:
        if not isinstance(kit, Kit):
            raise TypeError("kit must be a Kit")
        self.kit = kit
        self.verbs = verbs or AsyncVerbs.for_kit(
            kit,
            database_url=database_url,
            redis_url=redis_url,
            offload=offload,
            inline_sqlite=inline_sqlite,
        )
        self.offload = self.verbs.offload
        self.proxies = TrustedProxies(trusted_proxies)
        self.limit_api = limit_api
        self.caller = self._caller_dependency()
        self.authenticated = self._authenticated_dependency()
        self.user = self._user_dependency()

    def __repr__(self) -> str:
        return f"StornoFastAPI({self.kit!r})"

    # --- set-up ------------------------------------------------------------------------------

    def install(self, app: FastAPI, *, auth_router: bool = True, prefix: str = "/api/auth") -> None:
        """Add the middleware, the exception handlers and (with ``auth_router``) the auth
        router under ``prefix`` to ``app``."""
        app.add_middleware(_RequestContext, security=self)
        app.add_exception_handler(StornoSecurityError, self._handle)
        app.add_exception_handler(ApiError, self._handle)
        app.add_exception_handler(RequestValidationError, self._handle_validation)
        app.add_exception_handler(StarletteHTTPException, self._handle_http)
        app.add_exception_handler(Exception, self._handle)
        if auth_router:
            from storno_security.integrations.fastapi._router import auth_router as build

            app.include_router(build(self), prefix=prefix)

    async def aclose(self) -> None:
        """Release the async engine and Redis client of the verbs (call at shutdown)."""
        await self.verbs.aclose()

    # --- errors ------------------------------------------------------------------------------

    def error_response(self, request: Request, exc: BaseException) -> JSONResponse:
        """The answer to ``exc``: the reference server's error shape."""
        status, body, headers = answer_error(exc, _request_id(request))
        return JSONResponse(body, status_code=status, headers=headers)

    async def _handle(self, request: Request, exc: Exception) -> JSONResponse:
        return self.error_response(request, exc)

    async def _handle_validation(self, request: Request, exc: Exception) -> JSONResponse:
        field = None
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        if errors:
            location = [str(part) for part in errors[0].get("loc", ()) if part != "body"]
            field = ".".join(location) or None
        message = f"'{field}' is missing or not valid." if field else "The request is not valid."
        # Never the input itself: it may be a password.
        extra = {"field": field} if field else None
        return self.error_response(request, ApiError(400, "invalid_request", message, extra=extra))

    async def _handle_http(self, request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else None
        message = detail if isinstance(detail, str) else "Error"
        headers = dict(getattr(exc, "headers", None) or {})
        error = ApiError(status, HTTP_CODES.get(status, "http_error"), message, headers=headers)
        return self.error_response(request, error)

    # --- rate limits -------------------------------------------------------------------------

    def client_key(self, request: Request) -> str:
        """What the client is limited by: its address (an IPv6 client by its /64)."""
        return limit_key(_state(request, "client_ip", "unknown"))

    async def hit(self, request: Request, policy: str) -> RateLimitStatus:
        """Count this request against ``policy``; the ``RateLimit-*`` headers follow on the
        answer (RL-3).

        Raises:
            RateLimitExceededError: over the limit (429 with ``Retry-After``).
            RateLimitUnavailableError: the storage failed and the policy fails closed (503).
        """
        status = await self.verbs.limiter.hit(policy, self.client_key(request))
        request.state.storno_rate_limit = status
        return status

    def rate_limit(self, policy: str) -> Callable[[Request], Awaitable[RateLimitStatus]]:
        """A dependency counting each request against ``policy`` (e.g. ``"login"``) before
        the handler runs (RL-5)."""
        if policy not in self.verbs.limiter.policies:
            raise KeyError(f"no rate-limit policy is named {policy!r}")

        async def rate_limited(request: Request) -> RateLimitStatus:
            return await self.hit(request, policy)

        return rate_limited

    # --- authentication ----------------------------------------------------------------------

    def _caller_dependency(self) -> Callable[..., Awaitable[Caller | None]]:
        async def caller(
            request: Request,
            _token: Any = Security(_BEARER),
            _key: Any = Security(_API_KEY),
        ) -> Caller | None:
            """The request's caller, verified (``None`` without credentials)."""
            header = request.headers.get("authorization")
            try:
                found = await self.verbs.authenticator.authenticate(
                    header.strip() if header is not None else None
                )
            except (InvalidAccessTokenError, InvalidApiKeyError):
                if self.limit_api:
                    await self.hit(request, API_UNAUTHENTICATED)
                raise
            if self.limit_api:
                await self.hit(request, API_AUTHENTICATED if found else API_UNAUTHENTICATED)
            request.state.storno_caller = found
            return found

        return caller

    def _authenticated_dependency(self) -> Callable[..., Awaitable[Caller]]:
        async def authenticated(caller: Caller | None = Depends(self.caller)) -> Caller:
            """The caller; 401 without credentials."""
            if caller is None:
                raise authentication_required()
            return caller

        return authenticated

    def _user_dependency(self) -> Callable[..., Awaitable[Caller]]:
        async def user(caller: Caller = Depends(self.authenticated)) -> Caller:
            """A signed-in person; an API key is refused (403)."""
            if caller.is_api_key:
                raise keys_refused()
            return caller

        return user

    def require_permission(
        self, permission: str, *, company: bool = False
    ) -> Callable[..., Awaitable[Authorization]]:
        """A dependency granting ``permission`` to the caller in the organization named by
        ``X-Organization`` (default: the caller's default membership; an API key's own), and,
        with ``company=True``, on the company named by ``X-Company``, which is then required
        (RBAC-3). It answers 400, 403 or 404 as the kit decides.
        """
        kit = self.kit

        if company:

            async def granted_on_company(
                caller: Caller = Depends(self.authenticated),
                x_organization: str | None = Header(
                    None, description="The organization acted in (default: your default one)."
                ),
                x_company: str | None = Header(None, description="The company acted on."),
            ) -> Authorization:
                return await self.offload.io(
                    lambda: kit.authorize(
                        caller,
                        permission,
                        organization=x_organization,
                        company=x_company,
                        company_required=True,
                    )
                )

            return granted_on_company

        async def granted(
            caller: Caller = Depends(self.authenticated),
            x_organization: str | None = Header(
                None, description="The organization acted in (default: your default one)."
            ),
        ) -> Authorization:
            return await self.offload.io(
                lambda: kit.authorize(caller, permission, organization=x_organization)
            )

        return granted


def setup(
    app: FastAPI,
    kit: Kit,
    *,
    auth_router: bool = True,
    prefix: str = "/api/auth",
    **options: Any,
) -> StornoFastAPI:
    """Set ``kit`` up in ``app`` in one call: :class:`StornoFastAPI` (``options`` are its
    arguments), installed with its middleware, exception handlers and auth router.

    Raises:
        TypeError: ``kit`` is not a Kit.
        ValueError: a malformed URL or proxy network.
    """
    security = StornoFastAPI(kit, **options)
    security.install(app, auth_router=auth_router, prefix=prefix)
    return security


def _state(request: Request, name: str, default: Any = None) -> Any:
    return request.scope.get("state", {}).get(name, default)


def _request_id(request: Request) -> str | None:
    value = _state(request, "storno_request_id")
    return value if isinstance(value, str) else None


class _RequestContext:
    """Pure ASGI middleware: the request id, the client address and the event context around
    the request; ``X-Request-Id`` and the ``RateLimit-*`` headers on the answer."""

    def __init__(self, app: ASGIApp, *, security: StornoFastAPI) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = request_id_from(headers.get("x-request-id"))
        peer = scope.get("client")
        client_ip = self.security.proxies.client_ip(
            peer[0] if peer else None, headers.get("x-forwarded-for")
        )
        state = scope.setdefault("state", {})
        state["storno_request_id"] = request_id
        state["client_ip"] = client_ip

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-request-id", request_id.encode("ascii"))]
                status: RateLimitStatus | None = state.get("storno_rate_limit")
                present = {name.lower() for name, _ in message.get("headers", [])}
                if status is not None and not status.degraded:
                    for name, value in rate_limit_headers(status).items():
                        if name.lower().encode() not in present:
                            extra.append((name.lower().encode(), value.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        token = enter_request_context(
            ip=client_ip, user_agent=headers.get("user-agent"), request_id=request_id
        )
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            leave_request_context(token)
