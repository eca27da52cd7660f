"""Scopes (KEY-3) and the actions no API key may ever perform (KEY-5).

Scopes nest: ``read`` ⊂ ``write`` ⊂ ``admin``. A key has one scope and holds every scope below
it. What a scope allows in terms of named permissions is decided by the RBAC layer
(:mod:`storno_security.rbac`), which intersects it with the user's role (KEY-4).
"""

from __future__ import annotations

import enum
import re
from typing import Final

__all__ = [
    "API_KEY_FORBIDDEN_FAMILIES",
    "ApiKeyScope",
    "is_forbidden_for_api_keys",
]


class ApiKeyScope(enum.StrEnum):
    """The scope of an API key. Each scope includes the ones before it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def implied(self) -> frozenset[str]:
        """The names of this scope and every scope it includes, e.g. ``{"read", "write"}``."""
        return _IMPLIED[self]

    def includes(self, other: ApiKeyScope) -> bool:
        """Whether a key of this scope holds ``other`` (``WRITE.includes(READ)`` is true).

        Raises:
            TypeError: ``other`` is not an :class:`ApiKeyScope`.
        """
        if not isinstance(other, ApiKeyScope):
            raise TypeError(f"expected an ApiKeyScope, got {type(other).__name__}")
        return _RANK[other] <= _RANK[self]

    @classmethod
    def parse(cls, value: ApiKeyScope | str) -> ApiKeyScope:
        """Return the scope named by ``value`` (``"read"``, ``"write"``, ``"admin"``).

        Raises:
            ValueError: ``value`` names no scope.
            TypeError: ``value`` is neither a scope nor a string.
        """
        if isinstance(value, ApiKeyScope):
            return value
        if not isinstance(value, str):
            raise TypeError(f"expected an ApiKeyScope or str, got {type(value).__name__}")
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown API-key scope; choose from {[s.value for s in cls]}"
            ) from None


_RANK: Final = {ApiKeyScope.READ: 0, ApiKeyScope.WRITE: 1, ApiKeyScope.ADMIN: 2}
_IMPLIED: Final = {
    scope: frozenset(s.value for s in ApiKeyScope if _RANK[s] <= _RANK[scope])
    for scope in ApiKeyScope
}

#: The action families an API key can never perform, whatever its scope or permissions (KEY-5):
#: managing API keys, passwords, MFA and passkeys. An action (or permission) belongs to a family
#: when its words, or two or three of them in a row, name the family, whatever the case or
#: separators, see :func:`is_forbidden_for_api_keys`.
API_KEY_FORBIDDEN_FAMILIES: Final = frozenset({"apikey", "password", "mfa", "passkey"})

# Spellings of the same families, after normalisation (lower case, words joined, no plural "s").
_ALIASES: Final = {
    "apikey": "apikey",
    "password": "password",
    "mfa": "mfa",
    "totp": "mfa",
    "backupcode": "mfa",
    "twofactor": "mfa",
    "2fa": "mfa",
    "passkey": "passkey",
    "webauthn": "passkey",
}
#: The most words one alias spans ("two factor", "api key", "backup code" are two).
_MAX_RUN: Final = 3
# Word boundaries: anything but a letter or digit, and inside a run of letters and digits the
# camel-case and digit boundaries (apiKey, APIKey, disable2FA).
_NOT_WORD: Final = re.compile(r"[^A-Za-z0-9]+")
_CAMEL: Final = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])"
)


def _words(action: str) -> list[str]:
    """``action`` as lower-case words: ``"apiKey_manage"``, ``"API_KEY.MANAGE"`` and
    ``"api-key:manage"`` are all ``["api", "key", "manage"]``."""
    spaced = _CAMEL.sub(" ", _NOT_WORD.sub(" ", action))
    return spaced.lower().split()


def _family(name: str) -> str | None:
    if name.endswith("s") and name[:-1] in _ALIASES:
        name = name[:-1]
    return _ALIASES.get(name)


def is_forbidden_for_api_keys(action: str) -> bool:
    """Whether ``action`` is one that no API key may perform (KEY-5).

    ``action`` is a permission or action name such as ``"apikey.manage"``,
    ``"mfa.disable"``, ``"me:password:change"`` or ``"passkeys/register"``, in any case and
    with any separators: ``"apiKeys.create"``, ``"api-key.create"``, ``"apiKey_manage"``,
    ``"API_KEY.CREATE"`` and ``"manageApiKeys"`` are all the API-key family. The name is cut
    into words (at every character that is not an ASCII letter or digit, and at camel-case and
    digit boundaries) and it is forbidden when a word, or two or three words in a row joined,
    without a plural ``s``, name a family of :data:`API_KEY_FORBIDDEN_FAMILIES` or an alias of
    one (``totp``, ``backup code``, ``two factor``, ``2fa`` for MFA; ``webauthn`` for
    passkeys). Fail closed: an empty action, or one with any non-ASCII character (which could
    spell a family in look-alike letters), is forbidden too.

    Raises:
        TypeError: ``action`` is not a string.
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be a str, not {type(action).__name__}")
    if not action.isascii():
        return True
    words = _words(action)
    if not words:
        return True
    for start in range(len(words)):
        for end in range(start + 1, min(start + _MAX_RUN, len(words)) + 1):
            if _family("".join(words[start:end])) is not None:
                return True
    return False
