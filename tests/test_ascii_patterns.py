"""Issue 14: every pattern that checks a stored or presented format is ASCII-only.

In a ``str`` pattern, Python's ``\\d``, ``\\w``, ``\\s`` and ``\\b`` match any Unicode digit,
letter or space (Arabic-Indic three U+0663, fullwidth three U+FF13), and ``re.IGNORECASE``
lets ``[A-Z]`` match the Kelvin sign, the long s and the dotted and dotless i; ``int()`` then
reads those digits as numbers. The house rule, checked on the source and on every compiled
pattern of the package: a ``str`` pattern either has ``re.ASCII`` or uses none of those
classes and no case folding. Then, format by format, a non-ASCII digit or look-alike letter
is refused where an ASCII one is expected.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import storno_security
from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidApiKeyError,
    InvalidMfaCodeError,
    UnsupportedHashError,
)

PACKAGE = Path(storno_security.__file__).parent
# \d \w \s \b and their negations, not preceded by an escaping backslash
_UNICODE_CLASS = re.compile(r"(?<!\\)(?:\\\\)*\\[dwsbDWSB]")
_INLINE_IGNORECASE = re.compile(r"\(\?[aiLmsux]*i[aiLmsux]*[):-]")
_RE_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall"}
_RE_FUNCTIONS |= {"finditer"}


def _flag_names(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _literal(node: ast.AST) -> str | None:
    """The text of a str pattern (the constant parts of an f-string); None for bytes/other."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value
            for part in node.values
            if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
    return None


