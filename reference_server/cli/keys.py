"""``keys``: the server's key files (JWT signing keys, vault keys, the XML signer)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from reference_server.cli._common import (
    PROG,
    CliError,
    Parser,
    active,
    check_kid,
    fingerprint,
    keys_dir,
    keys_lock,
    note,
    say,
    settings_of,
)
from reference_server.settings import Settings
from storno_security.integrations.keyfiles import (
    KeyFileError,
    generate_jwt_key,
    load_jwt_ring,
    load_key_material,
    retire_jwt_key,
)

# -- keys -----------------------------------------------------------------------------------------


def _describe_keys(settings: Settings) -> list[str]:
    keys = keys_dir(settings)
    lines: list[str] = []
    if settings.jwt_key_file is not None:
        lines.append(f"jwt    (from STORNO_JWT_KEY_FILE {settings.jwt_key_file})")
    else:
        current = active(keys / "jwt")
        for path in sorted((keys / "jwt").glob("*.pem")):
            role = "signing" if path.stem == current else "verify-only"
            lines.append(f"jwt    {path.stem}  {role}")
    if settings.vault_key_file is not None:
        lines.append(f"vault  (from STORNO_VAULT_KEY_FILE {settings.vault_key_file})")
    else:
        current = active(keys / "vault")
        for path in sorted((keys / "vault").glob("*.key")):
            role = "active" if path.stem == current else "decrypt-only"
            lines.append(f"vault  {path.stem}  {role}")
    cert_path = settings.xml_cert_file or keys / "xml" / "signer.crt"
    if cert_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            raise KeyFileError(f"{cert_path} is not a PEM certificate") from None
        lines.append(
            f"xml    {cert.subject.rfc4514_string()}  sha256 {fingerprint(cert)}  "
            f"until {cert.not_valid_after_utc.date().isoformat()}"
        )
    if (keys / "audit-pseudonym.key").exists():
        lines.append("audit  pseudonym key present")
    return lines


def cmd_keys_generate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    before = set(_describe_keys(settings)) if keys_dir(settings).is_dir() else set()
    load_key_material(
        settings.data_dir,
        jwt_key_file=settings.jwt_key_file,
        vault_key_file=settings.vault_key_file,
        xml_key_file=settings.xml_key_file,
        xml_cert_file=settings.xml_cert_file,
        create=True,
    )
    for line in _describe_keys(settings):
        say(f"{line}  {'(existing)' if line in before else '(created)'}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    lines = _describe_keys(settings) if keys_dir(settings).is_dir() else []
    if not lines:
        raise CliError(f"no keys in {keys_dir(settings)}; run: {PROG} keys generate")
    for line in lines:
        say(line)
    return 0


def _jwt_dir(settings: Settings) -> Path:
    if settings.jwt_key_file is not None:
        raise CliError(
            "STORNO_JWT_KEY_FILE is set: the signing key comes from that file; "
            "unset it to manage keys in the data directory"
        )
    return keys_dir(settings) / "jwt"


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = _jwt_dir(settings)
    with keys_lock(settings):
        old = load_jwt_ring(directory, create=False).signer.kid
        new = generate_jwt_key(directory)
        load_jwt_ring(directory, create=False)  # the new set loads before we report success
    say(f"jwt    {new.kid}  signing (new)")
    say(f"jwt    {old}  verify-only (tokens it signed keep working until it is retired)")
    note(
        "restart the server (or send SIGHUP to its master process) to sign with the new key; "
        f"retire the old one after the access-token lifetime: {PROG} keys retire {old}"
    )
    return 0


def cmd_keys_retire(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    kid = check_kid(args.kid)
    directory = _jwt_dir(settings)
    with keys_lock(settings):
        retire_jwt_key(directory, kid)
    say(f"jwt    {kid}  retired (tokens it signed no longer verify)")
    note("restart the server (or send SIGHUP to its master process) to drop the key")
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    keys = commands.add_parser(
        "keys", help="the server's key files", description="Manage the keys in DATA_DIR/keys."
    )
    key_commands = keys.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    key_commands.required = True
    key_commands.add_parser(
        "generate",
        parents=[data],
        help="create missing keys (prints key ids, never key material)",
        description="Create every missing key in DATA_DIR/keys (0600 files in 0700 "
        "directories); existing keys are kept.",
    ).set_defaults(func=cmd_keys_generate)
    key_commands.add_parser(
        "list", parents=[data], help="list key ids and roles", description="List the keys."
    ).set_defaults(func=cmd_keys_list)
    key_commands.add_parser(
        "rotate",
        parents=[data],
        help="new JWT signing key; the old one verifies only",
        description="Make a new JWT signing key. The previous key stays as verify-only, so "
        "tokens it signed keep working until you retire it (JWT-3).",
    ).set_defaults(func=cmd_keys_rotate)
    retire = key_commands.add_parser(
        "retire",
        parents=[data],
        help="delete a verify-only JWT key",
        description="Delete a verify-only JWT key: tokens it signed stop verifying.",
    )
    retire.add_argument("kid", help="the key id (from `keys list`)")
    retire.set_defaults(func=cmd_keys_retire)
