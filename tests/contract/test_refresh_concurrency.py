"""REF-2 across processes: of many simultaneous presentations of one refresh token, one wins.

Two processes of 25 threads each (50 presenters) present the same live refresh token to
``SqlRefreshFamilyStore.rotate`` at the same instant, lined up by a multiprocessing barrier,
each on a connection of its own (the harness in ``tests/_concurrency.py``). Exactly one rotates;
every other one finds the token used, which is what a stolen token presented alongside its owner
looks like (REF-3), so the family ends revoked. A second volley of 50 presentations is all reuse,
and the winner's new token is dead.
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
PROCESSES = 2
THREADS = 25
PRESENTERS = PROCESSES * THREADS
ROUNDS = 2


def _hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _family_store(spec: StoreSpec, engine: Any) -> Any:
    from storno_security.stores.sql import SqlRefreshFamilyStore

    return SqlRefreshFamilyStore(engine)


def _present(presented_hash: str, store: Any, round_no: int) -> tuple[str, str]:
    """One presentation of ``presented_hash``: (the new hash offered, the outcome's value)."""
    new_hash = _hash()
    rotation = store.rotate(presented_hash=presented_hash, new_hash=new_hash, now=NOW)
    return new_hash, rotation.outcome.value


def _value(outcome: tuple[str, str]) -> str:
    return outcome[1]


@pytest.mark.spec("REF-2")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_one_winner_among_concurrent_presentations(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    spec = store_spec(backend, request, tmp_path)
    with spec.connected() as engine:
        store = _family_store(spec, engine)
        family = RefreshFamily(
            family_id=secrets.token_hex(16),
            user_id=f"user-{secrets.token_hex(6)}",
            created_at=NOW,
            expires_at=NOW + timedelta(days=30),
        )
        presented = _hash()
        store.create_family(family, token_hash=presented)

        outcomes = hammer(
            spec,
            _family_store,
            functools.partial(_present, presented),
            processes=PROCESSES,
            threads=THREADS,
            rounds=ROUNDS,
        )

        first = per_round(outcomes, 0, key=_value)
        assert first == {"rotated": 1, "reused": PRESENTERS - 1}
        second = per_round(outcomes, 1, key=_value)
        assert second == {"reused": PRESENTERS}

        # the losers of the first volley revoked the family ...
        assert store.revoke_family(family.family_id, now=NOW) is False
        # ... so the token the winner received is dead too
        (winner_hash,) = [new for _, (new, value) in outcomes if value == "rotated"]
        after = store.rotate(presented_hash=winner_hash, new_hash=_hash(), now=NOW)
        assert after.outcome is RotationOutcome.REVOKED
        assert after.family == family
