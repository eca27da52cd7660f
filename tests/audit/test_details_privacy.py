"""Regression tests for the security review of ``storno_security.audit``.

1. (MEDIUM, ACC-4) personal data in ``details`` survived pseudonymisation;
2. (LOW) gaps in the secret filter on details;
3. (LOW) JSON Lines export left U+2028, U+2029 and U+0085 raw, so ``splitlines()`` cut events.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from storno_security.audit import (
    DETAIL_KEYS,
    ID_DETAIL_KEYS,
    AuditLog,
    Outcome,
    SecurityEvent,
    SecurityEventType,
    event_from_error,
    event_from_json,
    looks_like_secret,
    personal_key_name,
    pseudonym,
    secret_key_name,
    to_jsonl,
    validate_details,
)
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidMfaCodeError
from storno_security.stores.memory import MemoryAuditStore

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = bytes(range(32))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def make(**kw: object) -> SecurityEvent:
    kw.setdefault("type", SecurityEventType.LOGIN_FAILED)
    kw.setdefault("at", AT)
    return SecurityEvent(**kw)  # type: ignore[arg-type]


# --- 1. personal data in details (ACC-4) -----------------------------------------------------


@pytest.mark.finding("internal review of audit")
@pytest.mark.spec("ACC-4")
def test_review_poc_personal_data_cannot_survive_pseudonymisation() -> None:
    """The review's proof of concept: these details were accepted and outlived deletion."""
    log = AuditLog(MemoryAuditStore(), clock=FrozenClock(AT), pseudonym_key=KEY)
    with pytest.raises(ValueError, match="personal data"):
        log.record(
            SecurityEventType.LOGIN_SUCCEEDED,
            actor_id="user-123",
            details={"email": "alice@example.com"},
        )
    with pytest.raises(ValueError, match="personal data"):
        log.record(
            SecurityEventType.MEMBER_ADDED,
            actor_id="admin-1",
            details={"member_email": "alice@example.com", "member_user": "user-123"},
        )
    # the way to say it: the member is the subject, which pseudonymisation rewrites
    log.record(
        SecurityEventType.MEMBER_ADDED,
        actor_id="admin-1",
        subject_id="user-123",
        details={"role": "viewer"},
    )
    log.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="user-123", ip="192.0.2.1")
    assert log.pseudonymise_user("user-123") == 2
    export = "".join(log.export_jsonl(organization_id=None))
    assert "user-123" not in export
    assert "alice" not in export
    assert pseudonym("user-123", key=KEY) in export


@pytest.mark.spec("ACC-4")
@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com",
        "Alice <alice.smith+audit@mail.example.co.uk>",
        "invited bob@example.org",
        "ALICE@EXAMPLE.COM",
    ],
)
@pytest.mark.finding("internal review of audit")
def test_email_shaped_values_are_refused_anywhere_in_a_value(value: str) -> None:
    with pytest.raises(ValueError, match="personal data") as info:
        make(details={"reason": value})
    assert "@" not in str(info.value)
    with pytest.raises(ValueError, match="personal data"):
        validate_details({"reason": value})


@pytest.mark.spec("ACC-4")
@pytest.mark.parametrize(
    "name",
    [
        "email",
        "member_email",
        "emails",
        "mail",
        "name",
        "display_name",
        "first_name",
        "full_name",
        "username",
        "phone",
        "phone_number",
        "address",
        "ip_address",
        "user",
        "user_id",
        "userid",
        "member",
        "member_user",
        "member_id",
        "account_id",
        "owner_id",
        "subject",
        "actor_id",
        "uid",
    ],
)
@pytest.mark.finding("internal review of audit")
def test_detail_keys_naming_personal_data_are_refused(name: str) -> None:
    assert personal_key_name(name)
    with pytest.raises(ValueError, match="personal data"):
        validate_details({name: "x1"})
    for event_type in SecurityEventType:
        with pytest.raises(ValueError, match="personal data"):
            validate_details({name: "x1"}, event_type=event_type)


@pytest.mark.parametrize(
    "name", ["secret_name", "former_owner_role", "role", "hosted_domain", "record_count"]
)
@pytest.mark.finding("internal review of audit")
def test_non_personal_keys_are_not_taken_for_personal_data(name: str) -> None:
    assert not personal_key_name(name)


