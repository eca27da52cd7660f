"""The server's logs and metrics: one JSON line per request (route template, never the path,
query, headers or a token), the security events in the same stream, and GET /metrics with
the counters an operator watches, only to the networks of STORNO_METRICS."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.settings import SettingsError
from reference_server.wiring import build_server, run_now
from storno_security.clock import FrozenClock
from storno_security.integrations.observability import JsonLogFormatter
from tests.conftest import REDIS_URL, _port_open, missing_service
from tests.server.api import FalconApi
from tests.server.conftest import TEST_ENV, make_settings
from tests.server.test_cli import _free_port, _wait_healthy, subprocess_env


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonLogFormatter()
    lines = []
    for record in caplog.records:
        text = formatter.format(record)
        assert "\n" not in text
        lines.append(json.loads(text))
    return lines


def _metrics(client: falcon.testing.TestClient) -> str:
    answer = client.simulate_get("/metrics")  # from 127.0.0.1, no forwarding header
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def _value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_one_json_line_per_request_and_the_events_in_the_same_stream(
    falcon_api: FalconApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    user = falcon_api.register()
    secret_query = "token=sEcReTqUeRyVaLuE123"
    answer = user.get(f"/api/v1/companies/{user.user_id}?{secret_query}")
    assert answer.status in (400, 403, 404)
    wrong = falcon_api.post("/api/auth", {"email": user.email, "password": "wrong password!"})
    assert wrong.status == 401
    lines = _lines(caplog)
    requests = [line for line in lines if line.get("event") == "request"]
    assert [(r["method"], r["route"]) for r in requests] == [
        ("POST", "/api/auth/register"),
        ("GET", "/api/v1/companies/{company_id}"),
        ("POST", "/api/auth"),
    ]
    registered, read, failed = requests
    assert registered["status"] == 201
    assert registered["principal"] == "anonymous"
    assert read["principal"] == "user"
    assert failed["status"] == 401
    for line in requests:
        assert set(line) == {
            "time",
            "level",
            "logger",
            "message",
            "event",
            "request_id",
            "route",
            "method",
            "status",
            "duration_ms",
            "principal",
        }
        assert isinstance(line["duration_ms"], float)
        assert line["request_id"]
    events = [line for line in lines if line.get("event") == "security"]
    failure = next(e for e in events if e["type"] == "login.failed")
    assert failure["request_id"] == failed["request_id"]
    assert failure["level"] == "warning"
    assert failure["details"]["method"] == "password"
    everything = json.dumps(lines)
    for secret in (
        user.access_token,
        user.refresh_token,
        user.password,
        "wrong password!",
        "sEcReTqUeRyVaLuE123",
        user.user_id,  # the path's value: only its template is logged
        user.email,
        falcon_api.ip,
    ):
        assert secret not in everything


def test_metrics_count_requests_failures_refusals_and_reuse(
    falcon_api: FalconApi, client: falcon.testing.TestClient
) -> None:
    user = falcon_api.register()
    for _ in range(2):
        wrong = falcon_api.post("/api/auth", {"email": user.email, "password": "not it at all"})
        assert wrong.status == 401
    bad_token = falcon_api.get("/api/v1/me", token="not.a.token")
    assert bad_token.status == 401
    refreshed = falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert refreshed.status == 200
    falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    reused = falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert reused.json["code"] in ("refresh_token_reused", "invalid_refresh_token")
    # the login policy refuses a burst from one address (RL-1)
    burst = falcon_api.with_ip()
    statuses = [
        burst.post("/api/auth", {"email": user.email, "password": "still wrong"}).status
        for _ in range(30)
    ]
    assert 429 in statuses
    text = _metrics(client)
    assert _value(text, 'storno_http_requests_total{method="POST",route="/api/auth",status="401"}')
    assert _value(
        text, 'storno_http_request_duration_seconds_count{method="POST",route="/api/auth"}'
    ) == float(2 + len(statuses))
    assert _value(text, 'storno_auth_failures_total{kind="login",reason="mismatch"}') >= 2
    assert _value(text, 'storno_auth_failures_total{kind="access_token",reason="malformed"}') == 1
    assert _value(text, 'storno_rate_limit_refusals_total{policy="login"}') == statuses.count(429)
    assert _value(text, "storno_refresh_reuse_detections_total") >= 1
    assert "storno_mfa_lockouts_total 0.0" in text


def test_metrics_are_hidden_from_other_networks_and_through_a_proxy(
    falcon_api: FalconApi, client: falcon.testing.TestClient
) -> None:
    # a client resolved through the trusted proxy (the tests' own addresses: 10.x)
    assert falcon_api.get("/metrics").status == 404
    # a forwarding header the server did not resolve: a proxy it does not trust
    forged = client.simulate_get("/metrics", headers={"Forwarded": "for=198.51.100.1"})
    assert forged.status_code == 404
    assert forged.json["code"] == "not_found"


def test_metrics_off(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "data", metrics=())
    server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    try:
        client = falcon.testing.TestClient(create_app(server=server))
        assert client.simulate_get("/metrics").status_code == 404
        assert client.simulate_get("/health").status_code == 200
    finally:
        server.close()


def test_the_metrics_setting() -> None:
    from reference_server.settings import Settings

    assert Settings.from_env({"STORNO_METRICS": "off"}).metrics == ()
    local = Settings.from_env({}).metrics
    assert [str(n) for n in local] == ["127.0.0.0/8", "::1/128"]
    for name in ("localhost", " Loopback "):
        assert Settings.from_env({"STORNO_METRICS": name}).metrics == local
    assert [str(n) for n in Settings.from_env({"STORNO_METRICS": "10.0.0.0/8"}).metrics] == [
        "10.0.0.0/8"
    ]
    with pytest.raises(SettingsError, match="STORNO_METRICS"):
        Settings.from_env({"STORNO_METRICS": "0.0.0.0/0"})
    with pytest.raises(SettingsError, match="STORNO_LOG_FORMAT"):
        Settings.from_env({"STORNO_LOG_FORMAT": "xml"})
    assert Settings.from_env({}).log_flush_ms == 100
    assert Settings.from_env({"STORNO_LOG_FLUSH_MS": "0"}).log_flush_ms == 0
    assert Settings.from_env({"STORNO_LOG_FLUSH_MS": "10000"}).log_flush_ms == 10_000
    for wrong in ("-1", "10001", "0.5", "soon"):
        with pytest.raises(SettingsError, match="STORNO_LOG_FLUSH_MS"):
            Settings.from_env({"STORNO_LOG_FLUSH_MS": wrong})


# -- serve: several workers, multi-process metrics -------------------------------------------


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our loopback server
        body: bytes = answer.read()
        return body


def _health_count(url: str) -> float:
    text = _get(url + "/metrics").decode()
    return _value(text, 'storno_http_requests_total{method="GET",route="/health",status="200"}')


_TWO = ("--workers", "2", "--graceful-timeout", "5")


def _workers(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


@pytest.mark.slow
def test_serve_adds_up_every_worker_and_keeps_counts_across_restarts(tmp_path: Path) -> None:
    if not _port_open("127.0.0.1", 6379):
        missing_service("redis", "127.0.0.1:6379")
    port = _free_port()
    env = subprocess_env(
        **TEST_ENV,
        STORNO_DATA_DIR=str(tmp_path / "data"),
        STORNO_RATELIMIT_URI=REDIS_URL,  # shared limits: several workers are allowed
    )
    err_path = tmp_path / "serve.err"
    with err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reference_server", "serve", "--port", str(port), *_TWO],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, url, err_path)
        deadline = time.monotonic() + 30
        while len(_workers(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for the second worker process, not for test time
        for _ in range(20):
            _get(url + "/health")
        before = _health_count(url)
        assert before >= 21  # every request, whichever worker answered it
        old = _workers(process.pid)
        assert len(old) == 2
        for pid in old:  # gunicorn replaces them: their counts must survive
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while (not _workers(process.pid) or _workers(process.pid) & old) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)  # waiting for gunicorn to replace the workers
        _wait_healthy(process, url, err_path)
        assert not _workers(process.pid) & old
        assert _health_count(url) >= before + 1
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
