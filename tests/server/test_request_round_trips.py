"""What an authenticated ``GET /api/v1/me`` costs the database (issue 18): one statement,
the session state and the caller's own records read together, with no ``BEGIN``/``COMMIT``
and no pool ping around it; ``/health`` costs none. Counted at the driver (see ``round_trips``), on
SQLite and on PostgreSQL + Redis.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.clock import FrozenClock
from tests._round_trips import RoundTrips
from tests.conftest import PG_ADMIN_URL, REDIS_URL, _drop_database, _make_database, _port_open
from tests.conftest import missing_service as _missing
from tests.server.api import FalconApi
from tests.server.conftest import make_settings
from tests.server.tenancy_support import add_member


@pytest.fixture(params=["sqlite", "postgresql-redis"])
def counted(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock
) -> Iterator[tuple[FalconApi, RoundTrips, Server]]:
    overrides: dict[str, str] = {}
    database = None
    prefix = f"storno-rt:{secrets.token_hex(4)}:"
    if request.param == "postgresql-redis":
        if not _port_open("127.0.0.1", 5432):
            _missing("postgresql", "127.0.0.1:5432")
        if not _port_open("127.0.0.1", 6379):
            _missing("redis", "127.0.0.1:6379")
        database = f"storno_rt_{secrets.token_hex(4)}"
        overrides = {
            "database_url": _make_database(PG_ADMIN_URL, database),
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
        }
    settings = make_settings(tmp_path / "data", **overrides)
    server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    counter = RoundTrips(server.data.engine)  # before the first request opens a connection
    sink = server.email
    assert isinstance(sink, MemoryEmailSink)
    api = FalconApi(
        falcon.testing.TestClient(create_app(server=server)),
        clock=clock,
        mailbox=lambda: list(sink.sent),
    )
    try:
        yield api, counter, server
    finally:
        server.close()
        counter.close()
        if database is not None:
            _drop_database(PG_ADMIN_URL, database, force=True)
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def _explain(counter: RoundTrips) -> str:
    return f"driver: {counter.sql}\nSQLAlchemy events: {counter.events}"


def test_me_is_one_statement(counted: tuple[FalconApi, RoundTrips, Server]) -> None:
    api, counter, _ = counted
    user = api.register(confirm=True)
    for sight in ("first", "repeated"):
        with counter.window():
            response = user.get("/api/v1/me")
        assert response.status == 200, response.json
        assert counter.round_trips == 1, f"{sight}: {_explain(counter)}"
        # SQLAlchemy's own count agrees: no transaction opened, no statement it did not see
        # beyond the lean readers' (which run outside its events)
        assert "BEGIN" not in counter.events, f"{sight}: {_explain(counter)}"
        assert "COMMIT" not in counter.events, f"{sight}: {_explain(counter)}"
        assert not any(s.upper().startswith(("BEGIN", "COMMIT")) for s in counter.sql), (
            f"{sight}: {_explain(counter)}"
        )


def test_me_with_mfa_and_two_organizations_stays_at_one(
    counted: tuple[FalconApi, RoundTrips, Server],
) -> None:
    """Memberships, the organization, passkeys and the backup codes left come in the one read."""
    api, counter, _ = counted
    user = api.register(confirm=True)
    other = api.with_ip().register(confirm=True)
    add_member(other, user, "admin")
    enrol = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password})
    assert enrol.status == 200, enrol.json
    code = api.totp_code(enrol.json["secret"])
    confirmed = user.post("/api/v1/mfa/totp/confirm", {"code": code})
    assert confirmed.status == 200, confirmed.json
    for organization in (user.organization_id, other.organization_id):
        with counter.window():
            response = user.get("/api/v1/me", organization=organization)
        assert response.status == 200, response.json
        assert response.json["organization"]["id"] == organization
        assert response.json["mfa"]["enabled"] is True
        assert response.json["mfa"]["backup_codes_left"] == 10
        assert counter.round_trips == 1, _explain(counter)


def test_health_touches_no_database(counted: tuple[FalconApi, RoundTrips, Server]) -> None:
    api, counter, _ = counted
    with counter.window():
        response = api.get("/health")
    assert response.status == 200
    assert counter.round_trips == 0, _explain(counter)


@pytest.mark.spec("REF-4")
def test_revocation_is_seen_at_once_by_another_worker(
    counted: tuple[FalconApi, RoundTrips, Server], clock: FrozenClock
) -> None:
    """Two server instances on one database (two workers): the other one has verified the
    token before (its verified-token cache and its kept lean connection are warm), and still
    refuses it on the very next request after a logout on the first."""
    api, _, first = counted
    second = build_server(first.settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    try:
        other = FalconApi(
            falcon.testing.TestClient(create_app(server=second)), clock=clock, ip=api.ip
        )
        user = api.register(confirm=True)
        for _ in range(2):
            assert other.get("/api/v1/me", token=user.access_token).status == 200
        out = api.post(
            "/api/auth/logout", {"refresh_token": user.refresh_token}, token=user.access_token
        )
        assert out.status == 204, out.json
        refused = other.get("/api/v1/me", token=user.access_token)
        assert refused.status == 401, refused.json
    finally:
        second.close()