@pytest.mark.finding("internal review of audit")
@pytest.mark.spec("ACC-4")
def test_detail_keys_are_a_closed_set_per_event_type() -> None:
    assert set(DETAIL_KEYS) == set(SecurityEventType)
    with pytest.raises(ValueError, match="not recorded for") as info:
        make(type=SecurityEventType.ROLE_CHANGED, details={"note": "promoted"})
    assert "note" in str(info.value)
    assert "member.role_changed" in str(info.value)
    # a key allowed for one type is not allowed for every type
    assert make(type=SecurityEventType.RATE_LIMITED, details={"retry_after": 3})
    with pytest.raises(ValueError, match="not recorded for"):
        make(type=SecurityEventType.ROLE_CHANGED, details={"retry_after": 3})
    for event_type, keys in DETAIL_KEYS.items():
        assert make(type=event_type, details=dict.fromkeys(keys, 1)).details


@pytest.mark.finding("internal review of audit")
def test_the_allow_list_is_reviewed() -> None:
    """The closed set names no personal data; the keys in it that name a secret are these
    attributes of one (their values are still shape-checked), and nothing else."""
    every = frozenset().union(*DETAIL_KEYS.values())
    assert not [k for k in every if personal_key_name(k)]
    assert {k for k in every if secret_key_name(k)} == {
        "backup_code_count",
        "credential_id",
        "key_count",
        "key_id",
        "key_ids",
        "satisfies_mfa",
        "secret_name",
        "vault_key_id",
    }
    assert every >= ID_DETAIL_KEYS


