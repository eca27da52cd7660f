"""``storno-security keys``: listing the keys (from the data directory or from key files named
in the settings), and the refusals an operator meets before any key exists or when the keys
come from files the command does not manage."""

from __future__ import annotations

from pathlib import Path

import pytest

from storno_security.integrations.keyfiles import generate_jwt_key, generate_vault_key
from tests.server.test_cli import data_dir, refusal, run

__all__ = ["data_dir"]


def test_keys_list_names_each_key_and_its_role_never_its_material(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    jwt_kid = (data_dir / "keys" / "jwt" / "ACTIVE").read_text().strip()
    vault_kid = (data_dir / "keys" / "vault" / "ACTIVE").read_text().strip()
    code, out, err = run(capsys, "keys", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"jwt    {jwt_kid}  signing"
    assert lines[1] == f"vault  {vault_kid}  active"
    assert lines[2].startswith("xml    CN=storno-security reference server  sha256 ")
    assert lines[3] == "audit  pseudonym key present"
    assert len(lines) == 4
    vault_key = (data_dir / "keys" / "vault" / f"{vault_kid}.key").read_text().strip()
    assert vault_key not in out
    assert "PRIVATE" not in out


def test_keys_from_files_are_listed_by_path_and_not_rotated_here(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = tmp_path / "made-elsewhere"
    jwt_file = made / f"{generate_jwt_key(made, bits=2048).kid}.pem"
    vault_file = made / f"{generate_vault_key(made).kid}.key"
    monkeypatch.setenv("STORNO_JWT_KEY_FILE", str(jwt_file))
    monkeypatch.setenv("STORNO_VAULT_KEY_FILE", str(vault_file))
    code, out, err = run(capsys, "keys", "generate")
    assert code == 0, err
    code, out, _ = run(capsys, "keys", "list")
    assert code == 0
    assert out.splitlines()[:2] == [
        f"jwt    (from STORNO_JWT_KEY_FILE {jwt_file})",
        f"vault  (from STORNO_VAULT_KEY_FILE {vault_file})",
    ]
    assert not (data_dir / "keys" / "jwt").exists()
    before = jwt_file.read_bytes()
    for command in (["keys", "rotate"], ["keys", "retire", "some-kid"]):
        err = refusal(capsys, *command)
        assert err.startswith("storno-security: error: STORNO_JWT_KEY_FILE is set: ")
        assert err.count("\n") == 1
    assert jwt_file.read_bytes() == before


def test_an_empty_key_directory_lists_nothing_and_says_what_to_run(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "keys").mkdir(parents=True)
    err = refusal(capsys, "keys", "list")
    assert err == (
        f"storno-security: error: no keys in {data_dir / 'keys'}; "
        "run: storno-security keys generate\n"
    )


def test_keys_rotate_before_any_key_exists_says_what_to_run(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refusal(capsys, "keys", "rotate")
    assert err == (
        f"storno-security: error: no key directory {data_dir / 'keys'}; "
        "run: storno-security keys generate\n"
    )
    assert not (data_dir / "keys").exists()


def test_a_certificate_that_is_not_pem_is_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    cert = data_dir / "keys" / "xml" / "signer.crt"
    cert.write_bytes(b"not a certificate")
    err = refusal(capsys, "keys", "list")
    assert err == f"storno-security: error: {cert} is not a PEM certificate\n"
