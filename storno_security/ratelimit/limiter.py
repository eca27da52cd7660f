"""The rate limiter: named policies over a storage, checked with one call before any work."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from storno_security.clock import Clock, epoch_ms_reader
from storno_security.errors import (
    CorruptRecordError,
    RateLimitExceededError,
    RateLimitUnavailableError,
    StoreUnavailableError,
)
from storno_security.ratelimit.policy import SlidingWindowPolicy, TokenBucketPolicy, spec_policies
from storno_security.ratelimit.storage import Acquisition, RateLimitStorage

__all__ = ["Ask", "RateLimitStatus", "RateLimiter", "client_key"]

_MAX_IDENTIFIER = 256
_NAT64_PREFIX = int(ipaddress.IPv6Address("64:ff9b::")) >> 32  # the well-known /96 (RFC 6052)

Policy = SlidingWindowPolicy | TokenBucketPolicy

#: A policy as a check needs it, worked out once: the policy, whether it is a sliding window,
#: its storage-key prefix, its allowance, and the storage verb's three figures (a window:
#: limit, window_ms, unused; a bucket: capacity, refill_amount, refill_period_ms).
_Plan = tuple[Policy, bool, str, int, int, int, int]


def _plan(policy: Policy) -> _Plan:
    if isinstance(policy, SlidingWindowPolicy):
        limit = policy.limit
        return (policy, True, f"rl:sw:{policy.name}:", limit, limit, policy.window_ms, 0)
    capacity = policy.capacity
    return (
        policy,
        False,
        f"rl:tb:{policy.name}:",
        capacity,
        capacity,
        policy.refill_amount,
        policy.refill_period_ms,
    )


@attrs.frozen(kw_only=True)
class RateLimitStatus:
    """Where a client stands with a policy after a check: what the RL-3 headers need.

    A server maps it as ``RateLimit-Limit: limit``, ``RateLimit-Remaining: remaining``,
    ``RateLimit-Reset: reset`` and, on a refusal, ``Retry-After: retry_after``.

    Attributes:
        policy: the policy's name.
        limit: the allowance: requests per window, or the bucket's capacity.
        remaining: requests still allowed right now (0 when refused).
        reset: whole seconds (rounded up) until the full allowance is back.
        retry_after: whole seconds (rounded up, at least 1) until a request would be let
            through; 0 when this request was let through.
        degraded: the storage failed and the policy fails open: the request was let through
            uncounted, and ``remaining``/``reset`` are unknown (reported as ``limit`` and 0). A
            server may leave the headers out.
    """

    policy: str
    limit: int
    remaining: int
    reset: int
    retry_after: int
    degraded: bool = False


def _seconds_up(milliseconds: int) -> int:
    return max(0, -(-milliseconds // 1000))


def client_key(address: str, *, ipv6_prefix: int = 64) -> str:
    """The identifier to limit a client IP by: an IPv4 address as is, an IPv6 address by its
    ``/ipv6_prefix`` network (one subscriber usually holds a whole /64, so limiting single IPv6
    addresses would let them rotate through 2**64 identities). IPv6 addresses that carry an
    IPv4 client count as that IPv4 address: IPv4-mapped ``::ffff:V4``, 6to4 ``2002:V4::/48``,
    Teredo (its client address), IPv4-compatible ``::V4`` (but not ``::`` or ``::1``) and NAT64
    ``64:ff9b::V4``.

    Args:
        address: the client address as text (e.g. the peer address, or the one your trusted
            proxy reports).
        ipv6_prefix: prefix length IPv6 clients are grouped by, 32 to 128.

    Raises:
        TypeError: ``address`` is not a str.
        ValueError: ``address`` is not an IP address, or ``ipv6_prefix`` is out of range.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a str, not {type(address).__name__}")
    if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
        raise TypeError("ipv6_prefix must be an int")
    if not 32 <= ipv6_prefix <= 128:
        raise ValueError("ipv6_prefix must be between 32 and 128")
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return str(embedded)
        network = ipaddress.IPv6Network((ip, ipv6_prefix), strict=False)
        return str(network)
    return str(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 client an IPv6 address stands for, if it is one of the forms that carry one.

    A 6to4 network ``2002:V4::/48`` belongs to the one host at ``V4`` (a /48 is 65,536 /64s:
    limited per /64 it would be as many allowances); a Teredo address carries its client's
    public IPv4 address (stored inverted; ``ipaddress`` undoes that); IPv4-compatible
    ``::V4`` (deprecated) and NAT64 ``64:ff9b::V4`` (RFC 6052) carry it in the low 32 bits.
    ``::`` and ``::1`` are the unspecified and loopback addresses, not IPv4-compatible ones.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    value = int(ip)
    if (value >> 32 == 0 and value > 1) or value >> 32 == _NAT64_PREFIX:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


class RateLimiter:
    """Named rate-limit policies over one storage, checked with :meth:`hit`.

    Call :meth:`hit` first thing in a handler, before parsing credentials or touching bcrypt
    (RL-5): a refused or failed check raises, so the expensive work below it never runs::

        limiter = RateLimiter(storage_from_uri("redis://localhost:6379/0"), clock=SystemClock())
        # (storage_from_uri is in storno_security.stores: it picks a store implementation)
        status = limiter.hit("login", client_key(peer_ip))  # raises when over the limit
        hasher.verify(password, stored_hash)                 # only reached when allowed

    Args:
        storage: where counts live (a store object, e.g. from
            :func:`storno_security.stores.storage_from_uri`).
        clock: the time source (inject a ``FrozenClock`` in tests).
        policies: the policies by name; default :func:`spec_policies` (RL-1, RL-2).

    Raises:
        TypeError: ``clock`` is not a Clock, or a policy is not a policy object.
        ValueError: two policies share a name, or there are none.
    """

    __slots__ = ("_clock", "_epoch_ms", "_plans", "_policies", "_storage")

    def __init__(
        self,
        storage: RateLimitStorage,
        *,
        clock: Clock,
        policies: Iterable[Policy] | None = None,
    ) -> None:
        if not isinstance(clock, Clock):
            raise TypeError("clock must implement Clock (a now() method)")
        chosen = tuple(spec_policies() if policies is None else policies)
        by_name: dict[str, Policy] = {}
        for policy in chosen:
            if not isinstance(policy, SlidingWindowPolicy | TokenBucketPolicy):
                raise TypeError(f"not a rate-limit policy: {type(policy).__name__}")
            if policy.name in by_name:
                raise ValueError(f"two policies are named {policy.name!r}")
            by_name[policy.name] = policy
        if not by_name:
            raise ValueError("a rate limiter needs at least one policy")
        self._storage = storage
        self._clock = clock
        # the real clock's milliseconds are read without building a datetime (the same value)
        self._epoch_ms = epoch_ms_reader(clock)
        self._policies: Mapping[str, Policy] = MappingProxyType(by_name)
        self._plans: dict[str, _Plan] = {name: _plan(p) for name, p in by_name.items()}

    def __repr__(self) -> str:
        return f"RateLimiter({self._storage!r}, policies={sorted(self._policies)})"

    @property
    def policies(self) -> Mapping[str, Policy]:
        """The policies by name (read-only)."""
        return self._policies

    def hit(self, policy: str, identifier: str) -> RateLimitStatus:
        """Count one request of ``identifier`` against ``policy``, or refuse it.

        One atomic storage operation (one Redis round trip): of any number of concurrent
        requests, exactly as many as the allowance get through, across processes.

        Args:
            policy: the policy's name, e.g. ``"login"``.
            identifier: who is limited, e.g. :func:`client_key` of the client IP (at most 256
                characters).

        Returns:
            The status after counting this request (for the ``RateLimit-*`` headers).

        Raises:
            KeyError: no policy has this name.
            TypeError: ``identifier`` is not a str.
            ValueError: ``identifier`` is empty or longer than 256 characters.
            RateLimitExceededError: over the limit; ``status`` says when to retry (RL-3).
            RateLimitUnavailableError: the storage failed and the policy fails closed (RL-4).
        """
        # What ask() asks, put to the storage directly: every request of a server comes here.
        chosen, window, prefix, limit, first, second, third = self._plans[policy]
        _check_identifier(identifier)
        now_ms = self._epoch_ms()
        try:
            if window:
                acquisition = self._storage.acquire_window(
                    prefix + identifier, limit=first, window_ms=second, now_ms=now_ms
                )
            else:
                acquisition = self._storage.acquire_bucket(
                    prefix + identifier,
                    capacity=first,
                    refill_amount=second,
                    refill_period_ms=third,
                    now_ms=now_ms,
                )
        except (StoreUnavailableError, CorruptRecordError) as exc:
            return _unavailable(chosen, limit, exc)
        return _status(chosen.name, limit, acquisition)

    def ask(self, policy: str, identifier: str) -> Ask:
        """What :meth:`hit` asks of the storage (arguments checked); shared with the async
        limiter, which awaits the same question.

        Raises:
            KeyError, TypeError, ValueError: as :meth:`hit`.
        """
        chosen, window, prefix, limit, first, second, third = self._plans[policy]
        _check_identifier(identifier)
        now_ms = self._epoch_ms()
        if window:
            arguments = {"limit": first, "window_ms": second, "now_ms": now_ms}
        else:
            arguments = {
                "capacity": first,
                "refill_amount": second,
                "refill_period_ms": third,
                "now_ms": now_ms,
            }
        return Ask(chosen, window, prefix + identifier, limit, arguments)


def _check_identifier(identifier: object) -> None:
    if not isinstance(identifier, str):
        raise TypeError(f"identifier must be a str, not {type(identifier).__name__}")
    if not 0 < len(identifier) <= _MAX_IDENTIFIER:
        raise ValueError(f"identifier must be 1 to {_MAX_IDENTIFIER} characters")


@attrs.frozen
class Ask:
    """One storage question of a hit: which verb (``window``: sliding window, else token
    bucket), on which key, with which arguments."""

    policy: Policy
    window: bool
    key: str
    limit: int
    arguments: dict[str, int]

    def unavailable(self, exc: Exception) -> RateLimitStatus:
        """The answer when the storage failed: a degraded pass for a fail-open policy (RL-4).

        Raises:
            RateLimitUnavailableError: the policy fails closed.
        """
        return _unavailable(self.policy, self.limit, exc)


def _unavailable(policy: Policy, limit: int, exc: Exception) -> RateLimitStatus:
    if policy.fail_open:
        return RateLimitStatus(
            policy=policy.name,
            limit=limit,
            remaining=limit,
            reset=0,
            retry_after=0,
            degraded=True,
        )
    raise RateLimitUnavailableError(policy=policy.name) from exc


def _status(name: str, limit: int, acquisition: Acquisition) -> RateLimitStatus:
    status = RateLimitStatus(
        policy=name,
        limit=limit,
        remaining=max(0, min(limit, acquisition.remaining)),
        reset=_seconds_up(acquisition.reset_after_ms),
        retry_after=0 if acquisition.allowed else max(1, _seconds_up(acquisition.retry_after_ms)),
    )
    if not acquisition.allowed:
        raise RateLimitExceededError(status=status)
    return status
