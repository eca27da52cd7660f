"""Fixtures for the XML tests: a throw-away CA and signer made with ``cryptography``.

No private key is stored anywhere: every key is generated per test session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from storno_security.clock import FrozenClock
from storno_security.xmlsig import XmlSigner, XmlVerifier
from tests.xmlsig.hostile import listening_port, secret_file  # noqa: F401 (fixtures)

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@attrs.frozen
class Identity:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "RO"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "storno-security tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(common_name: str = "Test Root CA") -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, certificate)


def make_signer(
    ca: Identity,
    common_name: str = "Test Signer",
    *,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Identity(key, certificate)


@pytest.fixture(scope="session")
def ca() -> Identity:
    return make_ca()


@pytest.fixture(scope="session")
def signer_identity(ca: Identity) -> Identity:
    return make_signer(ca)


@pytest.fixture(scope="session")
def other_identity() -> Identity:
    return make_signer(make_ca("Other Root CA"), "Other Signer")


@pytest.fixture
def xml_clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def signer(signer_identity: Identity, xml_clock: FrozenClock) -> XmlSigner:
    return XmlSigner(signer_identity.key, signer_identity.certificate, clock=xml_clock)


@pytest.fixture
def pinned(signer_identity: Identity, xml_clock: FrozenClock) -> XmlVerifier:
    return XmlVerifier(expected_certificate=signer_identity.certificate, clock=xml_clock)


@pytest.fixture
def by_ca(ca: Identity, xml_clock: FrozenClock) -> XmlVerifier:
    return XmlVerifier(trusted_cas=[ca.certificate], clock=xml_clock)


@pytest.fixture(scope="session")
def ubl_invoice() -> bytes:
    return (DATA / "ubl-invoice.xml").read_bytes()


@pytest.fixture(scope="session")
def cii_invoice() -> bytes:
    return (DATA / "cii-invoice.xml").read_bytes()


@pytest.fixture
def data_file() -> Callable[[str], bytes]:
    return lambda name: (DATA / name).read_bytes()
