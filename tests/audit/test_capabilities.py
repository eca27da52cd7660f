"""The mappings from other capabilities' objects to security events read them by shape, copy only
non-secret fields, never use ``repr``, and refuse what does not fit (ACC-3)."""

from __future__ import annotations

import ast
import enum
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security import audit
from storno_security.audit import AuditLog, Outcome, SecurityEvent, SecurityEventType, event_to_json
from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidApiKeyError,
    InvalidCiphertextError,
    InvalidMfaCodeError,
    PasskeyCloneSuspectedError,
    RateLimitExceededError,
)
from storno_security.stores.memory import MemoryAuditStore

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "sk-" + "Zq3" * 12  # what must never be copied


class Scope(enum.Enum):
    READ = "read"


class Shape(SimpleNamespace):
    """An object of the right shape whose repr and str blow up: a mapping that used them fails."""

    def __repr__(self) -> str:
        raise AssertionError("repr used")

    def __str__(self) -> str:
        raise AssertionError("str used")


def api_key_event(**changes: Any) -> Shape:
    values: dict[str, Any] = {
        "kind": "api_key_created",
        "user_id": "u1",
        "at": AT,
        "key_ids": ("AbCdEf012345",),
        "organization_id": "org-1",
        "scope": Scope.READ,
        "key": SECRET,  # an attribute the mapping must not read
    }
    values.update(changes)
    return Shape(**values)


def membership(user_id: str, role: str, **changes: Any) -> Shape:
    values: dict[str, Any] = {
        "user_id": user_id,
        "organization_id": "org-1",
        "role": role,
        "permissions": None,
    }
    values.update(changes)
    return Shape(**values)


def _no_secret(event: SecurityEvent) -> SecurityEvent:
    assert SECRET.lower() not in event_to_json(event).lower()
    assert SECRET.lower() not in repr(event).lower()
    return event


# --- each mapping works on the shape alone --------------------------------------------------


@pytest.mark.spec("ACC-3")
def test_api_key_events() -> None:
    created = _no_secret(audit.event_from_api_key_event(api_key_event(), ip="::1"))
    assert created.type is SecurityEventType.API_KEY_CREATED
    assert (created.actor_id, created.subject_id, created.organization_id) == ("u1", None, "org-1")
    assert dict(created.details) == {"key_ids": "AbCdEf012345", "key_count": 1, "scope": "read"}
    many = tuple(f"key{i:09d}" for i in range(20))
    revoked = audit.event_from_api_key_event(
        api_key_event(kind="api_key_revoked", key_ids=many, scope=None, organization_id=None),
        actor_id="admin-1",
    )
    assert revoked.type is SecurityEventType.API_KEY_REVOKED
    assert (revoked.actor_id, revoked.subject_id) == ("admin-1", "u1")
    assert revoked.details["key_count"] == 20
    assert str(revoked.details["key_ids"]).count(",") == 15
    with pytest.raises(ValueError, match="kind"):
        audit.event_from_api_key_event(api_key_event(kind="api_key_used"))
    with pytest.raises(TypeError, match="key_ids"):
        audit.event_from_api_key_event(api_key_event(key_ids="AbCdEf012345"))


@pytest.mark.spec("ACC-3")
def test_api_key_use() -> None:
    principal = Shape(user_id="u1", organization_id="org-1", key_id="AbCdEf012345", scope="write")
    event = _no_secret(audit.event_from_api_key_use(principal, at=AT, company_id="c1"))
    assert event.type is SecurityEventType.LOGIN_SUCCEEDED
    assert dict(event.details) == {"method": "api_key", "key_id": "AbCdEf012345", "scope": "write"}
    assert event.company_id == "c1"


