"""Storage credentials in the vault: associated data, re-authentication for reading and writing
(ACC-6), permissions, API keys, input checks."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server.app import create_app
from reference_server.cli import main
from reference_server.data import tables
from reference_server.data.credentials import associated_data
from reference_server.mail import MemoryEmailSink
from reference_server.resources.vault import MAX_SECRET_BYTES
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidCiphertextError
from storno_security.kit import SensitiveAction
from tests.server.api import FalconApi
from tests.server.conftest import TEST_ENV, make_settings
from tests.server.data_support import (
    CREDENTIALS,
    add_member,
    caller,
    enable_mfa,
    insert_company,
    meanwhile,
    reveal,
    step_up_token,
    store_credential,
)

PATH = CREDENTIALS


def _sealed(server: Server, credential_id: str) -> str:
    c = tables.storage_credentials.c
    with server.data.transaction() as conn:
        value: str = conn.execute(sa.select(c.sealed).where(c.id == credential_id)).scalar_one()
    return value


def _set_sealed(server: Server, credential_id: str, sealed: str) -> None:
    t = tables.storage_credentials
    with server.data.transaction() as conn:
        conn.execute(t.update().where(t.c.id == credential_id).values(sealed=sealed))


def _vault_events(server: Server, organization_id: str) -> list[object]:
    return list(
        server.kit.stores.audit.query(
            organization_id=organization_id, types=[SecurityEventType.VAULT_ACCESSED]
        )
    )


@pytest.mark.spec("VLT-2")
def test_a_sealed_secret_moved_to_another_row_does_not_open(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    other_company = insert_company(server.data, owner.organization_id, "Other SRL")
    first = store_credential(owner, company, "first-secret")
    second = store_credential(owner, company, "second-secret")
    third = store_credential(owner, other_company, "third-secret")
    sealed = _sealed(server, first)
    assert "first-secret" not in sealed

    # VLT-2 at the vault: the associated data of another row or company refuses it.
    vault = server.keys.vault
    for wrong in (associated_data(second, company), associated_data(first, other_company)):
        with pytest.raises(InvalidCiphertextError):
            vault.open(sealed, associated_data=wrong)
    assert vault.open(sealed, associated_data=associated_data(first, company)) == (
        b'"first-secret"'
    )

    # And over HTTP: a value moved to another row (same company, or another one) is refused.
    _set_sealed(server, second, sealed)
    _set_sealed(server, third, sealed)
    for credential_id, where in ((second, company), (third, other_company)):
        response = reveal(owner, where, credential_id)
        assert response.status == 500
        assert response.json["code"] == "vault_error"
        assert b"first-secret" not in response.body
    failures = server.kit.stores.audit.query(
        organization_id=owner.organization_id, types=[SecurityEventType.VAULT_ACCESSED]
    )
    assert [e.outcome.value for e in failures] == ["failure", "failure"]


@pytest.mark.spec("MFA-6")
def test_reading_a_secret_needs_a_step_up_token_when_mfa_is_on(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    secret = enable_mfa(server, falcon_api, owner)
    path = f"{PATH}/{credential_id}/secret"

    missing = owner.get(path, company=company)
    assert missing.status == 403
    assert missing.json["code"] == "step_up_required"
    # The password no longer stands for it once MFA is on (ACC-6).
    password = reveal(owner, company, credential_id)
    assert (password.status, password.json["code"]) == (403, "step_up_required")

    wrong_action = step_up_token(server, falcon_api, owner, secret, SensitiveAction.ACCOUNT_DELETE)
    refused = owner.get(path, company=company, headers={"X-Step-Up-Token": wrong_action})
    assert refused.status == 403
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": "junk"}).status == 403

    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(server, falcon_api, owner, secret, SensitiveAction.VAULT_READ)
    granted = owner.get(path, company=company, headers={"X-Step-Up-Token": token})
    assert granted.status == 200, granted.json
    assert granted.json["secret"] == "s3cr3t-value"
    # Single use (MFA-6).
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": token}).status == 403
    # The body form takes the token too.
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(server, falcon_api, owner, secret, SensitiveAction.VAULT_READ)
    assert reveal(owner, company, credential_id, step_up_token=token).status == 200

    # Another user's token does not work for this user.
    other = falcon_api.register()
    other_secret = enable_mfa(server, falcon_api, other)
    foreign = step_up_token(server, falcon_api, other, other_secret, SensitiveAction.VAULT_READ)
    assert owner.get(path, company=company, headers={"X-Step-Up-Token": foreign}).status == 403


@pytest.mark.spec("ACC-6")
def test_reading_a_secret_needs_a_proof_without_mfa_too(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    bare = owner.get(f"{PATH}/{credential_id}/secret", company=company)
    assert (bare.status, bare.json["code"]) == (403, "reauthentication_required")
    assert bare.json["accepted"] == ["step_up_token", "current_password"]
    wrong = reveal(owner, company, credential_id, current_password="not the password at all")
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")
    empty = owner.post(f"{PATH}/{credential_id}/secret", company=company)
    assert (empty.status, empty.json["code"]) == (403, "reauthentication_required")
    granted = reveal(owner, company, credential_id)
    assert (granted.status, granted.json["secret"]) == (200, "s3cr3t-value")


@pytest.mark.spec("ACC-6")
def test_a_passwordless_account_reads_within_minutes_of_its_login(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    user = server.kit.directory.get_user(owner.user_id)
    assert user is not None
    server.kit.directory.update_user(
        owner.user_id,
        expected={"password_hash": user.password_hash},
        changes={"password_hash": None},
    )
    path = f"{PATH}/{credential_id}/secret"
    assert owner.get(path, company=company).status == 200
    falcon_api.clock.advance(server.kit.policy.fresh_login + timedelta(seconds=1))  # type: ignore[union-attr]
    stale = owner.get(path, company=company)
    assert (stale.status, stale.json["accepted"]) == (403, ["step_up_token", "fresh_login"])


@pytest.mark.spec("ACC-6")
def test_writing_a_secret_needs_a_proof(falcon_api: FalconApi, server: Server) -> None:
    """ACC-6 (new): storing or replacing a secret re-authenticates, as reading does."""
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    body = {"provider": "s3", "name": "n", "secret": "v"}
    bare = owner.post(PATH, body, company=company)
    assert (bare.status, bare.json["code"]) == (403, "reauthentication_required")
    wrong = owner.post(PATH, {**body, "current_password": "wrong password here"}, company=company)
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")
    assert owner.get(PATH, company=company).json["items"] == []
    credential_id = store_credential(owner, company)
    replace = f"{PATH}/{credential_id}"
    assert owner.put(replace, {"secret": "x"}, company=company).status == 403
    assert reveal(owner, company, credential_id).json["secret"] == "s3cr3t-value"

    secret = enable_mfa(server, falcon_api, owner)
    with_password = owner.put(
        replace, {"secret": "x", "current_password": owner.password}, company=company
    )
    assert (with_password.status, with_password.json["code"]) == (403, "step_up_required")
    read_token = step_up_token(server, falcon_api, owner, secret, SensitiveAction.VAULT_READ)
    assert (
        owner.put(replace, {"secret": "x", "step_up_token": read_token}, company=company).status
        == 403
    )
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(server, falcon_api, owner, secret, SensitiveAction.VAULT_WRITE)
    replaced = owner.put(replace, {"secret": "x", "step_up_token": token}, company=company)
    assert replaced.status == 200, replaced.json
    writes = server.kit.stores.audit.query(
        organization_id=owner.organization_id, types=[SecurityEventType.VAULT_UPDATED]
    )
    assert len(writes) == 2  # the two that were allowed


@pytest.mark.spec("KEY-5")
def test_api_keys_neither_read_nor_write_secrets(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    key = server.kit.create_api_key(
        caller(server, owner), name="ci", scope="admin", current_password=owner.password
    ).key
    proof = {"current_password": owner.password}
    calls = [
        falcon_api.post(
            PATH,
            {"provider": "s3", "name": "x", "secret": "y", **proof},
            api_key=key,
            company=company,
        ),
        falcon_api.put(
            f"{PATH}/{credential_id}", {"secret": "z", **proof}, api_key=key, company=company
        ),
        falcon_api.get(f"{PATH}/{credential_id}/secret", api_key=key, company=company),
        falcon_api.post(f"{PATH}/{credential_id}/secret", proof, api_key=key, company=company),
    ]
    assert [(r.status, r.json["code"]) for r in calls] == [(403, "forbidden")] * 4
    assert _vault_events(server, owner.organization_id) == []
    # The listing shows no secret: a key with vault.manage still sees it.
    listed = falcon_api.get(PATH, api_key=key, company=company)
    assert [item["id"] for item in listed.json["items"]] == [credential_id]


def test_reading_is_audited_without_the_secret(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company, {"password": "hunter2-very-secret"})
    assert reveal(owner, company, credential_id).status == 200
    events = server.kit.stores.audit.query(
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
    falcon_api: FalconApi, server: Server, role: str
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    member = falcon_api.register()
    add_member(server, member.user_id, owner.organization_id, role)
    org = owner.organization_id
    proof = {"current_password": member.password}
    calls = [
        member.get(PATH, company=company, organization=org),
        member.post(
            PATH,
            {"provider": "s3", "name": "x", "secret": "y", **proof},
            company=company,
            organization=org,
        ),
        member.post(f"{PATH}/{credential_id}/secret", proof, company=company, organization=org),
        member.put(
            f"{PATH}/{credential_id}", {"secret": "z", **proof}, company=company, organization=org
        ),
        member.delete(f"{PATH}/{credential_id}", company=company, organization=org),
    ]
    assert [response.status for response in calls] == [403] * 5
    assert reveal(owner, company, credential_id).json["secret"] == "s3cr3t-value"


def test_admin_members_manage_credentials(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    admin = falcon_api.register()
    add_member(server, admin.user_id, owner.organization_id, "admin")
    store_credential(admin, company, organization=owner.organization_id)


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
    falcon_api: FalconApi, server: Server, body: dict[str, object], status: int
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    response = owner.post(PATH, {**body, "current_password": owner.password}, company=company)
    assert response.status == status, response.json
    assert owner.get(PATH, company=company).json["items"] == []


def test_secret_limit_is_inclusive(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    exact = "x" * (MAX_SECRET_BYTES - 2)  # the JSON string adds two quotes
    credential_id = store_credential(owner, company, exact)
    assert reveal(owner, company, credential_id).json["secret"] == exact


def test_ids_and_headers(falcon_api: FalconApi, server: Server) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    proof = {"current_password": owner.password}
    assert owner.get(PATH).status == 400  # X-Company missing
    assert owner.get(PATH, company="not-a-uuid").status == 404
    assert owner.get(PATH, company=tables.new_id()).status == 404
    for bad in ("not-a-uuid", tables.new_id(), "00000000-0000-0000-0000-00000000000G"):
        assert owner.get(f"{PATH}/{bad}/secret", company=company).status == 404
        assert owner.post(f"{PATH}/{bad}/secret", proof, company=company).status == 404
        assert owner.put(f"{PATH}/{bad}", {"secret": "x", **proof}, company=company).status == 404
        assert owner.delete(f"{PATH}/{bad}", company=company).status == 404
    assert falcon_api.get(PATH, company=company).status == 401


def test_a_deleted_credential_is_gone_and_its_secret_wiped(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)
    assert owner.delete(f"{PATH}/{credential_id}", company=company).status == 204
    assert owner.delete(f"{PATH}/{credential_id}", company=company).status == 404
    replaced = owner.put(
        f"{PATH}/{credential_id}",
        {"secret": "x", "current_password": owner.password},
        company=company,
    )
    assert replaced.status == 404
    assert _sealed(server, credential_id) == ""


def test_vault_rotate_skips_deleted_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """review finding r-data (LOW): a deleted credential (``sealed = ""``) was counted as
    unreadable, so ``vault rotate``/``reseal`` failed forever on any installation that ever
    deleted one."""
    for name in list(os.environ):
        if name.startswith("STORNO_"):
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("STORNO_DATA_DIR", str(data_dir))
    clock = FrozenClock()
    server = build_server(
        make_settings(data_dir), clock=clock, email=MemoryEmailSink(), run_later=run_now
    )
    try:
        api = FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)
        owner = api.register()
        company = insert_company(server.data, owner.organization_id)
        ids = [store_credential(owner, company, name=name) for name in ("backup", "archive")]
        assert owner.delete(f"{PATH}/{ids[0]}", company=company).status == 204
    finally:
        server.close()

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


def test_a_credential_deleted_while_its_secret_is_replaced_is_404(
    falcon_api: FalconApi, server: Server
) -> None:
    owner = falcon_api.register()
    company = insert_company(server.data, owner.organization_id)
    credential_id = store_credential(owner, company)

    def another_request_deletes_it() -> bool:
        return server.data.credentials.remove(company, credential_id, now=server.clock.now())

    # at the seal of the new secret: after the credential was read, before it is written
    with meanwhile(SecurityEventType.VAULT_UPDATED, another_request_deletes_it) as deleted:
        replaced = owner.put(
            f"{PATH}/{credential_id}",
            {"secret": "new", "name": "renamed", "current_password": owner.password},
            company=company,
        )
    assert deleted == [True]
    assert (replaced.status, replaced.json["code"]) == (404, "not_found")
    assert _sealed(server, credential_id) == ""  # the new secret was not written back
    assert owner.get(PATH, company=company).json["items"] == []
