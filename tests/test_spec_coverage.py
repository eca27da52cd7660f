"""Rule tracing: every rule of docs/rules.md is held by at least one test that carries its id
on the test itself (``@pytest.mark.spec("PW-3")`` on the function, or on its class), never on
a whole file; the rules that no test holds yet are listed here by name, and each listed one
must really be untraced.

The marks are read from the test files' syntax trees, so a rule id in a comment, a string or
a helper does not count.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
RULES_DOC = TESTS.parent / "docs" / "rules.md"

#: Rules of docs/rules.md that no test holds yet, with the reason. Empty is the goal.
NOT_YET_TRACED: dict[str, str] = {}

_RULE_ID = re.compile(r"[A-Z]+-\d+")


def documented_rules() -> list[str]:
    """The rule ids docs/rules.md defines (its ``- **ID**`` items), in order."""
    text = RULES_DOC.read_text(encoding="utf-8")
    return re.findall(r"^- \*\*([A-Z]+-\d+)\*\*", text, flags=re.MULTILINE)


def _spec_ids(decorators: list[ast.expr]) -> list[str]:
    found = []
    for node in decorators:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "spec"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return found


def _is_test(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


@functools.cache
def traced() -> dict[str, list[str]]:
    """Rule id -> the tests (``path::name``) that carry it."""
    tests_of: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(TESTS.parent)
        for node in tree.body:
            if _is_test(node):
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                for rule in _spec_ids(node.decorator_list):
                    tests_of[rule].append(f"{where}::{node.name}")
            elif isinstance(node, ast.ClassDef):
                on_class = _spec_ids(node.decorator_list)
                for member in node.body:
                    if _is_test(member):
                        assert isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
                        for rule in on_class + _spec_ids(member.decorator_list):
                            tests_of[rule].append(f"{where}::{node.name}::{member.name}")
    return tests_of


def _file_wide_marks() -> list[str]:
    """Files whose module-level ``pytestmark`` names a rule."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
            ):
                values = (
                    node.value.elts
                    if isinstance(node.value, ast.List | ast.Tuple)
                    else [node.value]
                )
                if _spec_ids(list(values)):
                    found.append(str(path.relative_to(TESTS.parent)))
    return found


RULES = documented_rules()


def test_the_rules_document_defines_the_rules() -> None:
    assert len(RULES) >= 60
    assert len(RULES) == len(set(RULES)), "a rule id is defined twice"


@pytest.mark.parametrize("rule", RULES)
def test_rule_has_a_test(rule: str) -> None:
    if rule in NOT_YET_TRACED:
        assert rule not in traced(), f"{rule} is traced now: remove it from NOT_YET_TRACED"
        pytest.skip(f"{rule}: {NOT_YET_TRACED[rule]}")
    assert traced().get(rule), f"no test carries @pytest.mark.spec({rule!r})"


def test_untraced_rules_are_listed() -> None:
    """The list a reviewer reads: documented rules no test carries (must match NOT_YET_TRACED)."""
    untraced = sorted(set(RULES) - set(traced()))
    assert untraced == sorted(NOT_YET_TRACED), f"untraced rules: {untraced}"


def test_every_mark_names_a_documented_rule() -> None:
    unknown = {rule: tests for rule, tests in traced().items() if rule not in RULES}
    assert not unknown, f"marks of rules docs/rules.md does not define: {unknown}"


def test_no_file_wide_rule_marks() -> None:
    assert _file_wide_marks() == [], "mark the tests that hold the rule, not the whole file"


def test_rule_ids_cited_in_the_docs_are_defined() -> None:
    """A rule id cited anywhere in docs/ is one docs/rules.md defines (or an algorithm name)."""
    not_rules = {
        "CRC-32",
        "AES-256",
        "SHA-1",
        "SHA-256",
        "SHA-384",
        "SHA-512",
        "RSA-2048",
        "RSA-4096",
    }
    cited: dict[str, set[str]] = defaultdict(set)
    for doc in sorted((TESTS.parent / "docs").glob("*.md")):
        for rule in _RULE_ID.findall(doc.read_text(encoding="utf-8")):
            if rule not in not_rules and re.fullmatch(r"[A-Z]{2,4}-\d{1,2}", rule):
                cited[rule].add(doc.name)
    undefined = {rule: sorted(docs) for rule, docs in cited.items() if rule not in RULES}
    assert not undefined, f"rule ids cited but not defined in docs/rules.md: {undefined}"


def test_review_findings_are_filed_by_subject() -> None:
    """Regression tests live with the tests of what they test (marked ``finding``), not in
    catch-all files named after the review."""
    catch_all = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("*review_fix*.py"))
    assert catch_all == []
