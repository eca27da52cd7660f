"""Settings, key files, client addresses and fail-closed limits of the reference server."""

from __future__ import annotations

import stat
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.keys import KeyFileError, load_key_material
from reference_server.services import MemoryEmailSink, build_services
from reference_server.settings import SETTINGS_VARIABLES, Settings, SettingsError
from storno_security.clock import FrozenClock
from tests.server.api import FalconApi, fresh_email
from tests.server.conftest import make_settings

# -- settings ------------------------------------------------------------------------------


@pytest.mark.spec("SRV-3")
def test_defaults_are_the_embedded_single_host_setup() -> None:
    settings = Settings.from_env({})
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/storno-data/storno.db")
    assert settings.effective_ratelimit_uri == "memory://"
    assert settings.password_cost == 12
    assert settings.cookie_secure is True
    assert settings.trusted_proxies == ()
    assert settings.api_fail_open is False
    assert not settings.shares_state_across_processes


def test_redis_url_shares_limits() -> None:
    settings = Settings.from_env({"STORNO_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert settings.effective_ratelimit_uri == "redis://127.0.0.1:6379/0"
    assert settings.shares_state_across_processes


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STORNO_PORTT": "1"}, "unknown setting STORNO_PORTT"),
        ({"STORNO_PORT": "abc"}, "STORNO_PORT"),
        ({"STORNO_PORT": "0"}, "port"),
        ({"STORNO_COOKIE_SECURE": "maybe"}, "STORNO_COOKIE_SECURE"),
        ({"STORNO_PUBLIC_URL": "http://example.eu"}, "https"),
        ({"STORNO_PUBLIC_URL": "ftp://localhost"}, "http(s)"),
        ({"STORNO_PASSWORD_COST": "3"}, "4..31"),
        ({"STORNO_TRUSTED_PROXIES": "not-a-network"}, "STORNO_TRUSTED_PROXIES"),
        ({"STORNO_EMAIL_SINK": "smtp"}, "STORNO_EMAIL_SINK"),
        ({"STORNO_XML_KEY_FILE": "/x.pem"}, "go together"),
        ({"STORNO_DATA_DIR": "  "}, "STORNO_DATA_DIR"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_every_setting_is_documented() -> None:
    docs = Path(__file__).parents[2] / "docs" / "server.md"
    if not docs.exists():
        pytest.fail("docs/server.md is missing")
    text = docs.read_text()
    missing = sorted(name for name in SETTINGS_VARIABLES if name not in text)
    assert missing == []


# -- keys on disk --------------------------------------------------------------------------


def test_keys_are_generated_once_with_private_permissions(tmp_path: Path) -> None:
    first = load_key_material(tmp_path)
    second = load_key_material(tmp_path)
    assert first.jwt.signer.kid == second.jwt.signer.kid
    assert first.vault.active_kid == second.vault.active_kid
    assert first.pseudonym == second.pseudonym
    keys = tmp_path / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    files = [p for p in keys.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) >= 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_default_database_file_is_private(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "data")
    services = build_services(settings, clock=clock, email=MemoryEmailSink())
    services.close()
    database = tmp_path / "data" / "storno.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    material = load_key_material(tmp_path)
    path = tmp_path / "keys" / "jwt" / f"{material.jwt.signer.kid}.pem"
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_material(tmp_path)


def test_missing_keys_are_an_error_without_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="keys generate"):
        load_key_material(tmp_path, create=False)


def test_a_malformed_key_file_is_a_clear_error(tmp_path: Path) -> None:
    material = load_key_material(tmp_path)
    path = tmp_path / "keys" / "vault" / f"{material.vault.active_kid}.key"
    path.write_text("not base64 at all")
    with pytest.raises(KeyFileError, match="not a vault key"):
        load_key_material(tmp_path)


def test_keys_survive_a_restart_so_tokens_stay_valid(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "data")
    first = build_services(settings, clock=clock, email=MemoryEmailSink())
    api = FalconApi(falcon.testing.TestClient(create_app(services=first)), clock=clock)
    user = api.register()
    first.close()
    second = build_services(settings, clock=clock, email=MemoryEmailSink())
    again = FalconApi(falcon.testing.TestClient(create_app(services=second)), clock=clock)
    assert again.get("/health", token=user.access_token).status == 200
    second.close()


# -- client addresses ----------------------------------------------------------------------


def _app(tmp_path: Path, clock: FrozenClock, **overrides: object) -> FalconApi:
    settings = Settings.from_env(
        {"STORNO_DATA_DIR": str(tmp_path / "data"), "STORNO_PASSWORD_COST": "4"}, **overrides
    )
    services = build_services(settings, clock=clock, email=MemoryEmailSink())
    return FalconApi(falcon.testing.TestClient(create_app(services=services)), clock=clock)


@pytest.mark.spec("RL-1")
def test_forwarded_for_is_ignored_without_a_trusted_proxy(
    tmp_path: Path, clock: FrozenClock
) -> None:
    api = _app(tmp_path, clock)
    body = {"email": fresh_email(), "password": "whatever password"}
    statuses = [
        api.post("/api/auth", body, headers={"X-Forwarded-For": f"10.9.0.{n}"}).status
        for n in range(6)
    ]
    # Every request came from the same peer: a client cannot choose its bucket.
    assert statuses == [401] * 5 + [429]


@pytest.mark.spec("RL-1")
def test_trusted_proxy_chain_is_read_from_the_right(tmp_path: Path, clock: FrozenClock) -> None:
    import ipaddress

    api = _app(tmp_path, clock, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    body = {"email": fresh_email(), "password": "whatever password"}
    # The client prepends fake hops; the proxy appends the real client (203.0.113.7).
    statuses = [
        api.post("/api/auth", body, headers={"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.7"}).status
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    other = api.post("/api/auth", body, headers={"X-Forwarded-For": "203.0.113.8"})
    assert other.status == 401


# -- rate-limit storage down -------------------------------------------------------------


@pytest.mark.spec("RL-4")
def test_auth_endpoints_fail_closed_when_the_limit_store_is_down(
    tmp_path: Path, clock: FrozenClock
) -> None:
    api = _app(tmp_path, clock, ratelimit_uri="redis://127.0.0.1:1/0")
    login = api.post("/api/auth", {"email": fresh_email(), "password": "whatever password"})
    assert login.status == 503
    assert login.json["code"] == "rate_limit_unavailable"
    # Other endpoints follow the policy: closed by default...
    assert api.get("/health").status == 503


@pytest.mark.spec("RL-4")
def test_api_endpoints_may_fail_open_by_setting(tmp_path: Path, clock: FrozenClock) -> None:
    api = _app(tmp_path, clock, ratelimit_uri="redis://127.0.0.1:1/0", api_fail_open=True)
    health = api.get("/health")
    assert health.status == 200
    assert health.header("RateLimit-Limit") is None  # no figures when the store is down
    # ...but authentication never does.
    login = api.post("/api/auth", {"email": fresh_email(), "password": "whatever password"})
    assert login.status == 503