@pytest.mark.spec("ACC-3")
def test_mfa_results() -> None:
    factor = Shape(user_id="u1", method="backup_code", verified_at=AT, backup_codes_left=3)
    challenge = Shape(user_id="u1", method="backup_code", verified_at=AT, factor=factor)
    event = _no_secret(audit.event_from_mfa_challenge(challenge, organization_id="org-1"))
    assert event.type is SecurityEventType.MFA_VERIFIED
    assert event.details["backup_code_count"] == 3
    assert event.details["purpose"] == "login"
    used = audit.event_from_second_factor(factor)
    assert used.type is SecurityEventType.BACKUP_CODE_USED
    totp = audit.event_from_second_factor(
        Shape(user_id="u1", method="totp", verified_at=AT, totp_step=59_000_000)
    )
    assert totp.type is SecurityEventType.MFA_VERIFIED
    assert dict(totp.details) == {"method": "totp"}  # the step is not copied
    codes = Shape(user_id="u1", codes=(SECRET,) * 10)
    regenerated = _no_secret(audit.event_from_backup_code_set(codes, at=AT))
    assert regenerated.details["backup_code_count"] == 10
    step_up = Shape(user_id="u1", action="vault.read", method="totp", used_at=AT, token=SECRET)
    event = _no_secret(audit.event_from_step_up(step_up))
    assert event.type is SecurityEventType.STEP_UP_VERIFIED
    assert dict(event.details) == {"action": "vault.read", "method": "totp"}


@pytest.mark.spec("ACC-3")
def test_an_mfa_result_without_a_factor_or_a_count_records_only_what_it_has() -> None:
    challenge = Shape(user_id="u1", method="totp", verified_at=AT, factor=None)
    event = audit.event_from_mfa_challenge(challenge)
    assert dict(event.details) == {"method": "totp", "purpose": "login"}
    no_count = Shape(user_id="u1", method="backup_code", verified_at=AT, backup_codes_left=None)
    used = audit.event_from_second_factor(no_count)
    assert used.type is SecurityEventType.BACKUP_CODE_USED
    assert dict(used.details) == {"method": "backup_code"}  # no count, no detail


@pytest.mark.spec("ACC-3")
def test_mfa_failure_keeps_the_attempts_left_and_drops_the_message() -> None:
    error = InvalidMfaCodeError(f"code {SECRET} is wrong", reason="mismatch", attempts_left=2)
    event = _no_secret(
        audit.event_from_error(
            SecurityEventType.MFA_FAILED, error, at=AT, method="totp", actor_id="u1"
        )
    )
    assert event.outcome is Outcome.FAILURE
    assert dict(event.details) == {"reason": "mismatch", "method": "totp", "attempts_left": 2}


@pytest.mark.spec("ACC-3")
def test_passkeys() -> None:
    credential_id = b"\x01" * 32
    credential = Shape(
        user_id="u1",
        created_at=AT,
        credential_id=credential_id,
        aaguid="00112233-4455-6677-8899-aabbccddeeff",
        backup_eligible=True,
        public_key=SECRET.encode(),
        user_handle=SECRET.encode(),
        name=SECRET,
    )
    registered = _no_secret(audit.event_from_passkey_registration(credential))
    assert registered.type is SecurityEventType.PASSKEY_REGISTERED
    fingerprint = registered.details["credential_id"]
    assert fingerprint == "72cd6e8422c407fb6d098690f1130b7ded7ec2f7f5e1d30bd9d521f015363793"
    login = Shape(
        user_id="u1",
        credential_id=credential_id,
        used_at=AT,
        sign_count=7,
        backed_up=True,
        satisfies_mfa=True,
    )
    event = audit.event_from_passkey_login(login)
    assert event.type is SecurityEventType.LOGIN_SUCCEEDED
    assert event.details["credential_id"] == fingerprint
    assert audit.event_from_passkey_login(login, second_factor=True).type is (
        SecurityEventType.MFA_VERIFIED
    )
    clone = PasskeyCloneSuspectedError(credential_id=credential_id, user_id="u1")
    suspected = audit.event_from_passkey_clone(clone, at=AT)
    assert suspected.type is SecurityEventType.PASSKEY_CLONE_SUSPECTED
    assert suspected.outcome is Outcome.FAILURE


