"""``vault``: rotating the vault key and re-sealing every stored secret."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reference_server.cli._common import (
    PROG,
    CliError,
    Parser,
    keys_dir,
    keys_lock,
    note,
    progress,
    say,
    settings_of,
)
from reference_server.data import ServerData
from reference_server.data.reseal import ResealReport, reseal, still_sealed_under_old_keys
from reference_server.settings import Settings
from storno_security.integrations.keyfiles import generate_vault_key, load_vault_ring
from storno_security.integrations.keyholders import live_holders

# -- vault ----------------------------------------------------------------------------------------


def _vault_dir(settings: Settings) -> Path:
    if settings.vault_key_file is not None:
        raise CliError(
            "STORNO_VAULT_KEY_FILE is set: the vault key comes from that file; "
            "rotation needs the key ring in the data directory"
        )
    return keys_dir(settings) / "vault"


def _database(settings: Settings) -> ServerData:
    database = ServerData(settings.effective_database_url)
    database.create_schema()
    return database


def _print_reseal(reports: dict[str, ResealReport]) -> int:
    problems = 0
    for name, report in reports.items():
        say(
            f"{name}: {report.resealed} re-sealed, {report.cleared} cleared, "
            f"{report.current} already current, {report.changed_meanwhile} changed meanwhile, "
            f"{report.unreadable} unreadable"
        )
        problems += report.unreadable + report.changed_meanwhile
    return problems


def _finish_reseal(reports: dict[str, ResealReport]) -> int:
    problems = _print_reseal(reports)
    if problems:
        note(
            "some values were not re-sealed: rows changed while we worked (run "
            f"`{PROG} vault reseal` again) or values that no key opens (listed as unreadable)"
        )
        return 1
    return 0


def cmd_vault_rotate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = _vault_dir(settings)
    with keys_lock(settings):
        old = load_vault_ring(directory, create=False).active_kid
        key = generate_vault_key(directory)
        ring = load_vault_ring(directory, create=False)
    say(f"vault  {key.kid}  active (new)")
    say(f"vault  {old}  decrypt-only")
    database = _database(settings)
    try:
        code = _finish_reseal(reseal(database, ring, progress=progress))
    finally:
        database.dispose()
    note(
        "restart the server (or send SIGHUP) so it seals with the new key, then run "
        f"`{PROG} vault reseal` (values written meanwhile) and `{PROG} vault retire-old`"
    )
    return code


def cmd_vault_reseal(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    ring = load_vault_ring(_vault_dir(settings), create=False)
    database = _database(settings)
    try:
        return _finish_reseal(reseal(database, ring, progress=progress))
    finally:
        database.dispose()


def cmd_vault_retire_old(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    directory = _vault_dir(settings)
    database = _database(settings)
    try:
        with keys_lock(settings):
            ring = load_vault_ring(directory, create=False)
            for holder in live_holders(directory):
                if holder.kid != ring.active_kid:
                    raise CliError(
                        f"server process {holder.pid} on {holder.host} still seals with vault "
                        f"key {holder.kid}: restart the server (or send SIGHUP), run `{PROG} "
                        f"vault reseal`, then retry (if that process is gone, delete {holder.path})"
                    )
            waiting = still_sealed_under_old_keys(database, ring)
            if waiting:
                raise CliError(
                    f"{waiting} value(s) are still sealed under an old key; "
                    f"run `{PROG} vault reseal` first"
                )
            retired = [
                path for path in sorted(directory.glob("*.key")) if path.stem != ring.active_kid
            ]
            for path in retired:
                path.unlink()
    finally:
        database.dispose()
    for path in retired:
        say(f"vault  {path.stem}  retired")
    if not retired:
        say("vault  no old keys to retire")
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    vault = commands.add_parser(
        "vault", help="vault key rotation", description="Rotate the vault key."
    )
    vault_commands = vault.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    vault_commands.required = True
    vault_commands.add_parser(
        "rotate",
        parents=[data],
        help="new vault key; re-seal every stored secret under it",
        description="Make a new active vault key and re-seal every sealed value in the "
        "database under it (one compare-and-set per row). Pending TOTP enrolments are "
        "cleared. The old key stays decrypt-only until `vault retire-old`.",
    ).set_defaults(func=cmd_vault_rotate)
    vault_commands.add_parser(
        "reseal",
        parents=[data],
        help="re-seal values still under an old key (no new key)",
        description="Re-seal under the active key every value sealed by an older one.",
    ).set_defaults(func=cmd_vault_reseal)
    vault_commands.add_parser(
        "retire-old",
        parents=[data],
        help="delete old vault keys once nothing uses them",
        description="Delete every vault key but the active one; refused while any value in "
        "the database is still sealed under an old key.",
    ).set_defaults(func=cmd_vault_retire_old)
