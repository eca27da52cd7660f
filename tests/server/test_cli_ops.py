"""The operator's commands: ``--version``, progress on stderr for long jobs, the ``users``
commands (sessions, MFA lockout release, MFA disable: audited, through the kit), ``vault
retire-old`` waiting for every server that still seals with an old key, one line naming the
extra when a module is missing, and the ``mariadb`` extra."""

from __future__ import annotations

import os
import re
import shlex
import sys
import tomllib
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pyotp
import pytest

from reference_server.cli import build_parser
from reference_server.cli._common import progress
from storno_security.clock import FrozenClock, SystemClock
from storno_security.errors import InvalidMfaCodeError, MfaLockedError
from storno_security.events import SecurityEventType
from storno_security.integrations.keyfiles import generate_vault_key
from storno_security.integrations.keyholders import live_holders, register_holder
from storno_security.integrations.observability import Metrics, RequestRecord
from storno_security.kit import MfaRequired
from tests.server.test_cli import _seed_sealed_rows, data_dir, fresh_services, run

__all__ = ["data_dir"]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"storno-security {metadata.version('storno-security')}"
    assert err == ""


def test_progress_is_about_every_tenth() -> None:
    lines: list[str] = []
    import reference_server.cli._common as common

    original = common.note
    common.note = lines.append
    try:
        for done in range(1, 101):
            progress("t.c", done, 100)
        progress("u.c", 1, 1)
    finally:
        common.note = original
    assert lines == [f"t.c: {n}/100" for n in range(10, 101, 10)] + ["u.c: 1/1"]


