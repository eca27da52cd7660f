"""REF-6: revocation outlives a restart of the short-lived state's Redis.

The SQL bundle keeps session epochs and revocation markers in SQL even when Redis holds the
other short-lived state, so a Redis that comes back empty (no persistence) cannot revive a
token that was logged out or outlived a password change.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.kit import Kit
from storno_security.stores.sql import sql_bundle
from tests.conftest import REDIS_URL, get_sql_engine
from tests.kit.conftest import PASSWORD, MailCatcher, kit_keys, kit_policy


def _kit(engine: Any, prefix: str, clock: FrozenClock, mail: MailCatcher) -> Kit:
    bundle = sql_bundle(engine, redis_url=REDIS_URL, redis_prefix=prefix)
    return Kit(bundle, policy=kit_policy(), keys=kit_keys(), clock=clock, mailer=mail)


def _forget_redis(client: Any, prefix: str) -> None:
    """What a Redis restart without persistence does to our keys."""
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.mark.spec("REF-6")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("end", ["logout_everywhere", "password_change"])
def test_a_redis_restart_does_not_revive_ended_sessions(
    backend: str,
    end: str,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
    redis_client: Any,
    clock: FrozenClock,
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    prefix = f"storno-test:ref6:{uuid.uuid4().hex[:8]}:"
    mail = MailCatcher()
    kit = _kit(engine, prefix, clock, mail)
    email = f"user-{uuid.uuid4().hex[:10]}@example.eu"
    session = kit.register(email, PASSWORD).session
    assert session is not None
    bearer = f"Bearer {session.tokens.access_token}"
    caller = kit.authenticate(bearer)
    assert caller is not None
    if end == "logout_everywhere":
        kit.logout_everywhere(caller.user_id)
    else:
        kit.change_password(caller, current_password=PASSWORD, new_password="another long one")
    with pytest.raises(InvalidAccessTokenError):
        kit.authenticate(bearer)

    _forget_redis(redis_client, prefix)
    restarted = _kit(engine, prefix, clock, mail)
    with pytest.raises(InvalidAccessTokenError):
        restarted.authenticate(bearer)
    with pytest.raises(InvalidAccessTokenError):
        kit.authenticate(bearer)
