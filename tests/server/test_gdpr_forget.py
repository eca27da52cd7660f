"""ACC-7 for the whole server: after an account's deletion and purge, nothing in the database
(every row of every table, the library's and the server's) or in Redis (every key and value
under the server's prefix) names the user's id or address. Proven by scanning, not by a list of
tables. The audit trail is kept, pseudonymised (docs/server-data.md): it holds the pseudonym,
never the id.

Run in-process over SQLite, and over PostgreSQL + Redis, with a frozen clock (the grace period
passes in an instant)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import pseudonym
from storno_security.clock import FrozenClock
from storno_security.kit import SensitiveAction
from tests.conftest import (
    PG_ADMIN_URL,
    REDIS_URL,
    RUN_ID,
    _drop_database,
    _make_database,
    _port_open,
    missing_service,
)
from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import FalconApi, User
from tests.server.conftest import make_settings
from tests.server.data_support import (
    CREDENTIALS,
    caller,
    database_hits,
    enable_mfa,
    insert_company,
    insert_invoice,
    needles_of,
    redis_hits,
    step_up_token,
)

ORIGIN = "http://localhost:8000"

# What docs/server-data.md says deletion keeps: the audit events, pseudonymised. They hold the
# pseudonym, never the id or the address, so nothing is exempt from the scan.
KEPT: frozenset[str] = frozenset()


class Deployment:
    """A server in-process over one backend, with what the scan needs to reach its stores."""

    def __init__(self, server: Server, clock: FrozenClock, redis: Any, prefix: str) -> None:
        self.server = server
        self.api = FalconApi(
            falcon.testing.TestClient(create_app(server=server)),
            clock=clock,
            mailbox=lambda: list(server.email.sent),  # type: ignore[attr-defined]
        )
        self.redis = redis
        self.prefix = prefix

    def hits(self, *needles: str | bytes) -> set[str]:
        """Where any of ``needles`` is held: ``table.column`` and ``redis:<key>``."""
        found = set(database_hits(self.server.data.engine, *needles))
        if self.redis is not None:
            found |= {f"redis:{key}" for key in redis_hits(self.redis, self.prefix, *needles)}
        return found - KEPT


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock
) -> Iterator[Deployment]:
    if request.param == "sqlite":
        server = build_server(
            make_settings(tmp_path / "data"),
            clock=clock,
            email=MemoryEmailSink(),
            run_later=run_now,
        )
        try:
            yield Deployment(server, clock, None, "")
        finally:
            server.close()
        return
    if not _port_open("127.0.0.1", 5432):
        missing_service("postgresql", "127.0.0.1:5432")
    if not _port_open("127.0.0.1", 6379):
        missing_service("redis", "127.0.0.1:6379")
    import redis

    name = f"storno_acc7_{RUN_ID}"
    prefix = f"storno-acc7:{RUN_ID}:"
    url = _make_database(PG_ADMIN_URL, name)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        settings = make_settings(
            tmp_path / "data", database_url=url, redis_url=REDIS_URL, redis_prefix=prefix
        )
        server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
        try:
            yield Deployment(server, clock, client, prefix)
        finally:
            server.close()
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        _drop_database(PG_ADMIN_URL, name, force=True)


def _leave_traces_everywhere(deployment: Deployment, user: User, host: User) -> None:
    """Use every capability that keeps something about a user, the way a real user would."""
    server, api = deployment.server, deployment.api
    kit = server.kit
    # A member of another organization, who creates records there and in their own.
    invitation = kit.invite(caller(server, host), user.email, role="admin")
    kit.accept_invitation(caller(server, user), invitation.invitation_id)
    for organization in (user.organization_id, host.organization_id):
        company = insert_company(server.data, organization)
        insert_invoice(server, company, user.user_id, customer="Client of Maria")
        stored = user.post(
            CREDENTIALS,
            {
                "provider": "s3",
                "name": "Maria's bucket",
                "secret": {"key": user.email},
                "current_password": user.password,
            },
            company=company,
            organization=organization,
        )
        assert stored.status == 201, stored.json
    # Invitations: one the user sends (it stays with the host), one the user receives.
    stranger = api.register(confirm=True)
    kit.invite(
        caller(server, user), stranger.email, role="viewer", organization=host.organization_id
    )
    kit.invite(caller(server, stranger), user.email, role="viewer")
    # An API key and a passkey named by the person.
    kit.create_api_key(
        caller(server, user), name="Maria laptop", scope="read", current_password=user.password
    )
    options = kit.begin_passkey_registration(caller(server, user), current_password=user.password)
    credential = SoftAuthenticator().create(options.as_dict(), origin=ORIGIN)
    kit.finish_passkey_registration(caller(server, user), credential, name="Maria's phone")
    # A rotated refresh token, a reset token, a wrong login, an export.
    rotated = api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert rotated.status == 200, rotated.json
    user.access_token = rotated.json["access_token"]
    assert api.post("/api/auth/forgot-password", {"email": user.email}).status == 202
    assert api.post("/api/auth", {"email": user.email, "password": "not it at all"}).status == 401
    assert user.get("/api/v1/me/export").status == 200
    # MFA: TOTP with backup codes, a pending login challenge with a wrong code, a step-up.
    secret = enable_mfa(server, api, user)
    challenge = api.post("/api/auth", {"email": user.email, "password": user.password})
    assert challenge.json["mfa_required"] is True, challenge.json
    wrong = api.post(
        "/api/auth/mfa/verify",
        {"mfa_token": challenge.json["mfa_token"], "method": "totp", "code": "000000"},
    )
    assert wrong.status == 401, wrong.json
    step_up_token(server, api, user, secret, SensitiveAction.VAULT_READ)
    api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(server, api, user, secret, SensitiveAction.ACCOUNT_DELETE)
    deleted = user.delete("/api/v1/me", {"step_up_token": token})
    assert deleted.status == 202, deleted.json


@pytest.mark.spec("ACC-7")
@pytest.mark.spec("ACC-4")
def test_deletion_and_purge_leave_nothing_that_names_the_user(deployment: Deployment) -> None:
    server, api = deployment.server, deployment.api
    host = api.register(confirm=True)
    user = api.register(confirm=True)
    needles = needles_of(user.user_id, user.email)
    assert deployment.hits(*needles["user_id"])  # the scan finds the user before
    _leave_traces_everywhere(deployment, user, host)

    # At once: the address is nowhere, and none of the server's own rows names the user.
    assert deployment.hits(*needles["email"]) == set()
    named = deployment.hits(*needles["user_id"])
    assert {place for place in named if place.startswith("app_")} == set()

    api.clock.advance(server.kit.policy.deletion_grace + timedelta(seconds=1))  # type: ignore[union-attr]
    assert server.purge_deleted_accounts().user_ids == (user.user_id,)
    assert deployment.hits(*needles["user_id"], *needles["email"]) == set()

    # The audit trail is kept, under the pseudonym; the host keeps its organization.
    alias = pseudonym(user.user_id, key=server.keys.pseudonym)
    assert {"storno_audit_events.actor_id", "storno_audit_events.subject_id"} <= (
        deployment.hits(alias)
    )
    assert server.kit.directory.get_organization(host.organization_id) is not None
