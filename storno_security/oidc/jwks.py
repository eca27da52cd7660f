"""Where the provider's signing keys come from: a fetcher the application supplies.

The core makes no network call. An application gives :class:`GoogleIdTokenVerifier` a
:class:`JwksFetcher`; :class:`CachingJwksFetcher` wraps any ``load`` function (the one that does
the HTTP request to ``https://www.googleapis.com/oauth2/v3/certs``) with a cache and a refresh
rate limit, and :class:`StaticJwksFetcher` serves a fixed document (tests, pinned keys).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from storno_security.clock import Clock
from storno_security.errors import IdentityProviderUnavailableError

__all__ = ["CachingJwksFetcher", "JwksFetcher", "StaticJwksFetcher"]


@runtime_checkable
class JwksFetcher(Protocol):
    """A source of the provider's JWKS document."""

    def jwks(self, *, refresh: bool = False) -> Mapping[str, Any]:
        """Return the JWKS document (``{"keys": [...]}``).

        ``refresh=True`` is asked once when a token names an unknown ``kid`` (the provider may
        have rotated its keys); the fetcher may answer from its cache if it refreshed recently.

        Raises:
            IdentityProviderUnavailableError: the document could not be obtained.
        """
        ...


class StaticJwksFetcher:
    """A fixed JWKS document.

    Args:
        document: the JWKS (``{"keys": [...]}``).
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        if not isinstance(document, Mapping):
            raise TypeError("document must be a mapping")
        self._document = document

    def jwks(self, *, refresh: bool = False) -> Mapping[str, Any]:
        """Return the document."""
        return self._document


class CachingJwksFetcher:
    """Caches what ``load`` returns; refreshes when stale or when asked, at most once per
    ``min_refresh_interval``, so tokens with made-up ``kid`` values cannot hammer the provider.

    Args:
        load: fetches the document (the application's HTTP call); any exception it raises
            becomes :class:`IdentityProviderUnavailableError`.
        clock: the time source.
        max_age: how long a document is served before it is fetched again (default 1 hour).
        min_refresh_interval: the least time between two loads (default 60 s).
    """

    def __init__(
        self,
        load: Callable[[], Mapping[str, Any]],
        *,
        clock: Clock,
        max_age: timedelta = timedelta(hours=1),
        min_refresh_interval: timedelta = timedelta(seconds=60),
    ) -> None:
        if not callable(load):
            raise TypeError("load must be callable")
        if not timedelta(0) <= min_refresh_interval <= max_age:
            raise ValueError("need 0 <= min_refresh_interval <= max_age")
        self._load = load
        self._clock = clock
        self._max_age = max_age
        self._min_refresh = min_refresh_interval
        self._lock = threading.Lock()
        self._document: Mapping[str, Any] | None = None
        self._loaded_at: datetime | None = None
        self._attempted_at: datetime | None = None

    def jwks(self, *, refresh: bool = False) -> Mapping[str, Any]:
        """Return the cached document, loading it when missing, stale, or on a permitted refresh.

        Raises:
            IdentityProviderUnavailableError: ``load`` failed and nothing is cached, or it
                returned something other than a mapping.
        """
        with self._lock:
            now = self._clock.now()
            document = self._document
            age = now - self._loaded_at if self._loaded_at is not None else None
            tried_recently = (
                self._attempted_at is not None and now - self._attempted_at < self._min_refresh
            )
            if document is not None and age is not None:
                if age < self._max_age and (not refresh or tried_recently):
                    return document
                if tried_recently and age < 2 * self._max_age:
                    return document
            elif tried_recently:  # the last load failed a moment ago: do not hammer
                raise IdentityProviderUnavailableError(reason="fetch_failed")
            self._attempted_at = now
            try:
                loaded = self._load()
            except Exception as exc:  # the application's fetch failed: no keys, no login
                if document is not None and age is not None and age < 2 * self._max_age:
                    return document  # serve a recently stale copy through a provider outage
                raise IdentityProviderUnavailableError(reason="fetch_failed") from exc
            if not isinstance(loaded, Mapping):
                raise IdentityProviderUnavailableError(reason="bad_jwks")
            self._document, self._loaded_at = loaded, now
            return loaded
