"""Re-authentication for acts that change how an account is protected or end it.

An access token proves a session, not the person: a token stolen for a moment must not be
enough to add a credential (passkey, TOTP, Google link), to read a sealed secret or to delete
the account. :func:`require_reauthentication` asks for the strongest proof the account has:

* MFA on: a step-up token for the act (MFA-6), bought with a fresh second factor;
* else, a password: the current password (bcrypt, on routes limited like a login, RL-5);
* else (Google- or passkey-only account without MFA): a login in the last :data:`FRESH_LOGIN`
  (the ``auth_time`` claim, set at login and never by a refresh), since there is nothing else
  to ask for.

A refusal is 403 ``reauthentication_required`` naming what to send, or the error of the proof
that failed (403 ``invalid_credentials``, 403 ``step_up_required``); each failure is audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

import falcon
import sqlalchemy as sa

from reference_server.context import Caller, audit_meta
from reference_server.errors import ApiError
from reference_server.services import Services
from storno_security.audit import Outcome, SecurityEventType, event_from_error
from storno_security.errors import InvalidPasswordError, InvalidStepUpTokenError
from storno_security.tokens import TokenPair

__all__ = ["AUTH_TIME_CLAIM", "FRESH_LOGIN", "require_reauthentication", "start_session"]

#: The access-token claim (OIDC's name) holding when the person last proved who they are: set
#: at login only, never on refresh, so a refreshed (or stolen refresh) token is never fresh.
AUTH_TIME_CLAIM = "auth_time"

#: How recent a login must be to count as re-authentication for an account with no password
#: and no MFA.
FRESH_LOGIN = timedelta(minutes=5)


def start_session(services: Services, user_id: str) -> TokenPair:
    """A new login: the session's tokens carry the time of this authentication."""
    now = int(services.clock.now().timestamp())
    return services.sessions.start(user_id, extra_claims={AUTH_TIME_CLAIM: now})


def require_reauthentication(
    req: falcon.Request,
    services: Services,
    body: dict[str, Any],
    *,
    caller: Caller,
    user: sa.RowMapping,
    action: str,
) -> str:
    """Demand proof beyond the access token for ``action``; return the proof used.

    Returns:
        ``"step_up"``, ``"password"`` or ``"fresh_login"``.

    Raises:
        ApiError: 403 when no proof was sent, or the password is wrong.
        InvalidStepUpTokenError: the step-up token is missing, used, expired, or for another
            user or action (403 ``step_up_required``).
    """
    if user["mfa_enabled"]:
        token = body.get("step_up_token")
        if not isinstance(token, str) or not token:
            _refuse(req, services, caller, action, "step_up_missing", ["step_up_token"])
        try:
            services.step_up.consume(token, user_id=caller.user_id, action=action)
        except InvalidStepUpTokenError as exc:
            _record_failure(req, services, caller, exc, method="step_up")
            raise
        return "step_up"
    stored = user["password_hash"]
    if stored is not None:
        password = body.get("current_password")
        if not isinstance(password, str) or not password:
            _refuse(req, services, caller, action, "password_missing", ["current_password"])
        try:
            services.hasher.verify(password, stored)
        except InvalidPasswordError as exc:
            _record_failure(req, services, caller, exc, method="password")
            raise ApiError(
                403, "invalid_credentials", "The current password is not correct."
            ) from None
        return "password"
    claims = caller.claims
    auth_time = claims.extra.get(AUTH_TIME_CLAIM) if claims is not None else None
    fresh = (
        isinstance(auth_time, int)
        and not isinstance(auth_time, bool)
        and services.clock.now().timestamp() - auth_time <= FRESH_LOGIN.total_seconds()
    )
    if not fresh:
        _refuse(req, services, caller, action, "stale_login", ["fresh_login"])
    return "fresh_login"


def _refuse(
    req: falcon.Request,
    services: Services,
    caller: Caller,
    action: str,
    reason: str,
    accepted: list[str],
) -> NoReturn:
    services.audit.record(
        SecurityEventType.ACCESS_DENIED,
        outcome=Outcome.FAILURE,
        actor_id=caller.user_id,
        subject_id=caller.user_id,
        details={"action": action, "reason": reason},
        **audit_meta(req),
    )
    raise ApiError(
        403,
        "reauthentication_required",
        "Confirm it is you: send " + " or ".join(accepted) + ".",
        extra={"accepted": accepted},
    )


def _record_failure(
    req: falcon.Request, services: Services, caller: Caller, exc: Exception, *, method: str
) -> None:
    event_type = (
        SecurityEventType.STEP_UP_VERIFIED
        if method == "step_up"
        else SecurityEventType.LOGIN_FAILED
    )
    services.audit.record_event(
        event_from_error(
            event_type,
            exc,
            at=services.clock.now(),
            method=method,
            actor_id=caller.user_id,
            **audit_meta(req),
        )
    )
