"""An application's keys on disk: generated on first run, 0600 files in a 0700 directory,
reused after; the JWT, vault and XML-signing keys and the audit pseudonym key, loaded as the
library's key objects (``KitKeys`` takes three of them).

Layout under ``<data_dir>/keys``::

    jwt/<kid>.pem      RSA private keys (PKCS#8 PEM); the one named in jwt/ACTIVE signs,
                       the others verify only (rotation keeps live tokens valid, JWT-3)
    jwt/ACTIVE         the kid of the signing key
    vault/<kid>.key    64-byte vault master keys (base64); vault/ACTIVE names the one that seals
    vault/ACTIVE
    xml/signer.key     RSA key and self-signed certificate for XML signing
    xml/signer.crt

Files are written atomically (a temporary file created 0600, fsynced, then renamed), so a
crash never leaves half a key. A key file that group or others can read is refused: a key that
may have leaked is not a key to keep using.
"""

from __future__ import annotations

import fcntl
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from storno_security.clock import SystemClock
from storno_security.errors import InvalidKeyError
from storno_security.tokens import KeyRing, SigningKey
from storno_security.vault import VaultKey, VaultKeyRing

__all__ = [
    "KeyFileError",
    "KeyMaterial",
    "XmlSigningMaterial",
    "generate_jwt_key",
    "generate_vault_key",
    "load_jwt_ring",
    "load_key_material",
    "load_pseudonym_key",
    "load_vault_ring",
    "load_xml_material",
    "retire_jwt_key",
    "write_secret_file",
]

_ACTIVE = "ACTIVE"


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or too widely readable."""


@attrs.frozen
class XmlSigningMaterial:
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    certificate: x509.Certificate


@attrs.frozen
class KeyMaterial:
    """The server's keys, loaded from disk or settings."""

    jwt: KeyRing = attrs.field(repr=False)
    vault: VaultKeyRing = attrs.field(repr=False)
    xml: XmlSigningMaterial = attrs.field(repr=False)
    pseudonym: bytes = attrs.field(repr=False)


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    _ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_secret_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from None


def _active_kid(directory: Path) -> str | None:
    marker = directory / _ACTIVE
    if not marker.exists():
        return None
    kid = marker.read_text(encoding="ascii").strip()
    if not kid or "/" in kid or kid.startswith("."):
        raise KeyFileError(f"{marker} does not name a key")
    return kid


# -- JWT ---------------------------------------------------------------------------------------


def generate_jwt_key(directory: Path, *, bits: int = 3072, activate: bool = True) -> SigningKey:
    """Create a new RSA signing key in ``directory``; make it the signer when ``activate``."""
    key = SigningKey.generate(bits=bits)
    write_secret_file(directory / f"{key.kid}.pem", key.private_pem())
    if activate:
        write_secret_file(directory / _ACTIVE, key.kid.encode("ascii"))
    return key


def retire_jwt_key(directory: Path, kid: str) -> None:
    """Remove a verify-only key: tokens it signed stop verifying (JWT-3)."""
    if _active_kid(directory) == kid:
        raise KeyFileError(f"{kid} is the active signing key; rotate before retiring it")
    path = directory / f"{kid}.pem"
    if not path.exists():
        raise KeyFileError(f"no key {kid} in {directory}")
    path.unlink()


def load_jwt_ring(directory: Path, *, key_file: Path | None = None, create: bool = True) -> KeyRing:
    """The key ring: the ACTIVE key signs, every other key in the directory verifies only."""
    if key_file is not None:
        return KeyRing(_signing_key_from(key_file))
    kid = _active_kid(directory)
    if kid is None:
        if not create:
            raise KeyFileError(
                f"no JWT signing key in {directory}; run: storno-security keys generate"
            )
        kid = generate_jwt_key(directory).kid
    signer = _signing_key_from(directory / f"{kid}.pem")
    others = [
        _signing_key_from(path).public
        for path in sorted(directory.glob("*.pem"))
        if path.stem != kid
    ]
    return KeyRing(signer, verify_only=others)


