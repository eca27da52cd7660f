"""``storno-security``: run the reference server and manage its keys, licenses and data.

Every command reads the same ``STORNO_*`` settings as the server (see ``docs/server.md``).
Exit codes: 0 success, 1 the operation failed (a bad key file, an invalid license or signature,
an unreachable database...), 2 bad usage (an unknown option, a malformed setting). Errors are
one line on stderr, never a traceback; no command ever prints key material.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import attrs
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reference_server import db
from reference_server.keys import (
    KeyFileError,
    generate_jwt_key,
    generate_vault_key,
    load_jwt_ring,
    load_key_material,
    load_vault_ring,
    load_xml_material,
    retire_jwt_key,
)
from reference_server.settings import Settings, SettingsError
from storno_security.clock import SystemClock
from storno_security.errors import (
    InvalidCiphertextError,
    InvalidLicenseError,
    InvalidXmlSignatureError,
    LicenseKeyError,
    StoreError,
    XmlParseError,
)
from storno_security.license import (
    LicenseIssuer,
    LicenseKey,
    LicensePolicy,
    LicenseSigningKey,
    LicenseStatus,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore
from storno_security.vault import VaultKeyRing
from storno_security.xmlsig import XmlVerifier, parse_xml

__all__ = [
    "ACCESS_LOG_FORMAT",
    "CliError",
    "UsageError",
    "WorkerPlan",
    "build_parser",
    "main",
    "plan_workers",
]

PROG = "storno-security"
DEFAULT_LICENSE_ISSUER = str(attrs.fields(Settings).license_issuer.default)
_KID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_DS = "http://www.w3.org/2000/09/xmldsig#"
_SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"


class CliError(Exception):
    """An operation failed: exit code 1 with this message."""


class UsageError(Exception):
    """The command line or the settings are wrong: exit code 2 with this message."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``storno-security keys: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: error: {message} (see {self.prog} --help)", 2)


def _fail(message: str, code: int) -> NoReturn:
    text = " ".join(message.split())
    sys.stderr.write(text + "\n")
    raise SystemExit(code)


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _note(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


# -- settings and key directories ---------------------------------------------------------------


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir)
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise UsageError(f"bad setting: {exc}") from None


def _keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


@contextmanager
def _keys_lock(settings: Settings) -> Iterator[None]:
    """The lock the server takes while generating keys, so a command never races a start."""
    keys = _keys_dir(settings)
    if not keys.is_dir():
        raise CliError(f"no key directory {keys}; run: {PROG} keys generate")
    with os.fdopen(os.open(keys / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _active(directory: Path) -> str | None:
    marker = directory / "ACTIVE"
    return marker.read_text(encoding="ascii").strip() if marker.exists() else None


def _check_kid(kid: str) -> str:
    if not _KID.fullmatch(kid):
        raise UsageError(f"{kid!r} is not a key id (letters, digits, '-' and '_')")
    return kid


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":")


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never overwrite, never widen permissions after the fact)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CliError(f"{path} exists already; refusing to overwrite it") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# -- serve ----------------------------------------------------------------------------------------


@attrs.frozen
class WorkerPlan:
    """How many processes and threads ``serve`` runs, and why when it differs from the request."""

    workers: int
    threads: int
    note: str | None = None


def plan_workers(
    settings: Settings, *, requested: int | None, threads: int | None, cores: int | None
) -> WorkerPlan:
    """Workers for ``settings``: one process when rate limits live in memory (they would be per
    process otherwise), else the request or ``min(2 * cores + 1, 8)``."""
    if not settings.shares_state_across_processes:
        note = None
        if requested is not None and requested > 1:
            note = (
                f"running 1 worker, not {requested}: rate limits are in memory "
                f"({settings.effective_ratelimit_uri}) and would be counted per process; "
                "set STORNO_REDIS_URL or STORNO_RATELIMIT_URI to run several workers"
            )
        return WorkerPlan(workers=1, threads=threads or 8, note=note)
    workers = requested or min(2 * (cores or 1) + 1, 8)
    return WorkerPlan(workers=workers, threads=threads or 4)


