"""ACC-2 under concurrency: a reset token is used exactly once, however many use it at once.

Threads behind one barrier (``tests/_concurrency.py``), over memory, SQLite, PostgreSQL and
MariaDB; on SQL each caller has a pooled connection of its own, opened before the race, so the
calls reach the server together rather than one connect after another:

* one token presented by 10 callers at once: exactly one gets the user id;
* 10 sibling tokens of one user, each presented at once: exactly one wins, and the win kills the
  other nine (no second password reset from an older link);
* uses racing ``revoke_all``: afterwards no token of the user is left.
"""

from __future__ import annotations

import functools
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storno_security.accounts import PasswordResetPolicy, PasswordResetTokens
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidResetTokenError
from storno_security.stores.memory import MemoryResetTokenStore
from tests._concurrency import at_once, patiently, store_spec

CALLERS = 10


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mariadb"])
def reset_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The store over each backend; on SQL, an engine of its own with a connection per caller
    already open in its pool."""
    if request.param == "memory":
        yield MemoryResetTokenStore()
        return
    from storno_security.stores.sql import SqlResetTokenStore

    spec = store_spec(str(request.param), request, tmp_path)
    engine = spec.connect(CALLERS)
    try:
        held = [patiently(engine.raw_connection) for _ in range(CALLERS)]
        for connection in held:
            connection.close()  # back to the pool, open
        yield SqlResetTokenStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def user_id() -> str:
    return f"user-{secrets.token_hex(6)}"


@pytest.fixture
def resets(reset_store: Any, clock: FrozenClock) -> PasswordResetTokens:
    return PasswordResetTokens(reset_store, clock=clock)


def _use(resets: PasswordResetTokens, token: str) -> str:
    try:
        return resets.consume(token)
    except InvalidResetTokenError as exc:
        return f"refused:{exc.reason}"


@pytest.mark.spec("ACC-2")
def test_one_token_is_used_once_among_ten(resets: PasswordResetTokens, user_id: str) -> None:
    issued = resets.issue(user_id)
    outcomes = Counter(at_once([functools.partial(_use, resets, issued.token)] * CALLERS))
    assert outcomes == {user_id: 1, "refused:unknown_or_used": CALLERS - 1}, outcomes


@pytest.mark.spec("ACC-2")
def test_ten_sibling_tokens_used_at_once_give_one_reset(
    reset_store: Any, clock: FrozenClock, user_id: str
) -> None:
    resets = PasswordResetTokens(
        reset_store, clock=clock, policy=PasswordResetPolicy(max_active_per_user=CALLERS)
    )
    tokens = [resets.issue(user_id).token for _ in range(CALLERS)]
    outcomes = Counter(at_once([functools.partial(_use, resets, t) for t in tokens]))
    assert outcomes == {user_id: 1, "refused:unknown_or_used": CALLERS - 1}, outcomes
    assert resets.revoke_all(user_id) == 0


@pytest.mark.spec("ACC-2")
def test_uses_racing_revoke_all_leave_nothing(
    reset_store: Any, clock: FrozenClock, user_id: str
) -> None:
    resets = PasswordResetTokens(
        reset_store, clock=clock, policy=PasswordResetPolicy(max_active_per_user=CALLERS)
    )
    tokens = [resets.issue(user_id).token for _ in range(CALLERS - 1)]
    calls: list[Any] = [functools.partial(_use, resets, t) for t in tokens]
    calls.append(lambda: f"revoked:{resets.revoke_all(user_id)}")
    outcomes = Counter(at_once(calls))
    wins = outcomes[user_id]
    revoked = next(int(k.split(":")[1]) for k in outcomes if k.startswith("revoked:"))
    assert wins <= 1, outcomes
    # either a use won first (and killed every sibling) or revoke_all took them all
    assert (wins, revoked) in {(1, 0), (0, CALLERS - 1)}, outcomes
    assert resets.revoke_all(user_id) == 0


@pytest.mark.spec("ACC-2")
def test_concurrent_issues_keep_the_cap(resets: PasswordResetTokens, user_id: str) -> None:
    """Once the user has a token, issuing queues on its row lock: the cap is exact."""
    resets.issue(user_id)
    issued = at_once([functools.partial(resets.issue, user_id)] * CALLERS)
    assert len({i.token for i in issued}) == CALLERS
    assert resets.revoke_all(user_id) == resets.policy.max_active_per_user
