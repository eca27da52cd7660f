"""GDPR (ACC-4) in detail: re-authentication, ownership, revocation, pseudonymisation, the purge
after the grace period (frozen clock), and the export's rules. The proof that nothing names the
user after the purge is in ``test_gdpr_forget.py`` (ACC-7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server import gdpr
from reference_server.app import create_app
from reference_server.data import tables
from reference_server.mail import MemoryEmailSink
from reference_server.resources import MODULES
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import SecurityEventType, pseudonym
from storno_security.clock import FrozenClock
from storno_security.errors import AccountNotFoundError, InvalidApiKeyError
from storno_security.events import Outcome, SecurityEvent
from storno_security.integrations.falcon.app import PathResource
from storno_security.integrations.falcon.routing import Api, ApiOptions, Routes
from storno_security.kit import SensitiveAction
from storno_security.kit.deletion import DELETED_ORGANIZATION_NAME
from storno_security.rbac import Permission, Role
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.server.api import FalconApi, User
from tests.server.conftest import make_settings
from tests.server.data_support import (
    CREDENTIALS,
    add_member,
    caller,
    database_hits,
    delete_company,
    enable_mfa,
    insert_company,
    insert_invoice,
    set_membership,
    step_up_token,
)

ME = "/api/v1/me"


def _delete_me(user: User) -> Any:
    return user.delete(ME, {"current_password": user.password})


def _events(server: Server, *types: SecurityEventType) -> list[SecurityEvent]:
    return list(
        server.kit.stores.audit.query(organization_id=None, types=types or None, limit=10_000)
    )


def _past_the_grace(api: FalconApi, server: Server) -> None:
    api.clock.advance(server.kit.policy.deletion_grace + timedelta(seconds=1))  # type: ignore[union-attr]


def _purge(server: Server) -> int:
    """The purge (``storno-security accounts purge``); how many accounts it forgot."""
    return len(server.purge_deleted_accounts().user_ids)


def _live(server: Server, user: User) -> bool:
    found = server.kit.directory.get_user(user.user_id)
    return found is not None and found.deleted_at is None


# --- deletion ----------------------------------------------------------------------------------


@pytest.mark.spec("ACC-4")
def test_deletion_anonymises_and_revokes_everything(falcon_api: FalconApi, server: Server) -> None:
    user = falcon_api.register()
    key = server.kit.create_api_key(
        caller(server, user), name="ci", scope="read", current_password=user.password
    )
    server.kit.backup_codes.generate(user.user_id)
    assert server.kit.backup_codes.remaining(user.user_id) == 10

    response = user.delete(ME, {"current_password": user.password})
    assert response.status == 202, response.json
    expected = server.clock.now() + server.settings.deletion_grace
    assert response.json == {
        "status": "deleted",
        "purge_after": expected.isoformat().replace("+00:00", "Z"),
    }

    row = server.kit.directory.get_user(user.user_id)
    assert row is not None
    assert row.email is None
    assert row.name == ""
    assert row.password_hash is None
    assert row.totp_secret_sealed is None
    assert row.google_subject is None
    assert row.deleted_at == server.clock.now().astimezone(UTC)
    with pytest.raises(InvalidApiKeyError):
        server.kit.api_keys.verify(key.key)
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token}).status == 401
    assert user.get("/api/v1/audit-events").status == 401

    # The audit trail holds the pseudonym, never the id (ACC-4).
    alias = pseudonym(user.user_id, key=server.keys.pseudonym)
    events = _events(server)
    named = {e.actor_id for e in events} | {e.subject_id for e in events}
    assert user.user_id not in named
    assert alias in named
    deleted = _events(server, SecurityEventType.ACCOUNT_DELETED)
    assert [event.actor_id for event in deleted] == [alias]


@pytest.mark.spec("ACC-7")
def test_deletion_forgets_the_libraries_records_of_the_user_at_once(
    falcon_api: FalconApi, server: Server
) -> None:
    """The backup codes, the API keys (with the names the user chose), the refresh families
    and the rest go at the deletion, not at the purge: only the tombstone and the session
    epoch wait for it. review finding r-data (MEDIUM): refresh families outlived the deletion,
    so a replayed token was recorded under the real id."""
    user = falcon_api.register()
    server.kit.create_api_key(
        caller(server, user), name="Maria laptop", scope="read", current_password=user.password
    )
    server.kit.backup_codes.generate(user.user_id)
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token}).status == 200
    assert falcon_api.post("/api/auth/forgot-password", {"email": user.email}).status == 202
    assert _delete_me(user).status == 202
    assert server.kit.backup_codes.remaining(user.user_id) == 0
    assert server.kit.api_keys.list_keys(user_id=user.user_id) == []
    gone_at_once = (
        "storno_refresh",
        "storno_api_keys",
        "storno_passkey",
        "storno_mfa",
        "storno_password_reset",
    )
    left = [
        p for p in database_hits(server.data.engine, user.user_id) if p.startswith(gone_at_once)
    ]
    assert left == [], f"rows of a deleted user remain: {left}"


def test_api_keys_cannot_delete_the_account(falcon_api: FalconApi, server: Server) -> None:
    user = falcon_api.register()
    key = server.kit.create_api_key(
        caller(server, user), name="ci", scope="admin", current_password=user.password
    ).key
    response = falcon_api.delete(ME, {"current_password": user.password}, api_key=key)
    assert response.status == 403
    assert falcon_api.get("/api/v1/me/export", api_key=key).status == 403
    assert _live(server, user)


@pytest.mark.spec("ACC-6")
def test_a_wrong_or_missing_current_password_is_refused(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    wrong = user.delete(ME, {"current_password": "wrong password here"})
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")
    for body in ({}, None, {"password": user.password}):
        missing = user.delete(ME, body)
        assert (missing.status, missing.json["code"]) == (403, "reauthentication_required")
        assert missing.json["accepted"] == ["step_up_token", "current_password"]
    # A password of the wrong type is a malformed request, never a proof.
    malformed = user.delete(ME, {"current_password": 7})
    assert (malformed.status, malformed.json["field"]) == (400, "current_password")
    assert _live(server, user)
    refused = server.kit.stores.audit.query(
        organization_id=None, actor_id=user.user_id, types=[SecurityEventType.ACCESS_DENIED]
    )
    assert len(refused) == 3
    assert {event.details["action"] for event in refused} == {SensitiveAction.ACCOUNT_DELETE}


@pytest.mark.spec("RL-1")
def test_the_deletion_password_check_is_limited_like_a_login_and_audited(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM) and r-authz: ``DELETE /api/v1/me`` verified the
    password under the general authenticated bucket and recorded nothing on a failure: an
    unmetered, untraced password oracle for whoever holds an access token."""
    user = falcon_api.register()
    statuses = [
        user.delete(ME, {"current_password": f"guess number {n:04d}"}).status for n in range(6)
    ]
    assert statuses[:5] == [403] * 5, statuses
    assert statuses[5] == 429, statuses
    failures = [
        e
        for e in server.kit.stores.audit.query(
            organization_id=None, actor_id=user.user_id, types=[SecurityEventType.REAUTHENTICATED]
        )
        if e.outcome is Outcome.FAILURE
    ]
    assert len(failures) == 5
    assert {event.details.get("method") for event in failures} == {"current_password"}
    # The limit is per address: the right password from elsewhere still works.
    other = falcon_api.with_ip()
    deleted = other.delete(ME, {"current_password": user.password}, token=user.access_token)
    assert deleted.status == 202, deleted.json


