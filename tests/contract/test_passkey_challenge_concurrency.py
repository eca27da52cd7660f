"""PK-2 across processes: of many simultaneous consumers of one challenge, exactly one wins.

Two processes of 25 threads each (50 consumers) consume the same stored challenge at the same
instant, lined up by a multiprocessing barrier, each on a connection of its own (the harness in
``tests/_concurrency.py``). Exactly one gets the challenge record; the 49 others get nothing.
That is what a replayed WebAuthn response raced against the genuine one looks like.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.passkeys.storage import ChallengePurpose, PasskeyChallenge
from tests._concurrency import StoreSpec, hammer, per_round, store_spec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
CONSUMERS = PROCESSES * THREADS


def _challenge_store(spec: StoreSpec, handle: Any) -> Any:
    if spec.is_redis:
        from storno_security.stores.redis import RedisPasskeyChallengeStore

        return RedisPasskeyChallengeStore(handle, prefix=spec.prefix)
    from storno_security.stores.sql import SqlPasskeyChallengeStore

    return SqlPasskeyChallengeStore(handle)


def _consume(challenge_hash: str, store: Any, round_no: int) -> str:
    record = store.consume(challenge_hash, now=NOW)
    return "won" if record is not None else "lost"


@pytest.mark.spec("PK-2")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb", "redis"])
def test_one_winner_among_concurrent_consumers(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    spec = store_spec(backend, request, tmp_path)
    challenge = PasskeyChallenge(
        challenge_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        purpose=ChallengePurpose.AUTHENTICATION,
        user_id=None,
        expires_at=NOW + timedelta(minutes=5),
    )
    with spec.connected() as handle:
        _challenge_store(spec, handle).put(challenge, now=NOW)

    outcomes = hammer(
        spec,
        _challenge_store,
        functools.partial(_consume, challenge.challenge_hash),
        processes=PROCESSES,
        threads=THREADS,
    )
    counted = per_round(outcomes, 0)
    assert counted["won"] == 1
    assert counted["lost"] == CONSUMERS - 1
