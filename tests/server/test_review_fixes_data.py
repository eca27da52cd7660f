"""Regressions for the security reviews r-data and r-authz, in GDPR (ACC-4), vault rotation
(VLT-3), XML signing and the audit log (SRV-2).

Each test is a proof of concept from a review, adapted to the fixed API (``DELETE /api/v1/me``
takes ``current_password``), or a test of the fix's own rules. Each failed before the fix.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server import db, gdpr
from reference_server.app import create_app
from reference_server.cli import main
from reference_server.gdpr import DELETED_ORGANIZATION_NAME, purge_deleted_accounts
from reference_server.reauth import FRESH_LOGIN
from reference_server.services import MemoryEmailSink, Services, build_services, run_now
from storno_security.audit import SecurityEventType, pseudonym
from storno_security.clock import FrozenClock
from storno_security.mfa import ACCOUNT_DELETE
from storno_security.stores.sql import (
    api_keys,
    audit_events,
    metadata,
    passkey_user_handles,
    refresh_families,
)
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import FalconApi, User, fresh_email
from tests.server.conftest import TEST_ENV, make_settings
from tests.server.tenancy_support import add_member as join_by_invitation
from tests.server.tenancy_support import invite
from tests.server.test_account_support import register_passkey
from tests.server.test_secure_data_helpers import (
    add_member,
    b64,
    catch_up_with_wall_clock,
    enable_mfa,
    insert_company,
    step_up_token,
)

pytestmark = pytest.mark.spec("ACC-4")

ME = "/api/v1/me"
INVOICE = {
    "number": "F-7",
    "customer": "Client SRL",
    "amount_minor": 100,
    "currency": "EUR",
    "issue_date": "2026-03-01",
}


def _count(services: Services, table: sa.Table, column: str, value: str) -> int:
    with services.db.transaction() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c[column] == value)
            ).scalar_one()
        )


def _delete_me(user: User) -> Any:
    return user.delete(ME, {"current_password": user.password})


def _past_the_grace(api: FalconApi, services: Services) -> None:
    api.clock.advance(services.settings.deletion_grace + timedelta(seconds=1))  # type: ignore[union-attr]


def _is_text(kind: Any) -> bool:
    """A column that holds text, the library's exact-comparison string type included."""
    if isinstance(kind, sa.types.TypeDecorator):
        kind = kind.impl_instance
    return isinstance(kind, sa.String | sa.JSON)


def _places_holding(services: Services, value: str) -> set[str]:
    """Every ``table.column`` (text columns of every library and app table) with a row that
    contains ``value``, audit events included."""
    found: set[str] = set()
    with services.db.transaction() as conn:
        for table in [*metadata.sorted_tables, *db.app_metadata.sorted_tables]:
            for column in table.columns:
                if not _is_text(column.type):
                    continue
                text = sa.cast(column, sa.Text)
                hit = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(text.contains(value, autoescape=True))
                ).scalar_one()
                if hit:
                    found.add(f"{table.name}.{column.name}")
    return found


# --- re-authentication and limits ------------------------------------------------------------