#: The access log leaves out the query string (``%(U)s`` is the path alone), the referer and
#: the user agent: a token in a URL must never reach a log.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _gunicorn_options(
    settings: Settings, plan: WorkerPlan, args: argparse.Namespace
) -> dict[str, Any]:
    proxies = ",".join(str(network) for network in settings.trusted_proxies)
    options: dict[str, Any] = {
        "bind": [_bind_address(settings.host, settings.port)],
        "workers": plan.workers,
        "threads": plan.threads,
        "worker_class": "gthread",
        "timeout": args.timeout,
        "graceful_timeout": args.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "proc_name": PROG,
        # X-Forwarded-Proto is believed only from the proxies the app trusts for client IPs
        # (none when STORNO_TRUSTED_PROXIES is empty, rather than gunicorn's loopback default).
        "forwarded_allow_ips": proxies,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "errorlog": "-",
        "loglevel": args.log_level,
        "accesslog": "-" if args.access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
    }
    return options


def _run_gunicorn(options: dict[str, Any], url: str) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class StornoApplication(BaseApplication):  # type: ignore[misc]
        """gunicorn with our options and the app factory (each worker builds its services)."""

        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 25.1 opens a control socket at one path per user ($HOME):
                # two servers would fight over it, and nothing here uses it.
                self.cfg.set("control_socket_disable", True)

            def when_ready(server: Any) -> None:
                _say(f"{PROG}: serving on {url}")

            self.cfg.set("when_ready", when_ready)

        def load(self) -> Any:
            from reference_server.app import create_app_from_env

            return create_app_from_env()

    StornoApplication().run()


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = _settings(args, **overrides)
    plan = plan_workers(
        settings, requested=settings.workers, threads=args.threads, cores=os.cpu_count()
    )
    if plan.note:
        _note(plan.note)
    # Workers read their settings from the environment: pass the flags on the same way.
    if args.data_dir is not None:
        os.environ["STORNO_DATA_DIR"] = str(settings.data_dir)
    os.environ["STORNO_HOST"] = settings.host
    os.environ["STORNO_PORT"] = str(settings.port)
    os.environ["STORNO_WORKERS"] = str(plan.workers)
    # Once, before any worker starts: keys generated on a first run, the schema created.
    from reference_server.services import build_services

    build_services(settings).close()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    _note(
        f"{plan.workers} worker(s) x {plan.threads} threads, data in {settings.data_dir}, "
        f"public URL {settings.public_url}"
    )
    _run_gunicorn(_gunicorn_options(settings, plan, args), url)
    return 0


# -- keys -----------------------------------------------------------------------------------------


def _describe_keys(settings: Settings) -> list[str]:
    keys = _keys_dir(settings)
    lines: list[str] = []
    if settings.jwt_key_file is not None:
        lines.append(f"jwt    (from STORNO_JWT_KEY_FILE {settings.jwt_key_file})")
    else:
        active = _active(keys / "jwt")
        for path in sorted((keys / "jwt").glob("*.pem")):
            role = "signing" if path.stem == active else "verify-only"
            lines.append(f"jwt    {path.stem}  {role}")
    if settings.vault_key_file is not None:
        lines.append(f"vault  (from STORNO_VAULT_KEY_FILE {settings.vault_key_file})")
    else:
        active = _active(keys / "vault")
        for path in sorted((keys / "vault").glob("*.key")):
            role = "active" if path.stem == active else "decrypt-only"
            lines.append(f"vault  {path.stem}  {role}")
    cert_path = settings.xml_cert_file or keys / "xml" / "signer.crt"
    if cert_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            raise KeyFileError(f"{cert_path} is not a PEM certificate") from None
        lines.append(
            f"xml    {cert.subject.rfc4514_string()}  sha256 {_fingerprint(cert)}  "
            f"until {cert.not_valid_after_utc.date().isoformat()}"
        )
    if (keys / "audit-pseudonym.key").exists():
        lines.append("audit  pseudonym key present")
    return lines


