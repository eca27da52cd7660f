"""``users``: what an operator does for a user who is stuck (each act audited by the kit)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from reference_server.cli._common import CliError, Parser, say, settings_of
from reference_server.wiring import Server, build_server
from storno_security.errors import AccountNotFoundError, AccountStateError


def _with_user(act: Callable[[Server, str], int]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        server = build_server(settings_of(args), create_keys=False)
        try:
            user = server.kit.find_account(args.user)
            return act(server, user.user_id)
        except AccountNotFoundError:
            raise CliError(f"no live account {args.user!r}") from None
        except AccountStateError as exc:
            raise CliError(f"not done: {exc.reason}") from None
        finally:
            server.close()

    return command


def _sessions(server: Server, user_id: str) -> int:
    sessions = server.kit.list_sessions(user_id)
    for session in sessions:
        say(
            f"{session.family_id}  started {session.created_at.isoformat()}  "
            f"ends {session.expires_at.isoformat()}"
        )
    say(f"{len(sessions)} live session(s) of user {user_id}")
    return 0


def _mfa_unlock(server: Server, user_id: str) -> int:
    server.kit.release_mfa_lockout(user_id)
    say(f"user {user_id}: MFA lockout released (audited)")
    return 0


def _mfa_disable(server: Server, user_id: str) -> int:
    ended = server.kit.disable_mfa_by_admin(user_id)
    say(f"user {user_id}: MFA disabled, {ended} session(s) ended (audited)")
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    users = commands.add_parser(
        "users", help="help a user: sessions, MFA lockout", description="Operator acts on users."
    )
    actions = users.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    actions.required = True
    for name, act, text in (
        ("sessions", _sessions, "list the user's live sessions (one per login)"),
        ("mfa-unlock", _mfa_unlock, "release the user's lockout after too many wrong codes"),
        ("mfa-disable", _mfa_disable, "turn MFA off for a user who lost every factor"),
    ):
        action = actions.add_parser(name, parents=[data], help=text, description=text + ".")
        action.add_argument("user", help="the account's email address or user id")
        if name == "mfa-disable":
            action.add_argument(
                "--yes",
                action="store_true",
                required=True,
                help="confirm: the TOTP secret and backup codes are deleted, every session ends",
            )
        action.set_defaults(func=_with_user(act))
