"""The kit in a Flask application: an extension object, decorators, the caller on ``flask.g``,
the error handlers, and an optional blueprint with the auth endpoints.

Needs the ``flask`` extra::

    from flask import Flask, g
    from storno_security.integrations.flask import StornoFlask, login_required, require_permission

    app = Flask(__name__)
    StornoFlask(kit, app)                      # or: ext = StornoFlask(kit); ext.init_app(app)

    @app.get("/invoices")
    @require_permission("invoice.view")
    def invoices():
        return {"organization": g.authorization.organization_id}

:meth:`StornoFlask.init_app` sets the request context around every request (the request id,
the client address and user agent that every security event carries; ``X-Request-Id`` and the
``RateLimit-*`` headers on the answer), registers the error handlers that answer every error as
the reference server does (``{"error", "code", "request_id", ...}``), and, unless told not to,
the auth blueprint under ``/api/auth``. The decorators:

* :func:`login_required`: a ``Bearer`` access token or a bare ``af_`` API key, verified; the
  caller on ``g.caller``; counts the request against the API rate limit of the client's address;
  ``allow_api_keys=False`` for acts only a person may do;
* :func:`require_permission`: the kit's access decision with ``X-Organization`` and
  ``X-Company`` (RBAC-3): ``g.authorization`` and ``g.principal``;
* :func:`rate_limit`: one named policy against the client's address, before the view runs.

Flask serves each request in a thread: the kit's flows and verbs are called as they are.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast, overload

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from storno_security.errors import InvalidAccessTokenError, InvalidApiKeyError
from storno_security.events import enter_request_context, leave_request_context
from storno_security.integrations._common import (
    HTTP_CODES,
    ApiError,
    TrustedProxies,
    answer_error,
    api_key_json,
    authentication_required,
    created_api_key_json,
    encodable,
    iso,
    keys_refused,
    limit_key,
    login_json,
    mfa_status_json,
    passkey_json,
    request_id_from,
    session_json,
    tokens_json,
    user_json,
)
from storno_security.integrations.http import rate_limit_headers
from storno_security.kit import Caller, Kit
from storno_security.ratelimit import (
    API_AUTHENTICATED,
    API_UNAUTHENTICATED,
    FORGOT_PASSWORD,
    LOGIN,
    MFA_VERIFY,
    PASSKEY_LOGIN,
    PASSKEY_LOGIN_OPTIONS,
    REGISTER,
    RESET_PASSWORD,
    RateLimitStatus,
)

__all__ = ["ApiError", "StornoFlask", "login_required", "rate_limit", "require_permission"]

_View = TypeVar("_View", bound=Callable[..., Any])
_EXTENSION = "storno_security"
_MAX_BODY = 64 * 1024


class StornoFlask:
    """The kit's Flask extension (see the module docstring).

    Args:
        kit: the kit.
        app: the application, or ``None`` to call :meth:`init_app` later.
        trusted_proxies: addresses or networks of your reverse proxies, whose
            ``X-Forwarded-For`` names the client (none by default).
        limit_api: count every authenticated request against the API rate limits
            (``api_authenticated`` / ``api_unauthenticated``), as the reference server does.
        auth_blueprint: register the auth endpoints.
        url_prefix: where they go.

    Raises:
        TypeError: ``kit`` is not a Kit.
        ValueError: a malformed proxy network.
    """

    def __init__(
        self,
        kit: Kit,
        app: Flask | None = None,
        *,
        trusted_proxies: Iterable[str] = (),
        limit_api: bool = True,
        auth_blueprint: bool = True,
        url_prefix: str = "/api/auth",
    ) -> None:
        if not isinstance(kit, Kit):
            raise TypeError("kit must be a Kit")
        self.kit = kit
        self.proxies = TrustedProxies(trusted_proxies)
        self.limit_api = limit_api
        self.auth_blueprint = auth_blueprint
        self.url_prefix = url_prefix
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"StornoFlask({self.kit!r})"

    def init_app(self, app: Flask) -> None:
        """Install the request hooks, the error handlers and (optionally) the blueprint."""
        app.extensions[_EXTENSION] = self
        app.before_request(self._before)
        app.after_request(self._after)
        app.teardown_request(self._teardown)
        app.register_error_handler(Exception, self._handle)
        if self.auth_blueprint:
            app.register_blueprint(auth_blueprint(), url_prefix=self.url_prefix)

    # --- request hooks -----------------------------------------------------------------------

    def _before(self) -> None:
        g.storno_request_id = request_id_from(request.headers.get("X-Request-Id"))
        g.client_ip = self.proxies.client_ip(
            request.remote_addr, request.headers.get("X-Forwarded-For")
        )
        g.caller = None
        g.storno_rate_limit = None
        g.storno_context = enter_request_context(
            ip=g.client_ip,
            user_agent=request.headers.get("User-Agent"),
            request_id=g.storno_request_id,
        )

    def _after(self, response: Response) -> Response:
        request_id = g.get("storno_request_id")
        if request_id:  # none when an earlier before-request hook answered first
            response.headers.setdefault("X-Request-Id", request_id)
        status: RateLimitStatus | None = g.get("storno_rate_limit")
        if status is not None and not status.degraded:
            for name, value in rate_limit_headers(status).items():
                response.headers.setdefault(name, value)
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        token = g.pop("storno_context", None)
        if token is not None:
            leave_request_context(token)

    def _handle(self, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            status = exc.code or 500
            exc = ApiError(status, HTTP_CODES.get(status, "http_error"), exc.name)
        status, body, headers = answer_error(exc, g.get("storno_request_id"))
        response = jsonify(body)
        response.status_code = status
        for name, value in headers.items():
            response.headers[name] = value
        return response

    # --- verbs -------------------------------------------------------------------------------

    def hit(self, policy: str) -> RateLimitStatus:
        """Count this request against ``policy`` (the ``RateLimit-*`` headers follow).

        Raises:
            RateLimitExceededError: over the limit (429 with ``Retry-After``).
            RateLimitUnavailableError: the storage failed and the policy fails closed (503).
        """
        status = self.kit.limiter.hit(policy, limit_key(g.client_ip))
        g.storno_rate_limit = status
        return status

    def authenticate(self) -> Caller | None:
        """The request's caller (``g.caller``), verified; ``None`` without credentials."""
        header = request.headers.get("Authorization")
        try:
            caller = self.kit.authenticate(header.strip() if header is not None else None)
        except (InvalidAccessTokenError, InvalidApiKeyError):
            if self.limit_api:
                self.hit(API_UNAUTHENTICATED)
            raise
        if self.limit_api:
            self.hit(API_AUTHENTICATED if caller else API_UNAUTHENTICATED)
        g.caller = caller
        return caller