def cmd_keys_generate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    before = set(_describe_keys(settings)) if _keys_dir(settings).is_dir() else set()
    load_key_material(
        settings.data_dir,
        jwt_key_file=settings.jwt_key_file,
        vault_key_file=settings.vault_key_file,
        xml_key_file=settings.xml_key_file,
        xml_cert_file=settings.xml_cert_file,
        create=True,
    )
    for line in _describe_keys(settings):
        _say(f"{line}  {'(existing)' if line in before else '(created)'}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    lines = _describe_keys(settings) if _keys_dir(settings).is_dir() else []
    if not lines:
        raise CliError(f"no keys in {_keys_dir(settings)}; run: {PROG} keys generate")
    for line in lines:
        _say(line)
    return 0


def _jwt_dir(settings: Settings) -> Path:
    if settings.jwt_key_file is not None:
        raise CliError(
            "STORNO_JWT_KEY_FILE is set: the signing key comes from that file; "
            "unset it to manage keys in the data directory"
        )
    return _keys_dir(settings) / "jwt"


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    directory = _jwt_dir(settings)
    with _keys_lock(settings):
        old = load_jwt_ring(directory, create=False).signer.kid
        new = generate_jwt_key(directory)
        load_jwt_ring(directory, create=False)  # the new set loads before we report success
    _say(f"jwt    {new.kid}  signing (new)")
    _say(f"jwt    {old}  verify-only (tokens it signed keep working until it is retired)")
    _note(
        "restart the server (or send SIGHUP to its master process) to sign with the new key; "
        f"retire the old one after the access-token lifetime: {PROG} keys retire {old}"
    )
    return 0


def cmd_keys_retire(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kid = _check_kid(args.kid)
    directory = _jwt_dir(settings)
    with _keys_lock(settings):
        retire_jwt_key(directory, kid)
    _say(f"jwt    {kid}  retired (tokens it signed no longer verify)")
    _note("restart the server (or send SIGHUP to its master process) to drop the key")
    return 0


# -- license --------------------------------------------------------------------------------------


def _check_key_file(path: Path) -> bytes:
    data = _read_input(str(path))
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
    _write_new_file(private_path, key.private_pem(), 0o600)
    _write_new_file(public_path, key.public.public_pem(), 0o644)
    _say(f"kid {key.kid} ({key.algorithm})")
    _say(f"private key {private_path} (0600: keep it on the vendor's machine only)")
    _say(f"public key  {public_path} (give it to installations: STORNO_LICENSE_PUBLIC_KEY_FILE)")
    return 0


def cmd_license_issue(args: argparse.Namespace) -> int:
    key = LicenseSigningKey.from_pem(_check_key_file(Path(args.private_key)))
    if args.days < 1:
        raise UsageError("--days must be at least 1")
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
    _say(issued.token)
    _note(
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
    public = LicenseKey.from_pem(_read_input(args.public_key))
    if args.token == "-":  # noqa: S105 - "-" means stdin, not a password
        text = _read_input("-").decode("ascii", errors="replace").strip()
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
    _say(json.dumps(_status_json(status), indent=2))
    return 0


# -- xml ------------------------------------------------------------------------------------------


def _server_certificate(settings: Settings) -> x509.Certificate:
    path = settings.xml_cert_file or _keys_dir(settings) / "xml" / "signer.crt"
    return _load_certificate(path)


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read_input(str(path)))
    except ValueError:
        raise CliError(f"{path} is not a PEM certificate") from None


def cmd_xml_sign(args: argparse.Namespace) -> int:
    from storno_security.xmlsig import XmlSigner

    if (args.key is None) != (args.cert is None):
        raise UsageError("--key and --cert go together")
    if args.key is not None:
        material = load_xml_material(
            Path(args.key).parent, key_file=Path(args.key), cert_file=Path(args.cert), create=False
        )
    else:
        settings = _settings(args)
        material = load_xml_material(
            _keys_dir(settings) / "xml",
            key_file=settings.xml_key_file,
            cert_file=settings.xml_cert_file,
            create=False,
        )
    signer = XmlSigner(material.private_key, material.certificate, clock=SystemClock())
    document = _read_input(args.input)
    signed = signer.sign_xades(document) if args.xades else signer.sign(document)
    if args.output == "-":
        sys.stdout.buffer.write(signed)
        sys.stdout.flush()
    else:
        try:
            Path(args.output).write_bytes(signed)
        except OSError as exc:
            raise CliError(f"{args.output}: cannot write ({exc.strerror})") from None
    _note(
        f"signed ({'XAdES-BES' if args.xades else 'XMLDSig'}) by "
        f"{material.certificate.subject.rfc4514_string()}"
    )
    return 0


def _is_xades(document: bytes) -> bool:
    root = parse_xml(document)
    return any(
        reference.get("Type") == _SIGNED_PROPERTIES
        for reference in root.iter(f"{{{_DS}}}Reference")
    )


def cmd_xml_verify(args: argparse.Namespace) -> int:
    if args.cert is not None:
        certificate = _load_certificate(Path(args.cert))
    else:
        certificate = _server_certificate(_settings(args))
    verifier = XmlVerifier(expected_certificate=certificate, clock=SystemClock())
    document = _read_input(args.input)
    if args.detached_data is not None:
        result = verifier.verify_detached(document, data=_read_input(args.detached_data))
        kind = "detached"
    elif _is_xades(document):
        result = verifier.verify_xades(document)
        kind = "XAdES-BES"
    else:
        result = verifier.verify(document)
        kind = "XMLDSig"
    # stdout: exactly the bytes the signature covers, the only part to trust.
    sys.stdout.buffer.write(result.signed_bytes)
    if not result.signed_bytes.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    when = f", signing time {result.signing_time.isoformat()}" if result.signing_time else ""
    _note(
        f"valid {kind} signature by {result.certificate.subject.rfc4514_string()} "
        f"(sha256 {_fingerprint(result.certificate)}){when}"
    )
    return 0


# -- vault ----------------------------------------------------------------------------------------


@attrs.frozen
class SealedColumn:
    """A column holding vault-sealed values, and how to rebuild each value's associated data.

    ``associated_data`` is ``None`` for values that cannot be re-sealed (their associated data
    is not known here): rotation clears them instead.
    """

    table: sa.Table
    column: str
    associated_data: Callable[[sa.RowMapping], str] | None
    extra_columns: tuple[str, ...] = ()


def _sealed_columns() -> tuple[SealedColumn, ...]:
    from reference_server.users import totp_associated_data

    return (
        SealedColumn(db.users, "totp_secret_sealed", lambda row: totp_associated_data(row["id"])),
        # Enrolments not yet confirmed: cleared on rotation; the user starts the setup again.
        SealedColumn(db.users, "totp_pending_sealed", None),
        SealedColumn(
            db.storage_credentials,
            "sealed",
            lambda row: f"app_storage_credentials:{row['id']}:{row['company_id']}",
            ("company_id",),
        ),
    )


def _holds_sealed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Rows that hold a sealed value: a deleted storage credential keeps ``sealed = ""`` (its
    secret wiped), which is not a value to re-seal nor one "that no key opens"."""
    return sa.and_(column.is_not(None), column != "")


@attrs.define
class ResealReport:
    resealed: int = 0
    current: int = 0
    cleared: int = 0
    changed_meanwhile: int = 0
    unreadable: int = 0


def _reseal(database: db.Database, ring: VaultKeyRing) -> dict[str, ResealReport]:
    """Re-seal every value not under the active key, one compare-and-set UPDATE per row."""
    reports: dict[str, ResealReport] = {}
    for spec in _sealed_columns():
        report = reports.setdefault(f"{spec.table.name}.{spec.column}", ResealReport())
        column = spec.table.c[spec.column]
        wanted = [spec.table.c.id, column, *(spec.table.c[name] for name in spec.extra_columns)]
        with database.transaction() as conn:
            rows = conn.execute(sa.select(*wanted).where(_holds_sealed(column))).mappings().all()
        for row in rows:
            old = row[spec.column]
            try:
                if not ring.needs_rotation(old):
                    report.current += 1
                    continue
                new = (
                    None
                    if spec.associated_data is None
                    else ring.rotate(old, associated_data=spec.associated_data(row))
                )
            except InvalidCiphertextError:
                report.unreadable += 1
                continue
            with database.transaction() as conn:
                updated = conn.execute(
                    spec.table.update()
                    .where(spec.table.c.id == row["id"], column == old)
                    .values({spec.column: new})
                ).rowcount
            if updated != 1:
                report.changed_meanwhile += 1
            elif new is None:
                report.cleared += 1
            else:
                report.resealed += 1
    return reports


def _vault_dir(settings: Settings) -> Path:
    if settings.vault_key_file is not None:
        raise CliError(
            "STORNO_VAULT_KEY_FILE is set: the vault key comes from that file; "
            "rotation needs the key ring in the data directory"
        )
    return _keys_dir(settings) / "vault"


def _database(settings: Settings) -> db.Database:
    database = db.Database(settings.effective_database_url)
    database.create_schema()
    return database


def _print_reseal(reports: dict[str, ResealReport]) -> int:
    problems = 0
    for name, report in reports.items():
        _say(
            f"{name}: {report.resealed} re-sealed, {report.cleared} cleared, "
            f"{report.current} already current, {report.changed_meanwhile} changed meanwhile, "
            f"{report.unreadable} unreadable"
        )
        problems += report.unreadable + report.changed_meanwhile
    return problems


def _finish_reseal(reports: dict[str, ResealReport]) -> int:
    problems = _print_reseal(reports)
    if problems:
        _note(
            "some values were not re-sealed: rows changed while we worked (run "
            f"`{PROG} vault reseal` again) or values that no key opens (listed as unreadable)"
        )
        return 1
    return 0


def cmd_vault_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    directory = _vault_dir(settings)
    with _keys_lock(settings):
        old = load_vault_ring(directory, create=False).active_kid
        key = generate_vault_key(directory)
        ring = load_vault_ring(directory, create=False)
    _say(f"vault  {key.kid}  active (new)")
    _say(f"vault  {old}  decrypt-only")
    database = _database(settings)
    try:
        code = _finish_reseal(_reseal(database, ring))
    finally:
        database.dispose()
    _note(
        "restart the server (or send SIGHUP) so it seals with the new key, then run "
        f"`{PROG} vault reseal` (values written meanwhile) and `{PROG} vault retire-old`"
    )
    return code


def cmd_vault_reseal(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ring = load_vault_ring(_vault_dir(settings), create=False)
    database = _database(settings)
    try:
        return _finish_reseal(_reseal(database, ring))
    finally:
        database.dispose()


def cmd_vault_retire_old(args: argparse.Namespace) -> int:
    settings = _settings(args)
    directory = _vault_dir(settings)
    database = _database(settings)
    try:
        with _keys_lock(settings):
            ring = load_vault_ring(directory, create=False)
            waiting = 0
            for spec in _sealed_columns():
                column = spec.table.c[spec.column]
                with database.transaction() as conn:
                    values = conn.execute(sa.select(column).where(_holds_sealed(column))).scalars()
                    for value in values:
                        try:
                            waiting += ring.needs_rotation(value)
                        except InvalidCiphertextError:
                            continue
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
        _say(f"vault  {path.stem}  retired")
    if not retired:
        _say("vault  no old keys to retire")
    return 0


# -- audit and accounts ---------------------------------------------------------------------------


def cmd_audit_purge(args: argparse.Namespace) -> int:
    from reference_server.services import build_services

    settings = _settings(args)
    services = build_services(settings, create_keys=False)
    try:
        count = services.audit.purge_expired()
    finally:
        services.close()
    _say(f"purged {count} audit event(s) older than {settings.audit_retention_days} days")
    return 0


def cmd_accounts_purge(args: argparse.Namespace) -> int:
    from reference_server.wiring import build_server

    try:
        gdpr: Any = importlib.import_module("reference_server.gdpr")
    except ModuleNotFoundError as exc:
        if exc.name != "reference_server.gdpr":
            raise
        raise CliError(
            "accounts purge needs reference_server.gdpr, which is not installed"
        ) from None
    settings = _settings(args)
    server = build_server(settings, create_keys=False)
    try:
        count = gdpr.purge_deleted_accounts(server)
    finally:
        server.close()
    _say(f"purged {count} account(s) deleted more than {settings.deletion_grace_days} days ago")
    return 0


# -- the parser -----------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``storno-security <command> [<subcommand>] ...``."""
    data = _Parser(add_help=False)
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the data directory (default: STORNO_DATA_DIR, else ./storno-data)",
    )

    parser = _Parser(
        prog=PROG,
        description="Run the storno-security reference server and manage its keys and data. "
        "Settings come from STORNO_* environment variables (docs/server.md).",
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    commands.required = True

    serve = commands.add_parser(
        "serve",
        parents=[data],
        help="run the HTTP server (gunicorn)",
        description="Prepare keys and schema once, then run gunicorn workers. With in-memory "
        "rate limits one worker runs (several threads); with Redis several workers run.",
    )
    serve.add_argument("--host", help="address to listen on (STORNO_HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_positive_int, help="port to listen on (STORNO_PORT, default 8000)"
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        help="worker processes (STORNO_WORKERS; default min(2 x cores + 1, 8), "
        "or 1 with in-memory rate limits)",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        help="threads per worker (default 8 for one worker, else 4)",
    )
    serve.add_argument(
        "--timeout",
        type=_positive_int,
        default=30,
        help="seconds before a silent worker is killed and restarted (default 30)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_positive_int,
        default=30,
        help="seconds a worker may finish its requests on shutdown (default 30)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log each request to stdout (path only: query strings are never logged)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="gunicorn log level (default info)",
    )
    serve.set_defaults(func=cmd_serve)

    keys = commands.add_parser(
        "keys", help="the server's key files", description="Manage the keys in DATA_DIR/keys."
    )
    key_commands = keys.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
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

    lic = commands.add_parser(
        "license", help="vendor license keys and tokens", description="Issue and verify licenses."
    )
    lic_commands = lic.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
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
        "--days", required=True, type=_positive_int, metavar="N", help="days of validity"
    )
    issue.add_argument(
        "--feature", action="append", metavar="F", help="a feature switched on (repeatable)"
    )
    issue.add_argument("--max-companies", type=_count, metavar="N", help="default: no limit")
    issue.add_argument("--max-users", type=_count, metavar="N", help="default: no limit")
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

    xml = commands.add_parser("xml", help="sign and verify XML", description="XML signatures.")
    xml_commands = xml.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
    xml_commands.required = True
    sign = xml_commands.add_parser(
        "sign",
        parents=[data],
        help="sign a document (enveloped XMLDSig or XAdES-BES)",
        description="Sign IN into OUT (- for stdout) with the server's XML key, or --key/--cert.",
    )
    sign.add_argument("input", metavar="IN", help="the document (- for stdin)")
    sign.add_argument("output", metavar="OUT", help="where to write the signed document")
    sign.add_argument("--xades", action="store_true", help="XAdES-BES instead of plain XMLDSig")
    sign.add_argument("--key", metavar="FILE", help="RSA private key (PEM, mode 0600)")
    sign.add_argument("--cert", metavar="FILE", help="its certificate (PEM)")
    sign.set_defaults(func=cmd_xml_sign)
    xverify = xml_commands.add_parser(
        "verify",
        parents=[data],
        help="verify a signed document; print what was signed",
        description="Verify IN against the server's certificate or --cert. On success the "
        "signed bytes go to stdout (use them, not IN) and the signer to stderr; exit 1 with "
        "the reason otherwise.",
    )
    xverify.add_argument("input", metavar="IN", help="the signed document (- for stdin)")
    xverify.add_argument("--cert", metavar="FILE", help="the one certificate trusted to sign")
    xverify.add_argument(
        "--detached-data", metavar="FILE", help="IN is a detached signature over this file"
    )
    xverify.set_defaults(func=cmd_xml_verify)

    vault = commands.add_parser(
        "vault", help="vault key rotation", description="Rotate the vault key."
    )
    vault_commands = vault.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
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

    audit = commands.add_parser("audit", help="the audit trail", description="Audit trail.")
    audit_commands = audit.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
    audit_commands.required = True
    audit_commands.add_parser(
        "purge",
        parents=[data],
        help="delete events past the retention period",
        description="Delete audit events older than STORNO_AUDIT_RETENTION_DAYS (ACC-3).",
    ).set_defaults(func=cmd_audit_purge)

    accounts = commands.add_parser("accounts", help="user accounts", description="Accounts.")
    account_commands = accounts.add_subparsers(
        dest="action", metavar="<action>", parser_class=_Parser
    )
    account_commands.required = True
    account_commands.add_parser(
        "purge",
        parents=[data],
        help="hard-delete accounts past the deletion grace period",
        description="Hard-delete accounts deleted more than STORNO_DELETION_GRACE_DAYS ago "
        "(ACC-4).",
    ).set_defaults(func=cmd_accounts_purge)
    return parser


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, InvalidLicenseError):
        return f"invalid license (reason: {exc.reason})"
    if isinstance(exc, InvalidXmlSignatureError):
        return f"invalid signature (reason: {exc.reason})"
    if isinstance(exc, XmlParseError):
        return f"the XML document is refused (reason: {exc.reason})"
    if isinstance(exc, LicenseKeyError):
        return f"unusable license key: {exc} (reason: {exc.reason})"
    if isinstance(exc, StoreError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        return f"{exc}{detail}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        _fail(f"{PROG}: error: {exc}", 2)
    except SettingsError as exc:
        _fail(f"{PROG}: error: bad setting: {exc}", 2)
    except (
        CliError,
        KeyFileError,
        InvalidLicenseError,
        InvalidXmlSignatureError,
        XmlParseError,
        LicenseKeyError,
        StoreError,
        OSError,
        ValueError,
    ) as exc:
        _fail(f"{PROG}: error: {_failure_message(exc)}", 1)
    except ModuleNotFoundError as exc:
        # A driver the settings need (psycopg, pymysql, redis) is not installed.
        _fail(
            f"{PROG}: error: the Python module {exc.name!r} is missing; install the extra "
            "for your settings, e.g. pip install 'storno-security[server,postgres,redis]'",
            1,
        )
    except KeyboardInterrupt:
        _fail(f"{PROG}: interrupted", 130)


if __name__ == "__main__":  # pragma: no cover - python -m reference_server.cli
    raise SystemExit(main())
