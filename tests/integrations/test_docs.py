"""Every snippet of docs/fastapi.md and docs/flask.md is executed: the Python blocks of a guide
run in order as one script, whose output must be the guide's ``text`` block (``...`` stands
for any text); a ``pip install`` names extras that exist and are installed here; a server
command starts and serves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ("fastapi.md", "flask.md")
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(guide: str, language: str) -> list[str]:
    text = (ROOT / "docs" / guide).read_text(encoding="utf-8")
    return [body for kind, body in _BLOCK.findall(text) if kind == language]


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES)
def test_the_python_snippets_run_and_print_what_the_guide_says(guide: str, tmp_path: Path) -> None:
    script = tmp_path / "guide.py"
    script.write_text("\n".join(blocks(guide, "python")), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [expected] = blocks(guide, "text")
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    assert re.fullmatch(pattern, result.stdout, re.DOTALL), result.stdout


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = project["project"]["optional-dependencies"]
    return extras


def _installed(requirement: str, extras: dict[str, list[str]]) -> None:
    name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]
    if name == "storno-security":
        for extra in re.findall(r"\[(.*?)\]", requirement)[0].split(","):
            for inner in extras[extra]:
                _installed(inner, extras)
        return
    assert metadata.version(name), name


@pytest.mark.parametrize("guide", GUIDES)
def test_the_install_commands_name_installed_extras(guide: str) -> None:
    extras = _extras()
    commands = [c for b in blocks(guide, "sh") for c in b.splitlines() if c.startswith("pip ")]
    assert commands, "the guide says how to install"
    for command in commands:
        words = shlex.split(command.split("#", 1)[0])
        assert words[:2] == ["pip", "install"], command
        for requirement in words[2:]:
            named = re.findall(r"\[(.*?)\]", requirement)[0].split(",")
            assert set(named) <= set(extras), f"unknown extra in {command}"
            _installed(requirement, extras)


@pytest.mark.slow
def test_the_flask_guide_serves_the_example_with_its_command() -> None:
    [command] = [
        c for b in blocks("flask.md", "sh") for c in b.splitlines() if c.startswith("gunicorn ")
    ]
    words = shlex.split(command)
    port = _free_port()
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"  # a free port, not the guide's 8000
    process = subprocess.Popen(
        [sys.executable, "-m", *words],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the server says when it serves
            if "Booting worker" in line:
                break
        else:
            pytest.fail("gunicorn exited before serving")
        import httpx2

        answer = httpx2.get(f"http://127.0.0.1:{port}/api/auth/me", timeout=30)
        assert answer.status_code == 401
        assert answer.json()["code"] == "authentication_required"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