def _signing_key_from(path: Path) -> SigningKey:
    data = _read_secret_file(path)
    try:
        return SigningKey.from_pem(data)
    except (InvalidKeyError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a usable RSA private key: {exc}") from None


# -- vault -------------------------------------------------------------------------------------


def generate_vault_key(directory: Path, *, activate: bool = True) -> VaultKey:
    """Create a new vault master key in ``directory``; make it the sealing key when ``activate``."""
    key = VaultKey.generate()
    write_secret_file(directory / f"{key.kid}.key", key.to_base64().encode("ascii"))
    if activate:
        write_secret_file(directory / _ACTIVE, key.kid.encode("ascii"))
    return key


def _vault_key_from(path: Path) -> VaultKey:
    data = _read_secret_file(path).decode("ascii", errors="replace").strip()
    try:
        return VaultKey.from_base64(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a vault key: {exc}") from None


def load_vault_ring(
    directory: Path, *, key_file: Path | None = None, create: bool = True
) -> VaultKeyRing:
    """The vault ring: the ACTIVE key seals, the others open old ciphertexts only (VLT-3)."""
    if key_file is not None:
        return VaultKeyRing(_vault_key_from(key_file))
    kid = _active_kid(directory)
    if kid is None:
        if not create:
            raise KeyFileError(f"no vault key in {directory}; run: storno-security keys generate")
        kid = generate_vault_key(directory).kid
    active = _vault_key_from(directory / f"{kid}.key")
    others = [_vault_key_from(path) for path in sorted(directory.glob("*.key")) if path.stem != kid]
    return VaultKeyRing(active, decrypt_only=others)


# -- XML ---------------------------------------------------------------------------------------


def _self_signed(
    key: rsa.RSAPrivateKey, *, common_name: str, now: datetime | None = None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = now or SystemClock().now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def load_xml_material(
    directory: Path,
    *,
    key_file: Path | None = None,
    cert_file: Path | None = None,
    create: bool = True,
    now: datetime | None = None,
) -> XmlSigningMaterial:
    """The XML signing key and certificate: from settings, or self-signed on first run."""
    key_path = key_file or directory / "signer.key"
    cert_path = cert_file or directory / "signer.crt"
    if key_file is None and not key_path.exists():
        if not create:
            raise KeyFileError(f"no XML signing key in {directory}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        cert = _self_signed(key, common_name="storno-security reference server", now=now)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_secret_file(key_path, pem)
        write_secret_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    data = _read_secret_file(key_path)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{key_path} is not a PEM private key: {exc}") from None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise KeyFileError(f"{key_path} must hold an RSA key for XMLDSig RSA-SHA256")
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{cert_path} is not a PEM certificate: {exc}") from None
    if certificate.public_key().public_numbers() != loaded.public_key().public_numbers():  # type: ignore[union-attr]
        raise KeyFileError(f"{cert_path} does not belong to {key_path}")
    return XmlSigningMaterial(loaded, certificate)


def load_pseudonym_key(path: Path, *, create: bool = True) -> bytes:
    """The key that pseudonymises user ids in the audit trail of deleted accounts (ACC-4)."""
    if not path.exists():
        if not create:
            raise KeyFileError(f"no pseudonym key at {path}")
        write_secret_file(path, os.urandom(32).hex().encode("ascii"))
    try:
        key = bytes.fromhex(_read_secret_file(path).decode("ascii").strip())
    except ValueError:
        raise KeyFileError(f"{path} is not a hex key") from None
    if len(key) < 32:
        raise KeyFileError(f"{path} holds fewer than 32 bytes")
    return key


def load_key_material(
    data_dir: Path,
    *,
    jwt_key_file: Path | None = None,
    vault_key_file: Path | None = None,
    xml_key_file: Path | None = None,
    xml_cert_file: Path | None = None,
    create: bool = True,
    now: datetime | None = None,
) -> KeyMaterial:
    """Load every key, generating what is missing when ``create`` (first run).

    Raises:
        KeyFileError: a key file is missing (with ``create=False``), malformed or readable by
            group or others.
    """
    keys = data_dir / "keys"
    if not create:
        return _load(keys, jwt_key_file, vault_key_file, xml_key_file, xml_cert_file, False, now)
    _ensure_private_dir(data_dir)
    _ensure_private_dir(keys)
    # Several workers may start at once on a first run: one generates, the others wait and read.
    lock_fd = os.open(keys / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(lock_fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _load(keys, jwt_key_file, vault_key_file, xml_key_file, xml_cert_file, True, now)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(
    keys: Path,
    jwt_key_file: Path | None,
    vault_key_file: Path | None,
    xml_key_file: Path | None,
    xml_cert_file: Path | None,
    create: bool,
    now: datetime | None = None,
) -> KeyMaterial:
    return KeyMaterial(
        jwt=load_jwt_ring(keys / "jwt", key_file=jwt_key_file, create=create),
        vault=load_vault_ring(keys / "vault", key_file=vault_key_file, create=create),
        xml=load_xml_material(
            keys / "xml", key_file=xml_key_file, cert_file=xml_cert_file, create=create, now=now
        ),
        pseudonym=load_pseudonym_key(keys / "audit-pseudonym.key", create=create),
    )
