"""Keys on disk, one kind at a time: the JWT and vault rings with keys that only verify or
open, key files given by path, the XML signing pair and the audit pseudonym key, and every way
a key file can be wrong (the whole first run is in tests/server/test_framework.py)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from storno_security.integrations.keyfiles import (
    KeyFileError,
    generate_jwt_key,
    generate_vault_key,
    load_jwt_ring,
    load_pseudonym_key,
    load_vault_ring,
    load_xml_material,
    retire_jwt_key,
    write_secret_file,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tests")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


# -- files ---------------------------------------------------------------------------------------


def test_a_secret_file_is_private_and_its_parent_is_made_private(tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir(mode=0o755)
    parent.chmod(0o755)
    write_secret_file(parent / "secret", b"s3cret")
    assert (parent / "secret").read_bytes() == b"s3cret"
    assert stat.S_IMODE((parent / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "taken"
    target.mkdir(parents=True)  # a directory where the file should go: the rename fails
    with pytest.raises(IsADirectoryError):
        write_secret_file(target, b"s3cret")
    assert [p.name for p in target.parent.iterdir()] == ["taken"]


def test_a_key_file_that_is_missing_or_unreadable_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_vault_ring(tmp_path, key_file=tmp_path / "no-such.key")
    unreadable = tmp_path / "a-directory.key"
    unreadable.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="cannot be read"):
        load_vault_ring(tmp_path, key_file=unreadable)


@pytest.mark.parametrize("marker", ["", "../outside", ".hidden"])
def test_an_active_marker_must_name_a_key(tmp_path: Path, marker: str) -> None:
    write_secret_file(tmp_path / "ACTIVE", marker.encode())
    with pytest.raises(KeyFileError, match="does not name a key"):
        load_vault_ring(tmp_path)


# -- JWT -----------------------------------------------------------------------------------------


@pytest.mark.spec("JWT-3")
def test_a_generated_but_inactive_jwt_key_verifies_only(tmp_path: Path) -> None:
    active = generate_jwt_key(tmp_path, bits=2048)
    spare = generate_jwt_key(tmp_path, bits=2048, activate=False)
    assert (tmp_path / "ACTIVE").read_text() == active.kid
    ring = load_jwt_ring(tmp_path, create=False)
    assert ring.signer.kid == active.kid
    assert set(ring.kids) == {active.kid, spare.kid}
    with pytest.raises(KeyFileError, match="active signing key"):
        retire_jwt_key(tmp_path, active.kid)
    retire_jwt_key(tmp_path, spare.kid)
    assert load_jwt_ring(tmp_path, create=False).kids == (active.kid,)
    with pytest.raises(KeyFileError, match=f"no key {spare.kid}"):
        retire_jwt_key(tmp_path, spare.kid)


def test_a_jwt_key_file_given_by_path_is_the_only_signer(
    tmp_path: Path, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    key_file = tmp_path / "signer.pem"
    write_secret_file(key_file, _pem(rsa_keys[0]))
    generate_jwt_key(tmp_path / "jwt", bits=2048)  # ignored when a file is given
    ring = load_jwt_ring(tmp_path / "jwt", key_file=key_file)
    assert len(ring.kids) == 1
    assert ring.signer.private_pem() == _pem(rsa_keys[0])


def test_a_jwt_key_file_that_is_no_usable_rsa_key_is_a_key_file_error(tmp_path: Path) -> None:
    key_file = tmp_path / "signer.pem"
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for content in (b"-----BEGIN PRIVATE KEY-----\nnot a key\n", _pem(weak)):
        write_secret_file(key_file, content)
        with pytest.raises(KeyFileError, match="not a usable RSA private key"):
            load_jwt_ring(tmp_path, key_file=key_file)


# -- vault ---------------------------------------------------------------------------------------


@pytest.mark.spec("VLT-3")
def test_a_generated_but_inactive_vault_key_opens_only(tmp_path: Path) -> None:
    active = generate_vault_key(tmp_path)
    spare = generate_vault_key(tmp_path, activate=False)
    ring = load_vault_ring(tmp_path, create=False)
    assert ring.active_kid == active.kid
    assert set(ring.kids) == {active.kid, spare.kid}


def test_a_vault_key_file_given_by_path_is_the_only_key(tmp_path: Path) -> None:
    key = generate_vault_key(tmp_path / "elsewhere", activate=False)
    ring = load_vault_ring(tmp_path / "vault", key_file=tmp_path / "elsewhere" / f"{key.kid}.key")
    assert (ring.active_kid, ring.kids) == (key.kid, (key.kid,))
    assert not (tmp_path / "vault").exists()


def test_without_create_a_missing_vault_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no vault key"):
        load_vault_ring(tmp_path, create=False)
    assert list(tmp_path.iterdir()) == []


# -- XML -----------------------------------------------------------------------------------------


def test_an_xml_key_and_certificate_given_by_path(
    tmp_path: Path, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    key_file, cert_file = tmp_path / "x.key", tmp_path / "x.crt"
    write_secret_file(key_file, _pem(rsa_keys[0]))
    cert_file.write_bytes(_certificate(rsa_keys[0]))
    material = load_xml_material(tmp_path / "xml", key_file=key_file, cert_file=cert_file)
    assert material.private_key.private_numbers() == rsa_keys[0].private_numbers()
    assert material.certificate.public_bytes(serialization.Encoding.PEM) == cert_file.read_bytes()
    assert not (tmp_path / "xml").exists()  # nothing generated


def test_without_create_a_missing_xml_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no XML signing key"):
        load_xml_material(tmp_path, create=False)


def test_a_wrong_xml_key_or_certificate_is_refused(
    tmp_path: Path, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    key_file, cert_file = tmp_path / "x.key", tmp_path / "x.crt"

    def load() -> None:
        load_xml_material(tmp_path, key_file=key_file, cert_file=cert_file)

    write_secret_file(key_file, b"not pem")
    with pytest.raises(KeyFileError, match="is not a PEM private key"):
        load()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    write_secret_file(key_file, _pem(ec_key))
    with pytest.raises(KeyFileError, match="must hold an RSA key"):
        load()
    write_secret_file(key_file, _pem(rsa_keys[0]))
    with pytest.raises(KeyFileError, match="is not a PEM certificate"):
        load()  # no certificate file
    cert_file.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(KeyFileError, match="is not a PEM certificate"):
        load()
    cert_file.write_bytes(_certificate(rsa_keys[1]))
    with pytest.raises(KeyFileError, match="does not belong to"):
        load()


# -- the audit pseudonym key -----------------------------------------------------------------------


@pytest.mark.spec("ACC-4")
def test_the_pseudonym_key_is_made_once_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "audit-pseudonym.key"
    with pytest.raises(KeyFileError, match="no pseudonym key"):
        load_pseudonym_key(path, create=False)
    key = load_pseudonym_key(path)
    assert len(key) == 32
    assert load_pseudonym_key(path, create=False) == key
    write_secret_file(path, b"not hex at all")
    with pytest.raises(KeyFileError, match="is not a hex key"):
        load_pseudonym_key(path)
    write_secret_file(path, b"ab" * 31)
    with pytest.raises(KeyFileError, match="fewer than 32 bytes"):
        load_pseudonym_key(path)