def test_the_deletion_password_check_is_limited_like_a_login_and_audited(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM) and r-authz: ``DELETE /api/v1/me`` verified the password under the
    general authenticated bucket and recorded nothing on a failure: an unmetered, untraced
    password oracle for whoever holds an access token."""
    user = falcon_api.register()
    statuses = [
        user.delete(ME, {"current_password": f"guess number {n:04d}"}).status for n in range(6)
    ]
    assert statuses[:5] == [403] * 5, statuses
    assert statuses[5] == 429, statuses
    failures = services.audit.store.query(
        organization_id=None, actor_id=user.user_id, types=[SecurityEventType.LOGIN_FAILED]
    )
    assert len(failures) == 5
    assert {event.details.get("method") for event in failures} == {"password"}
    # The limit is per address: the right password from elsewhere still works.
    other = falcon_api.with_ip()
    deleted = other.delete(ME, {"current_password": user.password}, token=user.access_token)
    assert deleted.status == 202, deleted.json


def test_a_wrong_or_missing_current_password_is_refused(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    wrong = user.delete(ME, {"current_password": "wrong password here"})
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")
    for body in ({}, None, {"password": user.password}, {"current_password": 7}):
        missing = user.delete(ME, body)
        assert (missing.status, missing.json["code"]) == (403, "reauthentication_required")
        assert missing.json["accepted"] == ["current_password"]
    with services.db.transaction() as conn:
        deleted_at = conn.execute(
            sa.select(db.users.c.deleted_at).where(db.users.c.id == user.user_id)
        ).scalar_one()
    assert deleted_at is None
    refused = services.audit.store.query(
        organization_id=None, actor_id=user.user_id, types=[SecurityEventType.ACCESS_DENIED]
    )
    assert len(refused) == 4
    assert {event.details["action"] for event in refused} == {ACCOUNT_DELETE}


def _passwordless(services: Services, user: User) -> None:
    """The account as a Google or passkey sign-up leaves it: no password hash."""
    with services.db.transaction() as conn:
        conn.execute(
            db.users.update().where(db.users.c.id == user.user_id).values(password_hash=None)
        )


def test_a_passwordless_account_needs_a_fresh_login_to_be_deleted(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM) / r-authz (LOW): an account with neither password nor MFA was deleted
    with a bare access token."""
    user = falcon_api.register()
    _passwordless(services, user)
    falcon_api.clock.advance(FRESH_LOGIN + timedelta(seconds=1))  # type: ignore[union-attr]
    stale = user.delete(ME, {})
    assert (stale.status, stale.json["code"]) == (403, "reauthentication_required")
    assert stale.json["accepted"] == ["fresh_login"]

    fresh = falcon_api.register()
    _passwordless(services, fresh)
    falcon_api.clock.advance(FRESH_LOGIN)  # type: ignore[union-attr]
    assert fresh.delete(ME, {}).status == 202


