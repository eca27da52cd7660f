"""Which running server processes seal with which vault key: one marker file per process in
the key ring's directory, so retiring an old key can be refused while a process that loaded
the ring before a rotation still seals with it (what it sealed after the re-seal would never
open again).

A serving process calls :func:`register_holder` once it has loaded the ring; a tool that would
delete keys calls :func:`live_holders`. A marker whose process is gone (on this host) is
removed; a marker of another host cannot be checked and counts as live, so a shared key
directory errs on the side of keeping the key. PID reuse can make a dead holder look live:
the refusal names the marker to delete once the operator has checked.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import attrs

__all__ = ["HOLDERS_DIR", "Holder", "live_holders", "register_holder"]

#: The markers' directory, inside the key ring's directory.
HOLDERS_DIR = "holders"
_NAME = re.compile(r"(?P<host>[A-Za-z0-9._-]{1,253})@(?P<pid>[0-9]{1,10})")
_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@attrs.frozen
class Holder:
    """A process that loaded the ring: its host, its PID, the active key id it seals with,
    and its marker file."""

    host: str
    pid: int
    kid: str
    path: Path


def _host() -> str:
    name = socket.gethostname() or "localhost"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:253]


def register_holder(ring_dir: Path, kid: str, *, pid: int | None = None) -> Path:
    """Record that this process (or ``pid``) seals with key ``kid``; returns the marker.

    Raises:
        ValueError: ``kid`` is not a key id.
        OSError: the marker cannot be written.
    """
    if not _KID.fullmatch(kid):
        raise ValueError("not a key id")
    holders = ring_dir / HOLDERS_DIR
    holders.mkdir(mode=0o700, exist_ok=True)
    marker = holders / f"{_host()}@{pid if pid is not None else os.getpid()}"
    temporary = marker.with_name(marker.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(kid + "\n")
    temporary.replace(marker)
    return marker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def live_holders(ring_dir: Path) -> list[Holder]:
    """The processes that may still seal with the key they loaded: markers of live processes
    on this host and every marker of another host. Markers of dead local processes are
    removed; unreadable ones are kept and reported with kid ``?`` (never ignored)."""
    holders = ring_dir / HOLDERS_DIR
    if not holders.is_dir():
        return []
    found = []
    here = _host()
    for marker in sorted(holders.iterdir()):
        match = _NAME.fullmatch(marker.name)
        if match is None:
            continue
        host, pid = match["host"], int(match["pid"])
        if host == here and not _alive(pid):
            marker.unlink(missing_ok=True)
            continue
        try:
            kid = marker.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            kid = "?"
        found.append(
            Holder(host=host, pid=pid, kid=kid if _KID.fullmatch(kid) else "?", path=marker)
        )
    return found
