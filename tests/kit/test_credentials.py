"""API keys managed through the kit (KEY-5: a key never manages keys)."""

from __future__ import annotations

import pytest

from storno_security.errors import PermissionDeniedError
from tests.kit.conftest import PASSWORD, World


@pytest.mark.spec("KEY-5")
def test_an_api_key_never_creates_lists_or_revokes_keys(world: World) -> None:
    session = world.register()
    created = world.kit.create_api_key(
        world.caller(session), name="ci", scope="admin", current_password=PASSWORD
    )
    key = world.kit.authenticate(created.key)
    assert key is not None
    assert (key.is_api_key, key.session_id) == (True, None)
    assert world.caller(session).session_id == session.tokens.session_id
    calls = [
        lambda: world.kit.create_api_key(key, name="more", scope="read", current_password=PASSWORD),
        lambda: world.kit.list_api_keys(key),
        lambda: world.kit.revoke_api_key(key, created.info.key_id),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError) as info:
            call()
        assert info.value.reason == "key_forbidden"
    listed = world.kit.list_api_keys(world.caller(session))
    assert [k.key_id for k in listed] == [created.info.key_id]
    assert listed[0].revoked_at is None