def _passwordless(server: Server, user: User) -> None:
    """The account as a Google or passkey sign-up leaves it: no password hash."""
    found = server.kit.directory.get_user(user.user_id)
    assert found is not None
    server.kit.directory.update_user(
        user.user_id,
        expected={"password_hash": found.password_hash},
        changes={"password_hash": None},
    )


@pytest.mark.spec("ACC-6")
def test_a_passwordless_account_needs_a_fresh_login_to_be_deleted(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM) / r-authz (LOW): an account with neither password nor
    MFA was deleted with a bare access token."""
    fresh_login = server.kit.policy.fresh_login
    user = falcon_api.register()
    _passwordless(server, user)
    falcon_api.clock.advance(fresh_login + timedelta(seconds=1))  # type: ignore[union-attr]
    stale = user.delete(ME, {})
    assert (stale.status, stale.json["code"]) == (403, "reauthentication_required")
    assert stale.json["accepted"] == ["step_up_token", "fresh_login"]

    fresh = falcon_api.register()
    _passwordless(server, fresh)
    falcon_api.clock.advance(fresh_login)  # type: ignore[union-attr]
    assert fresh.delete(ME, {}).status == 202


@pytest.mark.spec("MFA-6")
def test_with_mfa_only_a_step_up_for_account_delete_deletes(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    secret = enable_mfa(server, falcon_api, user)
    refused = _delete_me(user)
    assert (refused.status, refused.json["code"]) == (403, "step_up_required")
    assert refused.json["accepted"] == ["step_up_token"]
    vault_token = step_up_token(server, falcon_api, user, secret, SensitiveAction.VAULT_READ)
    assert user.delete(ME, {"step_up_token": vault_token}).status == 403
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(server, falcon_api, user, secret, SensitiveAction.ACCOUNT_DELETE)
    assert user.delete(ME, {"step_up_token": token}).status == 202
    found = server.kit.directory.get_user(user.user_id)
    assert found is not None
    assert found.totp_secret_sealed is None


@pytest.fixture(scope="module")
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def google_api(tmp_path: Path, clock: FrozenClock, google: FakeGoogle) -> Iterator[FalconApi]:
    settings = make_settings(tmp_path / "data", google_client_id=CLIENT_ID)
    server = build_server(
        settings, clock=clock, email=MemoryEmailSink(), google_fetcher=google, run_later=run_now
    )
    try:
        yield FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)
    finally:
        server.close()


def test_deleting_a_google_only_account_demands_a_fresh_login(
    google_api: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    """review finding r-authz (LOW): a Google-only account was deleted by anyone holding its
    access token."""
    token = google.token(clock.now(), sub="g-only", email="g-only@example.eu")
    answer = google_api.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    clock.advance(timedelta(minutes=5, seconds=1))
    deleted = google_api.delete(ME, {}, token=answer.json["access_token"])
    assert deleted.status in (401, 403), deleted.json


def test_an_owner_with_members_must_transfer_first(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    member = falcon_api.register()
    add_member(server, member.user_id, owner.organization_id, "accountant")
    response = owner.delete(ME, {"current_password": owner.password})
    assert response.status == 409
    assert response.json["code"] == "ownership_transfer_required"
    assert response.json["organization_ids"] == [owner.organization_id]
    found = server.kit.directory.get_user(owner.user_id)
    assert found is not None
    assert found.email == owner.email

    # The member may leave: deleting a non-owner account does not touch the organization.
    assert member.delete(ME, {"current_password": member.password}).status == 202
    assert owner.delete(ME, {"current_password": owner.password}).status == 202


def test_deleting_the_account_cannot_orphan_an_organization_added_to_concurrently(
    falcon_api: FalconApi, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review finding r-data (LOW): the "Owner with other live members" check ran apart from
    the membership update; a member added in between was left without an Owner."""
    owner = falcon_api.register()
    member = falcon_api.register()
    real_check = server.kit.owned_organizations_with_members

    def check_then_concurrent_add(user_id: str) -> list[str]:
        blocking = real_check(user_id)
        add_member(server, member.user_id, owner.organization_id, "admin")
        return blocking

    monkeypatch.setattr(server.kit, "owned_organizations_with_members", check_then_concurrent_add)
    deleted = _delete_me(owner)
    assert deleted.status == 409, deleted.json
    assert deleted.json["code"] == "ownership_transfer_required"
    assert deleted.json["organization_ids"] == [owner.organization_id]
    records = server.kit.directory.members_of(owner.organization_id)
    assert {r.membership.role for r in records if r.membership.deleted_at is None} == {
        Role.OWNER,
        Role.ADMIN,
    }
    found = server.kit.directory.get_user(owner.user_id)
    assert found is not None
    assert (found.email, found.deleted_at) == (owner.email, None)  # nothing written