def _extension() -> StornoFlask:
    found = current_app.extensions.get(_EXTENSION)
    if not isinstance(found, StornoFlask):
        raise RuntimeError("StornoFlask is not set up on this application (init_app)")
    return found


def _caller(*, allow_api_keys: bool) -> Caller:
    caller = g.get("caller") or _extension().authenticate()
    if caller is None:
        raise authentication_required()
    if caller.is_api_key and not allow_api_keys:
        raise keys_refused()
    return cast("Caller", caller)


@overload
def login_required(view: _View, /) -> _View: ...


@overload
def login_required(*, allow_api_keys: bool = True) -> Callable[[_View], _View]: ...


def login_required(
    view: _View | None = None, /, *, allow_api_keys: bool = True
) -> _View | Callable[[_View], _View]:
    """The view needs a caller (``g.caller``): 401 without credentials; with
    ``allow_api_keys=False``, 403 for an API key. Use bare (``@login_required``) or called."""

    def decorate(function: _View) -> _View:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _caller(allow_api_keys=allow_api_keys)
            return function(*args, **kwargs)

        return cast("_View", wrapper)

    return decorate if view is None else decorate(view)


def require_permission(permission: str, *, company: bool = False) -> Callable[[_View], _View]:
    """The view needs ``permission`` in the organization named by ``X-Organization`` (default:
    the caller's default membership; an API key's own) and, with ``company=True``, on the
    company named by ``X-Company``, then required (RBAC-3). Sets ``g.authorization`` and
    ``g.principal``; answers 400, 401, 403 or 404 as the kit decides."""

    def decorate(function: _View) -> _View:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = _caller(allow_api_keys=True)
            authorization = _extension().kit.authorize(
                caller,
                permission,
                organization=request.headers.get("X-Organization"),
                company=request.headers.get("X-Company") if company else None,
                company_required=company,
            )
            g.authorization = authorization
            g.principal = authorization.principal
            return function(*args, **kwargs)

        return cast("_View", wrapper)

    return decorate


def rate_limit(policy: str) -> Callable[[_View], _View]:
    """Count each request against ``policy`` (e.g. ``"login"``) before the view runs (RL-5)."""

    def decorate(function: _View) -> _View:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _extension().hit(policy)
            return function(*args, **kwargs)

        return cast("_View", wrapper)

    return decorate


# --- the auth blueprint ----------------------------------------------------------------------


