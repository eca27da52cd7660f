"""What the server gives a browser, without one (issue 16): the public URL from host and port,
the start-up line on a mismatch, the demo page and its policy, the development mailbox, and
CORS from an allow-list. The browser itself runs them in tests/browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.settings import Settings, SettingsError
from reference_server.wiring import build_server, run_now
from storno_security.clock import FrozenClock
from storno_security.integrations.cors import CorsPolicy
from storno_security.integrations.falcon.browser import PAGE_CSP
from tests.server.conftest import TEST_ENV

API_CSP = "default-src 'none'; frame-ancestors 'none'"


# -- the public URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "http://localhost:8000"),
        ({"port": 9123}, "http://localhost:9123"),
        ({"host": "0.0.0.0", "port": 8080}, "http://localhost:8080"),  # noqa: S104
        ({"host": "::1", "port": 8001}, "http://localhost:8001"),
        ({"port": 9123, "public_url": "https://api.example.eu"}, "https://api.example.eu"),
    ],
)
def test_the_public_url_follows_host_and_port_when_unset(
    overrides: dict[str, Any], expected: str
) -> None:
    settings = Settings.from_env({}, **overrides)
    assert settings.public_url == expected
    assert settings.origin == expected


def test_the_port_flag_moves_the_public_url_the_workers_read_too() -> None:
    # serve passes --port on as STORNO_PORT: the workers derive the same URL.
    assert Settings.from_env({"STORNO_PORT": "9555"}).public_url == "http://localhost:9555"
    assert Settings.from_env({"STORNO_PORT": "9555"}).rp_id == "localhost"


def test_another_host_needs_its_public_url_named() -> None:
    with pytest.raises(SettingsError, match="STORNO_PUBLIC_URL must be set"):
        Settings.from_env({"STORNO_HOST": "10.1.2.3"})


@pytest.mark.parametrize(
    ("env", "mismatch"),
    [
        ({"STORNO_PORT": "9000"}, False),
        ({"STORNO_PUBLIC_URL": "http://localhost:9000", "STORNO_PORT": "9000"}, False),
        ({"STORNO_PUBLIC_URL": "http://127.0.0.1:9000", "STORNO_PORT": "9000"}, False),
        ({"STORNO_PUBLIC_URL": "http://localhost:8000", "STORNO_PORT": "9000"}, True),
        ({"STORNO_PUBLIC_URL": "http://localhost", "STORNO_PORT": "8000"}, True),
        # An https URL is a proxy's: listening elsewhere is expected.
        ({"STORNO_PUBLIC_URL": "https://api.example.eu", "STORNO_PORT": "9000"}, False),
    ],
)
def test_a_mismatch_of_public_url_and_listening_address_is_one_line(
    env: dict[str, str], mismatch: bool
) -> None:
    line = Settings.from_env(env).listen_mismatch()
    if not mismatch:
        assert line is None
        return
    assert line is not None
    assert "\n" not in line
    assert f"public URL {env['STORNO_PUBLIC_URL']} is not the listening address" in line
    assert f"127.0.0.1:{env['STORNO_PORT']}" in line


# -- CORS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["*", "http://app.example.eu/", "https://a.example.eu/path", "ftp://x", "https://u@x"]
)
def test_cors_takes_exact_origins_only(origin: str) -> None:
    with pytest.raises(SettingsError, match="STORNO_CORS_ORIGINS"):
        Settings.from_env({"STORNO_CORS_ORIGINS": f"https://ok.example.eu,{origin}"})
    with pytest.raises(ValueError, match="scheme://host"):
        CorsPolicy(frozenset({origin}))


def test_cors_headers_go_to_listed_origins_only() -> None:
    policy = CorsPolicy(frozenset({"https://app.example.eu"}))
    listed = policy.headers("https://app.example.eu")
    assert listed["Access-Control-Allow-Origin"] == "https://app.example.eu"
    assert listed["Access-Control-Allow-Credentials"] == "true"
    for other in (None, "https://evil.example.eu", "null", "https://app.example.eu.evil.eu"):
        assert policy.headers(other) == {"Vary": "Origin"}
    allowed = policy.preflight("https://app.example.eu", "POST", "Content-Type, Authorization")
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert policy.preflight("https://app.example.eu", "TRACE", "") == {"Vary": "Origin"}
    assert policy.preflight("https://app.example.eu", "ET", "") == {"Vary": "Origin"}
    assert policy.preflight("https://app.example.eu", "GET", "X-Secret") == {"Vary": "Origin"}
    assert policy.preflight("https://evil.example.eu", "GET", "") == {"Vary": "Origin"}


# -- the page and the app ----------------------------------------------------------------------


def client_for(
    tmp_path: Path, clock: FrozenClock, *, log_sink: bool = False, **env: str
) -> falcon.testing.TestClient:
    settings = Settings.from_env({**TEST_ENV, "STORNO_DATA_DIR": str(tmp_path / "data"), **env})
    sink = None if log_sink else MemoryEmailSink()
    server = build_server(settings, clock=clock, email=sink, run_later=run_now)
    return falcon.testing.TestClient(create_app(server=server))


def test_the_page_runs_only_its_own_scripts(tmp_path: Path, clock: FrozenClock) -> None:
    client = client_for(tmp_path, clock)
    for path in ("/demo", "/confirm-email"):
        page = client.simulate_get(path, params={"token": "abc"})
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert '<script src="/demo/demo.js" defer></script>' in page.text
        assert "<script>" not in page.text
        assert " on" + "click=" not in page.text
    script = client.simulate_get("/demo/demo.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "script-src 'self'" in PAGE_CSP
    assert "unsafe" not in PAGE_CSP
    assert "connect-src 'self'" in PAGE_CSP
    assert "frame-ancestors 'none'" in PAGE_CSP
    # Everything else keeps the API's policy.
    assert client.simulate_get("/health").headers["content-security-policy"] == API_CSP
    # The page is no API operation.
    paths = client.simulate_get("/openapi.json").json["paths"]
    assert not [p for p in paths if p.startswith(("/demo", "/confirm-email"))]


@pytest.mark.parametrize(
    ("env", "served"),
    [
        ({}, True),
        ({"STORNO_DEMO_PAGE": "false"}, False),
        ({"STORNO_PUBLIC_URL": "https://api.example.eu", "STORNO_PASSWORD_COST": "10"}, False),
        (
            {
                "STORNO_PUBLIC_URL": "https://api.example.eu",
                "STORNO_PASSWORD_COST": "10",
                "STORNO_DEMO_PAGE": "true",
            },
            True,
        ),
    ],
)
def test_the_page_is_on_by_default_on_localhost_only(
    tmp_path: Path, clock: FrozenClock, env: dict[str, str], served: bool
) -> None:
    client = client_for(tmp_path, clock, **env)
    assert client.simulate_get("/demo").status_code == (200 if served else 404)
    assert client.simulate_get("/demo/demo.js").status_code == (200 if served else 404)


def test_the_development_mailbox_shows_an_address_its_mail(
    tmp_path: Path, clock: FrozenClock
) -> None:
    client = client_for(tmp_path, clock)
    body = {"email": "Mail.Reader@example.eu", "password": "a good long password"}
    assert client.simulate_post("/api/auth/register", json=body).status_code == 201
    mail = client.simulate_get("/demo/mail", params={"to": "mail.reader@example.eu"}).json["mail"]
    assert [m["subject"] for m in mail] == ["Confirm your email address"]
    assert "/confirm-email?token=" in mail[0]["body"]
    assert client.simulate_get("/demo/mail", params={"to": "other@example.eu"}).json == {"mail": []}


@pytest.mark.parametrize(
    "env",
    [
        {"STORNO_EMAIL_SINK": "log"},
        {"STORNO_HOST": "0.0.0.0"},  # noqa: S104 - reachable from the network
        {"STORNO_DEMO_PAGE": "true", "STORNO_PUBLIC_URL": "https://api.example.eu"},
    ],
)
def test_the_mailbox_exists_only_in_local_development(
    tmp_path: Path, clock: FrozenClock, env: dict[str, str]
) -> None:
    log_sink = env.get("STORNO_EMAIL_SINK") == "log"
    client = client_for(tmp_path, clock, log_sink=log_sink, STORNO_PASSWORD_COST="10", **env)
    assert client.simulate_get("/demo/mail", params={"to": "a@example.eu"}).status_code == 404


def test_cors_through_the_app(tmp_path: Path, clock: FrozenClock) -> None:
    client = client_for(tmp_path, clock, STORNO_CORS_ORIGINS="http://localhost:3000")
    listed, other = {"Origin": "http://localhost:3000"}, {"Origin": "http://localhost:3001"}
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    answer = client.simulate_options("/api/auth", headers={**listed, **preflight})
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "RateLimit-Limit" not in answer.headers  # unmetered, no credential read
    refused = client.simulate_options("/api/auth", headers={**other, **preflight})
    assert "access-control-allow-origin" not in refused.headers
    assert refused.headers["vary"] == "Origin"
    read = client.simulate_get("/.well-known/jwks.json", headers=listed)
    assert read.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert read.headers["access-control-expose-headers"].startswith("RateLimit-Limit")
    unread = client.simulate_get("/.well-known/jwks.json", headers=other)
    assert "access-control-allow-origin" not in unread.headers
    assert "access-control-allow-credentials" not in unread.headers


def test_no_cors_header_without_the_setting(tmp_path: Path, clock: FrozenClock) -> None:
    client = client_for(tmp_path, clock)
    origin = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    for answer in (
        client.simulate_options("/api/auth", headers=origin),
        client.simulate_get("/health", headers={"Origin": "http://localhost:3000"}),
    ):
        assert not [h for h in answer.headers if h.startswith("access-control-")]