def _organization_name(server: Server, organization_id: str) -> str:
    found = server.kit.directory.get_organization(organization_id)
    assert found is not None
    return found.name


def test_deletion_renames_the_organization_named_after_the_person(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM): the organization registration named after the person
    kept the name."""
    registered = falcon_api.post(
        "/api/auth/register",
        {"email": "maria.popescu@example.eu", "password": "correct horse battery"},
    )
    assert registered.status == 201, registered.json
    organization_id = registered.json["organization_id"]
    assert "popescu" in _organization_name(server, organization_id)
    deleted = falcon_api.delete(
        ME, {"current_password": "correct horse battery"}, token=registered.json["access_token"]
    )
    assert deleted.status == 202, deleted.json
    assert _organization_name(server, organization_id) == DELETED_ORGANIZATION_NAME
    assert set(database_hits(server.data.engine, "popescu")) <= {"storno_audit_events.ip"}


def test_deletion_keeps_the_name_of_an_organization_others_still_use(
    falcon_api: FalconApi, server: Server
) -> None:
    host = falcon_api.register()
    guest = falcon_api.register()
    add_member(server, guest.user_id, host.organization_id, "accountant")
    before = _organization_name(server, host.organization_id)
    assert _delete_me(guest).status == 202
    assert _organization_name(server, host.organization_id) == before
    assert _organization_name(server, guest.organization_id) == DELETED_ORGANIZATION_NAME


def test_a_refresh_token_replayed_after_the_deletion_names_nobody(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM): a rotated refresh token of a deleted user, replayed
    after the purge, made the session manager record ``session.token_reuse_detected`` under
    the real id."""
    user = falcon_api.register()
    rotated = user.refresh_token
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": rotated}).status == 200
    assert _delete_me(user).status == 202
    # During the grace period: the replay is refused and names nobody.
    assert falcon_api.with_ip().post("/api/auth/refresh", {"refresh_token": rotated}).status == 401
    _past_the_grace(falcon_api, server)
    assert _purge(server) == 1
    replay = falcon_api.with_ip().post("/api/auth/refresh", {"refresh_token": rotated})
    assert replay.status == 401
    linked = [e.type.value for e in _events(server) if user.user_id in (e.actor_id, e.subject_id)]
    assert linked == [], f"events under the real id of a deleted user: {linked}"


