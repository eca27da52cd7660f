"""The layering of DESIGN.md, checked on the real import graph by import-linter (the contracts
are in pyproject.toml): the core never imports the server or a web framework, arrows point down
only, capabilities never import each other, and there is no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_import_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(  # noqa: S603 - our own venv's tool, fixed arguments
        [str(lint), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # the contracts are all there and were all checked
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout[-2000:]
