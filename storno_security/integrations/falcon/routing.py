"""Routes declared once, each with its request-body schema, rate limit, credential and OpenAPI
description; a per-request context with the kit; strict JSON in.

A route module declares handlers::

    routes = Routes()

    @routes.post("/api/auth", summary="Log in", tag="auth", auth="none", limit=LOGIN,
                 body=obj({"email": EMAIL, "password": PASSWORD}, required=("email", "password")),
                 responses={200: LOGIN_ANSWER})
    def login(ctx: Ctx[Any], body: Body) -> None:
        ctx.login_answer(ctx.kit.login(body["email"], body["password"]), cookie=...)

The body schema validates the request (400 ``invalid_request`` naming the field, never echoing
a value) and is the ``requestBody`` of ``/openapi.json``: one declaration for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Literal, NoReturn, TypeVar

import attrs
import falcon
import jsonschema

from storno_security._memo import IdentityMemo
from storno_security.accounts import UserAccount
from storno_security.integrations._common import ApiError, encodable, iso, user_json
from storno_security.integrations.observability import Observer
from storno_security.kit import Caller, Kit, LoginResult, MfaRequired
from storno_security.rbac import Authorization, Permission
from storno_security.tokens import TokenPair

__all__ = [
    "REFRESH_COOKIE",
    "Api",
    "ApiOptions",
    "Body",
    "Ctx",
    "Route",
    "Routes",
    "WsgiApp",
    "bad_request",
    "iso",
    "user_json",
]

#: The refresh-token cookie (SRV-4): HttpOnly, Secure, SameSite=Strict, scoped to /api/auth.
REFRESH_COOKIE = "storno_refresh"
COOKIE_PATH = "/api/auth"

WsgiApp = falcon.App[falcon.Request, falcon.Response]
Body = dict[str, Any]
Auth = Literal["none", "user", "any"]
Handler = Callable[..., None]

#: Deeper JSON is refused before parsing (the parser recurses once per level).
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def bad_request(message: str, *, field: str | None = None) -> NoReturn:
    raise ApiError(400, "invalid_request", message, extra={"field": field} if field else None)


@attrs.frozen
class Route:
    """One operation: method, path, handler, and what the framework enforces around it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth
    limit: str | None
    body: dict[str, Any] | None
    body_required: bool
    responses: Mapping[int, dict[str, Any] | None]
    company: bool
    organization: bool
    description: str | None
    parameters: tuple[dict[str, Any], ...]
    validator: Any = attrs.field(eq=False, repr=False)
    overview: bool = False


class Routes:
    """The routes of one resource module.

    ``limit`` names a rate-limit policy (RL-1); ``None`` (the default) is the token bucket of
    the caller's kind (RL-2); ``""`` marks an unmetered probe that reads no credential (the
    liveness and readiness checks). ``auth`` is ``"none"`` (public), ``"any"`` (an access token
    or an API key) or ``"user"`` (an access token: API keys refused, KEY-5). ``overview``: the
    handler shows the caller's own records (``Kit.caller_view``), so the middleware has them
    read with the session state, in the same statement where the backend can.
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: Auth = "any",
        limit: str | None = None,
        body: dict[str, Any] | None = None,
        body_required: bool = True,
        responses: Mapping[int, dict[str, Any] | None],
        company: bool = False,
        organization: bool = False,
        description: str | None = None,
        parameters: tuple[dict[str, Any], ...] = (),
        overview: bool = False,
    ) -> Callable[[Handler], Handler]:
        validator = None
        if body is not None:
            jsonschema.Draft202012Validator.check_schema(body)
            validator = jsonschema.Draft202012Validator(body)

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    auth,
                    limit,
                    body,
                    body_required,
                    responses,
                    company,
                    organization or company,
                    description,
                    parameters,
                    validator,
                    overview,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path, **options)


State = TypeVar("State")


@attrs.frozen(kw_only=True)
class ApiOptions:
    """How the API answers.

    Attributes:
        public_url: the URL clients reach the API at (``https`` turns HSTS on).
        cookie_secure: the refresh cookie is ``Secure`` (off only on a localhost ``http`` URL).
        max_body_bytes: larger request bodies are refused (413).
        trusted_proxies: the peers whose ``X-Forwarded-For`` names the client (read from the
            right); none by default.
        title: the OpenAPI document's title.
    """

    public_url: str
    cookie_secure: bool = True
    max_body_bytes: int = 1_048_576
    trusted_proxies: tuple[Any, ...] = ()
    title: str = "storno-security API"


@attrs.define
class Api(Generic[State]):
    """What every request of one application shares: the kit, the options, the routes, and the
    application's own state (its data, settings...) for its own routes."""

    kit: Kit
    options: ApiOptions
    state: State
    routes: list[Route] = attrs.field(factory=list)
    #: ``/openapi.json``, made from ``routes`` on first request.
    document: dict[str, Any] | None = None
    #: The request log lines and metrics (``None``: none).
    observer: Observer | None = None
    #: JSON answers rendered once per immutable source they are made from (a user's
    #: ``GET /me`` view: :attr:`~storno_security.kit.Kit.caller_views`; a constant answer), by
    #: this application's JSON handler (:meth:`Ctx.json_once`).
    rendered: IdentityMemo[Any, bytes] = attrs.field(factory=IdentityMemo)


