"""The audit trail: security events of a login session in SQLite, queried, exported, pseudonymised.

Run: python examples/audit.py   (uses a temporary SQLite file, removed at the end)
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from storno_security import (
    AccessTokenIssuer,
    KeyRing,
    RefreshTokenReuseError,
    SessionManager,
    SystemClock,
    TokenPolicy,
)
from storno_security.audit import AuditLog, Outcome, SecurityEventType
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from storno_security.stores.sql import SqlAuditStore, create_engine, create_schema

USER = "7f1c2a9e-0d4b-4c1e-9a57-3b8e2f6d1c00"
ORG = "org-1"
IP = "203.0.113.9"


def main() -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'audit.db'}")
        create_schema(engine)  # every storno_ table, storno_audit_events among them
        # The pseudonym key (32+ bytes) lives with the other secrets, never in the database:
        # without it nobody can test a guessed user id against a pseudonym.
        log = AuditLog(SqlAuditStore(engine), clock=clock, pseudonym_key=secrets.token_bytes(32))

        # Sessions report reuse, logout and revoke-all by themselves through on_event.
        policy = TokenPolicy(issuer="https://api.example.eu", audience="example-api")
        state = MemorySessionStateStore()
        sessions = SessionManager(
            issuer=AccessTokenIssuer(KeyRing.generate(bits=2048), policy, clock=clock),
            policy=policy,
            families=MemoryRefreshFamilyStore(),
            sessions=state,
            clock=clock,
            on_event=log.session_listener(),
        )

        # The login handler records what only it knows. Details never hold secrets: a key
        # named like one ("password", "token", ...) or a token-shaped value is refused.
        log.record(
            SecurityEventType.LOGIN_FAILED,
            outcome=Outcome.FAILURE,
            ip=IP,
            details={"reason": "invalid_credentials", "method": "password"},
        )
        log.record(
            SecurityEventType.LOGIN_SUCCEEDED,
            actor_id=USER,
            organization_id=ORG,
            ip=IP,
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            details={"method": "password"},
        )
        pair = sessions.start(USER)
        successor = sessions.refresh(pair.refresh_token)
        sessions.refresh(successor.refresh_token)  # the client moved on
        try:
            sessions.refresh(pair.refresh_token)  # the old token again: stolen and replayed
        except RefreshTokenReuseError:
            print("refresh token reuse detected (the session listener records it)")
        sessions.revoke_all(USER, reason="password_changed")
        try:
            log.record(
                SecurityEventType.PASSWORD_CHANGED, actor_id=USER, details={"new_password": "x"}
            )
        except ValueError as exc:
            print("refused detail:", exc)

        # Query: newest first; filters by organization (None: all), time range, types, actor.
        events = log.store.query(organization_id=None, actor_id=USER)
        print(
            "events of the user:", [f"{e.type.value}/{e.outcome.value}" for e in reversed(events)]
        )

        # Export as JSON Lines, e.g. for a SIEM or a data-access request. The session manager
        # does not know the organization, so its events have none: export by user here, or
        # record session events with log.record_session_event(event, organization_id=...).
        lines = list(log.export_jsonl(organization_id=None, actor_id=USER))
        newest = json.loads(lines[0])
        print("exported", len(lines), "JSON lines; newest:", newest["type"], newest["details"])

        # GDPR erasure: the user's id becomes a keyed pseudonym everywhere, and the IP address
        # and user agent of their events are cleared, in one transaction. Events stay linked.
        changed = log.pseudonymise_user(USER)
        after = log.store.query(organization_id=ORG)[0]
        print("pseudonymised", changed, "events; actor now", after.actor_id, "ip", after.ip)
        print(
            "the old id finds:", len(log.store.query(organization_id=None, actor_id=USER)), "events"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
