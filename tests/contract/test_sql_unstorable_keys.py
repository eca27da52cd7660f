"""Regression: a lookup key the database cannot hold matches nothing (it never raises).

Found in review: a NUL character made PostgreSQL fail the query (``StoreError``, read by callers
as "backend down"), and a lone surrogate leaked a raw ``UnicodeEncodeError``. Such keys reach the
stores from requests (an API-key id in a URL path, a user id from a token), so they must answer
exactly like an unknown key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.stores.sql import (
    SqlApiKeyStore,
    SqlMfaChallengeStore,
    SqlPasskeyChallengeStore,
    SqlRefreshFamilyStore,
    SqlSessionStateStore,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNSTORABLE = ["a\x00b", "\ud800", "\x00", "x\udfff"]


@pytest.mark.parametrize("key", UNSTORABLE)
def test_unstorable_keys_match_nothing(sql_engine: Any, key: str) -> None:
    api_keys = SqlApiKeyStore(sql_engine)
    assert api_keys.get(key) is None
    assert api_keys.revoke(key, now=NOW) is False
    assert api_keys.touch(key, now=NOW, stale_before=NOW - timedelta(minutes=1)) is False

    state = SqlSessionStateStore(sql_engine)
    current = state.session_state(user_id=key, session_id=key)
    assert current.epoch == 0
    assert current.revoked is False
    assert state.current_epoch(key) == 0

    families = SqlRefreshFamilyStore(sql_engine)
    assert families.revoke_family(key, now=NOW) is False
    assert families.revoke_user_families(key, now=NOW) == []

    challenges = SqlMfaChallengeStore(sql_engine)
    assert challenges.get_challenge(key, now=NOW) is None
    assert challenges.record_failure(key, now=NOW) is None
    assert challenges.consume_challenge(key, now=NOW) is None

    assert SqlPasskeyChallengeStore(sql_engine).consume(key, now=NOW) is None