def test_the_pseudonymised_audit_trail_cannot_be_joined_back_to_the_user(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM): ``details.key_ids`` of a pseudonymised event joined with
    the API keys' rows gave back the real id."""
    user = falcon_api.register()
    server.kit.create_api_key(
        caller(server, user), name="ci", scope="read", current_password=user.password
    )
    assert _delete_me(user).status == 202
    alias = pseudonym(user.user_id, key=server.keys.pseudonym)
    events = server.kit.stores.audit.query(
        organization_id=None, types=[SecurityEventType.API_KEY_CREATED], actor_id=alias
    )
    assert events, "the key creation event is kept under the pseudonym"
    key_ids = [key_id for event in events for key_id in str(event.details["key_ids"]).split(",")]

    def rows_joining_a_key_to_the_user() -> list[str]:
        hits = database_hits(server.data.engine, *key_ids)
        return [
            place for place, rows in hits.items() if user.user_id in json.dumps(rows, default=str)
        ]

    assert server.kit.api_keys.list_keys(user_id=user.user_id) == []  # already at deletion
    assert rows_joining_a_key_to_the_user() == []
    _past_the_grace(falcon_api, server)
    assert _purge(server) == 1
    assert rows_joining_a_key_to_the_user() == []


# --- purge -------------------------------------------------------------------------------------


