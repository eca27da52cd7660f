"""REF-5: a refresh whose reply was lost can be retried once within a grace.

The just-rotated token presented again within ``grace``, while the successor its rotation made
is unused, replaces that successor (``REISSUED``); after the grace, once the successor was used,
or on a second presentation (the retry is spent), it is reuse and revokes the family (REF-3).
Over memory, SQLite, PostgreSQL and MariaDB; across 2 processes x 25 threads on SQL.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.tokens.storage import RefreshFamily, RotationOutcome
from tests._concurrency import StoreSpec, hammer, per_round, store_spec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)
R = RotationOutcome


def _hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _rotated(store: Any) -> tuple[RefreshFamily, str, str]:
    """A family whose first token was rotated at NOW: (family, that token, its successor)."""
    family = RefreshFamily(
        secrets.token_hex(16), f"user-{secrets.token_hex(6)}", NOW, NOW + timedelta(days=30)
    )
    first, second = _hash(), _hash()
    store.create_family(family, token_hash=first)
    assert store.rotate(presented_hash=first, new_hash=second, now=NOW).outcome is R.ROTATED
    return family, first, second


def _rotate(
    store: Any, presented: str, *, at: timedelta = timedelta(0), grace: timedelta | None = GRACE
) -> tuple[R, str]:
    new = _hash()
    rotation = store.rotate(presented_hash=presented, new_hash=new, now=NOW + at, grace=grace)
    return rotation.outcome, new


@pytest.mark.spec("REF-5")
def test_a_retry_within_the_grace_replaces_the_unused_successor(family_store: Any) -> None:
    family, first, _second = _rotated(family_store)
    outcome, third = _rotate(family_store, first, at=GRACE - timedelta(microseconds=1))
    assert outcome is R.REISSUED
    assert _rotate(family_store, third)[0] is R.ROTATED  # the fresh pair works
    assert family_store.revoke_family(family.family_id, now=NOW) is True  # never revoked


@pytest.mark.spec("REF-5")
def test_the_replaced_successor_is_reuse(family_store: Any) -> None:
    family, first, second = _rotated(family_store)
    assert _rotate(family_store, first)[0] is R.REISSUED
    assert _rotate(family_store, second)[0] is R.REUSED  # its holder is not the retrier
    assert family_store.revoke_family(family.family_id, now=NOW) is False


@pytest.mark.spec("REF-5")
@pytest.mark.spec("REF-3")
def test_a_retry_after_the_grace_is_reuse(family_store: Any) -> None:
    family, first, _ = _rotated(family_store)
    assert _rotate(family_store, first, at=GRACE)[0] is R.REUSED
    assert family_store.revoke_family(family.family_id, now=NOW) is False


@pytest.mark.spec("REF-5")
@pytest.mark.spec("REF-3")
def test_once_the_successor_was_used_a_retry_is_reuse(family_store: Any) -> None:
    family, first, second = _rotated(family_store)
    assert _rotate(family_store, second)[0] is R.ROTATED
    assert _rotate(family_store, first)[0] is R.REUSED
    assert family_store.revoke_family(family.family_id, now=NOW) is False


@pytest.mark.spec("REF-5")
def test_the_retry_is_granted_once(family_store: Any) -> None:
    family, first, _ = _rotated(family_store)
    assert _rotate(family_store, first)[0] is R.REISSUED
    assert _rotate(family_store, first)[0] is R.REUSED
    assert family_store.revoke_family(family.family_id, now=NOW) is False


@pytest.mark.spec("REF-5")
def test_without_grace_a_retry_is_reuse_and_a_revoked_family_gives_nothing(
    family_store: Any,
) -> None:
    _, first, _ = _rotated(family_store)
    assert _rotate(family_store, first, grace=None)[0] is R.REUSED
    family, first, _ = _rotated(family_store)
    family_store.revoke_family(family.family_id, now=NOW)
    assert _rotate(family_store, first)[0] is R.REUSED


def _family_store(spec: StoreSpec, engine: Any) -> Any:
    from storno_security.stores.sql import SqlRefreshFamilyStore

    return SqlRefreshFamilyStore(engine)


def _retry(presented: str, store: Any, round_no: int) -> str:
    return _rotate(store, presented)[0].value


@pytest.mark.spec("REF-5")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_one_reissue_among_concurrent_retries(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """50 simultaneous retries of the just-rotated token: exactly one is reissued, the 49 others
    are reuse, so the family ends revoked (a retry storm looks like theft)."""
    spec = store_spec(backend, request, tmp_path)
    with spec.connected() as engine:
        store = _family_store(spec, engine)
        family, first, _ = _rotated(store)
        outcomes = hammer(
            spec, _family_store, functools.partial(_retry, first), processes=2, threads=25
        )
        assert per_round(outcomes, 0) == {"reissued": 1, "reused": 49}
        assert store.revoke_family(family.family_id, now=NOW) is False
