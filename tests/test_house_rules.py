"""House rules of this project that can be checked mechanically."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import storno_security
from storno_security import errors

PACKAGE = Path(storno_security.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: The audited core: everything but the framework adapters, which may import frameworks and
#: read files (DESIGN.md); the assert rule holds for them too.
CORE = [path for path in SOURCES if "integrations" not in path.relative_to(PACKAGE).parts]


def _error_classes() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


def test_every_error_is_exported() -> None:
    classes = _error_classes()
    assert classes
    for cls in classes:
        assert cls.__name__ in errors.__all__, cls
        assert cls.__name__ in storno_security.__all__, cls
        assert getattr(storno_security, cls.__name__) is cls


def test_every_error_derives_from_the_root() -> None:
    for cls in _error_classes():
        assert issubclass(cls, errors.StornoSecurityError)


def test_root_error_is_never_raised_itself() -> None:
    for path in SOURCES:
        assert "raise StornoSecurityError" not in path.read_text(), path


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_sorted_and_complete() -> None:
    for name in [
        "storno_security",
        *(
            m.name
            for m in pkgutil.walk_packages(storno_security.__path__, "storno_security.")
            if not m.name.split(".")[-1].startswith("_")
        ),
    ]:
        if name.endswith((".sql", ".redis")):
            continue  # optional dependencies
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        assert list(exported) == sorted(exported, key=_isort_key), name
        for item in exported:
            assert hasattr(module, item), f"{name}.{item}"


def test_only_clock_reads_the_wall_clock() -> None:
    pattern = re.compile(r"datetime\.now\(|datetime\.utcnow\(|time\.time\(|date\.today\(")
    for path in CORE:
        if path.name == "clock.py":
            continue
        assert not pattern.search(path.read_text()), path


def test_compare_digest_only_in_the_compare_helper() -> None:
    for path in SOURCES:
        if path.name == "_compare.py":
            continue
        assert "compare_digest" not in path.read_text(), path


def test_no_assert_as_a_security_check() -> None:
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        assert not any(isinstance(node, ast.Assert) for node in ast.walk(tree)), path


def test_core_imports_no_framework_and_no_env() -> None:
    for path in CORE:
        text = path.read_text()
        assert "import falcon" not in text, path
        assert "os.environ" not in text, path
        assert "getenv" not in text, path


CAPABILITIES = (
    "storno_security",
    "storno_security.kit",
    "storno_security.accounts",
    "storno_security.api_keys",
    "storno_security.audit",
    "storno_security.license",
    "storno_security.mfa",
    "storno_security.oidc",
    "storno_security.passkeys",
    "storno_security.passwords",
    "storno_security.ratelimit",
    "storno_security.rbac",
    "storno_security.tokens",
    "storno_security.vault",
    "storno_security.xmlsig",
)


def test_every_capability_is_listed() -> None:
    packages = {
        f"storno_security.{path.name}"
        for path in PACKAGE.iterdir()
        if path.is_dir()
        and (path / "__init__.py").exists()
        # the layers above the capabilities (DESIGN.md), not capabilities themselves
        and path.name not in ("stores", "kit", "aio", "integrations")
    }
    assert packages <= set(CAPABILITIES), packages - set(CAPABILITIES)


@pytest.mark.parametrize("module", CAPABILITIES)
def test_import_has_no_side_effects(module: str) -> None:
    import subprocess
    import sys

    code = (
        "import time, datetime, secrets\n"
        "calls = []\n"
        "real = secrets.token_bytes\n"
        "secrets.token_bytes = lambda *a: calls.append(a) or real(*a)\n"
        f"import {module}\n"
        "assert not calls, calls\n"
        "import sys; assert not {'falcon', 'sqlalchemy', 'redis'} & set(sys.modules), sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_test_asserts_on_elapsed_time() -> None:
    """Speed is measured in bench/, never asserted in a test: no test reads a stopwatch
    (``time.monotonic`` stays allowed, for bounded waits on a server starting), and no
    Hypothesis setting brings a deadline back."""
    tests = Path(__file__).parent
    stopwatch = re.compile(r"perf_counter|process_time|settings\(.*deadline=(?!None)")
    offenders = [
        f"{path.relative_to(tests)}:{number}"
        for path in sorted(tests.rglob("*.py"))
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if stopwatch.search(line)
    ]
    assert offenders == []


def test_every_skip_goes_through_missing_service() -> None:
    """A test skips only through ``tests.conftest.missing_service``, which fails under
    ``CI=true`` instead: CI never passes by skipping."""
    tests = Path(__file__).parent
    allowed = {"conftest.py", "test_spec_coverage.py", Path(__file__).name}
    skipping = re.compile(r"pytest\.skip\(|skipif|importorskip|pytest\.mark\.skip\b")
    offenders = [
        f"{path.relative_to(tests)}:{number}"
        for path in sorted(tests.rglob("*.py"))
        if path.name not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if skipping.search(line)
    ]
    assert offenders == []


def test_every_coverage_exclusion_gives_its_reason() -> None:
    """Branch coverage is enforced (``.ci/run``); code is left out of it only with a reason on
    the same line (``# pragma: no cover - <why it cannot run>``), never silently."""
    root = PACKAGE.parent
    pragma = re.compile(r"#\s*pragma:\s*no\s*cover(?P<rest>.*)$", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted([*SOURCES, *(root / "reference_server").rglob("*.py")])
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if (found := pragma.search(line))
        and not re.fullmatch(r"\s*-\s*\S.{4,}", found.group("rest"))
    ]
    assert offenders == []
