"""The whole passkey flow on the SQL stores of every backend (and Redis challenges)."""

from __future__ import annotations

from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidPasskeyError, PasskeyCloneSuspectedError
from storno_security.passkeys import PasskeyManager, PasskeyRelyingParty
from tests.passkeys.authenticator import SoftAuthenticator
from tests.passkeys.conftest import ORIGIN, make_policy


@pytest.mark.spec("PK-3")
@pytest.mark.parametrize("challenges_on", ["sql", "redis"])
def test_register_log_in_and_flag_on_sql(
    sql_engine: Any, clock: FrozenClock, challenges_on: str, request: pytest.FixtureRequest
) -> None:
    from storno_security.stores.sql import SqlPasskeyChallengeStore, SqlPasskeyCredentialStore

    if challenges_on == "redis":
        from storno_security.stores.redis import RedisPasskeyChallengeStore

        challenges: Any = RedisPasskeyChallengeStore(
            request.getfixturevalue("redis_client"),
            prefix=request.getfixturevalue("redis_prefix"),
        )
    else:
        challenges = SqlPasskeyChallengeStore(sql_engine)
    rp = PasskeyRelyingParty(make_policy(), challenges=challenges, clock=clock)
    manager = PasskeyManager(rp, credentials=SqlPasskeyCredentialStore(sql_engine), clock=clock)
    authenticator = SoftAuthenticator(alg="RS256", attestation="packed", backup_eligible=True)
    user = f"user-{id(authenticator)}"

    options = manager.start_registration(user, user_name="ana@example.eu").as_dict()
    credential = manager.finish_registration(
        authenticator.create(options, origin=ORIGIN), user_id=user, name="Ключ ✓"
    )
    assert manager.list_passkeys(user) == [credential]

    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    login = manager.finish_login(response)
    assert (login.user_id, login.sign_count) == (user, 1)
    with pytest.raises(InvalidPasskeyError) as replay:
        manager.finish_login(response)
    assert replay.value.reason == "challenge"

    clone = authenticator.get(manager.start_login(user).as_dict(), origin=ORIGIN, sign_count=1)
    with pytest.raises(PasskeyCloneSuspectedError):
        manager.finish_login(clone)
    (stored,) = manager.list_passkeys(user)
    assert stored.flagged_at == clock.now()
    assert manager.has_passkeys(user) is False