@pytest.mark.spec("ACC-4")
def test_purge_after_the_grace_period(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    insert_invoice(server, company, owner.user_id)
    # A member of another organization, who created an invoice there.
    host = falcon_api.register()
    host_company = insert_company(server.data, host.organization_id)
    add_member(server, owner.user_id, host.organization_id, "accountant")
    kept_invoice = insert_invoice(server, host_company, owner.user_id)

    deleted = owner.delete(ME, {"current_password": owner.password})
    assert deleted.status == 202
    assert _purge(server) == 0
    falcon_api.clock.advance(server.settings.deletion_grace)  # type: ignore[union-attr]
    assert deleted.json["purge_after"] == server.clock.now().isoformat().replace("+00:00", "Z")
    assert _purge(server) == 0  # at purge_after: not yet, after it
    assert server.kit.directory.get_user(owner.user_id) is not None

    falcon_api.clock.advance(timedelta(seconds=1))  # type: ignore[union-attr]
    assert _purge(server) == 1
    assert _purge(server) == 0
    assert server.kit.directory.get_user(owner.user_id) is None
    assert server.kit.directory.memberships_of(owner.user_id) == []
    assert server.kit.directory.get_organization(owner.organization_id) is None
    assert server.data.company_lookup(company) is None
    invoices = {row["id"]: row for row in _rows(server, tables.invoices)}
    assert [row for row in invoices.values() if row["company_id"] == company] == []
    # The other organization keeps its data, without the link to the person.
    assert server.kit.directory.get_organization(host.organization_id) is not None
    assert invoices[kept_invoice]["created_by"] is None
    deleted = _events(server, SecurityEventType.ACCOUNT_DELETED)
    assert [event.actor_id for event in deleted] == [
        pseudonym(owner.user_id, key=server.keys.pseudonym)
    ]


def _rows(server: Server, table: sa.Table) -> list[dict[str, Any]]:
    with server.data.read() as conn:
        return [dict(row) for row in conn.execute(sa.select(table)).mappings()]


def test_an_organization_whose_other_members_were_all_removed_loses_its_data(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (MEDIUM): a removed member's soft-deleted membership kept the
    organization, its companies, invoices and sealed secrets alive after the purge, with
    nobody able to see or delete them. Now they go at the deletion already."""
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id, "Maria Popescu PFA")
    insert_invoice(server, company, owner.user_id)
    stored = owner.post(
        CREDENTIALS,
        {"provider": "s3", "name": "n", "secret": "s", "current_password": owner.password},
        company=company,
    )
    assert stored.status == 201, stored.json
    former = falcon_api.register()
    add_member(server, former.user_id, owner.organization_id, "viewer")
    server.kit.remove_member(caller(server, owner), former.user_id)
    assert _delete_me(owner).status == 202
    for table in (tables.companies, tables.invoices, tables.storage_credentials):
        assert _rows(server, table) == [], f"{table.name} outlived its organization"
    organization = server.kit.directory.get_organization(owner.organization_id)
    assert organization is None or organization.deleted_at is not None
    _past_the_grace(falcon_api, server)
    assert _purge(server) == 1
    assert set(database_hits(server.data.engine, "popescu")) <= {"storno_audit_events.ip"}
    # The removed member keeps the account and the membership of their own organization.
    live = [m for m in server.kit.directory.memberships_of(former.user_id) if m.deleted_at is None]
    assert [m.organization_id for m in live] == [former.organization_id]
    assert server.kit.directory.get_organization(former.organization_id) is not None


# --- export ------------------------------------------------------------------------------------


@pytest.mark.spec("ACC-4")
def test_export_contents(falcon_api: FalconApi, server: Server) -> None:
    user = falcon_api.register()
    company = insert_company(server.data, user.organization_id)
    insert_invoice(server, company, user.user_id)
    secret = enable_mfa(server, falcon_api, user)
    who = caller(server, user)
    response = user.get("/api/v1/me/export")
    assert response.status == 200
    assert response.header("content-disposition") == 'attachment; filename="my-data.json"'
    data = response.json
    assert data["account"]["id"] == user.user_id
    assert data["mfa"]["enabled"] is True
    assert data["mfa"]["backup_codes_left"] == 10
    assert data["invoices_created"][0]["amount_minor"] == 12_345
    assert data["organizations_owned"][0]["companies"][0]["id"] == company
    assert data["organizations_owned"][0]["license_installed"] is False
    found = server.kit.directory.get_user(user.user_id)
    assert found is not None
    assert found.totp_secret_sealed
    assert found.totp_secret_sealed not in response.body.decode()
    recorded = server.kit.stores.audit.query(
        organization_id=None, types=[SecurityEventType.DATA_EXPORTED], actor_id=user.user_id
    )
    assert len(recorded) == 1
    # Deleted accounts have nothing to export, and are not deleted twice.
    token = step_up_token(server, falcon_api, user, secret, SensitiveAction.ACCOUNT_DELETE)
    gdpr.delete_account(server, who, step_up_token=token)
    with pytest.raises(AccountNotFoundError):
        gdpr.export_user_data(server, who)
    with pytest.raises(AccountNotFoundError):
        gdpr.delete_account(server, who, current_password=user.password)


def test_the_export_includes_soft_deleted_rows_the_server_still_holds(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-data (LOW): an invoice the user created and deleted, and the membership
    the user was removed from, were held (and linked to the person) but not exported."""
    host = falcon_api.register()
    company = insert_company(server.data, host.organization_id)
    user = falcon_api.register()
    add_member(server, user.user_id, host.organization_id, "accountant")
    invoice_id = insert_invoice(server, company, user.user_id)
    with server.data.transaction() as conn:
        conn.execute(
            tables.invoices.update()
            .where(tables.invoices.c.id == invoice_id)
            .values(deleted_at=server.clock.now())
        )
    server.kit.remove_member(caller(server, host), user.user_id)

    data = user.get("/api/v1/me/export").json
    invoices = {row["id"]: row for row in data["invoices_created"]}
    memberships = {row["organization_id"]: row for row in data["memberships"]}
    assert invoices[invoice_id]["deleted_at"] is not None
    assert invoices[invoice_id]["content_withheld"] is True  # no longer a member
    assert "customer" not in invoices[invoice_id]
    removed = memberships[host.organization_id]
    assert removed["removed_at"] is not None
    assert "organization_name" not in removed  # never the organization's current name
    assert memberships[user.organization_id]["removed_at"] is None


def test_a_removed_member_cannot_read_the_organizations_invoices_through_the_export(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-authz (MEDIUM): the export selected invoices by ``created_by`` only and
    handed a removed member the current content of every invoice they once created."""
    owner = falcon_api.register()
    former = falcon_api.register()
    company = insert_company(server.data, owner.organization_id, "Acme")
    add_member(server, former.user_id, owner.organization_id, "accountant")
    invoice_id = insert_invoice(server, company, former.user_id)
    server.kit.remove_member(caller(server, owner), former.user_id)
    with server.data.transaction() as conn:
        conn.execute(
            tables.invoices.update()
            .where(tables.invoices.c.id == invoice_id)
            .values(customer="Confidential Client GmbH", amount_minor=987_654_321)
        )
    export = former.get("/api/v1/me/export")
    assert export.status == 200, export.json
    assert "Confidential Client GmbH" not in export.body.decode()
    rows = {row["id"]: row for row in export.json["invoices_created"]}
    assert rows[invoice_id]["content_withheld"] is True
    assert rows[invoice_id]["created_at"] is not None


def test_the_export_withholds_records_of_a_soft_deleted_company_and_keeps_the_visible_ones(
    falcon_api: FalconApi, server: Server
) -> None:
    """review finding r-authz (MEDIUM), the same rule for a company deleted since."""
    user = falcon_api.register()
    kept = insert_company(server.data, user.organization_id, "Kept SRL")
    dropped = insert_company(server.data, user.organization_id, "Dropped SRL")
    ids = {}
    for company in (kept, dropped):
        ids[company] = insert_invoice(server, company, user.user_id, customer=company)
        stored = user.post(
            CREDENTIALS,
            {
                "provider": "s3",
                "name": f"name-{company}",
                "secret": "k",
                "current_password": user.password,
            },
            company=company,
        )
        assert stored.status == 201, stored.json
    delete_company(server, dropped)
    data = user.get("/api/v1/me/export").json
    invoices = {row["id"]: row for row in data["invoices_created"]}
    assert invoices[ids[kept]]["customer"] == kept
    assert invoices[ids[kept]]["content_withheld"] is False
    assert invoices[ids[dropped]]["content_withheld"] is True
    assert dropped not in json.dumps(data["invoices_created"])
    credentials = data["storage_credentials_created"]
    assert [row["name"] for row in credentials if not row["content_withheld"]] == [f"name-{kept}"]
    assert f"name-{dropped}" not in json.dumps(credentials)
    assert [c["id"] for c in data["organizations_owned"][0]["companies"]] == [kept]


def test_the_export_withholds_content_the_user_may_no_longer_see(
    falcon_api: FalconApi, server: Server
) -> None:
    """A live member whose permissions no longer include ``invoice.view`` gets the record's
    existence, not its content (the kit's authorization decides, as for a request)."""
    host = falcon_api.register()
    company = insert_company(server.data, host.organization_id)
    user = falcon_api.register()
    add_member(server, user.user_id, host.organization_id, "accountant")
    insert_invoice(server, company, user.user_id)
    set_membership(
        server,
        user.user_id,
        host.organization_id,
        role=Role.VIEWER,
        permissions=frozenset({Permission.ORG_VIEW}),
    )
    row = user.get("/api/v1/me/export").json["invoices_created"][0]
    assert row["content_withheld"] is True
    assert "customer" not in row


def test_every_record_of_a_company_gets_the_same_decision(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    kept = insert_company(server.data, user.organization_id, "Kept SRL")
    dropped = insert_company(server.data, user.organization_id, "Dropped SRL")
    for company in (kept, kept, dropped, dropped):
        insert_invoice(server, company, user.user_id, customer=f"client of {company}")
    delete_company(server, dropped)
    rows = user.get("/api/v1/me/export").json["invoices_created"]
    shown = sorted((row["content_withheld"], row.get("customer", "")) for row in rows)
    assert shown == [(False, f"client of {kept}")] * 2 + [(True, "")] * 2


def test_an_organization_deleted_since_is_not_exported_as_owned(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    other = falcon_api.register()
    add_member(server, user.user_id, other.organization_id, "owner")
    insert_company(server.data, other.organization_id, "Side Co")
    owned = user.get("/api/v1/me/export").json["organizations_owned"]
    assert {org["id"] for org in owned} == {user.organization_id, other.organization_id}
    # the organization is deleted (as by a concurrent deletion) while the membership remains
    directory = server.kit.directory
    org = directory.get_organization(other.organization_id)
    assert org is not None
    assert directory.update_organization(
        org.organization_id, expected_version=org.version, deleted_at=server.clock.now()
    )
    data = user.get("/api/v1/me/export").json
    assert [org["id"] for org in data["organizations_owned"]] == [user.organization_id]
    assert "Side Co" not in json.dumps(data)


# --- routing -------------------------------------------------------------------------------------


def test_delete_me_shares_its_path_with_the_account_module(falcon_api: FalconApi) -> None:
    """``/api/v1/me``'s profile verbs live in another module; adding DELETE keeps them."""
    user = falcon_api.register()
    verbs = {route.method for module in MODULES for route in module.routes if route.path == ME}
    assert verbs == {"GET", "PATCH", "DELETE"}
    assert user.get(ME).status == 200
    assert user.patch(ME, {"name": "Renamed"}).status == 200
    assert user.delete(ME, {}).status in (400, 403, 422)
    assert user.post(ME, {}).status == 405


def test_two_handlers_of_one_verb_on_one_path_are_refused(server: Server) -> None:
    first, second = Routes(), Routes()
    for routes in (first, second):
        routes.get("/x", summary="x", tag="t", responses={200: None})(lambda ctx, body: None)
    api = Api(kit=server.kit, options=ApiOptions(public_url="http://localhost"), state=server)
    with pytest.raises(RuntimeError, match="two handlers for GET /x"):
        PathResource(api, "/x", [*first.routes, *second.routes])
