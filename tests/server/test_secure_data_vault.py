"""Storage credentials in the vault: associated data, step-up, permissions, input checks."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from reference_server import db
from reference_server.resources.secure_data import MAX_SECRET_BYTES, credential_associated_data
from reference_server.services import Services
from storno_security.audit import SecurityEventType
from storno_security.errors import InvalidCiphertextError
from storno_security.mfa import ACCOUNT_DELETE, VAULT_READ
from tests.server.api import FalconApi, User
from tests.server.test_secure_data_helpers import (
    add_member,
    enable_mfa,
    insert_company,
    step_up_token,
)

PATH = "/api/v1/storage-credentials"


def _store(user: User, company: str, secret: object = "s3cr3t-value", name: str = "n") -> str:  # noqa: S107
    response = user.post(PATH, {"provider": "s3", "name": name, "secret": secret}, company=company)
    assert response.status == 201, response.json
    credential_id: str = response.json["id"]
    return credential_id


def _sealed(services: Services, credential_id: str) -> str:
    with services.db.transaction() as conn:
        value: str = conn.execute(
            sa.select(db.storage_credentials.c.sealed).where(
                db.storage_credentials.c.id == credential_id
            )
        ).scalar_one()
    return value


def _set_sealed(services: Services, credential_id: str, sealed: str) -> None:
    with services.db.transaction() as conn:
        conn.execute(
            db.storage_credentials.update()
            .where(db.storage_credentials.c.id == credential_id)
            .values(sealed=sealed)
        )


def test_a_sealed_secret_moved_to_another_row_does_not_open(
    falcon_api: FalconApi, services: Services
) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    other_company = insert_company(services.db, owner.organization_id, "Other SRL")
    first = _store(owner, company, "first-secret")
    second = _store(owner, company, "second-secret")
    third = _store(owner, other_company, "third-secret")
    sealed = _sealed(services, first)
    assert "first-secret" not in sealed

    # VLT-2 at the vault: the associated data of another row or company refuses it.
    vault = services.keys.vault
    for wrong in (
        credential_associated_data(second, company),
        credential_associated_data(first, other_company),
    ):
        with pytest.raises(InvalidCiphertextError):
            vault.open(sealed, associated_data=wrong)
    assert vault.open(sealed, associated_data=credential_associated_data(first, company)) == (
        b'"first-secret"'
    )

    # And over HTTP: a value moved to another row (same company, or another one) is refused.
    _set_sealed(services, second, sealed)
    _set_sealed(services, third, sealed)
    for credential_id, where in ((second, company), (third, other_company)):
        response = owner.get(f"{PATH}/{credential_id}/secret", company=where)
        assert response.status == 500
        assert response.json["code"] == "vault_error"
        assert b"first-secret" not in response.body
    failures = services.audit.store.query(
        organization_id=owner.organization_id, types=[SecurityEventType.VAULT_ACCESSED]
    )
    assert [e.outcome.value for e in failures] == ["failure", "failure"]


def test_reading_a_secret_needs_a_step_up_token_when_mfa_is_on(
    falcon_api: FalconApi, services: Services
) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    credential_id = _store(owner, company)
    secret = enable_mfa(services, owner.user_id)
    path = f"{PATH}/{credential_id}/secret"

    missing = owner.get(path, company=company)
    assert missing.status == 403
    assert missing.json["code"] == "step_up_required"

    wrong_action = step_up_token(services, falcon_api, owner.user_id, secret, ACCOUNT_DELETE)
    refused = owner.get(path, company=company, headers={"X-Step-Up-Token": wrong_action})
    assert refused.status == 403
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": "junk"}).status == 403

    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(services, falcon_api, owner.user_id, secret, VAULT_READ)
    granted = owner.get(path, company=company, headers={"X-Step-Up-Token": token})
    assert granted.status == 200, granted.json
    assert granted.json["secret"] == "s3cr3t-value"
    # Single use (MFA-6).
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": token}).status == 403

    # Another user's token does not work for this user.
    other = falcon_api.register()
    other_secret = enable_mfa(services, other.user_id)
    foreign = step_up_token(services, falcon_api, other.user_id, other_secret, VAULT_READ)
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": foreign}).status == 403


def test_reading_is_audited_without_the_secret(falcon_api: FalconApi, services: Services) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    credential_id = _store(owner, company, {"password": "hunter2-very-secret"})
    assert owner.get(f"{PATH}/{credential_id}/secret", company=company).status == 200
    events = services.audit.store.query(
        organization_id=owner.organization_id,
        types=[SecurityEventType.VAULT_ACCESSED, SecurityEventType.VAULT_UPDATED],
    )
    assert {e.type for e in events} == {
        SecurityEventType.VAULT_ACCESSED,
        SecurityEventType.VAULT_UPDATED,
    }
    for event in events:
        assert event.company_id == company
        assert event.actor_id == owner.user_id
        assert "hunter2" not in repr(event.details)


@pytest.mark.parametrize("role", ["accountant", "viewer"])
def test_only_vault_managers_see_or_touch_credentials(
    falcon_api: FalconApi, services: Services, role: str
) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    credential_id = _store(owner, company)
    member = falcon_api.register()
    add_member(services, member.user_id, owner.organization_id, role)
    org = owner.organization_id
    calls = [
        member.get(PATH, company=company, organization=org),
        member.post(
            PATH, {"provider": "s3", "name": "x", "secret": "y"}, company=company, organization=org
        ),
        member.get(f"{PATH}/{credential_id}/secret", company=company, organization=org),
        member.put(f"{PATH}/{credential_id}", {"secret": "z"}, company=company, organization=org),
        member.delete(f"{PATH}/{credential_id}", company=company, organization=org),
    ]
    assert [response.status for response in calls] == [403] * 5
    assert owner.get(f"{PATH}/{credential_id}/secret", company=company).json["secret"] == (
        "s3cr3t-value"
    )


def test_admin_members_manage_credentials(falcon_api: FalconApi, services: Services) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    admin = falcon_api.register()
    add_member(services, admin.user_id, owner.organization_id, "admin")
    response = admin.post(
        PATH,
        {"provider": "ftp", "name": "x", "secret": "y"},
        company=company,
        organization=owner.organization_id,
    )
    assert response.status == 201


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"provider": "s3", "name": "n"}, 400),
        ({"provider": "s3", "name": "n", "secret": ""}, 400),
        ({"provider": "s3", "name": "n", "secret": 12}, 400),
        ({"provider": "s3", "name": "n", "secret": ["a"]}, 400),
        ({"provider": "s3", "name": "n", "secret": {}}, 400),
        ({"provider": "s3", "name": "n", "secret": {"k": 1}}, 400),
        ({"provider": "s3", "name": "n", "secret": {"k": {"nested": "x"}}}, 400),
        ({"provider": "S3 bucket!", "name": "n", "secret": "x"}, 400),
        ({"provider": "s3", "name": "", "secret": "x"}, 400),
        ({"provider": "s3", "name": "n", "secret": "x" * (MAX_SECRET_BYTES + 1)}, 413),
    ],
)
def test_malformed_credentials_are_refused(
    falcon_api: FalconApi, services: Services, body: dict[str, object], status: int
) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    response = owner.post(PATH, body, company=company)
    assert response.status == status, response.json
    assert owner.get(PATH, company=company).json["items"] == []


def test_secret_limit_is_inclusive(falcon_api: FalconApi, services: Services) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    exact = "x" * (MAX_SECRET_BYTES - 2)  # the JSON string adds two quotes
    credential_id = _store(owner, company, exact)
    assert owner.get(f"{PATH}/{credential_id}/secret", company=company).json["secret"] == exact


def test_ids_and_headers(falcon_api: FalconApi, services: Services) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    assert owner.get(PATH).status == 400  # X-Company missing
    assert owner.get(PATH, company="not-a-uuid").status == 404
    assert owner.get(PATH, company=db.new_id()).status == 404
    for bad in ("not-a-uuid", db.new_id(), "00000000-0000-0000-0000-00000000000G"):
        assert owner.get(f"{PATH}/{bad}/secret", company=company).status == 404
        assert owner.put(f"{PATH}/{bad}", {"secret": "x"}, company=company).status == 404
        assert owner.delete(f"{PATH}/{bad}", company=company).status == 404
    assert falcon_api.get(PATH, company=company).status == 401


def test_a_deleted_credential_is_gone_and_its_secret_wiped(
    falcon_api: FalconApi, services: Services
) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    credential_id = _store(owner, company)
    assert owner.delete(f"{PATH}/{credential_id}", company=company).status == 204
    assert owner.delete(f"{PATH}/{credential_id}", company=company).status == 404
    assert owner.put(f"{PATH}/{credential_id}", {"secret": "x"}, company=company).status == 404
    assert _sealed(services, credential_id) == ""