def pattern_violations(source: str, where: str = "<source>") -> list[str]:
    """``re`` calls in ``source`` whose str pattern is not ASCII-safe."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in _RE_FUNCTIONS
            and node.args
        ):
            continue
        text = _literal(node.args[0])
        if text is None:
            continue
        flags: set[str] = set()
        for argument in [*node.args[1:], *(k.value for k in node.keywords)]:
            flags |= _flag_names(argument)
        if flags & {"ASCII", "A"}:
            continue
        if _UNICODE_CLASS.search(text):
            found.append(f"{where}:{node.lineno}: \\d, \\w, \\s or \\b without re.ASCII")
        if flags & {"IGNORECASE", "I"} or _INLINE_IGNORECASE.search(text):
            found.append(f"{where}:{node.lineno}: case folding without re.ASCII")
    return found


def test_the_checker_catches_what_the_rule_forbids() -> None:
    assert pattern_violations('import re\nre.compile(r"\\d{2}")')
    assert pattern_violations('import re\nre.fullmatch(r"[a-z]+\\s", x)')
    assert pattern_violations('import re\nre.compile(r"[A-Z]", re.IGNORECASE)')
    assert pattern_violations('import re\nre.compile(r"(?i)[A-Z]")')
    assert pattern_violations('import re\nre.compile(rf"{x}\\w+")')
    assert not pattern_violations('import re\nre.compile(r"\\d{2}", re.ASCII)')
    assert not pattern_violations('import re\nre.compile(r"[A-Z]", re.I | re.A)')
    assert not pattern_violations('import re\nre.compile(r"[0-9]{2}\\\\d")')  # an escaped \\
    assert not pattern_violations('import re\nre.compile(rb"\\d")')  # bytes: ASCII anyway


def test_every_pattern_in_the_source_is_ascii_only() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += pattern_violations(path.read_text(), str(path.relative_to(PACKAGE)))
    assert not found, found


def _compiled_patterns() -> list[tuple[str, re.Pattern[Any]]]:
    patterns = []
    for info in pkgutil.walk_packages(storno_security.__path__, "storno_security."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                patterns.append((f"{info.name}.{name}", value))
    return patterns


def test_every_compiled_pattern_of_the_package_is_ascii_only() -> None:
    patterns = _compiled_patterns()
    assert len(patterns) > 10
    bad = [
        name
        for name, pattern in patterns
        if isinstance(pattern.pattern, str)
        and not pattern.flags & re.ASCII
        and (
            _UNICODE_CLASS.search(pattern.pattern)
            or pattern.flags & re.IGNORECASE
            or _INLINE_IGNORECASE.search(pattern.pattern)
        )
    ]
    assert not bad, bad


# --- format by format: non-ASCII digits and look-alikes are refused -----------------------------

ARABIC_INDIC = "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
FULLWIDTH = "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"


def _foreign(text: str, digits: str) -> str:
    return text.translate(str.maketrans("0123456789", digits))


@pytest.mark.spec("PW-1")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_a_bcrypt_cost_in_other_digits_is_refused(digits: str) -> None:
    import bcrypt

    from storno_security.passwords import PasswordHasher

    stored = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4)).decode()
    assert PasswordHasher().needs_rehash(stored)  # the ASCII spelling parses
    foreign = stored[:4] + _foreign(stored[4:6], digits) + stored[6:]
    with pytest.raises(UnsupportedHashError):
        PasswordHasher().needs_rehash(foreign)


@pytest.mark.spec("MFA-1")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_a_totp_code_in_other_digits_is_refused(digits: str) -> None:
    from storno_security.mfa import TotpAuthenticator
    from storno_security.stores.memory import MemoryTotpReplayStore
    from tests.mfa.conftest import POLICY

    totp = TotpAuthenticator(
        POLICY.totp, replay=MemoryTotpReplayStore(), clock=FrozenClock(), lockout=None
    )
    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    with pytest.raises(InvalidMfaCodeError) as info:
        totp.verify(_foreign("123456", digits), secret=enrolment.secret, user_id="u")
    assert info.value.reason == "malformed"


@pytest.mark.spec("MFA-3")
def test_a_backup_code_spelt_with_a_look_alike_is_refused() -> None:
    """ "\u017f" (long s) upper-cases to "S", a letter of the backup-code alphabet."""
    from storno_security.mfa import BackupCodes
    from storno_security.stores.memory import MemoryBackupCodeStore
    from tests.mfa.conftest import POLICY

    codes = BackupCodes(POLICY, store=MemoryBackupCodeStore(), clock=FrozenClock(), lockout=None)
    while True:
        with_s = [code for code in codes.generate("u").codes if "S" in code]
        if with_s:
            break
    look_alike = with_s[0].replace("S", "\u017f")
    with pytest.raises(InvalidMfaCodeError) as info:
        codes.verify(look_alike, user_id="u")
    assert info.value.reason == "malformed"
    assert codes.verify(with_s[0].lower(), user_id="u").method == "backup_code"  # ASCII: fine


@pytest.mark.spec("KEY-1")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_an_api_key_with_other_digits_is_refused(digits: str) -> None:
    from storno_security.api_keys import generate_api_key, parse_api_key

    key = generate_api_key().key
    while not any(c.isdigit() for c in key[3:]):
        key = generate_api_key().key
    with pytest.raises(InvalidApiKeyError):
        parse_api_key(key[:3] + _foreign(key[3:], digits))
    legacy = "af_" + "0123456789abcdef" * 4
    parse_api_key(legacy)
    with pytest.raises(InvalidApiKeyError):
        parse_api_key(_foreign(legacy, digits))


@pytest.mark.spec("RBAC-3")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_a_company_uuid_with_other_digits_is_no_uuid(digits: str) -> None:
    from storno_security.rbac.tenancy import canonical_uuid

    value = "123e4567-e89b-12d3-a456-426614174000"
    assert canonical_uuid(value) == value
    assert canonical_uuid(_foreign(value, digits)) is None
    assert canonical_uuid(value.upper()) == value


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_base64url_and_tokens_with_other_digits_are_refused(digits: str) -> None:
    from storno_security._encoding import b64url_decode
    from storno_security.stores.memory import MemorySessionStateStore
    from storno_security.tokens import AccessTokenIssuer, AccessTokenVerifier, KeyRing, TokenPolicy

    assert b64url_decode("MTIzNDU2") == b"123456"
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(_foreign("MTIzNDU2", digits))
    ring = KeyRing.generate(bits=2048)
    policy = TokenPolicy(issuer="https://i.test", audience="a")
    clock = FrozenClock()
    token = AccessTokenIssuer(ring, policy, clock=clock).issue("u", session_id="s", epoch=0).token
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=MemorySessionStateStore())
    position = next(i for i, c in enumerate(token) if c.isdigit())
    with pytest.raises(InvalidAccessTokenError) as info:
        verifier.verify(
            token[:position] + _foreign(token[position], digits) + token[position + 1 :]
        )
    assert info.value.reason == "malformed"


@pytest.mark.spec("RL-1")
@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH])
def test_rate_limit_names_and_addresses_with_other_digits_are_refused(digits: str) -> None:
    from storno_security.ratelimit import SlidingWindowPolicy, client_key

    assert client_key("192.0.2.1") == "192.0.2.1"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        client_key(_foreign("192.0.2.1", digits))
    with pytest.raises(ValueError, match="name"):
        SlidingWindowPolicy(name=_foreign("login2", digits), limit=5, window=timedelta(minutes=1))
