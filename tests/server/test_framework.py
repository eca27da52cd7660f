"""Settings, key files, client addresses and fail-closed limits of the reference server."""

from __future__ import annotations

import stat
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.settings import SETTINGS_VARIABLES, Settings, SettingsError
from reference_server.wiring import build_server
from storno_security.clock import FrozenClock
from storno_security.integrations.keyfiles import KeyFileError, load_key_material
from tests.server.api import FalconApi, fresh_email
from tests.server.conftest import make_settings

#: A public route that is rate-limited and authenticates a credential when one is sent.
_JWKS = "/.well-known/jwks.json"

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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"no_such_setting": 1}, "unexpected keyword argument 'no_such_setting'"),
        ({"cors_origins": 5}, "'int' object is not iterable"),
    ],
)
def test_a_bad_override_is_a_settings_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({}, **overrides)


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
    server = build_server(settings, clock=clock, email=MemoryEmailSink())
    server.close()
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
    first = build_server(settings, clock=clock, email=MemoryEmailSink())
    api = FalconApi(falcon.testing.TestClient(create_app(server=first)), clock=clock)
    user = api.register()
    first.close()
    second = build_server(settings, clock=clock, email=MemoryEmailSink())
    again = FalconApi(falcon.testing.TestClient(create_app(server=second)), clock=clock)
    assert again.get(_JWKS, token=user.access_token).status == 200
    second.close()


# -- client addresses ----------------------------------------------------------------------


def _app(tmp_path: Path, clock: FrozenClock, **overrides: object) -> FalconApi:
    settings = Settings.from_env(
        {"STORNO_DATA_DIR": str(tmp_path / "data"), "STORNO_PASSWORD_COST": "4"}, **overrides
    )
    server = build_server(settings, clock=clock, email=MemoryEmailSink())
    return FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)


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
    assert api.get(_JWKS).status == 503
    # ...while the liveness probe is never limited, so it still answers.
    assert api.get("/health").status == 200


@pytest.mark.spec("RL-4")
def test_api_endpoints_may_fail_open_by_setting(tmp_path: Path, clock: FrozenClock) -> None:
    api = _app(tmp_path, clock, ratelimit_uri="redis://127.0.0.1:1/0", api_fail_open=True)
    health = api.get(_JWKS)
    assert health.status == 200
    assert health.header("RateLimit-Limit") is None  # no figures when the store is down
    # ...but authentication never does.
    login = api.post("/api/auth", {"email": fresh_email(), "password": "whatever password"})
    assert login.status == 503


# -- request bodies and settings (from the server review) -------------------------------


def _company(owner: object, api: FalconApi) -> str:
    answer = api.post(
        "/api/v1/companies",
        {"name": "Review SRL", "country": "RO"},
        token=owner.access_token,  # type: ignore[attr-defined]
    )
    assert answer.status == 201, answer.json
    company_id: str = answer.json["id"]
    return company_id


# review finding (server review, framework): deep nesting was a RecursionError (500)
@pytest.mark.spec("SRV-2")
def test_deeply_nested_json_is_a_400_not_a_recursion_error(falcon_api: FalconApi) -> None:
    body = b'{"email": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = falcon_api.post("/api/auth/register", raw=body, content_type="application/json")
    assert answer.status == 400
    assert "nests deeper" in answer.json["error"]


def test_brackets_inside_strings_do_not_count_as_nesting(falcon_api: FalconApi) -> None:
    answer = falcon_api.post(
        "/api/auth/register",
        {"email": fresh_email(), "password": "long enough password", "name": "[" * 60},
    )
    assert answer.status == 201, answer.json


# review finding (server review, framework): a lone surrogate reached the database (500)
@pytest.mark.spec("SRV-2")
@pytest.mark.parametrize(
    ("path", "body", "authenticated"),
    [
        (
            "/api/auth/register",
            '{"email": "%s", "password": "long enough password", "name": "\\ud800"}',
            False,
        ),
        ("/api/v1/companies", '{"name": "\\ud800", "country": "GB"}', True),
        (
            "/api/v1/invoices",
            '{"number": "\\ud800", "customer": "c", "amount_minor": 1, "currency": "EUR",'
            ' "issue_date": "2026-01-01"}',
            True,
        ),
        (
            "/api/v1/storage-credentials",
            '{"provider": "s3", "name": "n", "secret": "\\ud800"}',
            True,
        ),
        (
            "/api/v1/storage-credentials",
            '{"provider": "s3", "name": "n", "secret": {"\\udfff": "x"}}',
            True,
        ),
    ],
)
def test_lone_surrogates_are_a_400(
    falcon_api: FalconApi, path: str, body: str, authenticated: bool
) -> None:
    owner = falcon_api.register()
    company = _company(owner, falcon_api)
    text = (body % fresh_email()) if "%s" in body else body
    answer = falcon_api.request(
        "POST",
        path,
        raw=text.encode(),
        content_type="application/json",
        token=owner.access_token if authenticated else None,
        company=company if authenticated else None,
    )
    assert answer.status == 400, answer.json
    assert "surrogate" in answer.json["error"]


# review finding (server review, settings): insecure combinations were accepted
def test_cookie_secure_cannot_be_switched_off_on_https() -> None:
    with pytest.raises(SettingsError, match="STORNO_COOKIE_SECURE"):
        Settings.from_env(
            {"STORNO_PUBLIC_URL": "https://api.example.eu", "STORNO_COOKIE_SECURE": "false"}
        )
    local = Settings.from_env({"STORNO_COOKIE_SECURE": "false"})
    assert local.cookie_secure is False


def test_a_test_bcrypt_cost_is_refused_outside_localhost() -> None:
    with pytest.raises(SettingsError, match="below 10"):
        Settings.from_env(
            {"STORNO_PUBLIC_URL": "https://api.example.eu", "STORNO_PASSWORD_COST": "4"}
        )
    assert Settings.from_env({"STORNO_PASSWORD_COST": "4"}).password_cost == 4


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y", "postgresql://a:b@:x"])
def test_a_malformed_database_url_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="STORNO_DATABASE_URL") as caught:
        Settings.from_env({"STORNO_DATABASE_URL": url})
    assert "b@" not in str(caught.value)


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "::/0", "10.0.0.0/8,0.0.0.0/0"])
def test_trusting_every_address_as_a_proxy_is_refused(networks: str) -> None:
    with pytest.raises(SettingsError, match="name your proxies"):
        Settings.from_env({"STORNO_TRUSTED_PROXIES": networks})


def test_settings_repr_hides_passwords_in_urls() -> None:
    settings = Settings.from_env(
        {
            "STORNO_DATABASE_URL": "postgresql+psycopg://app:hunter2@db.example/app",
            "STORNO_REDIS_URL": "redis://:sesame@cache.example:6379/0",
        }
    )
    text = repr(settings)
    assert "hunter2" not in text
    assert "sesame" not in text
    assert "app:***@db.example" in text
    assert settings.database_url == "postgresql+psycopg://app:hunter2@db.example/app"