@pytest.mark.spec("ACC-3")
def test_google_login_copies_no_personal_data() -> None:
    identity = Shape(
        subject="110169484474386276334",
        email="ana@example.eu",
        name="Ana Popescu",
        hosted_domain="example.eu",
        audience="1234.apps.googleusercontent.com",
    )
    event = audit.event_from_google_login(identity, at=AT, actor_id="u1")
    text = event_to_json(event)
    assert "ana@example.eu" not in text
    assert "110169484474386276334" not in text
    assert "Ana" not in text
    assert dict(event.details) == {
        "method": "google",
        "hosted_domain": "example.eu",
        "audience": "1234.apps.googleusercontent.com",
    }


@pytest.mark.spec("ACC-3")
def test_vault_access() -> None:
    read = audit.vault_access_event(
        "read", at=AT, actor_id="u1", secret_name="s3_secret", company_id="c1"
    )
    assert read.type is SecurityEventType.VAULT_ACCESSED
    written = audit.vault_access_event(
        "write", at=AT, actor_id="u1", secret_name="s3_secret", vault_key_id="-abc_DEF1234"
    )
    assert written.type is SecurityEventType.VAULT_UPDATED
    assert written.details["vault_key_id"] == "-abc_DEF1234"
    failed = audit.vault_access_event(
        "read",
        at=AT,
        actor_id="u1",
        secret_name="s3_secret",
        error=InvalidCiphertextError(reason="mac"),
    )
    assert (failed.outcome, failed.details["reason"]) == (Outcome.FAILURE, "mac")
    with pytest.raises(ValueError, match="action"):
        audit.vault_access_event("delete", at=AT, actor_id="u1", secret_name="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="secret_name"):
        audit.vault_access_event("read", at=AT, actor_id="u1", secret_name="hunter2 is my password")
    with pytest.raises(ValueError, match="looks like a secret"):
        audit.vault_access_event("read", at=AT, actor_id="u1", secret_name=SECRET)


def license_status(state: str, **changes: Any) -> Shape:
    entitlements = Shape(plan="business")
    license_ = Shape(
        license_id="LOiQt9OLRy4iAKiAivvTHQ",
        organization_id="org-42",
        entitlements=entitlements,
        kid="Pyki5t5T_z6KQIrNuoTDXvTpNdw3pJY49VkNE8ek0b8",
    )
    values: dict[str, Any] = {
        "state": state,
        "license": license_,
        "clock_time": AT,
        "clock_rollback": False,
    }
    values.update(changes)
    return Shape(**values)


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize(
    ("state", "outcome"),
    [("valid", Outcome.SUCCESS), ("grace", Outcome.SUCCESS), ("expired", Outcome.FAILURE)],
)
def test_license_status(state: str, outcome: Outcome) -> None:
    event = audit.event_from_license_status(license_status(state))
    assert (event.type, event.outcome) == (SecurityEventType.LICENSE_CHECKED, outcome)
    assert event.organization_id == "org-42"
    assert event.details["state"] == state
    assert "kid" not in event_to_json(event)


def test_license_status_refuses_an_unknown_state() -> None:
    with pytest.raises(ValueError, match="state"):
        audit.event_from_license_status(license_status("revoked"))


@pytest.mark.spec("ACC-3")
def test_membership_changes() -> None:
    owner = membership("u-owner", "owner")
    before, after = membership("u2", "viewer"), membership("u2", "admin", permissions=frozenset())
    kinds = {
        "add": SecurityEventType.MEMBER_ADDED,
        "update": SecurityEventType.ROLE_CHANGED,
        "remove": SecurityEventType.MEMBER_REMOVED,
    }
    for action, kind in kinds.items():
        change = Shape(
            action=action,
            actor_user_id="u-owner",
            before=None if action == "add" else before,
            after=after,
        )
        event = audit.event_from_membership_change(change, at=AT)
        assert event.type is kind
        assert (event.actor_id, event.subject_id, event.organization_id) == (
            "u-owner",
            "u2",
            "org-1",
        )
        assert event.details["custom_permissions"] is True
    with pytest.raises(ValueError, match="action"):
        audit.event_from_membership_change(
            Shape(action="promote", actor_user_id="u", before=None, after=after), at=AT
        )
    transfer = Shape(
        former_owner=membership("u-owner", "admin"), new_owner=membership("u2", "owner")
    )
    event = audit.event_from_ownership_transfer(transfer, at=AT)
    assert (event.type, event.actor_id, event.subject_id) == (
        SecurityEventType.OWNERSHIP_TRANSFERRED,
        "u-owner",
        "u2",
    )
    assert dict(event.details) == {"former_owner_role": "admin"}
    elsewhere = Shape(
        former_owner=owner, new_owner=membership("u2", "owner", organization_id="org-2")
    )
    with pytest.raises(ValueError, match="one organization"):
        audit.event_from_ownership_transfer(elsewhere, at=AT)


@pytest.mark.spec("ACC-3")
def test_rate_limit_refusal_from_the_error_or_its_status() -> None:
    status = Shape(policy="login", limit=5, remaining=0, reset=60, retry_after=42, degraded=False)
    error = RateLimitExceededError(status=status)  # type: ignore[arg-type]
    for refusal in (error, status):
        event = audit.event_from_rate_limit(refusal, at=AT, ip="203.0.113.7")
        assert (event.type, event.outcome) == (SecurityEventType.RATE_LIMITED, Outcome.FAILURE)
        assert dict(event.details) == {"policy": "login", "limit": 5, "retry_after": 42}


# --- what does not fit is refused, without quoting a value ----------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: audit.event_from_api_key_event(SimpleNamespace(kind="api_key_created")), "has no"),
        (lambda: audit.event_from_api_key_event(api_key_event(user_id=b"u1")), "user_id"),
        (lambda: audit.event_from_api_key_event(api_key_event(at="2026-03-01")), "at"),
        (lambda: audit.event_from_api_key_event(api_key_event(scope=SECRET + " x")), "scope"),
        (lambda: audit.event_from_step_up(SimpleNamespace(user_id="u1")), "used_at"),
        (
            lambda: audit.event_from_api_key_event(api_key_event(organization_id=7)),
            r"ApiKeyEvent\.organization_id must be a str or None",
        ),
        (
            lambda: audit.event_from_api_key_event(api_key_event(key_ids=None)),
            r"ApiKeyEvent\.key_ids must be set",
        ),
        (
            lambda: audit.event_from_api_key_event(api_key_event(key_ids=("AbCdEf012345", ""))),
            "key_ids must hold non-empty str",
        ),
        (
            lambda: audit.event_from_second_factor(
                Shape(user_id="u1", method="backup_code", verified_at=AT, backup_codes_left="3")
            ),
            r"VerifiedFactor\.backup_codes_left must be an int or None",
        ),
        (
            lambda: audit.event_from_second_factor(
                Shape(user_id="u1", method="backup_code", verified_at=AT, backup_codes_left=True)
            ),
            "backup_codes_left must be an int or None",
        ),
        (
            lambda: audit.event_from_passkey_login(
                Shape(
                    user_id="u1",
                    credential_id=b"\x01" * 32,
                    used_at=AT,
                    sign_count=1,
                    backed_up="yes",
                    satisfies_mfa=True,
                )
            ),
            r"PasskeyLogin\.backed_up must be a bool",
        ),
        (
            lambda: audit.event_from_passkey_login(
                Shape(
                    user_id="u1",
                    credential_id="abc",
                    used_at=AT,
                    sign_count=1,
                    backed_up=False,
                    satisfies_mfa=True,
                )
            ),
            "credential_id",
        ),
        (
            lambda: audit.event_from_rate_limit(
                Shape(policy="login", limit=True, retry_after=1), at=AT
            ),
            "limit",
        ),
        (
            lambda: audit.event_from_backup_code_set(Shape(user_id="u1", codes=SECRET), at=AT),
            "codes",
        ),
        (
            lambda: audit.event_from_error(
                SecurityEventType.LOGIN_FAILED, ValueError(SECRET), at=AT
            ),
            "StornoSecurityError",
        ),
    ],
)
def test_a_wrong_shape_is_a_type_error_that_quotes_no_value(call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message) as excinfo:
        call()
    assert SECRET not in str(excinfo.value)
    assert "2026-03-01" not in str(excinfo.value)


