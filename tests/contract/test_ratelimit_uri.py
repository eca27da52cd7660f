"""Rate-limit storage URIs (``stores/_ratelimit_uri.py``): a URI of a supported scheme that the
``limits`` package cannot use is a ``ValueError`` that does not quote it."""

from __future__ import annotations

import pytest

from storno_security.stores import storage_from_uri


def test_a_sentinel_uri_without_its_service_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot use this storage URI") as caught:
        storage_from_uri("redis+sentinel://:hunter2@127.0.0.1:1")
    assert caught.value.__cause__ is None
    assert "hunter2" not in str(caught.value)
