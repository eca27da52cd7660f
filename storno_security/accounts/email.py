"""Email addresses: one normal form, so that an address is unique however it is typed (ACC-1).

:func:`normalise_email` is what an application stores and looks up: registration, login and
forgot-password all go through it, so ``Ana@Example.com `` and ``ana@example.com`` are one
account, and a second registration of the same address is caught by a unique index on the
normalised value.

The whole address is lowercased, the local part included. RFC 5321 lets a mail server treat
local parts as case-sensitive, but no mainstream provider does, and the platform treats
addresses case-insensitively: two accounts differing only in case would be two accounts for one
mailbox (a password-reset link for one reaching the owner of the other), and a user who types
their address with a capital letter must still find their account.

This is a plausibility check, not a full RFC 5322 parser: quoted local parts, comments and
address literals (``user@[192.0.2.1]``) are refused, as are characters that an address never
needs but an attacker likes (whitespace, control and format characters such as bidirectional
overrides or zero-width joiners, quotes, ``<>``, ``,``, ``;``). Internationalised domains and
local parts are accepted in Unicode (NFKC-normalised, lowercased); they are not IDNA-encoded.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from storno_security.errors import InvalidEmailError

__all__ = ["MAX_DOMAIN_LENGTH", "MAX_EMAIL_LENGTH", "MAX_LOCAL_PART_LENGTH", "normalise_email"]

#: The longest address accepted, in characters (RFC 5321 section 4.5.3.1.3: a 256-octet path
#: less the angle brackets).
MAX_EMAIL_LENGTH: Final = 254
#: The longest local part accepted, in characters (RFC 5321 section 4.5.3.1.1).
MAX_LOCAL_PART_LENGTH: Final = 64
#: The longest domain accepted, in characters (RFC 1035 section 2.3.4, without the final dot).
MAX_DOMAIN_LENGTH: Final = 253

_MAX_LABEL_LENGTH: Final = 63
#: Input longer than this is refused before it is normalised (NFKC work grows with the input).
_MAX_INPUT_LENGTH: Final = 1024
#: RFC 5322 "specials" that are legal in a local part only inside quotes, which we refuse.
_FORBIDDEN: Final = frozenset("\"'`<>()[]\\,;:@")
#: Unicode categories never accepted: controls, format characters (bidirectional overrides,
#: zero-width joiners), surrogates, private use, unassigned, and every kind of separator.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_ASCII_LABEL: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def normalise_email(value: str) -> str:
    """The normal form of an email address: what to store, compare and look up.

    Surrounding whitespace is stripped, the address is NFKC-normalised and lowercased (the
    platform treats addresses case-insensitively; see the module docstring), then checked:
    exactly one ``@``; a local part of 1 to 64 characters, no leading, trailing or doubled dot;
    a domain of at most 253 characters with at least two labels, each 1 to 63 letters, digits or
    hyphens (Unicode letters, digits and combining marks allowed), not starting or ending with a
    hyphen, and a top-level label that is not all digits; at most 254 characters in all; no
    whitespace, control or format character, quote, ``<>``, ``()``, ``[]``, backslash, ``,``,
    ``;`` or ``:``.

    The result is a fixed point: ``normalise_email(normalise_email(x)) == normalise_email(x)``.

    Args:
        value: the address as the user typed it.

    Returns:
        The normalised address.

    Raises:
        TypeError: ``value`` is not a str.
        InvalidEmailError: the address is not plausible; the message says which rule it broke
            and never repeats the address.
    """
    if not isinstance(value, str):
        raise TypeError(f"email must be a str, not {type(value).__name__}")
    text = value.strip()
    if len(text) > _MAX_INPUT_LENGTH:
        raise InvalidEmailError(
            f"email address must have at most {MAX_EMAIL_LENGTH} characters", reason="too_long"
        )
    text = _normal_form(text)
    _check_characters(text)
    if text.count("@") != 1:
        raise InvalidEmailError("email address must contain exactly one '@'", reason="at_sign")
    local, domain = text.split("@")
    _check_local_part(local)
    _check_domain(domain)
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidEmailError(
            f"email address must have at most {MAX_EMAIL_LENGTH} characters", reason="too_long"
        )
    return text


def _normal_form(text: str) -> str:
    """NFKC, lowercase, NFKC, repeated until nothing changes (one round is enough for every
    string known; a string that never settles is refused rather than returned unstable)."""
    for _ in range(4):
        normal = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
        if normal == text:
            return text
        text = normal
    raise InvalidEmailError("email address has no stable normal form", reason="unstable")


def _check_characters(text: str) -> None:
    if not text:
        raise InvalidEmailError("email address must not be empty", reason="at_sign")
    for char in text:
        if char == "@":
            continue
        if char in _FORBIDDEN:
            raise InvalidEmailError(
                "email address must not contain quotes, brackets, backslashes, ',', ';' or ':'",
                reason="character",
            )
        if char.isspace() or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidEmailError(
                "email address must not contain whitespace, control or invisible characters",
                reason="character",
            )


def _check_local_part(local: str) -> None:
    if not local:
        raise InvalidEmailError("email address has nothing before the '@'", reason="local_part")
    if len(local) > MAX_LOCAL_PART_LENGTH:
        raise InvalidEmailError(
            f"the part before the '@' must have at most {MAX_LOCAL_PART_LENGTH} characters",
            reason="local_part",
        )
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmailError(
            "the part before the '@' must not start or end with a dot or hold two in a row",
            reason="local_part",
        )


def _check_domain(domain: str) -> None:
    if not domain:
        raise InvalidEmailError("email address has no domain after the '@'", reason="domain")
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise InvalidEmailError(
            f"the domain must have at most {MAX_DOMAIN_LENGTH} characters", reason="domain"
        )
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidEmailError(
            "the domain must have at least one dot (e.g. example.com)", reason="domain"
        )
    for label in labels:
        if not label or len(label) > _MAX_LABEL_LENGTH:
            raise InvalidEmailError(
                f"each part of the domain must have 1 to {_MAX_LABEL_LENGTH} characters",
                reason="domain",
            )
        if label.startswith("-") or label.endswith("-"):
            raise InvalidEmailError(
                "a part of the domain must not start or end with a hyphen", reason="domain"
            )
        if not all(_label_char(char, first=i == 0) for i, char in enumerate(label)):
            raise InvalidEmailError(
                "the domain may hold only letters, digits, hyphens and dots", reason="domain"
            )
    if labels[-1].isdigit():
        raise InvalidEmailError(
            "the domain must end in a name, not a number (no IP addresses)", reason="domain"
        )


def _label_char(char: str, *, first: bool) -> bool:
    """ASCII letters, digits and hyphens, Unicode letters and digits, and (not first, as in
    RFC 5891 section 4.2.3.2) the combining marks that scripts such as Devanagari need."""
    if char in _ASCII_LABEL or char.isalnum():
        return True
    return not first and unicodedata.category(char) in {"Mn", "Mc"}