def test_a_reason_that_is_not_a_plain_word_is_not_copied() -> None:
    error = InvalidApiKeyError(reason=f"bad key {SECRET}")
    event = audit.event_from_error(SecurityEventType.LOGIN_FAILED, error, at=AT, method="api_key")
    assert event.details["reason"] == "other"


def test_every_context_field_goes_through() -> None:
    principal = Shape(user_id="u1", organization_id="org-1", key_id="k", scope="read")
    event = audit.event_from_api_key_use(
        principal, at=AT, company_id="c1", ip="2001:DB8::1", user_agent="curl/8"
    )
    assert (event.company_id, event.ip, event.user_agent) == ("c1", "2001:db8::1", "curl/8")
    with pytest.raises(ValueError, match="ip"):
        audit.event_from_api_key_use(principal, at=AT, ip="not an address")
    with pytest.raises(ValueError, match="naive"):
        audit.event_from_api_key_use(principal, at=datetime(2026, 3, 1))


# --- the log records mapped events ----------------------------------------------------------


def test_the_log_records_mapped_events_and_api_key_events() -> None:
    clock = FrozenClock(AT)
    store = MemoryAuditStore()
    log = AuditLog(store, clock=clock)
    listener = log.api_key_listener()
    listener(api_key_event())
    clock.advance(timedelta(seconds=1))
    recorded = log.record_event(
        audit.vault_access_event("read", at=clock.now(), actor_id="u1", secret_name="s3_secret")
    )
    kinds = [e.type for e in store.query(organization_id=None)]
    assert kinds == [SecurityEventType.VAULT_ACCESSED, SecurityEventType.API_KEY_CREATED]
    assert store.query(organization_id=None)[0] == recorded
    with pytest.raises(TypeError):
        log.record_event({"type": "login.succeeded"})  # type: ignore[arg-type]


