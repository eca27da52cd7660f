"""The audit log: clock-stamped recording, retention purge, GDPR pseudonymisation, export
(ACC-3, ACC-4)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from storno_security.audit import (
    AuditLog,
    AuditPolicy,
    Outcome,
    SecurityEventType,
    event_from_json,
    pseudonym,
)
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryAuditStore
from storno_security.tokens import SessionEvent

KEY = bytes(range(32))


def make_log(clock: FrozenClock, **kw: object) -> tuple[AuditLog, MemoryAuditStore]:
    store = MemoryAuditStore()
    return AuditLog(store, clock=clock, pseudonym_key=KEY, **kw), store  # type: ignore[arg-type]


@pytest.mark.spec("ACC-3")
def test_record_stamps_the_clock_time_and_stores(clock: FrozenClock) -> None:
    log, store = make_log(clock)
    event = log.record(
        SecurityEventType.API_KEY_CREATED,
        actor_id="u1",
        organization_id="o1",
        company_id="c1",
        ip="203.0.113.5",
        details={"key_id": "k_123", "scope": "read,write"},
    )
    assert event.at == clock.now()
    assert store.query(organization_id="o1") == [event]
    with pytest.raises(ValueError, match="names a secret"):
        log.record(SecurityEventType.API_KEY_CREATED, details={"api_key": "x"})
    assert len(store.query(organization_id=None)) == 1


@pytest.mark.spec("ACC-3")
def test_retention_defaults_to_six_months_and_purges_by_policy(clock: FrozenClock) -> None:
    assert AuditPolicy().retention == timedelta(days=183)
    log, store = make_log(clock)
    old = log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1")
    clock.advance(timedelta(days=100))
    recent = log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1")
    clock.advance(timedelta(days=83))
    assert log.purge_expired() == 0  # exactly 183 days old is kept
    clock.advance(timedelta(seconds=1))
    assert log.purge_expired() == 1
    assert store.query(organization_id=None) == [recent]
    assert old not in store.query(organization_id=None)

    short, _ = make_log(clock, policy=AuditPolicy(retention=timedelta(days=30)))
    short.record(SecurityEventType.LOGIN_SUCCEEDED)
    clock.advance(timedelta(days=31))
    assert short.purge_expired() == 1
    with pytest.raises(ValueError, match="between 1 day"):
        AuditPolicy(retention=timedelta(hours=1))
    with pytest.raises(TypeError, match="retention must be a timedelta"):
        AuditPolicy(retention=30)  # type: ignore[arg-type]


@pytest.mark.spec("ACC-4")
def test_pseudonymise_user(clock: FrozenClock) -> None:
    log, store = make_log(clock)
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1", ip="192.0.2.1", user_agent="UA")
    log.record(SecurityEventType.ROLE_CHANGED, actor_id="admin", subject_id="u1")
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u2", ip="192.0.2.2")
    assert log.pseudonymise_user("u1") == 2
    alias = pseudonym("u1", key=KEY)
    events = store.query(organization_id=None)
    assert not [e for e in events if "u1" in (e.actor_id, e.subject_id)]
    login = next(e for e in events if e.actor_id == alias)
    assert login.ip is None
    assert login.user_agent is None
    assert next(e for e in events if e.type is SecurityEventType.ROLE_CHANGED).subject_id == alias
    assert next(e for e in events if e.actor_id == "u2").ip == "192.0.2.2"


@pytest.mark.spec("ACC-4")
def test_pseudonym_is_keyed_stable_and_unlinkable_without_the_key() -> None:
    assert pseudonym("u1", key=KEY) == pseudonym("u1", key=KEY)
    assert pseudonym("u1", key=KEY) != pseudonym("u2", key=KEY)
    assert pseudonym("u1", key=KEY) != pseudonym("u1", key=bytes(32))
    assert pseudonym("u1", key=KEY).startswith("pseudo-")
    assert "u1" not in pseudonym("u1", key=KEY)[7:]
    with pytest.raises(ValueError, match="at least 32 bytes"):
        pseudonym("u1", key=b"short")
    with pytest.raises(TypeError, match="user_id must be a str"):
        pseudonym(b"u1", key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id must not be empty"):
        pseudonym("", key=KEY)
    with pytest.raises(TypeError, match="key must be bytes"):
        pseudonym("u1", key=KEY.hex())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuditLog(MemoryAuditStore(), clock=FrozenClock(), pseudonym_key=b"short")
    with pytest.raises(ValueError, match="needs a pseudonym_key"):
        AuditLog(MemoryAuditStore(), clock=FrozenClock()).pseudonymise_user("u1")
    assert repr(KEY) not in repr(
        AuditLog(MemoryAuditStore(), clock=FrozenClock(), pseudonym_key=KEY)
    )


@pytest.mark.spec("ACC-3")
def test_export_as_json_lines_pages_through_everything(clock: FrozenClock) -> None:
    log, _ = make_log(clock)
    for i in range(2501):
        log.record(
            SecurityEventType.DATA_EXPORTED, organization_id="o1", details={"record_count": i}
        )
        if i % 7 == 0:
            clock.advance(1)
    log.record(SecurityEventType.DATA_EXPORTED, organization_id="o2")
    lines = list(log.export_jsonl(organization_id="o1"))
    assert len(lines) == 2501
    assert {json.loads(line)["details"]["record_count"] for line in lines} == set(range(2501))
    events = [event_from_json(line) for line in lines]
    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)


@pytest.mark.spec("REF-3")
def test_session_listener_records_session_events(clock: FrozenClock) -> None:
    log, store = make_log(clock)
    listener = log.session_listener()
    listener(
        SessionEvent(
            kind="refresh_token_reused", user_id="u1", at=clock.now(), session_ids=("f" * 32,)
        )
    )
    (event,) = store.query(organization_id=None)
    assert event.type is SecurityEventType.TOKEN_REUSE_DETECTED
    assert event.outcome is Outcome.FAILURE
    assert event.actor_id == "u1"


@pytest.mark.parametrize("limit", [True, 10.0, "10", None])
def test_a_query_limit_must_be_an_int(clock: FrozenClock, limit: object) -> None:
    log, store = make_log(clock)
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="u1")
    assert len(store.query(organization_id=None, limit=1)) == 1
    with pytest.raises(TypeError, match="limit must be an int"):
        store.query(organization_id=None, limit=limit)
