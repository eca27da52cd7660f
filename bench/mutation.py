"""Mutation testing of the security core: how many small faults each module's own tests catch.

Each mutant changes one thing in one module (a comparison, a boolean operator, a ``not``, an
integer constant, ``True``/``False``, an arithmetic or bitwise operator, or a ``raise`` turned
into ``pass``), then runs that module's tests against it, in a private copy of the repository.
A mutant is *killed* when the tests fail (or run past the timeout), and *survives* when they
pass. The score is killed / all. Docstrings, annotations, ``__all__`` and log or error message
text are never mutated.

Not part of every CI run (a full run takes long): it is a bench, run by hand or on a schedule::

    python bench/mutation.py                      # every module, every mutant
    python bench/mutation.py --module _jws --module vault
    python bench/mutation.py --sample 40 --seed 1  # a reproducible sample per module
    python bench/mutation.py --list-survivors      # print each surviving mutant

The target is a score of at least 90% per module; the table printed at the end says which
module meets it.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.90

#: module name -> (its source files, the tests that hold it)
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "_jws": (
        ("storno_security/_jws.py",),
        ("tests/test_private_helpers.py", "tests/tokens", "tests/license"),
    ),
    "_encoding": (
        ("storno_security/_encoding.py",),
        ("tests/test_private_helpers.py", "tests/api_keys", "tests/vault", "tests/tokens"),
    ),
    "tokens/access": (("storno_security/tokens/access.py",), ("tests/tokens",)),
    "vault": (
        (
            "storno_security/vault/_layers.py",
            "storno_security/vault/keys.py",
            "storno_security/vault/ring.py",
        ),
        ("tests/vault", "tests/vectors"),
    ),
    "api_keys": (
        (
            "storno_security/api_keys/format.py",
            "storno_security/api_keys/manager.py",
            "storno_security/api_keys/policy.py",
            "storno_security/api_keys/scopes.py",
        ),
        ("tests/api_keys", "tests/vectors"),
    ),
    "mfa/totp": (("storno_security/mfa/totp.py",), ("tests/mfa",)),
    "passwords": (
        ("storno_security/_bcrypt.py", "storno_security/_bcrypt_policy.py"),
        ("tests/passwords",),
    ),
}

_SWAP_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SWAP_BINOP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
    ast.Mod: ast.FloorDiv,
}


@dataclass(frozen=True)
class Mutant:
    path: str
    index: int  # the index-th mutation site of the file, in walk order
    line: int
    what: str


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, ``__all__``, message text."""
    skip: set[int] = set()

    def cover(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            cover(first)
        if isinstance(node, ast.AnnAssign | ast.arg):
            cover(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            cover(node.returns)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in ("__all__", "__slots__") for t in node.targets
        ):
            cover(node.value)
        if isinstance(node, ast.JoinedStr):
            cover(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            cover(node)
    return skip


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str, Callable[[], None]]]:
    """Every mutation site, in walk order: (node, description, apply)."""
    skip = _skipped(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                other = _SWAP_COMPARE.get(type(op))
                if other is not None:
                    yield node, f"{type(op).__name__} -> {other.__name__}", _set_op(node, i, other)
        elif isinstance(node, ast.BoolOp):
            other_bool: type[ast.boolop] = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield (
                node,
                f"{type(node.op).__name__} -> {other_bool.__name__}",
                _set_attr(node, "op", other_bool()),
            )
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BINOP:
            other_op = _SWAP_BINOP[type(node.op)]
            yield (
                node,
                f"{type(node.op).__name__} -> {other_op.__name__}",
                _set_attr(node, "op", other_op()),
            )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not x -> x", _replace(node, node.operand)
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield (
                node,
                f"{node.value} -> {not node.value}",
                _set_attr(node, "value", not node.value),
            )
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield (
                node,
                f"{node.value} -> {node.value + 1}",
                _set_attr(node, "value", node.value + 1),
            )
        elif isinstance(node, ast.Raise):
            yield node, "raise -> pass", _replace(node, ast.Pass())


def _set_op(node: ast.Compare, i: int, op: type[ast.cmpop]) -> Callable[[], None]:
    def apply() -> None:
        node.ops[i] = op()

    return apply


def _set_attr(node: ast.AST, name: str, value: object) -> Callable[[], None]:
    def apply() -> None:
        setattr(node, name, value)

    return apply


def _replace(node: ast.AST, by: ast.AST) -> Callable[[], None]:
    def apply() -> None:
        node._replace_by = by  # type: ignore[attr-defined]

    return apply


class _Replacer(ast.NodeTransformer):
    """Puts the marked node's replacement in its place."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        by = getattr(node, "_replace_by", None)
        return by if by is not None else super().generic_visit(node)


def mutants_of(path: str) -> list[Mutant]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return [
        Mutant(path, i, getattr(node, "lineno", 0), what)
        for i, (node, what, _) in enumerate(_sites(tree))
    ]


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse((ROOT / mutant.path).read_text(encoding="utf-8"))
    for i, (_, _, apply) in enumerate(_sites(tree)):
        if i == mutant.index:
            apply()
            break
    tree = _Replacer().visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def _copy_repo(into: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH, fixed arguments
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = into / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> str:
    """``"pass"``, ``"fail"`` or ``"timeout"``."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CI", None)  # a mutant run may skip what needs a missing service
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        *tests,
    ]
    try:
        done = subprocess.run(  # noqa: S603 - our own test command
            command, cwd=copy, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "pass" if done.returncode == 0 else "fail"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES))
    parser.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--list-survivors", action="store_true")
    args = parser.parse_args()
    chosen = args.module or sorted(MODULES)
    rows: list[tuple[str, int, int, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="storno-mutation-") as tmp:
        copy = Path(tmp)
        _copy_repo(copy)
        for name in chosen:
            files, tests = MODULES[name]
            started = time.perf_counter()
            if _run_tests(copy, tests, args.timeout * 3) != "pass":
                print(f"{name}: the tests fail without a mutant; skipped", flush=True)
                continue
            mutants = [m for path in files for m in mutants_of(path)]
            if args.sample and len(mutants) > args.sample:
                mutants = sorted(
                    random.Random(f"{args.seed}:{name}").sample(mutants, args.sample),
                    key=lambda m: (m.path, m.index),
                )
            killed = timeouts = 0
            survivors: list[Mutant] = []
            for mutant in mutants:
                target = copy / mutant.path
                original = target.read_text(encoding="utf-8")
                target.write_text(mutated_source(mutant), encoding="utf-8")
                try:
                    outcome = _run_tests(copy, tests, args.timeout)
                finally:
                    target.write_text(original, encoding="utf-8")
                if outcome == "pass":
                    survivors.append(mutant)
                else:
                    killed += 1
                    timeouts += outcome == "timeout"
            seconds = time.perf_counter() - started
            rows.append((name, len(mutants), killed, timeouts, seconds))
            score = killed / len(mutants) if mutants else 1.0
            print(f"{name}: {killed}/{len(mutants)} killed ({score:.1%}) in {seconds:.0f} s")
            if args.list_survivors:
                for m in survivors:
                    print(f"  survived: {m.path}:{m.line} {m.what}")
            sys.stdout.flush()
    print()
    print(f"{'module':<16}{'mutants':>9}{'killed':>8}{'timeouts':>10}{'score':>8}  target")
    missed = False
    for name, total, killed, timeouts, _ in rows:
        score = killed / total if total else 1.0
        met = score >= TARGET
        missed |= not met
        print(
            f"{name:<16}{total:>9}{killed:>8}{timeouts:>10}{score:>8.1%}  "
            f"{'met' if met else 'missed'} (>= {TARGET:.0%})"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
