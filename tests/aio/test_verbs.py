"""The async verbs made for a kit (``aio/verbs.py``, ``aio/verify.py``): what they are built
on, and that pools handed in stay the caller's."""

from __future__ import annotations

from typing import Any

import pytest

from storno_security.aio import InlineApiKeyStore, InlineRateLimitStorage, InlineSessionStateStore
from storno_security.aio.verbs import AsyncVerbs
from storno_security.clock import FrozenClock
from storno_security.kit import Kit
from storno_security.stores.memory import memory_bundle
from tests.aio.conftest import LoopThread
from tests.kit.conftest import kit_keys, kit_policy


def test_verbs_over_memory_stores_read_on_the_loop_and_leave_given_pools_open(
    loop_thread: LoopThread, offloader: Any, clock: FrozenClock
) -> None:
    kit = Kit(memory_bundle(), policy=kit_policy(), keys=kit_keys(), clock=clock)
    verbs = AsyncVerbs.for_kit(kit, offload=offloader)
    assert verbs.offload is offloader
    assert isinstance(verbs.sessions, InlineSessionStateStore)
    assert isinstance(verbs.api_keys._store, InlineApiKeyStore)
    assert isinstance(verbs.limiter._storage, InlineRateLimitStorage)
    assert repr(verbs.tokens) == f"AsyncAccessTokenVerifier({verbs.sessions!r})"
    assert repr(verbs.authenticator) == (
        f"AsyncAuthenticator({verbs.tokens!r}, {verbs.api_keys!r})"
    )
    assert repr(verbs) == (
        f"AsyncVerbs(sessions={verbs.sessions!r}, api_keys={verbs.api_keys!r}, "
        f"limiter={verbs.limiter!r})"
    )
    loop_thread.run(verbs.aclose())  # the pools were handed in: not closed
    assert loop_thread.run(offloader.io(len, "open")) == 4


def test_verbs_are_made_for_a_kit_only() -> None:
    with pytest.raises(TypeError, match="kit must be a Kit"):
        AsyncVerbs.for_kit(memory_bundle())  # type: ignore[arg-type]
