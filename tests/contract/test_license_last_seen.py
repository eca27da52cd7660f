"""One contract for every LastSeenStore (LIC-3): memory, SQLite, PostgreSQL, MariaDB.

Keys are random per test, so the tests share each backend's schema without seeing each other's
rows.
"""

from __future__ import annotations

import functools
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.license.storage import LastSeenStore
from storno_security.stores.memory import MemoryLastSeenStore
from storno_security.stores.sql import SqlLastSeenStore
from tests._concurrency import at_once
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


last_seen_store = store_fixture(
    "last_seen_store", {"memory": MemoryLastSeenStore, "sql": SqlLastSeenStore}
)


def new_key() -> str:
    return f"install-{secrets.token_hex(8)}"


def test_is_a_last_seen_store(last_seen_store: Any) -> None:
    assert isinstance(last_seen_store, LastSeenStore)


@pytest.mark.spec("LIC-3")
def test_first_record_stores_the_time(last_seen_store: Any) -> None:
    key = new_key()
    result = last_seen_store.record(key, NOW)
    assert result == NOW
    assert result.utcoffset() == timedelta(0)


@pytest.mark.spec("LIC-3")
def test_only_moves_forward(last_seen_store: Any) -> None:
    key = new_key()
    later = NOW + timedelta(days=3, microseconds=7)
    assert last_seen_store.record(key, NOW) == NOW
    assert last_seen_store.record(key, later) == later
    # A clock set back: the store keeps, and reports, the later time.
    assert last_seen_store.record(key, NOW) == later
    assert last_seen_store.record(key, later - timedelta(microseconds=1)) == later
    assert last_seen_store.record(key, later) == later


def test_microseconds_survive(last_seen_store: Any) -> None:
    key = new_key()
    first = NOW + timedelta(microseconds=1)
    last_seen_store.record(key, first)
    assert last_seen_store.record(key, NOW) == first


def test_keys_are_independent(last_seen_store: Any) -> None:
    one, two = new_key(), new_key()
    last_seen_store.record(one, NOW + timedelta(days=1))
    assert last_seen_store.record(two, NOW) == NOW
    assert last_seen_store.record(one.upper(), NOW) == NOW  # exact, case-sensitive keys


def test_other_time_zones_are_converted(last_seen_store: Any) -> None:
    from datetime import timezone

    key = new_key()
    bucharest = NOW.astimezone(timezone(timedelta(hours=2)))
    assert last_seen_store.record(key, bucharest) == NOW
    assert last_seen_store.record(key, NOW - timedelta(hours=1)) == NOW


def test_naive_times_are_refused(last_seen_store: Any) -> None:
    with pytest.raises(ValueError, match="naive"):
        last_seen_store.record(new_key(), datetime(2026, 3, 1))


@pytest.mark.spec("LIC-3")
def test_concurrent_records_keep_the_latest(last_seen_store: Any) -> None:
    """Threads racing new and existing keys: the stored time is the latest of all, and no call
    ever sees a time earlier than its own."""
    key = new_key()
    times = [NOW + timedelta(seconds=s) for s in random.sample(range(10_000), 24)]

    def record(seen: datetime) -> tuple[datetime, datetime]:
        return seen, last_seen_store.record(key, seen)

    results = at_once([functools.partial(record, t) for t in times])
    assert len(results) == len(times)
    assert all(result >= seen for seen, result in results)
    assert last_seen_store.record(key, NOW) == max(times)


# --- SQL only: persistence across restarts, and refused keys ---------------------------------


@pytest.mark.spec("LIC-3")
def test_rollback_is_detected_after_a_restart(sql_engine: Any) -> None:
    """The last verified time lives in the database: a fresh process (a new verifier and store
    over the same tables) still sees that the clock was set back."""
    from storno_security.clock import FrozenClock
    from storno_security.license import (
        LicenseIssuer,
        LicensePolicy,
        LicenseSigningKey,
        LicenseState,
        LicenseVerifier,
    )
    from storno_security.stores.sql import SqlLastSeenStore

    clock = FrozenClock(NOW)
    key = LicenseSigningKey.generate()
    token = (
        LicenseIssuer(key, issuer="vendor", clock=clock)
        .issue(
            "org-1",
            org_name="ACME",
            plan="business",
            max_companies=None,
            max_users=None,
            valid_for=timedelta(days=30),
        )
        .token
    )
    policy = LicensePolicy(issuer="vendor")
    installation = new_key()

    def verifier() -> LicenseVerifier:
        return LicenseVerifier(
            [key.public],
            policy,
            clock=clock,
            last_seen=SqlLastSeenStore(sql_engine),
            last_seen_key=installation,
            organization_id="org-1",
        )

    clock.advance(timedelta(days=60))
    assert verifier().verify(token).state is LicenseState.EXPIRED
    clock.set(NOW + timedelta(days=1))  # the clock turned back, the application restarted
    status = verifier().verify(token)
    assert status.clock_rollback is True
    assert status.state is LicenseState.EXPIRED
    assert status.checked_at == NOW + timedelta(days=60)


@pytest.mark.parametrize(
    ("key", "error"),
    [("", ValueError), ("k" * 256, ValueError), ("a\x00b", ValueError), (7, TypeError)],
)
def test_sql_refuses_keys_it_cannot_store(sql_engine: Any, key: object, error: type) -> None:
    from storno_security.stores.sql import SqlLastSeenStore

    with pytest.raises(error):
        SqlLastSeenStore(sql_engine).record(key, NOW)  # type: ignore[arg-type]
