"""Regression tests for the internal review of the server framework (request bodies, settings).

Each test failed before its fix.
"""

from __future__ import annotations

import pytest

from reference_server.settings import Settings, SettingsError
from tests.server.api import FalconApi, fresh_email


def _company(owner: object, api: FalconApi) -> str:
    answer = api.post(
        "/api/v1/companies",
        {"name": "Review SRL", "country": "RO"},
        token=owner.access_token,  # type: ignore[attr-defined]
    )
    assert answer.status == 201, answer.json
    company_id: str = answer.json["id"]
    return company_id


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
