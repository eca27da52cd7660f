"""Every SPEC.md rule this release implements is named by at least one test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

#: The rules implemented so far. A rule joins this list with the code that implements it.
IMPLEMENTED = (
    *(f"PW-{n}" for n in range(1, 6)),
    *(f"JWT-{n}" for n in range(1, 4)),
    *(f"REF-{n}" for n in range(1, 6)),
    *(f"RBAC-{n}" for n in range(1, 7)),
    *(f"KEY-{n}" for n in range(1, 6)),
    "ACC-1",
    "ACC-2",
    "ACC-3",
    "ACC-4",
    "ACC-5",
    "ACC-6",
    "ACC-7",
    *(f"SRV-{n}" for n in range(1, 5)),
    *(f"VLT-{n}" for n in range(1, 4)),
    *(f"LIC-{n}" for n in range(1, 5)),
    *(f"XML-{n}" for n in range(1, 4)),
    *(f"RL-{n}" for n in range(1, 6)),
    *(f"MFA-{n}" for n in range(1, 7)),
    *(f"PK-{n}" for n in range(1, 5)),
)


def _named_rules() -> set[str]:
    pattern = re.compile(r"""spec\(\s*["']([A-Z]+-\d+)["']\s*\)""")
    found: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        found.update(pattern.findall(path.read_text()))
    return found


@pytest.mark.parametrize("rule", IMPLEMENTED)
def test_rule_has_a_test(rule: str) -> None:
    assert rule in _named_rules(), f"no test is marked @pytest.mark.spec({rule!r})"
