"""What every ``storno-security`` command shares: ``--data-dir``, the one-line error an operator
sees for each kind of failure (a bad number, a file that cannot be read or created, an unusable
key, a missing driver, Ctrl-C) and its exit code."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tests.server.test_cli import data_dir, refusal, run

__all__ = ["data_dir"]

ISSUE = ["license", "issue", "--org", "o", "--org-name", "n", "--plan", "p", "--days", "1"]
ANY_KEY = [*ISSUE, "--private-key", "unused.key"]  # refused before the key is read


def test_data_dir_flag_wins_over_the_setting(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    code, out, err = run(capsys, "keys", "generate", "--data-dir", str(elsewhere))
    assert code == 0, err
    assert "(created)" in out
    assert (elsewhere / "keys" / "jwt" / "ACTIVE").is_file()
    assert not data_dir.exists()
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(elsewhere))
    assert code == 0
    assert "signing" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "0"], "argument --port: '0' must be at least 1"),
        (["serve", "--threads", "-2"], "argument --threads: '-2' must be at least 1"),
        ([*ANY_KEY, "--max-users", "-1"], "argument --max-users: '-1' must not be negative"),
        ([*ANY_KEY, "--max-companies", "two"], "argument --max-companies: 'two' is not a whole"),
        ([*ANY_KEY, "--days", "0"], "argument --days: '0' must be at least 1"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_number_out_of_range_is_bad_usage(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert not data_dir.exists()


def test_a_count_of_zero_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "license", "keygen", "--out", str(tmp_path / "v"))[0] == 0
    args = ["--private-key", str(tmp_path / "v.key"), "--max-companies", "0"]
    code, out, err = run(capsys, *ISSUE, *args)
    assert code == 0, err
    token = out.strip()
    code, out, _ = run(
        capsys, "license", "verify", "--public-key", str(tmp_path / "v.pub"), "--org", "o", token
    )
    assert code == 0
    assert '"max_companies": 0' in out


def test_a_directory_given_as_input_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refusal(capsys, *ISSUE, "--private-key", str(tmp_path))
    assert err == f"storno-security: error: {tmp_path}: cannot read (Is a directory)\n"


def test_keygen_never_overwrites_a_private_key_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "vendor.key"
    private.write_bytes(b"the vendor's only copy")
    private.chmod(0o600)
    code, _, err = run(capsys, "license", "keygen", "--out", str(tmp_path / "vendor"))
    assert code == 1
    assert err == f"storno-security: error: {private} exists already; refusing to overwrite it\n"
    assert private.read_bytes() == b"the vendor's only copy"
    assert not (tmp_path / "vendor.pub").exists()


def test_keygen_into_a_missing_directory_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "missing" / "vendor"
    code, _, err = run(capsys, "license", "keygen", "--out", str(prefix))
    assert code == 1
    assert err == (
        f"storno-security: error: {prefix}.key: cannot create (No such file or directory)\n"
    )


def test_a_private_key_that_is_not_a_key_is_refused_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "vendor.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    err = refusal(capsys, *ISSUE, "--private-key", str(key))
    assert err.startswith("storno-security: error: unusable license key: ")
    assert err.endswith(" (reason: malformed)\n")


def test_a_data_directory_under_a_file_names_the_path(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("STORNO_DATA_DIR", str(blocker / "data"))
    err = refusal(capsys, "keys", "generate")
    assert err == f"storno-security: error: {blocker / 'data'}: Not a directory\n"


@pytest.mark.parametrize(
    ("setting", "url", "module", "extra"),
    [
        ("STORNO_DATABASE_URL", "mysql+pymysql://nobody@127.0.0.1:1/none", "pymysql", "mysql"),
        ("STORNO_REDIS_URL", "redis://127.0.0.1:1/0", "redis", "redis"),
    ],
    ids=["database-driver", "redis-client"],
)
def test_a_missing_module_names_the_extra_to_install(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    url: str,
    module: str,
    extra: str,
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    monkeypatch.setenv(setting, url)
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    err = refusal(capsys, "audit", "purge")
    assert err == (
        f"storno-security: error: the Python module {module!r} is missing: install the "
        f"{extra!r} extra (pip install 'storno-security[{extra}]')\n"
    )


class _CtrlC(io.RawIOBase):
    """Standard input on which the operator presses Ctrl-C."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise KeyboardInterrupt


def test_ctrl_c_while_reading_stdin_exits_130_without_a_traceback(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, "keys", "generate")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_CtrlC())))
    code, out, err = run(capsys, "xml", "sign", "-", str(tmp_path / "signed.xml"))
    assert code == 130
    assert out == ""
    assert err == "storno-security: interrupted\n"
    assert not (tmp_path / "signed.xml").exists()
