"""XML documents (XML-1..XML-3): sign (enveloped XMLDSig or XAdES-BES), verify against the
server's signing certificate (enveloped, XAdES, or a detached signature over a separate file),
and validate against a provider's schema.

Signing needs ``invoice.issue`` (a signature makes a document final); verifying and validating
``invoice.view``. Documents travel as standard base64 in JSON. Hostile XML is refused by the
library's parser before anything else (422).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reference_server.wiring import Server
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import TIME, string
from storno_security.rbac import Permission
from storno_security.xmlsig import VerifiedXml

__all__ = ["MAX_XML_BYTES", "routes"]

routes = Routes()

#: The largest XML document (decoded) these endpoints take.
MAX_XML_BYTES = 512 * 1024
_MAX_B64 = 4 * ((MAX_XML_BYTES + 2) // 3)

_B64 = {
    "type": "string",
    "minLength": 1,
    "contentEncoding": "base64",
    "description": f"Standard base64 of at most {MAX_XML_BYTES} bytes (413 beyond).",
}
_SIGNER = obj(
    {
        "subject": {"type": "string"},
        "issuer": {"type": "string"},
        "serial_number": {"type": "string"},
        "fingerprint_sha256": {"type": "string"},
        "not_valid_after": TIME,
    },
    required=("subject", "issuer", "fingerprint_sha256"),
)


def _decoded(body: Body, name: str) -> bytes:
    """A base64 field, decoded: 413 when too large, 400 when not standard base64."""
    value: str = body[name]
    if len(value) > _MAX_B64:
        raise ApiError(
            413,
            "payload_too_large",
            f"'{name}' must be at most {MAX_XML_BYTES} bytes.",
            extra={"field": name},
        )
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        bad_request(f"'{name}' must be standard base64.", field=name)
    return data


def _certificate(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "not_valid_after": iso(certificate.not_valid_after_utc),
    }


def _verified(verified: VerifiedXml, form: str) -> dict[str, Any]:
    return {
        "valid": True,
        "form": form,
        "signed_content_sha256": hashlib.sha256(verified.signed_bytes).hexdigest(),
        "signer": _certificate(verified.certificate),
        "signing_time": iso(verified.signing_time),
    }


@routes.post(
    "/api/v1/xml/sign",
    summary="Sign an XML document (enveloped XMLDSig or XAdES-BES)",
    tag="xml",
    company=True,
    body=obj({"xml": _B64, "form": {"enum": ["enveloped", "xades"]}}, required=("xml", "form")),
    responses={
        200: obj({"xml": {"type": "string"}, "form": {"type": "string"}}, required=("xml",))
    },
)
def sign(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.INVOICE_ISSUE, company=True)
    ctx.state.require_plan(auth.organization_id, feature="xml_sign")
    document = _decoded(body, "xml")
    signer = ctx.state.xml_signer
    signed = signer.sign(document) if body["form"] == "enveloped" else signer.sign_xades(document)
    ctx.json({"xml": base64.b64encode(signed).decode("ascii"), "form": body["form"]})


@routes.post(
    "/api/v1/xml/verify",
    summary="Verify an XML signature against the server's signing certificate",
    description=(
        "`signed_content_sha256` is the SHA-256 of the canonical bytes the signature covers. "
        "For `detached`, `xml` is the signature document and `detached_data` the signed file."
    ),
    tag="xml",
    company=True,
    body=obj(
        {
            "xml": _B64,
            "form": {"enum": ["enveloped", "xades", "detached"]},
            "detached_data": _B64,
        },
        required=("xml", "form"),
    ),
    responses={
        200: obj(
            {
                "valid": {"const": True},
                "form": {"type": "string"},
                "signed_content_sha256": {"type": "string"},
                "signer": _SIGNER,
                "signing_time": {"type": ["string", "null"], "format": "date-time"},
            },
            required=("valid", "signed_content_sha256", "signer"),
        )
    },
)
def verify(ctx: Ctx[Server], body: Body) -> None:
    ctx.authorize(Permission.INVOICE_VIEW, company=True)
    form = body["form"]
    document = _decoded(body, "xml")
    if (form == "detached") != ("detached_data" in body):
        bad_request(
            "'detached_data' is required with form 'detached' and only then.",
            field="detached_data",
        )
    verifier = ctx.state.xml_verifier
    if form == "detached":
        verified = verifier.verify_detached(document, data=_decoded(body, "detached_data"))
    elif form == "xades":
        verified = verifier.verify_xades(document)
    else:
        verified = verifier.verify(document)
    ctx.json(_verified(verified, form))


@routes.post(
    "/api/v1/xml/validate",
    summary="Validate an XML document against a provider's schema",
    description="An invalid document is `422 schema_invalid` with `errors: [{line, message}]`.",
    tag="xml",
    company=True,
    body=obj({"xml": _B64, "provider": string(64)}, required=("xml", "provider")),
    responses={
        200: obj(
            {
                "valid": {"const": True},
                "provider": {"type": "string"},
                "root_element": {"type": "string"},
            },
            required=("valid", "provider", "root_element"),
        )
    },
)
def validate(ctx: Ctx[Server], body: Body) -> None:
    ctx.authorize(Permission.INVOICE_VIEW, company=True)
    root = ctx.state.schemas.validate(body["provider"], _decoded(body, "xml"))
    ctx.json({"valid": True, "provider": body["provider"], "root_element": str(root.tag)})


@routes.get(
    "/api/v1/xml/providers",
    summary="The schema providers this server can validate against",
    tag="xml",
    responses={
        200: obj(
            {"providers": {"type": "array", "items": {"type": "object"}}},
            required=("providers",),
        )
    },
)
def providers(ctx: Ctx[Server], body: Body) -> None:
    ctx.json(
        {
            "providers": [
                {"provider": name, "root_elements": list(roots)}
                for name, roots in ctx.state.schemas.providers.items()
            ]
        }
    )
