"""Security events and where they go (ACC-3, ACC-4).

Typical wiring::

    log = AuditLog(SqlAuditStore(engine), clock=SystemClock(), pseudonym_key=key_from_settings)
    log.record(SecurityEventType.LOGIN_FAILED, outcome=Outcome.FAILURE, ip=client_ip,
               details={"reason": "invalid_credentials"})
    manager = SessionManager(..., on_event=log.session_listener())
    log.purge_expired()            # from a scheduled command: retention, default 6 months
    log.pseudonymise_user(user_id) # GDPR deletion
"""

from storno_security.audit.capabilities import (
    MAX_LISTED_KEYS,
    event_from_api_key_event,
    event_from_api_key_use,
    event_from_backup_code_set,
    event_from_error,
    event_from_google_login,
    event_from_license_status,
    event_from_membership_change,
    event_from_mfa_challenge,
    event_from_ownership_transfer,
    event_from_passkey_clone,
    event_from_passkey_login,
    event_from_passkey_registration,
    event_from_rate_limit,
    event_from_second_factor,
    event_from_step_up,
    vault_access_event,
)
from storno_security.audit.events import (
    DETAIL_KEYS,
    ID_DETAIL_KEYS,
    MAX_DETAIL_KEYS,
    MAX_TEXT_VALUE,
    Outcome,
    Scalar,
    SecurityEvent,
    SecurityEventType,
    looks_like_secret,
    personal_key_name,
    secret_key_name,
    validate_details,
)
from storno_security.audit.export import (
    event_from_dict,
    event_from_json,
    event_to_dict,
    event_to_json,
    to_jsonl,
)
from storno_security.audit.log import MIN_PSEUDONYM_KEY_BYTES, AuditLog, pseudonym
from storno_security.audit.policy import AuditPolicy
from storno_security.audit.sessions import SessionEventLike, event_from_session
from storno_security.audit.storage import MAX_QUERY_LIMIT, AuditCursor, AuditSink, AuditStore

__all__ = [
    "DETAIL_KEYS",
    "ID_DETAIL_KEYS",
    "MAX_DETAIL_KEYS",
    "MAX_LISTED_KEYS",
    "MAX_QUERY_LIMIT",
    "MAX_TEXT_VALUE",
    "MIN_PSEUDONYM_KEY_BYTES",
    "AuditCursor",
    "AuditLog",
    "AuditPolicy",
    "AuditSink",
    "AuditStore",
    "Outcome",
    "Scalar",
    "SecurityEvent",
    "SecurityEventType",
    "SessionEventLike",
    "event_from_api_key_event",
    "event_from_api_key_use",
    "event_from_backup_code_set",
    "event_from_dict",
    "event_from_error",
    "event_from_google_login",
    "event_from_json",
    "event_from_license_status",
    "event_from_membership_change",
    "event_from_mfa_challenge",
    "event_from_ownership_transfer",
    "event_from_passkey_clone",
    "event_from_passkey_login",
    "event_from_passkey_registration",
    "event_from_rate_limit",
    "event_from_second_factor",
    "event_from_session",
    "event_from_step_up",
    "event_to_dict",
    "event_to_json",
    "looks_like_secret",
    "personal_key_name",
    "pseudonym",
    "secret_key_name",
    "to_jsonl",
    "validate_details",
    "vault_access_event",
]
