"""``audit purge`` and ``accounts purge``: the retention jobs."""

from __future__ import annotations

import argparse
from typing import Any

from reference_server.cli._common import Parser, note, say, settings_of
from reference_server.wiring import build_server


def cmd_audit_purge(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    server = build_server(settings, create_keys=False)
    note(f"purging audit events older than {settings.audit_retention_days} days...")
    try:
        count = server.kit.audit.purge_expired()
    finally:
        server.close()
    say(f"purged {count} audit event(s) older than {settings.audit_retention_days} days")
    return 0


def cmd_accounts_purge(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    server = build_server(settings, create_keys=False)
    note(f"purging accounts deleted more than {settings.deletion_grace_days} days ago...")
    try:
        purged = server.purge_deleted_accounts()
    finally:
        server.close()
    say(
        f"purged {len(purged.user_ids)} account(s) deleted more than "
        f"{settings.deletion_grace_days} days ago, and {len(purged.organization_ids)} "
        "organization(s) left without members"
    )
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", help="the audit trail", description="Audit trail.")
    audit_commands = audit.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    audit_commands.required = True
    audit_commands.add_parser(
        "purge",
        parents=[data],
        help="delete events past the retention period",
        description="Delete audit events older than STORNO_AUDIT_RETENTION_DAYS (ACC-3).",
    ).set_defaults(func=cmd_audit_purge)

    accounts = commands.add_parser("accounts", help="user accounts", description="Accounts.")
    account_commands = accounts.add_subparsers(
        dest="action", metavar="<action>", parser_class=Parser
    )
    account_commands.required = True
    account_commands.add_parser(
        "purge",
        parents=[data],
        help="hard-delete accounts past the deletion grace period",
        description="Hard-delete accounts deleted more than STORNO_DELETION_GRACE_DAYS ago "
        "(ACC-4).",
    ).set_defaults(func=cmd_accounts_purge)
