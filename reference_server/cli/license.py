"""``license``: vendor key pairs, issuing and verifying offline licenses."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from reference_server.cli._common import (
    DEFAULT_LICENSE_ISSUER,
    CliError,
    Parser,
    count,
    note,
    positive_int,
    read_input,
    say,
    write_new_file,
)
from storno_security.clock import SystemClock
from storno_security.license import (
    LicenseIssuer,
    LicenseKey,
    LicensePolicy,
    LicenseSigningKey,
    LicenseStatus,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore

# -- license --------------------------------------------------------------------------------------


def _check_key_file(path: Path) -> bytes:
    data = read_input(str(path))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise CliError(
            f"{path} is readable by group or others (mode {mode:04o}); run: chmod 600 {path}"
        )
    return data


def cmd_license_keygen(args: argparse.Namespace) -> int:
    key = LicenseSigningKey.generate(args.algorithm)
    private_path = Path(f"{args.out}.key")
    public_path = Path(f"{args.out}.pub")
    if public_path.exists():
        raise CliError(f"{public_path} exists already; refusing to overwrite it")
    write_new_file(private_path, key.private_pem(), 0o600)
    write_new_file(public_path, key.public.public_pem(), 0o644)
    say(f"kid {key.kid} ({key.algorithm})")
    say(f"private key {private_path} (0600: keep it on the vendor's machine only)")
    say(f"public key  {public_path} (give it to installations: STORNO_LICENSE_PUBLIC_KEY_FILE)")
    return 0


def cmd_license_issue(args: argparse.Namespace) -> int:
    key = LicenseSigningKey.from_pem(_check_key_file(Path(args.private_key)))
    issuer = LicenseIssuer(key, issuer=args.issuer, clock=SystemClock())
    issued = issuer.issue(
        args.org,
        org_name=args.org_name,
        plan=args.plan,
        features=args.feature or (),
        max_companies=args.max_companies,
        max_users=args.max_users,
        valid_for=timedelta(days=args.days),
        instance_id=args.instance_id,
    )
    say(issued.token)
    note(
        f"license {issued.license.license_id} for {issued.license.organization_id}, "
        f"plan {issued.license.plan}, until {issued.license.expires_at.isoformat()}"
    )
    return 0


def _status_json(status: LicenseStatus) -> dict[str, Any]:
    license_ = status.license
    return {
        "state": status.state.value,
        "license_id": license_.license_id,
        "organization_id": license_.organization_id,
        "org_name": license_.org_name,
        "plan": license_.plan,
        "features": sorted(license_.features),
        "max_companies": license_.max_companies,
        "max_users": license_.max_users,
        "instance_id": license_.instance_id,
        "issuer": license_.issuer,
        "kid": license_.kid,
        "issued_at": license_.issued_at.isoformat(),
        "not_before": license_.not_before.isoformat(),
        "expires_at": license_.expires_at.isoformat(),
        "grace_ends_at": status.grace_ends_at.isoformat(),
        "checked_at": status.checked_at.isoformat(),
        "clock_rollback": status.clock_rollback,
    }


def cmd_license_verify(args: argparse.Namespace) -> int:
    public = LicenseKey.from_pem(read_input(args.public_key))
    if args.token == "-":  # noqa: S105 - "-" means stdin, not a password
        text = read_input("-").decode("ascii", errors="replace").strip()
    else:
        text = args.token.strip()
    verifier = LicenseVerifier(
        [public],
        LicensePolicy(issuer=args.issuer),
        clock=SystemClock(),
        last_seen=MemoryLastSeenStore(),
        instance_id=args.instance_id,
    )
    status = verifier.verify(text, expected_organization_id=args.org)
    say(json.dumps(_status_json(status), indent=2))
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    lic = commands.add_parser(
        "license", help="vendor license keys and tokens", description="Issue and verify licenses."
    )
    lic_commands = lic.add_subparsers(dest="action", metavar="<action>", parser_class=Parser)
    lic_commands.required = True
    keygen = lic_commands.add_parser(
        "keygen",
        help="make a vendor key pair",
        description="Write PREFIX.key (private, 0600) and PREFIX.pub (public).",
    )
    keygen.add_argument("--out", required=True, metavar="PREFIX", help="path prefix")
    keygen.add_argument(
        "--algorithm", choices=("EdDSA", "RS256"), default="EdDSA", help="default EdDSA"
    )
    keygen.set_defaults(func=cmd_license_keygen)
    issue = lic_commands.add_parser(
        "issue",
        help="sign a license (prints the token)",
        description="Sign a license token with the vendor's private key; the token goes to stdout.",
    )
    issue.add_argument("--private-key", required=True, metavar="FILE", help="vendor key (PEM)")
    issue.add_argument("--org", required=True, metavar="ID", help="the licensee organization id")
    issue.add_argument("--org-name", required=True, metavar="NAME", help="its name")
    issue.add_argument("--plan", required=True, metavar="P", help="plan name")
    issue.add_argument(
        "--days", required=True, type=positive_int, metavar="N", help="days of validity"
    )
    issue.add_argument(
        "--feature", action="append", metavar="F", help="a feature switched on (repeatable)"
    )
    issue.add_argument("--max-companies", type=count, metavar="N", help="default: no limit")
    issue.add_argument("--max-users", type=count, metavar="N", help="default: no limit")
    issue.add_argument("--instance-id", metavar="I", help="bind it to one installation")
    issue.add_argument(
        "--issuer", default=DEFAULT_LICENSE_ISSUER, help=f"iss (default {DEFAULT_LICENSE_ISSUER})"
    )
    issue.set_defaults(func=cmd_license_issue)
    verify = lic_commands.add_parser(
        "verify",
        help="check a license token (prints its status as JSON)",
        description="Verify a license offline. Exit 0 for a genuine license (whatever its "
        "state: valid, grace, expired), 1 for an invalid one.",
    )
    verify.add_argument("--public-key", required=True, metavar="FILE", help="vendor public key")
    verify.add_argument("--org", required=True, metavar="ID", help="the organization it must name")
    verify.add_argument("--instance-id", metavar="I", help="this installation's id")
    verify.add_argument(
        "--issuer", default=DEFAULT_LICENSE_ISSUER, help=f"iss (default {DEFAULT_LICENSE_ISSUER})"
    )
    verify.add_argument("token", metavar="TOKEN|-", help="the token, or - to read it from stdin")
    verify.set_defaults(func=cmd_license_verify)
