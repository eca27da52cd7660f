"""``storno-security``: run the reference server and manage its keys, licenses and data.

Every command reads the same ``STORNO_*`` settings as the server (see ``docs/server.md``).
Exit codes: 0 success, 1 the operation failed (a bad key file, an invalid license or signature,
an unreachable database...), 2 bad usage (an unknown option, a malformed setting). Errors are
one line on stderr, never a traceback; no command ever prints key material.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib import metadata

from reference_server.cli import data, keys, license, serve, users, vault, xml
from reference_server.cli._common import PROG, CliError, Parser, UsageError, data_parent, fail
from reference_server.cli.serve import plan_workers
from storno_security.errors import (
    InvalidLicenseError,
    InvalidXmlSignatureError,
    LicenseKeyError,
    StoreError,
    XmlParseError,
)
from storno_security.integrations.env import missing_extra
from storno_security.integrations.keyfiles import KeyFileError
from storno_security.integrations.serving import WorkerPlan

__all__ = [
    "CliError",
    "UsageError",
    "WorkerPlan",
    "build_parser",
    "main",
    "plan_workers",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``storno-security <command> [<subcommand>] ...``."""
    parser = Parser(
        prog=PROG,
        description="Run the storno-security reference server and manage its keys and data. "
        "Settings come from STORNO_* environment variables (docs/server.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    commands.required = True
    shared = data_parent()
    for module in (serve, keys, license, xml, vault, data, users):
        module.add_parser(commands, shared)
    return parser


def _version() -> str:
    try:
        return metadata.version("storno-security")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown (not installed)"


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, InvalidLicenseError):
        return f"invalid license (reason: {exc.reason})"
    if isinstance(exc, InvalidXmlSignatureError):
        return f"invalid signature (reason: {exc.reason})"
    if isinstance(exc, XmlParseError):
        return f"the XML document is refused (reason: {exc.reason})"
    if isinstance(exc, LicenseKeyError):
        return f"unusable license key: {exc} (reason: {exc.reason})"
    if isinstance(exc, StoreError) and isinstance(exc.__cause__, ModuleNotFoundError):
        return missing_extra(exc.__cause__)
    if isinstance(exc, StoreError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        return f"{exc}{detail}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        fail(f"{PROG}: error: {exc}", 2)
    except (
        CliError,
        KeyFileError,
        InvalidLicenseError,
        InvalidXmlSignatureError,
        XmlParseError,
        LicenseKeyError,
        StoreError,
        OSError,
        ValueError,
    ) as exc:
        fail(f"{PROG}: error: {_failure_message(exc)}", 1)
    except ModuleNotFoundError as exc:  # a driver the settings need is not installed
        fail(f"{PROG}: error: {missing_extra(exc)}", 1)
    except KeyboardInterrupt:
        fail(f"{PROG}: interrupted", 130)


if __name__ == "__main__":  # pragma: no cover - python -m reference_server.cli
    raise SystemExit(main())
