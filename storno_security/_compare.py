"""The one constant-time comparison helper.

Every comparison of a secret (or a hash of one) in storno-security goes through
:func:`constant_time_equal`; ``==`` on secrets is an anti-pattern the test suite greps for.
"""

from __future__ import annotations

import hmac

__all__ = ["constant_time_equal"]


def constant_time_equal(a: bytes | str, b: bytes | str) -> bool:
    """Compare two secrets in time that depends only on their length.

    ``str`` arguments are encoded as UTF-8 first, so any text compares (``hmac.compare_digest``
    alone refuses non-ASCII ``str``). Mixed ``str``/``bytes`` arguments compare as their UTF-8
    bytes.

    Raises:
        TypeError: an argument is neither ``bytes`` nor ``str``.
    """
    return hmac.compare_digest(_as_bytes(a), _as_bytes(b))


def _as_bytes(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")
