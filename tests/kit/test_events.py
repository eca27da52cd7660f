"""Events reach one sink with the request context, without threading it through calls."""

from __future__ import annotations

import pytest

from storno_security.errors import InvalidPasswordError
from storno_security.events import request_context
from tests.kit.conftest import PASSWORD, World


@pytest.mark.spec("ACC-3")
def test_request_context_reaches_every_event(world: World) -> None:
    with request_context(ip="203.0.113.9", user_agent="agent/1.0", request_id="req-42"):
        session = world.register()
        with pytest.raises(InvalidPasswordError):
            world.kit.login(session.user.email or "", "wrong password!")
    assert world.events.events
    for event in world.events.events:
        assert (event.ip, event.user_agent, event.request_id) == (
            "203.0.113.9",
            "agent/1.0",
            "req-42",
        )
    stored = world.kit.stores.audit.query(
        organization_id=None, actor_id=session.user.user_id, limit=10_000
    )
    mine = {e.event_id for e in world.events.events if e.actor_id == session.user.user_id}
    assert mine
    assert {e.event_id for e in stored} >= mine


def test_a_malformed_context_is_dropped_not_refused(world: World) -> None:
    with request_context(ip="not an ip", user_agent="ua", request_id="bad id with spaces"):
        world.register()
    assert all(e.ip is None and e.request_id is None for e in world.events.events)


@pytest.mark.spec("ACC-3")
def test_no_event_holds_a_secret(world: World) -> None:
    session = world.register()
    world.kit.login(session.user.email or "", PASSWORD)
    text = repr(world.events.events)
    assert PASSWORD not in text
    assert session.tokens.refresh_token not in text
    assert session.tokens.access_token not in text
