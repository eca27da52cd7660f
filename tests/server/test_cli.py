"""The ``storno-security`` command line: help, exit codes, keys, licenses, XML, vault, purges,
and ``serve`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reference_server.cli import build_parser, main, plan_workers
from reference_server.data import tables
from reference_server.mail import MemoryEmailSink
from reference_server.settings import Settings
from reference_server.wiring import Server, build_server
from storno_security.accounts import UserAccount
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.integrations.keyfiles import generate_vault_key
from storno_security.rbac import Membership, Organization, Role
from storno_security.stores.sql import users as library_users
from tests.server.conftest import TEST_ENV, make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory the CLI reads through ``STORNO_*`` variables, as in production."""
    for name in list(os.environ):
        if name.startswith("STORNO_"):
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "data"
    monkeypatch.setenv("STORNO_DATA_DIR", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in-process: exit code, stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """``main(argv)`` refused: exit status 1, nothing on stdout; what it wrote to stderr."""
    code, out, err = run(capsys, *argv)
    assert code == 1, err
    assert out == "", out
    return err


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORNO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference_server", *argv],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_for(data_dir: Path) -> Settings:
    return make_settings(data_dir)


def fresh_services(data_dir: Path, clock: FrozenClock) -> Server:
    return build_server(settings_for(data_dir), clock=clock, email=MemoryEmailSink())


# -- help and usage -------------------------------------------------------------------------------

COMMANDS = [
    ["serve"],
    ["keys"],
    ["keys", "generate"],
    ["keys", "list"],
    ["keys", "rotate"],
    ["keys", "retire"],
    ["license"],
    ["license", "keygen"],
    ["license", "issue"],
    ["license", "verify"],
    ["xml"],
    ["xml", "sign"],
    ["xml", "verify"],
    ["vault"],
    ["vault", "rotate"],
    ["vault", "reseal"],
    ["vault", "retire-old"],
    ["audit"],
    ["audit", "purge"],
    ["accounts"],
    ["accounts", "purge"],
    ["users"],
    ["users", "sessions"],
    ["users", "mfa-unlock"],
    ["users", "mfa-disable"],
]


def test_python_m_help_lists_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "keys", "license", "xml", "vault", "audit", "accounts"):
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: storno-security {' '.join(command)}")


def test_every_leaf_command_is_covered_by_the_help_test() -> None:
    parser = build_parser()
    leaves: set[tuple[str, ...]] = set()

    def walk(p: object, prefix: tuple[str, ...]) -> None:
        actions = getattr(p, "_subparsers", None)
        if actions is None:
            leaves.add(prefix)
            return
        for action in actions._group_actions:
            for name, sub in action.choices.items():
                walk(sub, (*prefix, name))

    walk(parser, ())
    assert leaves <= {tuple(c) for c in COMMANDS}


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["keys"], ["keys", "retire"], ["serve", "--port", "abc"], ["serve", "-x"]],
    ids=repr,
)
def test_bad_usage_exits_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "error:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("STORNO_PORT", "abc", "STORNO_PORT"),
        ("STORNO_FOO", "1", "unknown setting STORNO_FOO"),
        ("STORNO_PUBLIC_URL", "http://example.com", "STORNO_PUBLIC_URL"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    fragment: str,
) -> None:
    monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "keys", "generate")
    assert code == 2
    assert err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err
    assert not data_dir.exists()


