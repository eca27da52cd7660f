"""What every command shares: one-line errors, settings, the key directory and its lock."""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reference_server.settings import Settings, SettingsError

__all__ = [
    "DEFAULT_LICENSE_ISSUER",
    "DS",
    "PROG",
    "SIGNED_PROPERTIES",
    "CliError",
    "UsageError",
    "count",
    "data_parent",
    "fail",
    "fingerprint",
    "keys_dir",
    "keys_lock",
    "note",
    "positive_int",
    "progress",
    "read_input",
    "say",
    "settings_of",
    "write_new_file",
]

PROG = "storno-security"
DEFAULT_LICENSE_ISSUER = str(attrs.fields(Settings).license_issuer.default)
_KID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
DS = "http://www.w3.org/2000/09/xmldsig#"
SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"


class CliError(Exception):
    """An operation failed: exit code 1 with this message."""


class UsageError(Exception):
    """The command line or the settings are wrong: exit code 2 with this message."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``storno-security keys: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: error: {message} (see {self.prog} --help)", 2)


def fail(message: str, code: int) -> NoReturn:
    text = " ".join(message.split())
    sys.stderr.write(text + "\n")
    raise SystemExit(code)


def say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def progress(label: str, done: int, total: int) -> None:
    """Progress of a long job on stderr (stdout keeps the report): about every tenth."""
    if done == total or done % max(1, total // 10) == 0:
        note(f"{label}: {done}/{total}")


# -- settings and key directories ---------------------------------------------------------------


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir)
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise UsageError(f"bad setting: {exc}") from None


def keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


@contextmanager
def keys_lock(settings: Settings) -> Iterator[None]:
    """The lock the server takes while generating keys, so a command never races a start."""
    keys = keys_dir(settings)
    if not keys.is_dir():
        raise CliError(f"no key directory {keys}; run: {PROG} keys generate")
    with os.fdopen(os.open(keys / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def active(directory: Path) -> str | None:
    marker = directory / "ACTIVE"
    return marker.read_text(encoding="ascii").strip() if marker.exists() else None


def check_kid(kid: str) -> str:
    if not _KID.fullmatch(kid):
        raise UsageError(f"{kid!r} is not a key id (letters, digits, '-' and '_')")
    return kid


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":")


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never overwrite, never widen permissions after the fact)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CliError(f"{path} exists already; refusing to overwrite it") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def data_parent() -> argparse.ArgumentParser:
    """The ``--data-dir`` option every command that touches the data directory takes."""
    data = Parser(add_help=False)
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the data directory (default: STORNO_DATA_DIR, else ./storno-data)",
    )
    return data
