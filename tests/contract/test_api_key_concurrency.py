"""KEY-3 across processes: ``touch`` and ``revoke`` are each won exactly once.

Two processes of 25 threads each (50 callers) hit one key at the same instant, lined up by a
multiprocessing barrier, each on a connection of its own (the harness in
``tests/_concurrency.py``): first all call ``touch`` with the same ``stale_before`` (one write of
``last_used_at`` however many requests arrive together), then all call ``revoke`` (one caller
revokes; the others see a revoked key).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests._concurrency import StoreSpec, hammer, per_round, store_spec
from tests.contract.test_api_key_store import new_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
CALLERS = PROCESSES * THREADS
ROUNDS = ("touch", "revoke")


def _api_key_store(spec: StoreSpec, engine: Any) -> Any:
    from storno_security.stores.sql import SqlApiKeyStore

    return SqlApiKeyStore(engine)


def _call(key_id: str, store: Any, round_no: int) -> str:
    """Round 0 touches the key, round 1 revokes it; whether this caller won, as text."""
    if ROUNDS[round_no] == "touch":
        won = store.touch(key_id, now=NOW, stale_before=NOW - timedelta(seconds=60))
    else:
        won = store.revoke(key_id, now=NOW)
    return str(won)


@pytest.mark.spec("KEY-3")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_touch_and_revoke_are_won_once_across_processes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    spec = store_spec(backend, request, tmp_path)
    with spec.connected() as engine:
        store = _api_key_store(spec, engine)
        record = new_record()
        store.create(record)

        outcomes = hammer(
            spec,
            _api_key_store,
            functools.partial(_call, record.info.key_id),
            processes=PROCESSES,
            threads=THREADS,
            rounds=len(ROUNDS),
        )
        for round_no, round_name in enumerate(ROUNDS):
            counted = per_round(outcomes, round_no)
            assert counted == {"True": 1, "False": CALLERS - 1}, (round_name, counted)
        info = store.get(record.info.key_id).info
        assert info.last_used_at == NOW
        assert info.revoked_at == NOW