def test_with_mfa_only_a_step_up_for_account_delete_deletes(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    secret = enable_mfa(services, user.user_id)
    refused = _delete_me(user)
    assert (refused.status, refused.json["code"]) == (403, "reauthentication_required")
    assert refused.json["accepted"] == ["step_up_token"]
    token = step_up_token(services, falcon_api, user.user_id, secret, ACCOUNT_DELETE)
    assert user.delete(ME, {"step_up_token": token}).status == 202


@pytest.fixture(scope="module")
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def google_api(tmp_path: Path, clock: FrozenClock, google: FakeGoogle) -> Iterator[FalconApi]:
    settings = make_settings(tmp_path / "data", google_client_id=CLIENT_ID)
    services = build_services(
        settings, clock=clock, email=MemoryEmailSink(), google_fetcher=google, run_later=run_now
    )
    try:
        yield FalconApi(falcon.testing.TestClient(create_app(services=services)), clock=clock)
    finally:
        services.close()


def test_deleting_a_google_only_account_demands_a_fresh_login(
    google_api: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    """r-authz (LOW): a Google-only account was deleted by anyone holding its access token."""
    token = google.token(clock.now(), sub="g-only", email=fresh_email("g"))
    answer = google_api.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    clock.advance(FRESH_LOGIN + timedelta(seconds=1))
    deleted = google_api.delete(ME, {}, token=answer.json["access_token"])
    assert deleted.status in (401, 403), deleted.json


# --- deletion ----------------------------------------------------------------------------------


def test_deletion_renames_the_organization_named_after_the_person(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM): the organization registration named after the person kept the name."""
    registered = falcon_api.post(
        "/api/auth/register",
        {"email": "maria.popescu@example.eu", "password": "correct horse battery"},
    )
    assert registered.status == 201, registered.json
    organization_id = registered.json["organization_id"]
    deleted = falcon_api.delete(
        ME, {"current_password": "correct horse battery"}, token=registered.json["access_token"]
    )
    assert deleted.status == 202, deleted.json
    with services.db.transaction() as conn:
        name = conn.execute(
            sa.select(db.organizations.c.name).where(db.organizations.c.id == organization_id)
        ).scalar_one()
    assert name == DELETED_ORGANIZATION_NAME
    assert not {p for p in _places_holding(services, "popescu") if p != "storno_audit_events.ip"}


def test_deletion_keeps_the_name_of_an_organization_others_still_use(
    falcon_api: FalconApi, services: Services
) -> None:
    host = falcon_api.register()
    guest = falcon_api.register()
    add_member(services, guest.user_id, host.organization_id, "accountant")
    with services.db.transaction() as conn:
        before = conn.execute(
            sa.select(db.organizations.c.name).where(db.organizations.c.id == host.organization_id)
        ).scalar_one()
    assert _delete_me(guest).status == 202
    with services.db.transaction() as conn:
        names = dict(conn.execute(sa.select(db.organizations.c.id, db.organizations.c.name)).all())
    assert names[host.organization_id] == before
    assert names[guest.organization_id] == DELETED_ORGANIZATION_NAME


def test_deleting_the_account_cannot_orphan_an_organization_added_to_concurrently(
    falcon_api: FalconApi, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r-data (LOW): the "Owner with other live members" check ran in another transaction
    than the membership update; a member added in between was left without an Owner."""
    owner = falcon_api.register()
    member = falcon_api.register()
    real_check = gdpr.owned_organizations_with_members

    def check_then_concurrent_add(services_: Services, user_id: str) -> list[str]:
        blocking = real_check(services_, user_id)
        join_by_invitation(owner, member, "admin")
        return blocking

    monkeypatch.setattr(gdpr, "owned_organizations_with_members", check_then_concurrent_add)
    deleted = _delete_me(owner)
    assert deleted.status == 409, deleted.json
    assert deleted.json["code"] == "ownership_transfer_required"
    assert deleted.json["organization_ids"] == [owner.organization_id]
    m = db.memberships.c
    with services.db.transaction() as conn:
        roles = set(
            conn.execute(
                sa.select(m.role).where(
                    m.organization_id == owner.organization_id, m.deleted_at.is_(None)
                )
            ).scalars()
        )
        user = conn.execute(
            sa.select(db.users.c.email, db.users.c.deleted_at).where(db.users.c.id == owner.user_id)
        ).one()
    assert roles == {"owner", "admin"}
    assert (user.email, user.deleted_at) == (owner.email, None)  # rolled back


def test_refresh_families_are_deleted_at_once_and_a_replay_names_nobody(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """r-data (MEDIUM): a rotated refresh token of a deleted user, replayed after the purge,
    made the session manager record ``session.token_reuse_detected`` under the real id."""
    services = build_services(
        make_settings(tmp_path / "data", deletion_grace_days=7),
        clock=clock,
        email=MemoryEmailSink(),
        run_later=run_now,
    )
    try:
        api = FalconApi(falcon.testing.TestClient(create_app(services=services)), clock=clock)
        user = api.register()
        rotated = user.refresh_token
        assert api.post("/api/auth/refresh", {"refresh_token": rotated}).status == 200
        assert _delete_me(user).status == 202
        assert _count(services, refresh_families, "user_id", user.user_id) == 0
        # During the grace period: the replay is refused and names nobody.
        assert api.with_ip().post("/api/auth/refresh", {"refresh_token": rotated}).status == 401
        clock.advance(services.settings.deletion_grace + timedelta(seconds=1))
        assert purge_deleted_accounts(services) == 1

        replay = api.with_ip().post("/api/auth/refresh", {"refresh_token": rotated})
        assert replay.status == 401
        with services.db.transaction() as conn:
            linked = (
                conn.execute(
                    sa.select(audit_events.c.event_type).where(
                        sa.or_(
                            audit_events.c.actor_id == user.user_id,
                            audit_events.c.subject_id == user.user_id,
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert linked == [], f"events under the real id of a purged user: {linked}"
    finally:
        services.close()


def test_the_pseudonymised_audit_trail_cannot_be_joined_back_to_the_user(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM): ``details.key_ids`` of a pseudonymised event joined with
    ``storno_api_keys.user_id`` gave back the real id."""
    user = falcon_api.register()
    created = user.post("/api/v1/api-keys", {"name": "ci", "scope": "read"})
    assert created.status == 201, created.json
    assert _delete_me(user).status == 202
    alias = pseudonym(user.user_id, key=services.keys.pseudonym)
    events = services.audit.store.query(
        organization_id=None, types=[SecurityEventType.API_KEY_CREATED], actor_id=alias
    )
    assert events, "the key creation event is kept under the pseudonym"
    key_ids = [key_id for event in events for key_id in str(event.details["key_ids"]).split(",")]

    def owners() -> set[str]:
        with services.db.transaction() as conn:
            return set(
                conn.execute(
                    sa.select(api_keys.c.user_id).where(api_keys.c.key_id.in_(key_ids))
                ).scalars()
            )

    assert owners() == set()  # already at deletion
    _past_the_grace(falcon_api, services)
    assert purge_deleted_accounts(services) == 1
    assert owners() == set()


# --- purge -------------------------------------------------------------------------------------


def test_purge_leaves_no_row_keyed_by_the_real_user_id(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM): the library's rows (API keys with the names the user chose, refresh
    families, reset tokens, passkey user handle) outlived the purge under the real id."""
    user = falcon_api.register()
    created = user.post("/api/v1/api-keys", {"name": "Maria Popescu laptop", "scope": "read"})
    assert created.status == 201, created.json
    options = user.post("/api/v1/passkeys/register/options", {"current_password": user.password})
    assert options.status == 200, options.json
    assert _delete_me(user).status == 202
    _past_the_grace(falcon_api, services)
    assert purge_deleted_accounts(services) == 1
    left = {
        "storno_api_keys": _count(services, api_keys, "user_id", user.user_id),
        "storno_refresh_families": _count(services, refresh_families, "user_id", user.user_id),
        "storno_passkey_user_handles": _count(
            services, passkey_user_handles, "user_id", user.user_id
        ),
    }
    assert left == dict.fromkeys(left, 0), f"rows of a purged user remain: {left}"


def test_no_table_holds_the_user_id_after_the_purge_but_the_pseudonymised_audit_trail(
    falcon_api: FalconApi, services: Services
) -> None:
    """Every text column of every library and app table is scanned for the user id: during
    the grace period only the anonymised user row, its ended memberships, the records the
    user created and the session epoch hold it; after the purge nothing does, and the audit
    trail holds the pseudonym."""
    host = falcon_api.register()
    host_company = insert_company(services.db, host.organization_id)
    user = falcon_api.register()
    add_member(services, user.user_id, host.organization_id, "admin")
    own_company = insert_company(services.db, user.organization_id)
    for company, organization in (
        (own_company, user.organization_id),
        (host_company, host.organization_id),
    ):
        invoice = user.post("/api/v1/invoices", INVOICE, company=company, organization=organization)
        assert invoice.status == 201, invoice.json
        stored = user.post(
            "/api/v1/storage-credentials",
            {"provider": "s3", "name": "backup", "secret": "k"},
            company=company,
            organization=organization,
        )
        assert stored.status == 201, stored.json
    assert user.post("/api/v1/api-keys", {"name": "Maria laptop", "scope": "read"}).status == 201
    # Invitations: one the user sent (they stay with the host's organization), one they got.
    stranger = falcon_api.register()
    invite(user, stranger.email, "viewer", organization=host.organization_id)
    invite(stranger, user.email, "viewer")
    register_passkey(user, SoftAuthenticator())
    rotated = falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert rotated.status == 200, rotated.json
    assert falcon_api.post("/api/auth/forgot-password", {"email": user.email}).status == 202
    secret = enable_mfa(services, user.user_id)
    services.backup_codes.generate(user.user_id)
    services.challenges.issue(user.user_id)
    step_up_token(services, falcon_api, user.user_id, secret, "vault.read")
    falcon_api.clock.advance(60)  # type: ignore[union-attr]
    token = step_up_token(services, falcon_api, user.user_id, secret, ACCOUNT_DELETE)
    assert user.delete(ME, {"step_up_token": token}).status == 202

    assert _places_holding(services, user.user_id) == {
        "app_users.id",
        "app_memberships.user_id",
        "app_invitations.user_id",
        "app_invitations.invited_by",
        "app_invoices.created_by",
        "app_storage_credentials.created_by",
        "storno_session_epochs.user_id",
    }
    assert _places_holding(services, user.email) == set()

    _past_the_grace(falcon_api, services)
    assert purge_deleted_accounts(services) == 1
    assert _places_holding(services, user.user_id) == set()
    alias = pseudonym(user.user_id, key=services.keys.pseudonym)
    assert {"storno_audit_events.actor_id", "storno_audit_events.subject_id"} <= (
        _places_holding(services, alias)
    )
    # The host's organization and its records stay, without the link to the person.
    assert _count(services, db.companies, "id", host_company) == 1
    assert _count(services, db.organizations, "id", user.organization_id) == 0


def test_purge_removes_an_organization_whose_other_members_were_all_removed(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (MEDIUM): a removed member's soft-deleted membership kept the organization,
    its companies, invoices and sealed secrets alive after the purge, with nobody able to
    see or delete them."""
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id, "Maria Popescu PFA")
    former = falcon_api.register()
    add_member(services, former.user_id, owner.organization_id, "viewer")
    assert owner.delete(f"/api/v1/members/{former.user_id}").status == 204
    assert _delete_me(owner).status == 202
    _past_the_grace(falcon_api, services)
    assert purge_deleted_accounts(services) == 1
    assert _count(services, db.companies, "id", company) == 0, "the company outlived its owner"
    assert _count(services, db.organizations, "id", owner.organization_id) == 0
    # The removed member keeps the account and the membership of their own organization.
    assert _count(services, db.memberships, "user_id", former.user_id) == 1
    assert _count(services, db.organizations, "id", former.organization_id) == 1


# --- export ------------------------------------------------------------------------------------


def test_the_export_includes_soft_deleted_rows_the_server_still_holds(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (LOW): an invoice the user created and deleted, and the membership the user
    was removed from, were held (and linked to the person) but not exported."""
    host = falcon_api.register()
    company = insert_company(services.db, host.organization_id)
    user = falcon_api.register()
    add_member(services, user.user_id, host.organization_id, "accountant")
    created = user.post(
        "/api/v1/invoices", INVOICE, company=company, organization=host.organization_id
    )
    assert created.status == 201, created.json
    invoice_id = created.json["id"]
    gone = user.delete(
        f"/api/v1/invoices/{invoice_id}", company=company, organization=host.organization_id
    )
    assert gone.status == 204, gone.json
    assert host.delete(f"/api/v1/members/{user.user_id}").status == 204

    data = user.get("/api/v1/me/export").json
    invoices = {row["id"]: row for row in data["invoices_created"]}
    memberships = {row["organization_id"]: row for row in data["memberships"]}
    assert invoices[invoice_id]["deleted_at"] is not None
    assert invoices[invoice_id]["content_withheld"] is True  # no longer a member
    assert "customer" not in invoices[invoice_id]
    removed = memberships[host.organization_id]
    assert removed["deleted_at"] is not None
    assert removed["organization_name"] is None
    assert memberships[user.organization_id]["deleted_at"] is None


def test_a_removed_member_cannot_read_the_organizations_invoices_through_the_export(
    falcon_api: FalconApi,
) -> None:
    """r-authz (MEDIUM): the export selected invoices by ``created_by`` only and handed a
    removed member the current content of every invoice they once created."""
    owner = falcon_api.register()
    former = falcon_api.register()
    company = owner.post("/api/v1/companies", {"name": "Acme", "country": "GB"}).json["id"]
    join_by_invitation(owner, former, "accountant")
    invoice = former.post(
        "/api/v1/invoices", INVOICE, company=company, organization=owner.organization_id
    )
    assert invoice.status == 201, invoice.json
    assert owner.delete(f"/api/v1/members/{former.user_id}").status == 204
    edited = owner.patch(
        f"/api/v1/invoices/{invoice.json['id']}",
        {"customer": "Confidential Client GmbH", "amount_minor": 987_654_321},
        company=company,
    )
    assert edited.status == 200, edited.json
    export = former.get("/api/v1/me/export")
    assert export.status == 200, export.json
    assert "Confidential Client GmbH" not in export.body.decode()
    rows = {row["id"]: row for row in export.json["invoices_created"]}
    assert rows[invoice.json["id"]]["content_withheld"] is True
    assert rows[invoice.json["id"]]["created_at"] is not None


def test_the_export_withholds_records_of_a_soft_deleted_company_and_keeps_the_visible_ones(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    kept = insert_company(services.db, user.organization_id, "Kept SRL")
    dropped = insert_company(services.db, user.organization_id, "Dropped SRL")
    ids = {}
    for company in (kept, dropped):
        made = user.post("/api/v1/invoices", {**INVOICE, "customer": company}, company=company)
        assert made.status == 201, made.json
        ids[company] = made.json["id"]
        stored = user.post(
            "/api/v1/storage-credentials",
            {"provider": "s3", "name": f"name-{company}", "secret": "k"},
            company=company,
        )
        assert stored.status == 201, stored.json
    assert user.delete(f"/api/v1/companies/{dropped}").status == 204
    data = user.get("/api/v1/me/export").json
    invoices = {row["id"]: row for row in data["invoices_created"]}
    assert invoices[ids[kept]]["customer"] == kept
    assert invoices[ids[kept]]["content_withheld"] is False
    assert invoices[ids[dropped]]["content_withheld"] is True
    assert dropped not in json.dumps(data["invoices_created"])
    credentials = data["storage_credentials_created"]
    assert [row["name"] for row in credentials if not row["content_withheld"]] == [f"name-{kept}"]
    assert f"name-{dropped}" not in json.dumps(credentials)


def test_the_export_withholds_content_the_user_may_no_longer_see(
    falcon_api: FalconApi, services: Services
) -> None:
    """A live member whose permissions no longer include ``invoice.view`` gets the record's
    existence, not its content (the export decides with the library's RBAC, as the API)."""
    host = falcon_api.register()
    company = insert_company(services.db, host.organization_id)
    user = falcon_api.register()
    add_member(services, user.user_id, host.organization_id, "accountant")
    made = user.post(
        "/api/v1/invoices", INVOICE, company=company, organization=host.organization_id
    )
    assert made.status == 201, made.json
    restricted = host.patch(
        f"/api/v1/members/{user.user_id}", {"role": "viewer", "permissions": ["org.view"]}
    )
    assert restricted.status == 200, restricted.json
    row = user.get("/api/v1/me/export").json["invoices_created"][0]
    assert row["content_withheld"] is True
    assert "customer" not in row


# --- vault, XML, audit -------------------------------------------------------------------------


def test_vault_rotate_skips_deleted_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """r-data (LOW): a deleted credential (``sealed = ""``) was counted as unreadable, so
    ``vault rotate``/``reseal`` failed forever on any installation that ever deleted one."""
    for name in list(os.environ):
        if name.startswith("STORNO_"):
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("STORNO_DATA_DIR", str(data_dir))
    clock = FrozenClock()
    services = build_services(
        make_settings(data_dir), clock=clock, email=MemoryEmailSink(), run_later=run_now
    )
    try:
        api = FalconApi(falcon.testing.TestClient(create_app(services=services)), clock=clock)
        owner = api.register()
        company = insert_company(services.db, owner.organization_id)
        ids = []
        for name in ("backup", "archive"):
            stored = owner.post(
                "/api/v1/storage-credentials",
                {"provider": "s3", "name": name, "secret": "k"},
                company=company,
            )
            assert stored.status == 201
            ids.append(stored.json["id"])
        gone = owner.delete(f"/api/v1/storage-credentials/{ids[0]}", company=company)
        assert gone.status == 204
    finally:
        services.close()

    for command in (["vault", "rotate"], ["vault", "reseal"], ["vault", "retire-old"]):
        try:
            code = main(command)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert code == 0, (command, out + err)
        if command[1] == "rotate":
            assert "app_storage_credentials.sealed: 1 re-sealed" in out, out
            assert "0 unreadable" in out


def test_signing_a_document_with_a_relative_namespace_uri_is_a_422(
    falcon_api: FalconApi, services: Services
) -> None:
    """r-data (LOW): lxml's C14NError escaped ``XmlSigner.sign``: 500 ``internal_error``."""
    catch_up_with_wall_clock(falcon_api)
    user = falcon_api.register()
    company = insert_company(services.db, user.organization_id)
    for form in ("enveloped", "xades"):
        response = user.post(
            "/api/v1/xml/sign",
            {"xml": b64(b'<Invoice xmlns="invoice"><ID>1</ID></Invoice>'), "form": form},
            company=company,
        )
        assert (response.status, response.json["code"]) == (422, "invalid_xml"), form


def _cursor(at: str) -> str:
    raw = json.dumps({"at": at, "id": "x"}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "since=9999-12-31T23:59:59-14:00",
        "since=9999-12-31T23:59:59-01:00",
        "since=0001-01-01T00:00:00%2B14:00",
        "until=0001-01-01T00:00:00%2B14:00",
        "until=0001-01-01T00:00:00%2B01:00",
        "cursor=" + _cursor("0001-01-01T00:00:00+14:00"),
        "cursor=" + _cursor("9999-12-31T23:59:59-01:00"),
    ],
)
def test_audit_times_at_the_edge_of_the_calendar_are_a_400(
    falcon_api: FalconApi, query: str
) -> None:
    """r-data / r-authz (LOW): a time whose UTC value falls outside years 1..9999 raised
    ``OverflowError`` in ``_query_time``/``_decode_cursor``: 500."""
    user = falcon_api.register()
    name = query.split("=", 1)[0]
    for path in ("/api/v1/audit-events", "/api/v1/audit-events/export"):
        if path.endswith("export") and name == "cursor":
            continue  # the export takes no cursor
        response = user.get(f"{path}?{query}")
        assert response.status == 400, (path, response.status, response.json)
        assert response.json["field"] == name


def test_audit_times_just_inside_the_calendar_still_work(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    for query in ("since=0001-01-01T00:00:00Z", "until=9999-12-31T23:59:59%2B00:00"):
        response = user.get(f"/api/v1/audit-events?{query}")
        assert response.status == 200, (query, response.json)
