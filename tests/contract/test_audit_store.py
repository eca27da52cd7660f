"""One contract for every AuditStore implementation: memory, SQLite, PostgreSQL, MariaDB.

Organization and user ids are random per test, so the tests share each backend's schema without
seeing each other's rows.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.audit import (
    AuditCursor,
    AuditSink,
    AuditStore,
    Outcome,
    SecurityEvent,
    SecurityEventType,
)
from storno_security.errors import CorruptRecordError, StoreError
from storno_security.stores.memory import MemoryAuditStore
from storno_security.stores.sql import SqlAuditStore
from tests.conftest import get_sql_engine
from tests.contract.conftest import store_fixture

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


audit_store = store_fixture("audit_store", {"memory": MemoryAuditStore, "sql": SqlAuditStore})


def org() -> str:
    return f"org-{secrets.token_hex(6)}"


def event(org_id: str, minutes: float = 0, **kw: Any) -> SecurityEvent:
    kw.setdefault("type", SecurityEventType.LOGIN_SUCCEEDED)
    return SecurityEvent(at=T0 + timedelta(minutes=minutes), organization_id=org_id, **kw)


def test_is_an_audit_store(audit_store: Any) -> None:
    assert isinstance(audit_store, AuditStore)
    assert isinstance(audit_store, AuditSink)


@pytest.mark.spec("ACC-3")
def test_event_round_trips_every_field(audit_store: Any) -> None:
    o = org()
    original = SecurityEvent(
        type=SecurityEventType.ROLE_CHANGED,
        at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        outcome=Outcome.FAILURE,
        actor_id="user-ä",
        subject_id="user-2",
        organization_id=o,
        company_id="7d1c1f6e-3c1a-4d55-9a57-2d1f0f6f0a01",
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0 ☃",
        # allowed keys for the type (DETAIL_KEYS); every JSON scalar type, not a real event
        details={
            "previous_role": "viewer",
            "role": "admin",
            "custom_permissions": True,
            "method": 3,
            "reason": 1.5,
        },
    )
    audit_store.record(original)
    (loaded,) = audit_store.query(organization_id=o)
    assert loaded == original
    assert loaded.at.utcoffset() == timedelta(0)
    assert dict(loaded.details) == dict(original.details)


def test_duplicate_event_id_is_refused(audit_store: Any) -> None:
    e = event(org())
    audit_store.record(e)
    with pytest.raises(StoreError):
        audit_store.record(e)


@pytest.mark.spec("ACC-3")
def test_query_by_organization_time_range_type_and_actor(audit_store: Any) -> None:
    mine, theirs = org(), org()
    login = event(mine, 0, actor_id="u1")
    failed = event(mine, 10, type=SecurityEventType.LOGIN_FAILED, outcome="failure")
    key = event(mine, 20, type=SecurityEventType.API_KEY_CREATED, actor_id="u1")
    foreign = event(theirs, 5)
    for e in (login, failed, key, foreign):
        audit_store.record(e)
    assert audit_store.query(organization_id=mine) == [key, failed, login]
    assert audit_store.query(organization_id=theirs) == [foreign]
    window = audit_store.query(
        organization_id=mine, since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20)
    )
    assert window == [failed]  # since inclusive, until exclusive
    assert audit_store.query(
        organization_id=mine,
        types=[SecurityEventType.LOGIN_FAILED, SecurityEventType.API_KEY_CREATED],
    ) == [key, failed]
    assert audit_store.query(organization_id=mine, types=[]) == []
    assert audit_store.query(organization_id=mine, actor_id="u1") == [key, login]
    assert audit_store.query(organization_id=mine, limit=1) == [key]
    everywhere = audit_store.query(organization_id=None, actor_id="u1", limit=10_000)
    assert login in everywhere
    assert key in everywhere


def test_cursor_pages_through_ties(audit_store: Any) -> None:
    o = org()
    same_time = [event(o, 0) for _ in range(5)] + [event(o, 1)]
    for e in same_time:
        audit_store.record(e)
    seen: list[SecurityEvent] = []
    cursor = None
    while True:
        page = audit_store.query(organization_id=o, cursor=cursor, limit=2)
        seen.extend(page)
        if len(page) < 2:
            break
        cursor = AuditCursor.after(page[-1])
    assert len(seen) == 6
    assert set(seen) == set(same_time)
    assert seen[0] == same_time[-1]


def test_bad_query_arguments(audit_store: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        audit_store.query(organization_id="o", limit=0)
    with pytest.raises(ValueError, match="limit"):
        audit_store.query(organization_id="o", limit=10_001)
    with pytest.raises(ValueError, match="naive"):
        audit_store.query(organization_id="o", since=datetime(2026, 1, 1))


@pytest.mark.spec("ACC-3")
def test_purge_deletes_only_older_events(audit_store: Any) -> None:
    o = org()
    old, edge, new = event(o, -100), event(o, 0), event(o, 100)
    for e in (old, edge, new):
        audit_store.record(e)
    deleted = audit_store.purge(before=T0)
    assert deleted >= 1  # other tests' older events may go too
    assert audit_store.query(organization_id=o) == [new, edge]


@pytest.mark.spec("ACC-4")
def test_pseudonymise_replaces_the_user_everywhere_and_only_the_user(audit_store: Any) -> None:
    o = org()
    user, other = f"user-{secrets.token_hex(4)}", f"user-{secrets.token_hex(4)}"
    acted = event(o, 0, actor_id=user, ip="192.0.2.1", user_agent="UA")
    acted_upon = event(
        o, 1, type=SecurityEventType.ROLE_CHANGED, actor_id=other, subject_id=user, ip="192.0.2.9"
    )
    unrelated = event(o, 2, actor_id=other, ip="192.0.2.9")
    for e in (acted, acted_upon, unrelated):
        audit_store.record(e)
    alias = "pseudo-" + secrets.token_hex(16)
    assert audit_store.pseudonymise(user, pseudonym=alias) == 2
    events = {e.event_id: e for e in audit_store.query(organization_id=o)}
    assert events[acted.event_id].actor_id == alias
    assert events[acted.event_id].ip is None
    assert events[acted.event_id].user_agent is None
    assert events[acted_upon.event_id].subject_id == alias
    assert events[acted_upon.event_id].actor_id == other
    assert events[acted_upon.event_id].ip == "192.0.2.9"  # the other user's address stays
    assert events[unrelated.event_id] == unrelated
    assert audit_store.query(organization_id=None, actor_id=user) == []
    assert audit_store.pseudonymise(user, pseudonym=alias) == 0


@pytest.mark.spec("ACC-4")
def test_pseudonymise_is_atomic_against_concurrent_readers(audit_store: Any) -> None:
    o = org()
    user = f"user-{secrets.token_hex(4)}"
    for i in range(40):
        audit_store.record(event(o, i, actor_id=user))
    mixed: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            actors = {e.actor_id for e in audit_store.query(organization_id=o, limit=100)}
            if len(actors) > 1:
                mixed.append(len(actors))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        assert audit_store.pseudonymise(user, pseudonym="pseudo-" + "0" * 32) == 40
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not mixed, "a reader saw a half-pseudonymised log"


def test_sql_row_with_a_secret_is_refused_on_read(
    sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    from storno_security.stores.sql import SqlAuditStore, audit_events

    engine = get_sql_engine("sqlite", sql_urls, sql_engines)
    store = SqlAuditStore(engine)
    o = org()
    e = event(o)
    store.record(e)
    with engine.begin() as conn:
        conn.execute(
            sa.update(audit_events)
            .where(audit_events.c.event_id == e.event_id)
            .values(details='{"note": "' + "aB3" * 12 + '"}')
        )
    try:
        with pytest.raises(CorruptRecordError):
            store.query(organization_id=o)
    finally:  # the engine is shared with later suites, which read every event
        with engine.begin() as conn:
            conn.execute(sa.delete(audit_events).where(audit_events.c.event_id == e.event_id))


def test_only_a_security_event_is_recorded(audit_store: Any) -> None:
    with pytest.raises(TypeError, match="SecurityEvent"):
        audit_store.record({"type": "login.succeeded"})


@pytest.mark.parametrize(
    ("user_id", "pseudonym", "error"),
    [(5, "p", TypeError), ("u", None, TypeError), ("", "p", ValueError), ("u", "", ValueError)],
)
def test_pseudonymise_needs_a_user_and_a_pseudonym(
    audit_store: Any, user_id: Any, pseudonym: Any, error: type[Exception]
) -> None:
    o = org()
    audit_store.record(event(o, actor_id="u"))
    with pytest.raises(error):
        audit_store.pseudonymise(user_id, pseudonym=pseudonym)
    assert [e.actor_id for e in audit_store.query(organization_id=o)] == ["u"]
