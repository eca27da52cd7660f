"""``storno-security serve`` in-process: its flags reach gunicorn and (through the environment)
its workers, keys and schema are made before any worker starts, and each worker loads the ASGI
application. gunicorn's arbiter, which would fork the workers, is replaced by loading one
application here; ``test_cli.py`` runs the real process."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from storno_security.integrations.asgi_front import AsgiFront
from tests.server.test_cli import data_dir, run

__all__ = ["data_dir"]


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """(gunicorn's configuration, the application a worker loads) of each ``serve``."""
    started: list[tuple[Any, Any]] = []

    def run_arbiter(application: Any) -> None:  # what the arbiter does, without forking
        application.cfg.when_ready(None)
        started.append((application.cfg, application.load()))

    monkeypatch.setattr(BaseApplication, "run", run_arbiter)
    # serve hands its settings to the workers in these; restore them afterwards
    for name in ("STORNO_HOST", "STORNO_PORT", "STORNO_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORNO_METRICS", "off")
    monkeypatch.setenv("STORNO_LOG_FORMAT", "text")
    return started


def _get(front: AsgiFront, path: str) -> int:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "http_version": "1.1",
        "scheme": "http",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(front(scope, receive, send))
    status: int = sent[0]["status"]
    return status


@pytest.mark.parametrize("vault_key_file", [False, True], ids=["vault-ring", "vault-key-file"])
def test_serve_passes_its_flags_to_gunicorn_and_to_the_workers(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    loaded: list[tuple[Any, Any]],
    vault_key_file: bool,
) -> None:
    if vault_key_file:
        from storno_security.integrations.keyfiles import generate_vault_key

        made = tmp_path / "made-elsewhere"
        key_file = made / f"{generate_vault_key(made).kid}.key"
        monkeypatch.setenv("STORNO_VAULT_KEY_FILE", str(key_file))
    elsewhere = tmp_path / "elsewhere"
    code, out, err = run(
        capsys,
        "serve",
        "--data-dir",
        str(elsewhere),
        "--host",
        "localhost",
        "--port",
        "8000",
        "--workers",
        "3",
        "--threads",
        "2",
        "--timeout",
        "7",
        "--access-log",
    )
    assert code == 0, err
    assert out == "storno-security: serving on http://localhost:8000\n"
    # memory rate limits: one worker, and the operator is told why
    assert "running 1 worker, not 3" in err
    assert f"1 worker(s) x 2 threads, data in {elsewhere}" in err
    [(cfg, app)] = loaded
    assert cfg.bind == ["localhost:8000"]
    assert (cfg.workers, cfg.timeout) == (1, 7)
    assert cfg.logconfig_dict == {}  # text logs: gunicorn keeps its own format
    # the workers read the flags from the environment
    assert os.environ["STORNO_DATA_DIR"] == str(elsewhere)
    assert (os.environ["STORNO_HOST"], os.environ["STORNO_PORT"]) == ("localhost", "8000")
    assert os.environ["STORNO_WORKERS"] == "1"
    # keys and schema were made before the workers (in the data directory the flag named)
    assert (elsewhere / "keys" / "jwt" / "ACTIVE").is_file()
    assert not data_dir.exists()
    assert isinstance(app, AsgiFront)
    try:
        assert _get(app, "/health") == 200
    finally:
        app.close()
    holders = elsewhere / "keys" / "vault" / "holders"
    if vault_key_file:  # no ring in the data directory: nothing for `vault retire-old` to wait on
        assert not holders.exists()
    else:  # the worker told `vault retire-old` which key it seals with
        active = (elsewhere / "keys" / "vault" / "ACTIVE").read_text().strip()
        marker = holders / f"{socket.gethostname()}@{os.getpid()}"
        assert marker.read_text().strip() == active