def _body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    if (request.content_length or 0) > _MAX_BODY:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    value = request.get_json(silent=True)
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    if not encodable(value):
        raise ApiError(400, "invalid_request", "The body holds a lone surrogate: not valid text.")
    return value


def _text(body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 1024) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ApiError(
            400, "invalid_request", f"'{name}' is missing or not valid.", extra={"field": name}
        )
    return value


def _object(body: dict[str, Any], name: str, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise ApiError(
            400, "invalid_request", f"'{name}' must be an object.", extra={"field": name}
        )
    return value


def _json(data: Any, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _no_content() -> Response:
    response = Response(status=204)
    response.headers["Cache-Control"] = "no-store"
    return response


def _kit() -> Kit:
    return _extension().kit


def _user() -> Caller:
    return _caller(allow_api_keys=False)


def _proofs(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "current_password": _text(body, "current_password", required=False),
        "step_up_token": _text(body, "step_up_token", required=False, max_length=512),
    }


def _credential_id(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if not raw or len(text) > 1366:
        raise ApiError(404, "not_found", "Not found.")
    return raw


def _expires_at(body: dict[str, Any]) -> datetime | None:
    raw = _text(body, "expires_at", required=False, max_length=64)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ApiError(
            400,
            "invalid_request",
            "'expires_at' must be an RFC 3339 time with its offset.",
            extra={"field": "expires_at"},
        )
    return value


def auth_blueprint(name: str = "storno_auth") -> Blueprint:
    """The auth endpoints (the FastAPI router's, path for path) as a blueprint."""
    bp = Blueprint(name, __name__)

    @bp.post("/register")
    @rate_limit(REGISTER)
    def register() -> Response:
        body = _body()
        registration = _kit().register(
            _text(body, "email", max_length=320),
            _text(body, "password"),
            name=_text(body, "name", required=False, max_length=200) or "",
            organization_name=_text(body, "organization_name", required=False, max_length=200),
        )
        extra = {"organization_id": registration.organization_id}
        if registration.session is None:
            return _json({"user": user_json(registration.user), **extra}, 201)
        return _json(session_json(registration.session, **extra), 201)

    @bp.post("/confirm-email")
    def confirm_email() -> Response:
        token = _text(_body(), "token", max_length=512)
        return _json({"user": user_json(_kit().confirm_email(token))})

    @bp.post("/resend-confirmation")
    @rate_limit(FORGOT_PASSWORD)
    def resend_confirmation() -> Response:
        _kit().resend_confirmation(_text(_body(), "email", max_length=320))
        message = "If an unconfirmed account exists for this email, a new link has been sent."
        return _json({"message": message}, 202)

    @bp.post("")
    @rate_limit(LOGIN)
    def login() -> Response:
        body = _body()
        result = _kit().login(_text(body, "email", max_length=320), _text(body, "password"))
        return _json(login_json(result))

    @bp.post("/mfa/verify")
    @rate_limit(MFA_VERIFY)
    def verify_mfa() -> Response:
        body = _body()
        method = body.get("method")
        if method not in ("totp", "backup_code", "passkey"):
            raise ApiError(
                400,
                "invalid_request",
                "'method' is missing or not valid.",
                extra={"field": "method"},
            )
        passkey = method == "passkey"
        session = _kit().verify_mfa(
            _text(body, "mfa_token", max_length=512),
            method=method,
            code=None if passkey else _text(body, "code", max_length=64),
            credential=_object(body, "credential") if passkey else None,
        )
        return _json(session_json(session))

    @bp.post("/passkey/login/options")
    @rate_limit(PASSKEY_LOGIN_OPTIONS)
    def passkey_login_options() -> Response:
        body = _body() if request.content_length else {}
        options = _kit().passkey_login_options(_text(body, "email", required=False, max_length=320))
        return _json({"options": options.as_dict(), "expires_at": iso(options.expires_at)})

    @bp.post("/passkey/login")
    @rate_limit(PASSKEY_LOGIN)
    def passkey_login() -> Response:
        return _json(session_json(_kit().login_with_passkey(_object(_body(), "credential"))))

    @bp.post("/refresh")
    def refresh() -> Response:
        token = _text(_body(), "refresh_token", max_length=512)
        return _json(tokens_json(_kit().refresh(token)))

    @bp.post("/logout")
    def logout() -> Response:
        caller = _user()
        _kit().logout(_text(_body(), "refresh_token", max_length=512), user_id=caller.user_id)
        return _no_content()

    @bp.post("/logout-everywhere")
    def logout_everywhere() -> Response:
        return _json({"sessions_ended": _kit().logout_everywhere(_user().user_id)})

    @bp.post("/forgot-password")
    @rate_limit(FORGOT_PASSWORD)
    def forgot_password() -> Response:
        _kit().request_password_reset(_text(_body(), "email", max_length=320))
        message = "If an account exists for this email, a reset link has been sent."
        return _json({"message": message}, 202)

    @bp.post("/reset-password")
    @rate_limit(RESET_PASSWORD)
    def reset_password() -> Response:
        body = _body()
        _kit().reset_password(_text(body, "token", max_length=512), _text(body, "new_password"))
        return _json({"message": "Your password has been changed. Please log in."})

    @bp.get("/me")
    def me() -> Response:
        caller = _caller(allow_api_keys=True)
        return _json({"user": user_json(_kit().get_user(caller.user_id))})

    @bp.post("/step-up")
    def step_up() -> Response:
        caller, body = _user(), _body()
        method = _text(body, "method", max_length=16)
        grant = _kit().step_up(
            caller,
            _text(body, "action", max_length=64),
            method=method,
            code=_text(body, "code", required=False, max_length=64),
            credential=_object(body, "credential", required=False),
        )
        return _json(
            {
                "step_up_token": grant.token,
                "action": grant.action,
                "expires_at": iso(grant.expires_at),
            }
        )

    @bp.get("/mfa")
    def mfa_status() -> Response:
        kit = _kit()
        return _json(mfa_status_json(kit.mfa_status(kit.get_user(_user().user_id))))

    @bp.post("/mfa/totp/setup")
    def totp_setup() -> Response:
        enrolment = _kit().begin_totp_enrolment(_user(), **_proofs(_body()))
        return _json({"secret": enrolment.secret, "otpauth_uri": enrolment.uri})

    @bp.post("/mfa/totp/confirm")
    def totp_confirm() -> Response:
        caller = _user()
        codes = _kit().confirm_totp_enrolment(caller, _text(_body(), "code", max_length=64))
        return _json({"mfa_enabled": True, "backup_codes": list(codes.codes)})

    @bp.post("/mfa/disable")
    def mfa_disable() -> Response:
        caller = _user()
        token = _text(_body(), "step_up_token", required=False, max_length=512)
        return _json(session_json(_kit().disable_mfa(caller, step_up_token=token)))

    @bp.post("/passkeys/register/options")
    def passkey_register_options() -> Response:
        options = _kit().begin_passkey_registration(_user(), **_proofs(_body()))
        return _json({"options": options.as_dict(), "expires_at": iso(options.expires_at)})

    @bp.post("/passkeys/register")
    def passkey_register() -> Response:
        caller, body = _user(), _body()
        credential = _kit().finish_passkey_registration(
            caller, _object(body, "credential"), name=_text(body, "name", max_length=200)
        )
        return _json(passkey_json(credential), 201)

    @bp.get("/passkeys")
    def passkeys() -> Response:
        return _json({"passkeys": [passkey_json(c) for c in _kit().list_passkeys(_user())]})

    @bp.delete("/passkeys/<credential_id>")
    def delete_passkey(credential_id: str) -> Response:
        if not _kit().delete_passkey(_user(), _credential_id(credential_id)):
            raise ApiError(404, "not_found", "Not found.")
        return _no_content()

    @bp.post("/api-keys")
    def create_api_key() -> Response:
        caller, body = _user(), _body()
        permissions = body.get("permissions")
        if permissions is not None and (
            not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
        ):
            raise ApiError(
                400,
                "invalid_request",
                "'permissions' must be a list of names.",
                extra={"field": "permissions"},
            )
        scope = _text(body, "scope", max_length=16)
        if scope not in ("read", "write", "admin"):
            raise ApiError(
                400, "invalid_request", "'scope' is missing or not valid.", extra={"field": "scope"}
            )
        created = _kit().create_api_key(
            caller,
            name=_text(body, "name", max_length=200),
            scope=scope,
            expires_at=_expires_at(body),
            permissions=permissions,
            organization=_text(body, "organization", required=False, max_length=255),
            **_proofs(body),
        )
        return _json(created_api_key_json(created), 201)

    @bp.get("/api-keys")
    def list_api_keys() -> Response:
        return _json({"api_keys": [api_key_json(i) for i in _kit().list_api_keys(_user())]})

    @bp.delete("/api-keys/<key_id>")
    def revoke_api_key(key_id: str) -> Response:
        if not _kit().revoke_api_key(_user(), key_id):
            raise ApiError(404, "not_found", "Not found.")
        return _no_content()

    return bp
