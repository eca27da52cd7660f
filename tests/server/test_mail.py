"""The directory mail sink (a local mail catcher): nothing to read before the first mail, then
each mail in a file only its owner reads, in a directory it creates on the first send."""

from __future__ import annotations

import stat
from pathlib import Path

from reference_server.mail import DirectoryEmailSink


def test_the_directory_sink_is_empty_until_it_sends_then_keeps_mail_private(
    tmp_path: Path,
) -> None:
    sink = DirectoryEmailSink(tmp_path / "mail")
    assert sink.read_all() == []
    assert not (tmp_path / "mail").exists()
    sink.send(to="ana@example.eu", subject="Confirm", body="https://localhost/confirm#t=1")
    sink.send(to="ion@example.eu", subject="Reset", body="https://localhost/reset#t=2")
    assert sorted(sink.read_all(), key=lambda mail: mail["to"]) == [
        {"to": "ana@example.eu", "subject": "Confirm", "body": "https://localhost/confirm#t=1"},
        {"to": "ion@example.eu", "subject": "Reset", "body": "https://localhost/reset#t=2"},
    ]
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    files = list((tmp_path / "mail").glob("*.json"))
    assert len(files) == 2
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}
