"""Mail: where the server sends it (sinks) and what it says (the kit's mail, rendered).

The kit asks for a confirmation, a reset or an invitation mail (:class:`storno_security.kit.Mail`);
:class:`KitMailer` renders it with links on the public URL and hands it to a sink. Sinks never
log a body (it holds the token).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import attrs

from storno_security.integrations.keyfiles import write_secret_file
from storno_security.kit import Mail

__all__ = ["DirectoryEmailSink", "EmailSink", "KitMailer", "LogEmailSink", "MemoryEmailSink"]

log = logging.getLogger("reference_server")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class EmailSink(Protocol):
    """Where the server sends mail. Implementations must not log the body."""

    def send(self, *, to: str, subject: str, body: str) -> None: ...


class LogEmailSink:
    """Logs that a mail was sent, to whom and about what; never the body (it holds the token)."""

    def send(self, *, to: str, subject: str, body: str) -> None:
        log.info("email sink: %r to a %d-character address (body withheld)", subject, len(to))


@attrs.define
class MemoryEmailSink:
    """Keeps sent mail in memory: for tests and local development."""

    sent: list[dict[str, str]] = attrs.field(factory=list)

    def send(self, *, to: str, subject: str, body: str) -> None:
        self.sent.append({"to": to, "subject": subject, "body": body})


class DirectoryEmailSink:
    """Writes each mail as a JSON file (0600) in a directory: a local mail catcher for
    development and tests. The files hold links with tokens: never use it in production."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(self, *, to: str, subject: str, body: str) -> None:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        write_secret_file(
            self._directory / name,
            json.dumps({"to": to, "subject": subject, "body": body}).encode(),
        )

    def read_all(self) -> list[dict[str, str]]:
        if not self._directory.exists():
            return []
        return [json.loads(path.read_text()) for path in sorted(self._directory.glob("*.json"))]


class KitMailer:
    """Renders the kit's mail with links on ``public_url`` and sends it through ``sink``."""

    def __init__(self, sink: EmailSink, *, public_url: str, invitation_days: int) -> None:
        self._sink = sink
        self._base = public_url.rstrip("/")
        self._days = invitation_days

    def send(self, mail: Mail) -> None:
        if mail.kind == "email_confirmation":
            link = f"{self._base}/confirm-email?token={quote(mail.token or '')}"
            subject = "Confirm your email address"
            body = (
                "Confirm the address of your account by opening this link within 24 hours:\n"
                f"{link}\nIf you did not create an account, ignore this mail.\n"
            )
        elif mail.kind == "password_reset":
            link = f"{self._base}/reset-password?token={quote(mail.token or '')}"
            subject = "Reset your password"
            body = (
                "Someone asked to reset the password of your account.\n"
                f"Open this link within an hour to choose a new one:\n{link}\n"
                "If it was not you, ignore this mail; your password stays as it is.\n"
            )
        elif mail.kind == "invitation":
            # The name is the inviter's text: one line, shortened, quoted.
            name = _CONTROL.sub(" ", mail.organization_name or "").strip()[:80]
            subject = f'You were invited to "{name}"'
            body = (
                f'You were invited to join the organization "{name}".\n'
                "Nothing changes unless you accept. Accept or decline it within "
                f"{self._days} days, after signing in with this address (and confirming it):\n"
                f"{self._base}/invitations\n"
                "If you do not know this organization, decline the invitation or ignore "
                "this mail.\n"
            )
        else:  # pragma: no cover - the kit sends only these three
            raise ValueError(f"unknown mail kind {mail.kind!r}")
        self._sink.send(to=mail.to, subject=subject, body=body)
