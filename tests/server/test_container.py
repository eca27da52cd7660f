"""The container's start path without a container daemon: ``docker/entrypoint.sh`` runs as a
non-root user over a fresh virtual environment holding only what the image installs (the
package with its ``server`` extra), and the server it starts answers ``/health`` and
``/metrics``. The Dockerfile and compose file are checked for what they promise (non-root,
slim base, no build tools in the final stage, a data volume, Redis with persistence)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
TEST_USER = "storno-ci"


def _final_stage(dockerfile: str) -> str:
    return dockerfile.rsplit("\nFROM ", 1)[1]


def test_the_dockerfile_builds_a_slim_non_root_image_without_build_tools() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2
    assert all(s.startswith("python:${PYTHON_VERSION}-slim-") for s in stages)
    final = _final_stage(text)
    assert "USER storno:storno" in final
    assert 'VOLUME ["/data"]' in final
    assert 'ENTRYPOINT ["storno-entrypoint"]' in final
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final
    assert "pip uninstall --yes pip" in text  # no installer left in the image's environment
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert "storno-data" in ignored


def test_compose_runs_postgres_and_a_persistent_redis() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"server", "db", "redis"}
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert redis_command[redis_command.index("--maxmemory-policy") + 1] == "noeviction"
    server = services["server"]
    assert server["environment"]["STORNO_REDIS_URL"].startswith("redis://redis")
    assert server["environment"]["STORNO_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "storno-data:/data" in server["volumes"]
    assert server["ports"] == ["127.0.0.1:8000:8000"]


# -- the entrypoint, as the image runs it --------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        pytest.fail(f"{name} is needed to run the entrypoint as another user")
    return path


def _run_as() -> list[str]:
    """The command prefix that runs as an unprivileged user: ourselves when not root, else a
    user made for the test."""
    if os.getuid() != 0:
        return []
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            [
                _tool("useradd"),
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ],
            check=True,
            timeout=60,
        )
    # setpriv executes the command in its own place (runuser would stay as the parent)
    return [_tool("setpriv"), f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups"]


def _owner(path: Path) -> None:
    if os.getuid() == 0:
        shutil.chown(path, TEST_USER, TEST_USER)


def _usable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _python() -> str:
    """A Python the unprivileged user can run (pyenv's may live under a private /root)."""
    candidates = [Path(sys.executable).resolve(), Path("/usr/local/bin/python3").resolve()]
    candidates.append(Path("/usr/bin/python3").resolve())
    for candidate in candidates:
        if candidate.exists() and (os.getuid() != 0 or _usable_by_others(candidate)):
            return str(candidate)
    pytest.fail("no Python that an unprivileged user can run")


@pytest.fixture(scope="module")
def fresh_venv() -> Iterator[Path]:
    """A virtual environment with the package and its ``server`` extra only, readable by the
    unprivileged user (outside pytest's private temporary directory)."""
    base = Path(tempfile.mkdtemp(prefix="storno-container-"))
    base.chmod(0o755)
    try:
        wheels = base / "wheels"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(wheels),
                str(ROOT),
            ],
            check=True,
            timeout=300,
        )
        (wheel,) = wheels.glob("storno_security-*.whl")
        venv = base / "venv"
        subprocess.run([_python(), "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--only-binary=:all:",  # as the Dockerfile: no compiler needed
                f"{wheel}[server,postgres,redis]",
            ],
            check=True,
            timeout=600,
        )
        subprocess.run([_tool("chmod"), "-R", "a+rX", str(base)], check=True, timeout=60)
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _entrypoint_env(venv: Path, data: Path, port: int) -> dict[str, str]:
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data),
        "LANG": "C.UTF-8",
        "STORNO_DATA_DIR": str(data),
        "STORNO_HOST": "127.0.0.1",
        "STORNO_PORT": str(port),
        "STORNO_PASSWORD_COST": "4",
    }


@pytest.mark.slow
def test_the_entrypoint_starts_the_server_as_a_non_root_user(fresh_venv: Path) -> None:
    prefix = _run_as()
    base = fresh_venv.parent
    data = base / "data"
    data.mkdir(mode=0o700)
    _owner(data)
    # the image has the script at its own path; the checkout may be unreadable to the user
    entrypoint = base / "entrypoint.sh"
    shutil.copyfile(ENTRYPOINT, entrypoint)
    entrypoint.chmod(0o755)
    port = _free_port()
    env = _entrypoint_env(fresh_venv, data, port)
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, _tool("env"), *(f"{k}={v}" for k, v in env.items()), str(entrypoint)],
            env={},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"the entrypoint exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:  # noqa: S310
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer from the server: {log.read_text()[-3000:]}")
                time.sleep(0.2)  # waiting for a real process to listen, not for test time
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:  # noqa: S310
            assert b"storno_http_requests_total" in answer.read()
        # the server's files belong to the unprivileged user, private to it
        keys = data / "keys"
        assert keys.is_dir()
        assert keys.stat().st_uid == (pwd.getpwnam(TEST_USER).pw_uid if prefix else os.getuid())
        assert (data / "storno.db").stat().st_mode & 0o077 == 0
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_entrypoint_refuses_root(tmp_path: Path) -> None:
    if os.getuid() != 0:
        missing_service("root", "only root can show the refusal to run as root")
    result = subprocess.run(
        [_tool("sh"), str(ENTRYPOINT), "--version"],
        env={"PATH": "/usr/bin:/bin", "STORNO_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "refusing to run as root" in result.stderr
    assert not (tmp_path / "data").exists()