def test_bad_setting_in_a_real_process_exits_2(tmp_path: Path) -> None:
    result = cli("keys", "list", STORNO_DATA_DIR=str(tmp_path), STORNO_FOO="1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unknown setting STORNO_FOO" in result.stderr


# -- workers ------------------------------------------------------------------------------------


def test_memory_rate_limits_run_one_worker_and_say_why(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    plan = plan_workers(settings, requested=4, threads=None, cores=8)
    assert (plan.workers, plan.threads) == (1, 8)
    assert plan.note is not None
    assert "per process" in plan.note
    assert plan_workers(settings, requested=None, threads=None, cores=8).note is None


def test_shared_rate_limits_run_several_workers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://127.0.0.1:6379/0")
    assert plan_workers(settings, requested=None, threads=None, cores=2).workers == 5
    assert plan_workers(settings, requested=None, threads=None, cores=64).workers == 8
    assert plan_workers(settings, requested=3, threads=2, cores=64).workers == 3


# -- keys -----------------------------------------------------------------------------------------


def _key_files(data_dir: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes()
        for path in (data_dir / "keys").rglob("*")
        if path.is_file() and path.name != ".lock"
    }


def test_keys_generate_makes_private_files_and_reuses_them(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "keys", "generate")
    assert code == 0
    assert "(created)" in out
    assert "(existing)" not in out
    first = _key_files(data_dir)
    assert {p.parent.name for p in first} >= {"jwt", "vault", "xml"}
    for path in first:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in [data_dir, *(p for p in (data_dir / "keys").rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    # Key ids only: no PEM, no base64 key in what was printed.
    assert "PRIVATE" not in out
    vault_key = next(p for p in first if p.suffix == ".key" and p.parent.name == "vault")
    assert first[vault_key].decode() not in out

    code, out, _ = run(capsys, "keys", "generate")
    assert code == 0
    assert "(existing)" in out
    assert "(created)" not in out
    assert _key_files(data_dir) == first


def test_keys_refuses_a_key_file_others_can_read(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    pem = next((data_dir / "keys" / "jwt").glob("*.pem"))
    pem.chmod(0o644)
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 1
    assert "readable by group or others" in err
    assert err.count("\n") == 1


def test_keys_rotate_keeps_live_tokens_and_retire_ends_them(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fresh_services(data_dir, clock)
    old_kid = before.keys.jwt.signer.kid
    token = before.kit.sessions.start("user-1").access_token
    before.close()

    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0
    assert f"{old_kid}  verify-only" in out

    after = fresh_services(data_dir, clock)
    try:
        assert after.keys.jwt.signer.kid != old_kid
        assert after.kit.verifier.verify(token).subject == "user-1"
        new_token = after.kit.sessions.start("user-2").access_token
    finally:
        after.close()

    code, out, err = run(capsys, "keys", "retire", after.keys.jwt.signer.kid)
    assert code == 1
    assert "active signing key" in err
    code, out, _ = run(capsys, "keys", "retire", old_kid)
    assert code == 0

    retired = fresh_services(data_dir, clock)
    try:
        with pytest.raises(InvalidAccessTokenError):
            retired.kit.verifier.verify(token)
        assert retired.kit.verifier.verify(new_token).subject == "user-2"
    finally:
        retired.close()


@pytest.mark.parametrize("kid", ["../ACTIVE", "a/b", ".hidden", ""])
def test_keys_retire_refuses_a_path_as_kid(
    data_dir: Path, capsys: pytest.CaptureFixture[str], kid: str
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    before = _key_files(data_dir)
    code, _, err = run(capsys, "keys", "retire", kid)
    assert code == 2
    assert "not a key id" in err
    assert _key_files(data_dir) == before


def test_keys_list_without_keys_fails(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "list")
    assert code == 1
    assert "keys generate" in err


# -- license --------------------------------------------------------------------------------------


@pytest.fixture
def vendor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    prefix = tmp_path / "vendor"
    code, out, _ = run(capsys, "license", "keygen", "--out", str(prefix))
    assert code == 0
    assert "kid " in out
    return prefix


def _issue(capsys: pytest.CaptureFixture[str], vendor: Path, *extra: str) -> str:
    code, out, err = run(
        capsys,
        "license",
        "issue",
        "--private-key",
        f"{vendor}.key",
        "--org",
        "org-42",
        "--org-name",
        "ACME SRL",
        "--plan",
        "business",
        "--days",
        "365",
        "--feature",
        "efactura",
        "--feature",
        "xml_sign",
        "--max-companies",
        "5",
        *extra,
    )
    assert code == 0, err
    return out.strip()


def test_license_keygen_writes_a_private_key_only_its_owner_reads(
    vendor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stat.S_IMODE(Path(f"{vendor}.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in Path(f"{vendor}.pub").read_bytes()
    code, _, err = run(capsys, "license", "keygen", "--out", str(vendor))
    assert code == 1
    assert "refusing to overwrite" in err


def test_license_issue_verify_round_trip(
    vendor: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _issue(capsys, vendor)
    code, out, _ = run(
        capsys, "license", "verify", "--public-key", f"{vendor}.pub", "--org", "org-42", token
    )
    assert code == 0
    status = json.loads(out)
    assert status["state"] == "valid"
    assert status["organization_id"] == "org-42"
    assert status["features"] == ["efactura", "xml_sign"]
    assert status["max_companies"] == 5
    assert status["max_users"] is None

    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(token.encode() + b"\n")))
    code, out, _ = run(
        capsys, "license", "verify", "--public-key", f"{vendor}.pub", "--org", "org-42", "-"
    )
    assert code == 0
    assert json.loads(out)["state"] == "valid"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "A" if payload[middle] != "A" else "B"
    return ".".join([header, payload[:middle] + flipped + payload[middle + 1 :], signature])


@pytest.mark.parametrize(
    ("change", "org", "reason"),
    [
        ("tamper", "org-42", "signature"),
        ("none", "org-43", "organization_mismatch"),
        ("garbage", "org-42", "malformed"),
    ],
)
def test_license_verify_refuses_and_exits_1(
    vendor: Path, capsys: pytest.CaptureFixture[str], change: str, org: str, reason: str
) -> None:
    token = _issue(capsys, vendor)
    given = {"tamper": _tamper(token), "none": token, "garbage": "not-a-token"}[change]
    code, out, err = run(
        capsys, "license", "verify", "--public-key", f"{vendor}.pub", "--org", org, given
    )
    assert code == 1
    assert out == ""
    assert err == f"storno-security: error: invalid license (reason: {reason})\n"


def test_license_verify_refuses_another_vendors_key(
    vendor: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _issue(capsys, vendor)
    assert run(capsys, "license", "keygen", "--out", str(tmp_path / "other"))[0] == 0
    code, _, err = run(
        capsys,
        "license",
        "verify",
        "--public-key",
        f"{tmp_path}/other.pub",
        "--org",
        "org-42",
        token,
    )
    assert code == 1
    assert "unknown_key" in err


def test_license_issue_refuses_a_readable_private_key(
    vendor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path(f"{vendor}.key").chmod(0o644)
    code, out, err = run(
        capsys,
        "license",
        "issue",
        "--private-key",
        f"{vendor}.key",
        "--org",
        "o",
        "--org-name",
        "n",
        "--plan",
        "p",
        "--days",
        "1",
    )
    assert code == 1
    assert out == ""
    assert "chmod 600" in err


def test_license_issue_needs_a_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "license",
        "issue",
        "--private-key",
        str(tmp_path / "missing.key"),
        "--org",
        "o",
        "--org-name",
        "n",
        "--plan",
        "p",
        "--days",
        "1",
    )
    assert code == 1
    assert "no such file" in err
    assert "Traceback" not in err


# -- xml ------------------------------------------------------------------------------------------

DOCUMENT = b'<Invoice xmlns="urn:example:invoice"><ID>F-1</ID><Total>100.00</Total></Invoice>'


@pytest.mark.parametrize("xades", [False, True], ids=["xmldsig", "xades"])
def test_xml_sign_verify_round_trip(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], xades: bool
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    source, signed = tmp_path / "in.xml", tmp_path / "signed.xml"
    source.write_bytes(DOCUMENT)
    code, _, err = run(capsys, "xml", "sign", str(source), str(signed), *(["--xades"] * xades))
    assert code == 0, err
    assert b"SignatureValue" in signed.read_bytes()

    code, out, err = run(capsys, "xml", "verify", str(signed))
    assert code == 0, err
    assert "<ID>F-1</ID>" in out
    assert "SignatureValue" not in out
    assert ("XAdES-BES" in err) is xades
    assert "valid" in err

    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"100.00", b"999.00"))
    code, out, err = run(capsys, "xml", "verify", str(tampered))
    assert code == 1
    assert out == ""
    assert err.startswith("storno-security: error: invalid signature (reason: ")


def test_xml_verify_with_another_certificate_fails(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from storno_security.integrations.keyfiles import load_xml_material

    assert run(capsys, "keys", "generate")[0] == 0
    source, signed = tmp_path / "in.xml", tmp_path / "signed.xml"
    source.write_bytes(DOCUMENT)
    assert run(capsys, "xml", "sign", str(source), str(signed))[0] == 0
    other = load_xml_material(tmp_path / "other-xml")
    cert = tmp_path / "other.crt"
    cert.write_bytes(other.certificate.public_bytes(serialization.Encoding.PEM))
    code, _, err = run(capsys, "xml", "verify", str(signed), "--cert", str(cert))
    assert code == 1
    assert "invalid signature" in err


def test_xml_sign_with_key_and_cert_and_refuses_one_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from storno_security.integrations.keyfiles import load_xml_material

    load_xml_material(tmp_path / "mine")
    key, cert = tmp_path / "mine" / "signer.key", tmp_path / "mine" / "signer.crt"
    source, signed = tmp_path / "in.xml", tmp_path / "signed.xml"
    source.write_bytes(DOCUMENT)
    code, _, err = run(capsys, "xml", "sign", str(source), str(signed), "--key", str(key))
    assert code == 2
    assert "go together" in err
    args = ["--key", str(key), "--cert", str(cert)]
    assert run(capsys, "xml", "sign", str(source), str(signed), *args)[0] == 0
    code, out, _ = run(capsys, "xml", "verify", str(signed), "--cert", str(cert))
    assert code == 0
    assert "F-1" in out


def test_xml_sign_refuses_a_dtd(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    source = tmp_path / "evil.xml"
    source.write_bytes(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    code, _, err = run(capsys, "xml", "sign", str(source), str(tmp_path / "out.xml"))
    assert code == 1
    assert "refused" in err
    assert not (tmp_path / "out.xml").exists()


def test_xml_detached_signature_verifies(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = build_server(settings_for(data_dir))
    try:
        signature = server.xml_signer.sign_detached(DOCUMENT, uri="F-1.xml")
    finally:
        server.close()
    (tmp_path / "F-1.xml").write_bytes(DOCUMENT)
    (tmp_path / "F-1.sig.xml").write_bytes(signature)
    args = [str(tmp_path / "F-1.sig.xml"), "--detached-data"]
    code, out, _ = run(capsys, "xml", "verify", *args, str(tmp_path / "F-1.xml"))
    assert code == 0
    assert "F-1" in out
    (tmp_path / "F-2.xml").write_bytes(DOCUMENT.replace(b"F-1", b"F-2"))
    code, _, err = run(capsys, "xml", "verify", *args, str(tmp_path / "F-2.xml"))
    assert code == 1
    assert "invalid signature" in err


# -- vault ----------------------------------------------------------------------------------------


def _seed_sealed_rows(server: Server) -> dict[str, str]:
    now = server.clock.now()
    org_id, company_id, user_id, cred_id = (str(uuid.uuid4()) for _ in range(4))
    ring = server.keys.vault
    server.kit.directory.create_account(
        UserAccount(
            user_id=user_id,
            email=f"{user_id}@example.eu",
            name="U",
            created_at=now,
            mfa_enabled=True,
            totp_secret_sealed=ring.seal(
                "JBSWY3DPEHPK3PXP", associated_data=server.kit.totp_associated_data(user_id)
            ),
            totp_pending_sealed=ring.seal("PENDING", associated_data=f"pending:{user_id}"),
        ),
        organization=Organization(organization_id=org_id, name="Org", created_at=now),
        owner=Membership(user_id=user_id, organization_id=org_id, role=Role.OWNER, is_default=True),
    )
    with server.data.transaction() as conn:
        conn.execute(
            tables.companies.insert().values(
                id=company_id, organization_id=org_id, name="Co", country="RO", created_at=now
            )
        )
        conn.execute(
            tables.storage_credentials.insert().values(
                id=cred_id,
                company_id=company_id,
                provider="s3",
                name="backup",
                sealed=ring.seal(
                    "s3-secret-key",
                    associated_data=f"app_storage_credentials:{cred_id}:{company_id}",
                ),
                created_at=now,
                updated_at=now,
            )
        )
    return {"user": user_id, "credential": cred_id, "company": company_id}


def _row(server: Server, table: sa.Table, row_id: str) -> sa.RowMapping:
    key = table.c.user_id if table is library_users else table.c.id
    with server.data.transaction() as conn:
        return conn.execute(sa.select(table).where(key == row_id)).mappings().one()


def test_vault_rotate_reseals_every_secret_under_the_new_key(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fresh_services(data_dir, clock)
    ids = _seed_sealed_rows(before)
    old_kid = before.keys.vault.active_kid
    old_credential = _row(before, tables.storage_credentials, ids["credential"])["sealed"]
    before.close()

    code, out, err = run(capsys, "vault", "rotate")
    assert code == 0, err
    assert "app_storage_credentials.sealed: 1 re-sealed" in out
    assert "storno_users.totp_secret_sealed: 1 re-sealed" in out
    assert "storno_users.totp_pending_sealed: 0 re-sealed, 1 cleared" in out

    after = fresh_services(data_dir, clock)
    try:
        ring = after.keys.vault
        assert ring.active_kid != old_kid
        assert old_kid in ring.kids
        credential = _row(after, tables.storage_credentials, ids["credential"])
        assert credential["sealed"] != old_credential
        assert not ring.needs_rotation(credential["sealed"])
        ad = f"app_storage_credentials:{ids['credential']}:{ids['company']}"
        assert ring.open(credential["sealed"], associated_data=ad) == b"s3-secret-key"
        user = _row(after, library_users, ids["user"])
        assert not ring.needs_rotation(user["totp_secret_sealed"])
        secret = ring.open(
            user["totp_secret_sealed"],
            associated_data=after.kit.totp_associated_data(ids["user"]),
        )
        assert secret == b"JBSWY3DPEHPK3PXP"
        assert user["totp_pending_sealed"] is None
    finally:
        after.close()

    # Nothing left under the old key: it can go, and every secret still opens.
    code, out, _ = run(capsys, "vault", "retire-old")
    assert code == 0
    assert f"{old_kid}  retired" in out
    retired = fresh_services(data_dir, clock)
    try:
        assert retired.keys.vault.kids == (retired.keys.vault.active_kid,)
        credential = _row(retired, tables.storage_credentials, ids["credential"])
        ad = f"app_storage_credentials:{ids['credential']}:{ids['company']}"
        assert retired.keys.vault.open(credential["sealed"], associated_data=ad) == b"s3-secret-key"
    finally:
        retired.close()


def test_vault_retire_old_refuses_while_a_value_needs_the_old_key(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    services = fresh_services(data_dir, clock)
    _seed_sealed_rows(services)
    services.close()
    # A new active key with no re-seal: what a server still running the old ring leaves.
    generate_vault_key(data_dir / "keys" / "vault")
    keys_before = sorted((data_dir / "keys" / "vault").glob("*.key"))

    code, _, err = run(capsys, "vault", "retire-old")
    assert code == 1
    assert "vault reseal" in err
    assert sorted((data_dir / "keys" / "vault").glob("*.key")) == keys_before

    code, out, _ = run(capsys, "vault", "reseal")
    assert code == 0
    assert "app_storage_credentials.sealed: 1 re-sealed" in out
    assert run(capsys, "vault", "retire-old")[0] == 0
    assert len(list((data_dir / "keys" / "vault").glob("*.key"))) == 1


def test_vault_rotate_reports_a_value_no_key_opens(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    services = fresh_services(data_dir, clock)
    ids = _seed_sealed_rows(services)
    # Sealed for another row: its associated data does not match, so it never opens here.
    moved = services.keys.vault.seal("x", associated_data="app_storage_credentials:other:row")
    with services.data.transaction() as conn:
        conn.execute(
            tables.storage_credentials.update()
            .where(tables.storage_credentials.c.id == ids["credential"])
            .values(sealed=moved)
        )
    services.close()
    code, out, _err = run(capsys, "vault", "rotate")
    assert code == 1
    assert "app_storage_credentials.sealed: 0 re-sealed" in out
    assert "1 unreadable" in out
    # The unreadable value is left as it was.
    again = fresh_services(data_dir, clock)
    try:
        assert _row(again, tables.storage_credentials, ids["credential"])["sealed"] == moved
    finally:
        again.close()


def test_vault_retire_old_with_one_key_retires_nothing(
    data_dir: Path, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_services(data_dir, clock).close()
    keys_before = sorted((data_dir / "keys" / "vault").glob("*.key"))
    code, out, err = run(capsys, "vault", "retire-old")
    assert code == 0, err
    assert out == "vault  no old keys to retire\n"
    assert sorted((data_dir / "keys" / "vault").glob("*.key")) == keys_before
    assert len(keys_before) == 1


def test_vault_rotate_refuses_a_single_key_file(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STORNO_VAULT_KEY_FILE", str(tmp_path / "vault.key"))
    code, _, err = run(capsys, "vault", "rotate")
    assert code == 1
    assert "STORNO_VAULT_KEY_FILE" in err


# -- purges ---------------------------------------------------------------------------------------


def test_audit_purge_deletes_only_expired_events(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    old_clock = FrozenClock(datetime.now(UTC) - timedelta(days=400))
    services = fresh_services(data_dir, old_clock)
    services.kit.audit.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="user-old")
    old_clock.advance(timedelta(days=399).total_seconds())
    services.kit.audit.record(SecurityEventType.LOGIN_SUCCEEDED, actor_id="user-new")
    services.close()

    code, out, _ = run(capsys, "audit", "purge")
    assert code == 0
    assert out.startswith("purged 1 audit event(s)")
    code, out, _ = run(capsys, "audit", "purge")
    assert out.startswith("purged 0 audit event(s)")


def test_audit_purge_without_keys_fails_cleanly(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "audit", "purge")
    assert code == 1
    assert "keys generate" in err
    assert err.count("\n") == 1


def test_accounts_purge_runs(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    code, out, err = run(capsys, "accounts", "purge")
    assert code == 0, err
    assert out.startswith("purged 0 account(s)")


# -- serve ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, Path]]:
    port = _free_port()
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    env = subprocess_env(**TEST_ENV, STORNO_DATA_DIR=str(tmp_path / "data"))
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reference_server",
                "serve",
                "--port",
                str(port),
                "--workers",
                "3",
                "--access-log",
                "--graceful-timeout",
                "5",
            ],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield process, port, out_path, err_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], url: str, err_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited: {err_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)  # waiting for a real process to listen, not for test time
    pytest.fail(f"serve did not answer: {err_path.read_text()[-3000:]}")


def test_serve_runs_a_real_server_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[bytes], int, Path, Path],
) -> None:
    process, port, out_path, err_path = served
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(process, url, err_path)
    probe = url + "/.well-known/jwks.json?token=SECRET-IN-QUERY"
    with urllib.request.urlopen(probe, timeout=5) as r:  # noqa: S310 - our own loopback server
        assert r.status == 200
        assert json.loads(r.read())["keys"]
    # Multi-process metrics: the worker's values are in files that /metrics adds up.
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310
        metrics = r.read().decode()
    assert 'storno_http_requests_total{method="GET",route="/health",status="200"}' in metrics
    assert 'route="/.well-known/jwks.json"' in metrics
    assert list((err_path.parent / "data" / "metrics").glob("counter_*.db"))
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    out, err = out_path.read_text(), err_path.read_text()
    assert f"serving on {url}" in out
    # Memory rate limits: one worker, and the reason is given for refusing the three asked for.
    assert "running 1 worker, not 3" in err
    # The logs name the path (the access log) or its template (the JSON request line), never
    # the query string; the server's own lines are JSON, one object a line.
    assert "/.well-known/jwks.json" in out + err
    assert "SECRET-IN-QUERY" not in out + err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert {"route": "/.well-known/jwks.json", "status": 200} in [
        {"route": line["route"], "status": line["status"]} for line in requests
    ]
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    # Keys were prepared before the workers started.
    assert (Path(err_path.parent) / "data" / "keys" / "jwt" / "ACTIVE").exists()


def test_serve_refuses_a_bad_setting_before_starting(tmp_path: Path) -> None:
    result = cli("serve", STORNO_DATA_DIR=str(tmp_path / "data"), STORNO_PORT="abc")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "STORNO_PORT" in result.stderr
    assert not (tmp_path / "data").exists()


# -- the operator guide ---------------------------------------------------------------------------


def test_every_setting_is_documented_with_a_default() -> None:
    from reference_server.settings import SETTINGS_VARIABLES

    guide = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in guide.splitlines()
        if line.startswith("| `STORNO_")
    }
    assert set(rows) == set(SETTINGS_VARIABLES)
    for name, line in rows.items():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 3, name
        assert cells[1], f"{name} has no default in docs/server.md"
        assert cells[2], f"{name} has no meaning in docs/server.md"


def test_every_serve_flag_is_documented() -> None:
    guide = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    subparsers: Any = build_parser()._subparsers
    serve = subparsers._group_actions[0].choices["serve"]
    for action in serve._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in guide, flag


def test_unreachable_database_fails_with_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("STORNO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    for command in (["audit", "purge"], ["vault", "reseal"]):
        code, out, err = run(capsys, *command)
        assert code == 1, command
        assert out == ""
        assert err.count("\n") == 1
        assert "unavailable" in err