class Ctx(Generic[State]):
    """What a handler gets: the request and response, the kit, the caller, the application's
    state (``ctx.state``)."""

    def __init__(self, req: falcon.Request, resp: falcon.Response, api: Api[State]) -> None:
        self.req = req
        self.resp = resp
        self.api = api
        self.kit: Kit = api.kit
        self.state: State = api.state

    @property
    def caller(self) -> Caller:
        """The authenticated caller (routes declared ``auth="any"`` or ``"user"``)."""
        caller: Caller | None = getattr(self.req.context, "caller", None)
        if caller is None:  # pragma: no cover - the framework refused the request already
            raise ApiError(401, "authentication_required", "Authentication required.")
        return caller

    def header(self, name: str) -> str | None:
        return self.req.get_header(name)

    def authorize(self, permission: Permission | str, *, company: bool = False) -> Authorization:
        """The kit's access decision with the request's tenancy headers (RBAC-3)."""
        return self.kit.authorize(
            self.caller,
            permission,
            organization=self.header("X-Organization"),
            company=self.header("X-Company") if company else None,
            company_required=company,
        )

    def json(self, data: Any, *, status: int = 200) -> None:
        self.resp.status = falcon.code_to_http_status(status)
        self.resp.media = data

    def json_once(self, source: Any, make: Callable[[], Any] | None = None) -> None:
        """Answer 200 with the JSON of ``make()`` (by default ``source`` itself), as
        :meth:`json` would, rendered once per ``source`` object for this application
        (:attr:`Api.rendered`): ``source`` must never change (a frozen record, a constant that
        is never mutated) and ``make`` must depend on it alone."""
        data = self.api.rendered.get(source)
        if data is None:
            handler = self.resp.options.media_handlers[falcon.MEDIA_JSON]
            media = source if make is None else make()
            data = bytes(handler.serialize(media, falcon.MEDIA_JSON))
            self.api.rendered.keep(source, data)
        self.resp.status = falcon.HTTP_200
        self.resp.content_type = falcon.MEDIA_JSON
        self.resp.data = data

    def no_content(self) -> None:
        self.resp.status = falcon.HTTP_204

    def tokens(
        self,
        pair: TokenPair,
        *,
        cookie: bool,
        user: UserAccount | None = None,
        status: int = 200,
        **extra: Any,
    ) -> None:
        """A token pair: the refresh token in the body, or in the cookie when asked (SRV-4).
        The access token is never put in a cookie."""
        body: dict[str, Any] = {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "refresh_expires_at": iso(pair.refresh_expires_at),
        }
        if cookie:
            max_age = int((pair.refresh_expires_at - self.kit.clock.now()).total_seconds())
            self.resp.set_cookie(
                REFRESH_COOKIE,
                pair.refresh_token,
                max_age=max(0, max_age),
                path=COOKIE_PATH,
                secure=self.api.options.cookie_secure,
                http_only=True,
                same_site="Strict",
            )
        else:
            body["refresh_token"] = pair.refresh_token
        if user is not None:
            body["user"] = user_json(user)
        body.update(extra)
        self.json(body, status=status)

    def clear_refresh_cookie(self) -> None:
        """Expire the refresh cookie, with the attributes it was set with (a browser may
        ignore a deletion whose attributes differ from the cookie's)."""
        self.resp.set_cookie(
            REFRESH_COOKIE,
            "",
            max_age=0,
            expires=datetime(1970, 1, 1, tzinfo=UTC),
            path=COOKIE_PATH,
            secure=self.api.options.cookie_secure,
            http_only=True,
            same_site="Strict",
        )

    def login_answer(self, result: LoginResult, *, cookie: bool) -> None:
        """A session (MFA off, or a passkey), or the MFA challenge (MFA-4)."""
        if isinstance(result, MfaRequired):
            self.json(result.response())
            return
        extra = {}
        if result.backup_codes_left is not None:
            extra["backup_codes_left"] = result.backup_codes_left
        self.tokens(result.tokens, cookie=cookie, user=result.user, **extra)

    def refresh_token(self, body: Body) -> tuple[str, bool]:
        """The refresh token from the JSON body, else from the cookie: read only from a JSON
        request (an empty one included), so a cross-site form can never spend it."""
        content_type = (self.req.content_type or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the request as application/json.")
        token = body.get("refresh_token")
        if isinstance(token, str):
            return token, False
        cookies = self.req.get_cookie_values(REFRESH_COOKIE) or []
        if len(cookies) == 1 and cookies[0]:
            return cookies[0], True
        bad_request(
            "'refresh_token' is required (in the body or the refresh cookie).",
            field="refresh_token",
        )

    def param(self, name: str, *, max_length: int = 200) -> str | None:
        """A query-string parameter (one value, at most ``max_length`` characters)."""
        values = self.req.get_param_as_list(name) or []
        if len(values) > 1:
            bad_request(f"'{name}' may be given once.", field=name)
        if not values:
            return None
        value = values[0]
        if len(value) > max_length or "\x00" in value:
            bad_request(f"'{name}' is not valid.", field=name)
        return str(value)


# --- request bodies ------------------------------------------------------------------------


def read_json(req: falcon.Request, *, max_bytes: int) -> Body:
    """The request body as a JSON object (415 not JSON, 413 too large, 400 not one object)."""
    content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    length = req.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:  # pragma: no cover - falcon's bounded_stream stops at Content-Length
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        bad_request("The body is not valid UTF-8.")
    if _too_deep(text):
        bad_request(f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        bad_request("The body is not valid JSON.")
    if not isinstance(value, dict):
        bad_request("The body must be a JSON object.")
    if not encodable(value):
        bad_request("The body holds a lone surrogate (\\uD800-\\uDFFF): not valid Unicode text.")
    return value


def _refuse_constant(name: str) -> NoReturn:
    bad_request(f"invalid JSON number {name}")


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


_MESSAGES: Mapping[str, str] = {
    "type": "'{f}' has the wrong type.",
    "minLength": "'{f}' is too short.",
    "maxLength": "'{f}' is too long.",
    "pattern": "'{f}' has characters or a form that is not allowed.",
    "enum": "'{f}' is not one of the allowed values.",
    "const": "'{f}' is not the allowed value.",
    "minimum": "'{f}' is too small.",
    "maximum": "'{f}' is too large.",
    "format": "'{f}' is not well-formed.",
    "minItems": "'{f}' has too few items.",
    "maxItems": "'{f}' has too many items.",
    "uniqueItems": "'{f}' repeats an item.",
    "maxProperties": "'{f}' has too many fields.",
}


def validate_body(route: Route, body: Body) -> None:
    """Check a body against the route's schema (a route that takes a body has one); 400 naming
    the first field at fault. The message never quotes the value (it may be a password)."""
    error = jsonschema.exceptions.best_match(route.validator.iter_errors(body))
    if error is None:
        return
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = next((m for m in error.validator_value if m not in error.instance), None)
        field = ".".join([*path, str(missing)]) if missing else ".".join(path)
        bad_request(f"'{field}' is required.", field=field)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = ".".join([*path, extra[0]]) if extra else ".".join(path)
        bad_request(f"'{field}' is not a known field.", field=field)
    field = ".".join(path) or "body"
    bad_request(
        _MESSAGES.get(str(error.validator), "'{f}' is not valid.").format(f=field), field=field
    )