def test_vault_rotate_reports_progress_on_stderr_only(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    services = fresh_services(data_dir, clock)
    _seed_sealed_rows(services)
    services.close()
    code, out, err = run(capsys, "vault", "rotate")
    assert code == 0, err
    assert "storno-security: app_storage_credentials.sealed: 1/1" in err
    assert "/1" not in out


def test_purges_say_what_they_do_on_stderr(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_services(data_dir, clock).close()
    code, out, err = run(capsys, "audit", "purge")
    assert code == 0
    assert "purging audit events older than" in err
    assert out.startswith("purged ")
    code, out, err = run(capsys, "accounts", "purge")
    assert code == 0
    assert "purging accounts deleted more than" in err


def _user_with_mfa(data_dir: Path, clock: FrozenClock) -> tuple[str, str, str]:
    services = fresh_services(data_dir, clock)
    try:
        kit = services.kit
        email = "operator-case@example.eu"
        registration = kit.register(email, PASSWORD)
        assert registration.session is not None
        user_id = registration.session.user.user_id
        caller = kit.authenticate(f"Bearer {registration.session.tokens.access_token}")
        enrolment = kit.begin_totp_enrolment(caller, current_password=PASSWORD)
        kit.confirm_totp_enrolment(caller, pyotp.TOTP(enrolment.secret).at(clock.now()))
        clock.advance(timedelta(seconds=30))
        return email, user_id, enrolment.secret
    finally:
        services.close()


def test_users_sessions_unlock_and_disable(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the commands run on the system clock: the sessions start at its time (and never move)
    clock = FrozenClock(SystemClock().now())
    email, user_id, secret = _user_with_mfa(data_dir, clock)
    code, out, err = run(capsys, "users", "sessions", email)
    assert code == 0, err
    assert out.strip().endswith(f"1 live session(s) of user {user_id}")

    services = fresh_services(data_dir, clock)
    try:  # lock the user out: wrong codes until the lockout refuses
        right = pyotp.TOTP(secret).at(clock.now())
        wrong = "000000" if right != "000000" else "111111"
        locked = False
        for _ in range(50):
            challenge = services.kit.login(email, PASSWORD)
            assert isinstance(challenge, MfaRequired)
            try:
                services.kit.verify_mfa(challenge.token, method="totp", code=wrong)
            except MfaLockedError:
                locked = True
                break
            except InvalidMfaCodeError:
                continue
            except Exception:  # noqa: S112 - a dead challenge: log in again
                continue
        assert locked
    finally:
        services.close()

    code, out, err = run(capsys, "users", "mfa-unlock", user_id)
    assert code == 0, err
    assert "MFA lockout released" in out

    assert run(capsys, "users", "mfa-disable", email)[0] == 2  # --yes is required
    code, out, err = run(capsys, "users", "mfa-disable", email, "--yes")
    assert code == 0, err
    assert "MFA disabled, 1 session(s) ended" in out
    code, out, err = run(capsys, "users", "mfa-disable", email, "--yes")
    assert code == 1
    assert err.strip() == "storno-security: error: not done: mfa_not_enabled"
    code, out, err = run(capsys, "users", "sessions", "nobody@example.eu")
    assert code == 1
    assert "no live account 'nobody@example.eu'" in err

    services = fresh_services(data_dir, clock)
    try:
        assert not services.kit.get_user(user_id).mfa_enabled
        events = services.kit.audit.store.query(
            organization_id=None,
            types=[SecurityEventType.MFA_LOCKOUT_CLEARED, SecurityEventType.MFA_DISABLED],
        )
        assert {(e.type.value, e.details.get("method")) for e in events} == {
            ("mfa.lockout_cleared", "admin"),
            ("mfa.disabled", "admin"),
        }
        assert all(e.subject_id == user_id and e.actor_id is None for e in events)
    finally:
        services.close()


def test_retire_old_waits_for_a_server_still_sealing_with_the_old_key(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    services = fresh_services(data_dir, clock)
    old_kid = services.keys.vault.active_kid
    services.close()
    ring_dir = data_dir / "keys" / "vault"
    # this test process plays a server that loaded the ring before the rotation
    marker = register_holder(ring_dir, old_kid)
    generate_vault_key(ring_dir)
    code, _, err = run(capsys, "vault", "retire-old")
    assert code == 1
    assert err.count("\n") == 1
    assert f"still seals with vault key {old_kid}" in err
    assert str(marker) in err
    assert len(list(ring_dir.glob("*.key"))) == 2
    # restarted: the process now seals with the new key
    new_kid = (ring_dir / "ACTIVE").read_text().strip()
    register_holder(ring_dir, new_kid)
    code, out, err = run(capsys, "vault", "retire-old")
    assert code == 0, err
    assert f"{old_kid}  retired" in out


def test_markers_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    register_holder(tmp_path, "k1", pid=2**22 + 12345)  # above Linux's pid_max: never alive
    live = register_holder(tmp_path, "k2")
    (tmp_path / "holders" / "not-a-marker").write_text("x")
    assert [(h.kid, h.path) for h in live_holders(tmp_path)] == [("k2", live)]
    with pytest.raises(ValueError, match="key id"):
        register_holder(tmp_path, "../etc")


def test_a_missing_module_names_its_extra(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    monkeypatch.setenv("STORNO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    code, _out, err = run(capsys, "audit", "purge")
    assert code == 1
    assert err.count("\n") == 1
    assert "'psycopg' is missing: install the 'postgres' extra" in err


def test_the_mariadb_extra_is_the_mysql_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["mariadb"] == ["storno-security[mysql]"]
    assert any("pymysql" in requirement for requirement in extras["mysql"])
    assert any("prometheus_client" in r for r in extras["metrics"])
    assert any("metrics" in r for r in extras["server"])


def test_the_operations_guide_names_real_commands_metrics_and_fields() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    commands = re.findall(r"^\$ storno-security (.+?)(?:\s+#.*)?$", text, re.MULTILINE)
    assert len(commands) >= 6
    for command in commands:
        args = build_parser().parse_args(shlex.split(command))
        assert callable(args.func)
    rendered = Metrics().render().decode()
    for name in re.findall(r"^\| `(storno_[a-z_]+)` \|", text, re.MULTILINE):
        assert f"# TYPE {name} " in rendered, name
    record = RequestRecord(
        request_id="r", route="/x", method="GET", status=200, duration=0.0, principal="user"
    )
    documented = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", text, re.MULTILINE)
    fields = {name for pair in documented for name in pair if name and "storno" not in name}
    assert len(fields) == 6
    assert fields <= set(record.log_fields())


def test_a_holder_that_cannot_be_checked_or_read_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = register_holder(tmp_path, "k1")
    host = here.name.split("@")[0]
    unreadable = tmp_path / "holders" / f"{host}@{os.getpid() + 1}"
    unreadable.mkdir()  # a directory where a marker should be: cannot be read
    garbled = tmp_path / "holders" / f"{host}@{os.getpid() + 2}"
    garbled.write_bytes(b"\xff\xfe not ascii")
    elsewhere = tmp_path / "holders" / "other-host@1"
    elsewhere.write_text("k0\n")

    def kill(pid: int, sig: int) -> None:  # every process belongs to another user
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", kill)
    found = {h.path.name: h.kid for h in live_holders(tmp_path)}
    assert found == {
        here.name: "k1",
        unreadable.name: "?",
        garbled.name: "?",
        elsewhere.name: "k0",
    }
