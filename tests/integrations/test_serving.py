"""Running under gunicorn (storno_security.integrations.serving): the options, the
application each worker loads, the metric files of a dead worker, and what a Redis says about
evicting keys. gunicorn itself is not started here (``serve`` is in tests/server)."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path
from typing import Any

import attrs
import pytest

from storno_security.integrations.serving import (
    MULTIPROC_ENV,
    gunicorn_options,
    redis_eviction_problem,
    run_gunicorn,
)
from tests.ratelimit.conftest import free_port, redis_server

OPTIONS: dict[str, Any] = {
    "host": "::1",
    "port": 8123,
    "workers": 3,
    "timeout": 30,
    "graceful_timeout": 10,
    "log_level": "info",
    "proc_name": "storno-test",
}


@attrs.frozen
class _Worker:
    pid: int


def test_plain_options_have_no_log_config_and_no_metric_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    options = gunicorn_options(json_logs=False, **OPTIONS)
    assert options["bind"] == ["[::1]:8123"]
    assert options["worker_class"] == "storno_security.integrations.asgi_worker.UvicornWorker"
    assert "logconfig_dict" not in options
    assert "child_exit" not in options


def test_a_dead_workers_live_gauges_leave_the_metric_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # prometheus_client picks multi-process mode at its first import, for the whole process:
    # imported before the variable is set, this process's metrics stay in memory
    importlib.import_module("prometheus_client")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    options = gunicorn_options(json_logs=True, **OPTIONS)
    assert options["logconfig_dict"]["root"]["level"] == "INFO"
    live, kept = tmp_path / "gauge_liveall_4242.db", tmp_path / "counter_4242.db"
    live.write_bytes(b"")
    kept.write_bytes(b"")
    options["child_exit"](None, _Worker(pid=4242))
    assert not live.exists()
    assert kept.exists()  # a counter stays in the sums


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The gunicorn applications run_gunicorn would run (the server itself is not started)."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    applications: list[Any] = []

    def run(self: Any) -> None:
        applications.append(self)

    monkeypatch.setattr(BaseApplication, "run", run)
    return applications


def test_gunicorn_gets_the_options_and_each_worker_loads_the_application(
    started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    application, ready = object(), []
    run_gunicorn(
        gunicorn_options(json_logs=False, **OPTIONS),
        load=lambda: application,
        on_ready=lambda: ready.append(True),
    )
    (app,) = started
    assert (app.cfg.bind, app.cfg.workers, app.cfg.proc_name) == (
        ["[::1]:8123"],
        3,
        "storno-test",
    )
    assert app.cfg.control_socket_disable is True
    assert app.wsgi() is application
    app.cfg.when_ready(None)
    assert ready == [True]


def test_a_gunicorn_without_a_control_socket_is_run_as_it_is(
    started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gunicorn.config  # type: ignore[import-untyped]

    older = [s for s in gunicorn.config.KNOWN_SETTINGS if s.name != "control_socket_disable"]
    monkeypatch.setattr(gunicorn.config, "KNOWN_SETTINGS", older)  # gunicorn < 25.1
    run_gunicorn(gunicorn_options(json_logs=False, **OPTIONS), load=object, on_ready=lambda: None)
    (app,) = started
    assert "control_socket_disable" not in app.cfg.settings
    assert app.cfg.workers == 3


def test_what_a_redis_says_about_evicting_keys(tmp_path: Path) -> None:
    import redis

    unreachable = redis_eviction_problem(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    assert unreachable[0] is None
    assert "unreachable" in str(unreachable[1])
    with redis_server(tmp_path, maxmemory_policy="noeviction") as (port, _):
        url = f"redis://127.0.0.1:{port}/0"
        assert redis_eviction_problem(url, timeout=5) == (None, None)
        admin = redis.Redis(port=port, socket_timeout=5)
        password = secrets.token_hex(8)
        try:
            # a managed service's user, refused CONFIG and INFO: the policy is unknown
            admin.acl_setuser(
                "app",
                enabled=True,
                passwords=[f"+{password}"],
                commands=["+@all", "-config", "-info"],
                keys=["*"],
            )
            hidden = f"redis://app:{password}@127.0.0.1:{port}/0"
            problem, note = redis_eviction_problem(hidden, timeout=5)
            assert problem is None
            assert "will not tell" in str(note)
            admin.config_set("maxmemory-policy", "allkeys-lru")
            problem, note = redis_eviction_problem(url, timeout=5)
            assert "'allkeys-lru'" in str(problem)
            assert note is None
        finally:
            admin.close()