# --- the audit capability imports no other capability ---------------------------------------

_ALLOWED = {
    "storno_security.audit",
    "storno_security.events",
    "storno_security.errors",
    "storno_security.clock",
    "storno_security._compare",
}


def test_audit_imports_no_other_capability() -> None:
    package = Path(audit.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("storno_security"):
                    root = ".".join(name.split(".")[:2])
                    assert root in _ALLOWED or name == "storno_security", (path.name, name)


@pytest.mark.spec("ACC-3")
@given(message=st.text(max_size=200), reason=st.text(max_size=80))
def test_an_error_gives_its_plain_reason_and_never_its_message(message: str, reason: str) -> None:
    error = InvalidApiKeyError("MSG:" + message, reason=reason)
    event = audit.event_from_error(SecurityEventType.LOGIN_FAILED, error, at=AT, method="api_key")
    assert "MSG:" not in event_to_json(event)
    assert "MSG:" not in repr(event)
    plain = re.fullmatch(r"[a-z][a-z0-9_]{0,63}", reason) is not None
    assert event.details["reason"] == (reason if plain else "other")


@pytest.mark.spec("ACC-3")
@given(extra=st.dictionaries(st.from_regex(r"[a-z]{1,12}", fullmatch=True), st.text(max_size=50)))
def test_attributes_a_mapping_does_not_name_never_reach_the_event(extra: dict[str, str]) -> None:
    fields = {"user_id", "action", "method", "used_at"}
    step_up = Shape(
        **{k: "LEAK:" + v for k, v in extra.items() if k not in fields},
        user_id="u1",
        action="vault.read",
        method="totp",
        used_at=AT,
    )
    event = audit.event_from_step_up(step_up)
    assert "LEAK:" not in event_to_json(event)
    assert dict(event.details) == {"action": "vault.read", "method": "totp"}