@pytest.mark.finding("internal review of audit")
def test_the_allow_list_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for event_type, keys in DETAIL_KEYS.items():
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{event_type}` |")]
        assert set(re.findall(r"`([a-z_]+)`", row.split("|")[2])) == set(keys), event_type


# --- 2. the secret filter --------------------------------------------------------------------


def _b32() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def _grouped(text: str, size: int = 4) -> str:
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


GAPS = {
    "base32_lower": lambda: _b32().lower(),
    "base32_spaced": lambda: _grouped(_b32()),
    "base32_spaced_lower": lambda: _grouped(_b32().lower()),
    "base32_spaced_8": lambda: _grouped(_b32(), 8),
    "base32_spaced_in_text": lambda: f"the secret is {_grouped(_b32().lower())}, keep it",
    "hex_256": lambda: secrets.token_hex(32),
    "hex_128": lambda: secrets.token_hex(16),
    "hex_256_upper": lambda: secrets.token_hex(32).upper(),
    "hex_prefixed": lambda: "0x" + secrets.token_hex(32),
    "api_key_glued": lambda: "xaf_" + secrets.token_hex(32),
    "api_key_glued_digit": lambda: "9af_" + secrets.token_hex(32),
}


@pytest.mark.finding("internal review of audit")
@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("kind", sorted(GAPS))
def test_review_secret_shapes_are_refused(kind: str) -> None:
    for _ in range(200):
        value = GAPS[kind]()
        assert looks_like_secret(value), value
        with pytest.raises(ValueError, match="looks like a secret") as info:
            make(details={"reason": value})
        assert value not in str(info.value)


@pytest.mark.finding("internal review of audit")
@pytest.mark.parametrize("name", ["pass", "pw", "pin", "mfa", "recovery", "login_pin", "mfa_value"])
def test_short_secret_key_names_are_refused(name: str) -> None:
    assert secret_key_name(name)
    with pytest.raises(ValueError, match="names a secret"):
        validate_details({name: "x"})


@pytest.mark.finding("internal review of audit")
@pytest.mark.parametrize("name", ["password_id", "token_type", "secret_count", "pin_name"])
def test_a_safe_last_word_no_longer_lets_a_secret_through(name: str) -> None:
    assert secret_key_name(name)
    with pytest.raises(ValueError, match="names a secret"):
        validate_details({name: "hunter2"})
    for event_type in SecurityEventType:
        with pytest.raises(ValueError, match="names a secret"):
            validate_details({name: "hunter2"}, event_type=event_type)


@pytest.mark.finding("internal review of audit")
def test_hex_ids_pass_under_the_id_keys_of_their_event_type() -> None:
    digest = secrets.token_hex(32)
    event = make(type=SecurityEventType.PASSKEY_REGISTERED, details={"credential_id": digest})
    assert event.details["credential_id"] == digest
    sessions = ",".join(secrets.token_hex(16) for _ in range(3))
    assert make(type=SecurityEventType.LOGOUT, details={"session_ids": sessions}).details
    aaguid = "7d1c1f6e-3c1a-4d55-9a57-2d1f0f6f0a01"
    assert make(type=SecurityEventType.PASSKEY_REGISTERED, details={"aaguid": aaguid}).details
    assert not looks_like_secret(digest, hex_ids=True)
    # ... but not under any other key, and an id key still refuses other secret shapes
    with pytest.raises(ValueError, match="looks like a secret"):
        make(type=SecurityEventType.PASSKEY_REGISTERED, details={"method": digest})
    for value in (_b32(), _b32().lower(), secrets.token_urlsafe(32), "af_" + digest):
        with pytest.raises(ValueError, match="looks like a secret"):
            make(type=SecurityEventType.PASSKEY_REGISTERED, details={"credential_id": value})


@pytest.mark.parametrize(
    "value",
    [
        "invalid_credentials",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "Factura FCT-2026-000123 emisă",
        "leaf_node",
        "the user must have typed a wrong code again",
        "1234567890-abcdefghij0123456789klmnopqr.apps.googleusercontent.com",
    ],
)
@pytest.mark.finding("internal review of audit")
def test_ordinary_values_still_pass(value: str) -> None:
    assert not looks_like_secret(value)


# --- 3. JSON Lines: one event, one line ------------------------------------------------------

BREAKS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r", "\n"]


@pytest.mark.finding("internal review of audit")
@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("brk", BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_export_keeps_one_event_on_one_line(brk: str) -> None:
    event = make(actor_id=f"u{brk}1", organization_id=f"o{brk}", company_id=f"c{brk}x")
    (line,) = list(to_jsonl([event]))
    assert line.isascii()
    assert line.splitlines() == [line[:-1]]
    assert event_from_json(line.splitlines()[0]) == event


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize(
    "value",
    ["a\x85b", "a\x9bb", "\x1b[31mred", "a\nb", "a\rb", "a\x00b", "a\x7fb", "a\u2028b", "a\u2029b"],
    ids=lambda v: "-".join(f"U+{ord(c):04X}" for c in v if not c.isalnum()),
)
@pytest.mark.finding("internal review of audit")
def test_control_characters_in_detail_text_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        make(details={"reason": value})


def _details_for(event_type: SecurityEventType) -> st.SearchStrategy[dict[str, object]]:
    value = st.one_of(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1), st.booleans())
    return st.fixed_dictionaries({}, optional=dict.fromkeys(sorted(DETAIL_KEYS[event_type]), value))


any_id = st.one_of(st.none(), st.text(min_size=1, max_size=40))


@st.composite
def loose_events(draw: st.DrawFn) -> SecurityEvent:
    event_type = draw(st.sampled_from(list(SecurityEventType)))
    fields = {
        "type": event_type,
        "at": draw(st.datetimes(timezones=st.just(UTC))),
        "outcome": draw(st.sampled_from(list(Outcome))),
        "actor_id": draw(any_id),
        "subject_id": draw(any_id),
        "organization_id": draw(any_id),
        "company_id": draw(any_id),
        "user_agent": draw(st.one_of(st.none(), st.text(max_size=40))),
        "details": draw(_details_for(event_type)),
    }
    try:
        return SecurityEvent(**fields)  # type: ignore[arg-type]
    except ValueError:
        assume(False)
        raise


@pytest.mark.finding("internal review of audit")
@pytest.mark.spec("ACC-3")
@given(st.lists(loose_events(), max_size=5))
def test_export_splitlines_parse_round_trip(events: list[SecurityEvent]) -> None:
    text = "".join(to_jsonl(events))
    lines = text.splitlines()
    assert [event_from_json(line) for line in lines] == events
    for line in lines:
        assert json.loads(line)["event_id"]


@pytest.mark.finding("internal review of audit")
def test_event_from_error_copies_attempts_left_only_where_the_type_records_it() -> None:
    error = InvalidMfaCodeError(reason="mismatch", attempts_left=2)
    failed = event_from_error(SecurityEventType.MFA_FAILED, error, at=AT, method="totp")
    assert failed.details["attempts_left"] == 2
    vault = event_from_error(SecurityEventType.VAULT_ACCESSED, error, at=AT)
    assert dict(vault.details) == {"reason": "mismatch"}
