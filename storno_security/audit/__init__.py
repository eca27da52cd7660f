"""Security events and where they go (ACC-3, ACC-4).

Typical wiring::

    log = AuditLog(SqlAuditStore(engine), clock=SystemClock(), pseudonym_key=key_from_settings)
    log.record(SecurityEventType.LOGIN_FAILED, outcome=Outcome.FAILURE, ip=client_ip,
               details={"reason": "invalid_credentials"})
    manager = SessionManager(..., on_event=log.session_listener())
    log.purge_expired()            # from a scheduled command: retention, default 6 months
    log.pseudonymise_user(user_id) # GDPR deletion
"""

from storno_security.audit.events import (
    MAX_DETAIL_KEYS,
    MAX_TEXT_VALUE,
    Outcome,
    Scalar,
    SecurityEvent,
    SecurityEventType,
    looks_like_secret,
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
    "MAX_DETAIL_KEYS",
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
    "event_from_dict",
    "event_from_json",
    "event_from_session",
    "event_to_dict",
    "event_to_json",
    "looks_like_secret",
    "pseudonym",
    "secret_key_name",
    "to_jsonl",
    "validate_details",
]
