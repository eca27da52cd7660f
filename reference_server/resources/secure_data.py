"""Secure data over HTTP: storage credentials in the vault (VLT), the organization's license
(LIC), XML signing, verification and schema validation (XML), the audit log (ACC-3) and the
GDPR export and account deletion (ACC-4).

Permissions:

* storage credentials: ``vault.manage`` for every verb, the listing included. The listing shows
  no secret, but which providers a company stores credentials for, under which names, is part of
  the configuration the catalogue puts under ``vault.manage`` ("store and read sealed secrets");
  nobody without it can act on them, so nobody without it needs to see them.
* license: ``org.view`` to read the status (the catalogue: "see the organization's name, plan
  and limits"), ``license.manage`` to install one.
* XML: ``invoice.issue`` to sign (a signature makes a document final), ``invoice.view`` to
  verify and validate.
* audit log: ``audit.view``; always the caller's organization only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import falcon
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reference_server import db, gdpr, users
from reference_server.context import (
    Resource,
    audit_meta,
    authorize_request,
    require_interactive_user,
    require_user,
)
from reference_server.errors import ApiError
from reference_server.http import (
    Router,
    bad_request,
    body_text,
    iso,
    required_text,
)
from reference_server.openapi import obj, operation
from reference_server.reauth import require_reauthentication
from reference_server.services import Services
from storno_security.audit import (
    AuditCursor,
    SecurityEventType,
    event_from_error,
    event_from_license_status,
    event_to_dict,
    vault_access_event,
)
from storno_security.errors import (
    InvalidCiphertextError,
    InvalidLicenseError,
    InvalidStepUpTokenError,
)
from storno_security.license import Entitlements, LicenseState, LicenseStatus
from storno_security.mfa import ACCOUNT_DELETE, VAULT_READ
from storno_security.ratelimit import LICENSE_VALIDATION, LOGIN
from storno_security.rbac import Authorization, Permission
from storno_security.xmlsig import VerifiedXml

__all__ = ["FREE_PLAN", "OPENAPI_PATHS", "register"]

#: What an organization without a usable license may use.
FREE_PLAN = Entitlements(plan="free", features=frozenset(), max_companies=1, max_users=1)

#: The largest stored secret, as UTF-8 JSON.
MAX_SECRET_BYTES = 8 * 1024
#: The largest XML document (decoded) the XML endpoints take.
MAX_XML_BYTES = 512 * 1024
_MAX_XML_B64 = 4 * ((MAX_XML_BYTES + 2) // 3)
_MAX_SECRET_FIELDS = 32
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_SECRET_LABEL = "storage_credential"  # noqa: S105 - an audit label
_STEP_UP_HEADER = "X-Step-Up-Token"
_DEFAULT_PAGE = 50
_MAX_PAGE = 200


def _uuid_or_404(value: str) -> str:
    """The canonical form of a UUID path id; anything else answers as a missing row."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", "Not found.") from None
    if str(parsed) != value.lower():
        raise ApiError(404, "not_found", "Not found.")
    return str(parsed)


class _Base(Resource):
    def meta(self, req: falcon.Request) -> dict[str, Any]:
        return audit_meta(req)


# --- storage credentials (vault) -------------------------------------------------------------


def credential_associated_data(credential_id: str, company_id: str) -> str:
    """VLT-2: a sealed secret opens only in its own row of its own company."""
    return f"app_storage_credentials:{credential_id}:{company_id}"


def _secret_json(body: dict[str, Any]) -> str:
    """The ``secret`` field as canonical JSON: a string, or an object of strings."""
    if "secret" not in body or body["secret"] is None:
        bad_request("'secret' is required.", field="secret")
    secret = body["secret"]
    if isinstance(secret, str):
        if not secret:
            bad_request("'secret' must not be empty.", field="secret")
    elif isinstance(secret, dict):
        if not 1 <= len(secret) <= _MAX_SECRET_FIELDS:
            bad_request(f"'secret' must have 1 to {_MAX_SECRET_FIELDS} fields.", field="secret")
        for key, value in secret.items():
            if not key or len(key) > 100 or not isinstance(value, str):
                bad_request(
                    "'secret' must map names (1 to 100 characters) to strings.", field="secret"
                )
    else:
        bad_request("'secret' must be a string or an object of strings.", field="secret")
    text = json.dumps(secret, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(text.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ApiError(
            413,
            "secret_too_large",
            f"The secret must be at most {MAX_SECRET_BYTES} bytes as JSON.",
            extra={"field": "secret"},
        )
    return text


def _credential_json(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "provider": row["provider"],
        "name": row["name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _provider(body: dict[str, Any]) -> str:
    provider = required_text(body, "provider", max_length=32)
    if not _PROVIDER.fullmatch(provider):
        bad_request(
            "'provider' must be 1 to 32 of a-z, 0-9, '.', '_' or '-', starting with a letter "
            "or digit.",
            field="provider",
        )
    return provider


class StorageCredentials(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _, company_id = _authorize(req, self.services, Permission.VAULT_MANAGE)
        s = db.storage_credentials.c
        with self.services.db.read() as conn:
            rows = conn.execute(
                sa.select(db.storage_credentials)
                .where(s.company_id == company_id, s.deleted_at.is_(None))
                .order_by(s.created_at, s.id)
            ).mappings()
            resp.media = {"items": [_credential_json(row) for row in rows]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth, company_id = _authorize(req, self.services, Permission.VAULT_MANAGE)
        body = self.body(req)
        provider = _provider(body)
        name = required_text(body, "name", max_length=200)
        secret = _secret_json(body)
        services = self.services
        now = services.clock.now()
        credential_id = db.new_id()
        sealed = services.keys.vault.seal(
            secret, associated_data=credential_associated_data(credential_id, company_id)
        )
        with services.db.transaction() as conn:
            conn.execute(
                db.storage_credentials.insert().values(
                    id=credential_id,
                    company_id=company_id,
                    provider=provider,
                    name=name,
                    sealed=sealed,
                    created_by=auth.principal.user_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            row = (
                conn.execute(
                    sa.select(db.storage_credentials).where(
                        db.storage_credentials.c.id == credential_id
                    )
                )
                .mappings()
                .one()
            )
        services.audit.record_event(
            vault_access_event(
                "write",
                at=now,
                actor_id=auth.principal.user_id,
                secret_name=f"{_SECRET_LABEL}.{provider}",
                vault_key_id=services.keys.vault.active_kid,
                organization_id=auth.organization_id,
                company_id=company_id,
                **self.meta(req),
            )
        )
        resp.status = falcon.HTTP_201
        resp.media = _credential_json(row)


def _authorize(
    req: falcon.Request, services: Services, permission: Permission
) -> tuple[Authorization, str]:
    """The decision for a company-scoped request, with its company id."""
    auth = authorize_request(req, services, permission, company=True)
    if auth.company_id is None:  # authorize_request(company=True) always resolves one
        raise ApiError(400, "company_required", "X-Company header is required.")
    return auth, auth.company_id


def _load_credential(services: Services, company_id: str, credential_id: str) -> sa.RowMapping:
    s = db.storage_credentials.c
    with services.db.read() as conn:
        row = (
            conn.execute(
                sa.select(db.storage_credentials).where(
                    s.id == credential_id, s.company_id == company_id, s.deleted_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise ApiError(404, "not_found", "Not found.")
    return row


class StorageCredential(_Base):
    def on_put(self, req: falcon.Request, resp: falcon.Response, credential_id: str) -> None:
        auth, company_id = _authorize(req, self.services, Permission.VAULT_MANAGE)
        credential_id = _uuid_or_404(credential_id)
        body = self.body(req)
        secret = _secret_json(body)
        name = body_text(body, "name", max_length=200, required=False)
        services = self.services
        row = _load_credential(services, company_id, credential_id)
        now = services.clock.now()
        sealed = services.keys.vault.seal(
            secret, associated_data=credential_associated_data(credential_id, company_id)
        )
        values: dict[str, Any] = {"sealed": sealed, "updated_at": now}
        if name is not None:
            values["name"] = name
        s = db.storage_credentials.c
        with services.db.transaction() as conn:
            changed = conn.execute(
                db.storage_credentials.update()
                .where(
                    s.id == credential_id,
                    s.company_id == company_id,
                    s.deleted_at.is_(None),
                )
                .values(**values)
            ).rowcount
        if changed != 1:
            raise ApiError(404, "not_found", "Not found.")
        services.audit.record_event(
            vault_access_event(
                "write",
                at=now,
                actor_id=auth.principal.user_id,
                secret_name=f"{_SECRET_LABEL}.{row['provider']}",
                vault_key_id=services.keys.vault.active_kid,
                organization_id=auth.organization_id,
                company_id=company_id,
                **self.meta(req),
            )
        )
        resp.media = _credential_json(_load_credential(services, company_id, credential_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, credential_id: str) -> None:
        _, company_id = _authorize(req, self.services, Permission.VAULT_MANAGE)
        credential_id = _uuid_or_404(credential_id)
        s = db.storage_credentials.c
        now = self.services.clock.now()
        with self.services.db.transaction() as conn:
            # Soft delete (RBAC-4): the row stays for the audit trail, the secret does not.
            changed = conn.execute(
                db.storage_credentials.update()
                .where(
                    s.id == credential_id,
                    s.company_id == company_id,
                    s.deleted_at.is_(None),
                )
                .values(deleted_at=now, updated_at=now, sealed="")
            ).rowcount
        if changed != 1:
            raise ApiError(404, "not_found", "Not found.")
        resp.status = falcon.HTTP_204


def require_step_up(
    req: falcon.Request, services: Services, *, user_id: str, action: str, token: str | None
) -> None:
    """MFA-6: when the user has MFA on, a fresh step-up token for ``action`` is consumed.

    Raises:
        InvalidStepUpTokenError: MFA is on and the token is missing, unknown, used, expired,
            or for another user or action (403 ``step_up_required``).
    """
    user = users.get_user(services, user_id)
    if user is None or not user["mfa_enabled"]:
        return
    if not token:
        raise InvalidStepUpTokenError(reason="missing")
    services.step_up.consume(token, user_id=user_id, action=action)


class StorageCredentialSecret(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, credential_id: str) -> None:
        auth, company_id = _authorize(req, self.services, Permission.VAULT_MANAGE)
        credential_id = _uuid_or_404(credential_id)
        services = self.services
        row = _load_credential(services, company_id, credential_id)
        user_id = auth.principal.user_id
        require_step_up(
            req,
            services,
            user_id=user_id,
            action=VAULT_READ,
            token=req.get_header(_STEP_UP_HEADER),
        )
        event: dict[str, Any] = {
            "at": services.clock.now(),
            "actor_id": user_id,
            "secret_name": f"{_SECRET_LABEL}.{row['provider']}",
            "organization_id": auth.organization_id,
            "company_id": company_id,
            **self.meta(req),
        }
        try:
            plain = services.keys.vault.open(
                row["sealed"],
                associated_data=credential_associated_data(credential_id, company_id),
            )
        except InvalidCiphertextError as exc:
            services.audit.record_event(vault_access_event("read", error=exc, **event))
            raise
        services.audit.record_event(vault_access_event("read", **event))
        resp.media = {**_credential_json(row), "secret": json.loads(plain.decode("utf-8"))}


# --- license ---------------------------------------------------------------------------------


def _entitlements_json(entitlements: Entitlements) -> dict[str, Any]:
    return {
        "plan": entitlements.plan,
        "features": sorted(entitlements.features),
        "max_companies": entitlements.max_companies,
        "max_users": entitlements.max_users,
    }


def _unlicensed(state: str = "unlicensed") -> dict[str, Any]:
    return {
        "state": state,
        "plan": FREE_PLAN.plan,
        "entitlements": _entitlements_json(FREE_PLAN),
        "license": None,
        "expires_at": None,
        "grace_ends_at": None,
        "clock_rollback": False,
    }


def _status_json(status: LicenseStatus) -> dict[str, Any]:
    entitlements = status.entitlements or FREE_PLAN
    lic = status.license
    return {
        "state": status.state.value,
        "plan": entitlements.plan,
        "entitlements": _entitlements_json(entitlements),
        "license": {
            "license_id": lic.license_id,
            "org_name": lic.org_name,
            "plan": lic.plan,
            "instance_id": lic.instance_id,
            "issued_at": iso(lic.issued_at),
            "not_before": iso(lic.not_before),
            "expires_at": iso(lic.expires_at),
        },
        "expires_at": iso(lic.expires_at),
        "grace_ends_at": iso(status.grace_ends_at),
        "clock_rollback": status.clock_rollback,
    }


class License(_Base):
    rate_limits: ClassVar[dict[str, str]] = {"POST": LICENSE_VALIDATION}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.ORG_VIEW)
        services = self.services
        org_id = auth.organization_id
        with services.db.read() as conn:
            token = conn.execute(
                sa.select(db.organizations.c.license_token).where(db.organizations.c.id == org_id)
            ).scalar_one_or_none()
        verifier = services.license_verifier
        if token is None or verifier is None:
            resp.media = _unlicensed()
            return
        meta = self.meta(req)
        try:
            status = verifier.verify(token, expected_organization_id=org_id)
        except InvalidLicenseError as exc:
            # A stored license that no longer verifies (key or instance changed): free plan.
            services.audit.record_event(
                event_from_error(
                    SecurityEventType.LICENSE_CHECKED,
                    exc,
                    at=services.clock.now(),
                    actor_id=auth.principal.user_id,
                    organization_id=org_id,
                    **meta,
                )
            )
            resp.media = _unlicensed("invalid")
            return
        services.audit.record_event(
            event_from_license_status(
                status, actor_id=auth.principal.user_id, organization_id=org_id, **meta
            )
        )
        resp.media = _status_json(status)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.LICENSE_MANAGE)
        body = self.body(req)
        token = required_text(body, "license", max_length=16_384)
        services = self.services
        verifier = services.license_verifier
        if verifier is None:
            raise ApiError(404, "not_enabled", "License verification is not configured.")
        org_id = auth.organization_id
        meta = self.meta(req)
        try:
            status = verifier.verify(token, expected_organization_id=org_id)
        except InvalidLicenseError as exc:
            services.audit.record_event(
                event_from_error(
                    SecurityEventType.LICENSE_CHECKED,
                    exc,
                    at=services.clock.now(),
                    method="activate",
                    actor_id=auth.principal.user_id,
                    organization_id=org_id,
                    **meta,
                )
            )
            raise
        services.audit.record_event(
            event_from_license_status(
                status, actor_id=auth.principal.user_id, organization_id=org_id, **meta
            )
        )
        if status.state is LicenseState.EXPIRED:
            raise ApiError(422, "license_expired", "The license has expired.")
        with services.db.transaction() as conn:
            conn.execute(
                db.organizations.update()
                .where(db.organizations.c.id == org_id)
                .values(license_token=token)
            )
        resp.media = _status_json(status)


# --- XML -------------------------------------------------------------------------------------


def _xml_field(body: dict[str, Any], name: str, *, required: bool = True) -> bytes | None:
    value = body.get(name)
    if value is None:
        if required:
            bad_request(f"'{name}' is required.", field=name)
        return None
    if not isinstance(value, str):
        bad_request(f"'{name}' must be a base64 string.", field=name)
    if len(value) > _MAX_XML_B64:
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
    if not data:
        bad_request(f"'{name}' must not be empty.", field=name)
    return data


def _form(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    form = required_text(body, "form", max_length=16)
    if form not in allowed:
        bad_request(f"'form' must be one of {', '.join(allowed)}.", field="form")
    return form


def _certificate_json(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "not_valid_after": iso(certificate.not_valid_after_utc),
    }


def _verified_json(verified: VerifiedXml, form: str) -> dict[str, Any]:
    return {
        "valid": True,
        "form": form,
        "signed_content_sha256": hashlib.sha256(verified.signed_bytes).hexdigest(),
        "signer": _certificate_json(verified.certificate),
        "signing_time": iso(verified.signing_time),
    }


class XmlSign(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize_request(req, self.services, Permission.INVOICE_ISSUE, company=True)
        body = self.body(req)
        form = _form(body, ("enveloped", "xades"))
        document = _xml_field(body, "xml")
        assert document is not None
        signer = self.services.xml_signer
        signed = signer.sign(document) if form == "enveloped" else signer.sign_xades(document)
        resp.media = {"xml": base64.b64encode(signed).decode("ascii"), "form": form}


class XmlVerify(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize_request(req, self.services, Permission.INVOICE_VIEW, company=True)
        body = self.body(req)
        form = _form(body, ("enveloped", "xades", "detached"))
        document = _xml_field(body, "xml")
        assert document is not None
        detached = _xml_field(body, "detached_data", required=False)
        if (form == "detached") != (detached is not None):
            bad_request(
                "'detached_data' is required with form 'detached' and only then.",
                field="detached_data",
            )
        verifier = self.services.xml_verifier
        if detached is not None:
            verified = verifier.verify_detached(document, data=detached)
        elif form == "xades":
            verified = verifier.verify_xades(document)
        else:
            verified = verifier.verify(document)
        resp.media = _verified_json(verified, form)


class XmlValidate(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize_request(req, self.services, Permission.INVOICE_VIEW, company=True)
        body = self.body(req)
        provider = required_text(body, "provider", max_length=64)
        document = _xml_field(body, "xml")
        assert document is not None
        root = self.services.schemas.validate(provider, document)
        resp.media = {"valid": True, "provider": provider, "root_element": str(root.tag)}


class XmlProviders(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_user(req)
        resp.media = {
            "providers": [
                {"provider": name, "root_elements": list(roots)}
                for name, roots in self.services.schemas.providers.items()
            ]
        }


# --- audit log -------------------------------------------------------------------------------


def _query_time(req: falcon.Request, name: str) -> datetime | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        bad_request(f"'{name}' must be an ISO 8601 time with a UTC offset.", field=name)
    if value.tzinfo is None:
        bad_request(f"'{name}' must be an ISO 8601 time with a UTC offset.", field=name)
    utc = _in_utc(value)
    if utc is None:
        bad_request(f"'{name}' is outside the years 1 to 9999 in UTC.", field=name)
    return utc


def _in_utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or ``None`` when that falls outside years 1..9999 (``0001-01-01T00:00
    +14:00`` or ``9999-12-31T23:59-14:00``: valid with their offset, not in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def _query_types(req: falcon.Request) -> list[SecurityEventType] | None:
    raw = req.get_param_as_list("type")
    if not raw:
        return None
    out: list[SecurityEventType] = []
    for item in (part.strip() for value in raw for part in value.split(",")):
        try:
            out.append(SecurityEventType(item))
        except ValueError:
            bad_request(f"unknown event type {item[:64]!r}", field="type")
    return out


def _query_actor(req: falcon.Request) -> str | None:
    actor = req.get_param("actor")
    if actor is not None and not 1 <= len(actor) <= 255:
        bad_request("'actor' must be 1 to 255 characters.", field="actor")
    return actor


def _encode_cursor(cursor: AuditCursor) -> str:
    raw = json.dumps({"at": cursor.at.isoformat(), "id": cursor.event_id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(req: falcon.Request) -> AuditCursor | None:
    raw = req.get_param("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > 512:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at = datetime.fromisoformat(data["at"])
        event_id = data["id"]
        if at.tzinfo is None or not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
            raise ValueError
        utc = _in_utc(at)
        if utc is None:
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error):
        bad_request("'cursor' is not a cursor this server gave.", field="cursor")
    return AuditCursor(utc, event_id)


class AuditEvents(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.AUDIT_VIEW)
        limit = req.get_param_as_int("limit", min_value=1, max_value=_MAX_PAGE)
        limit = limit or _DEFAULT_PAGE
        page = self.services.audit.store.query(
            organization_id=auth.organization_id,
            since=_query_time(req, "since"),
            until=_query_time(req, "until"),
            types=_query_types(req),
            actor_id=_query_actor(req),
            cursor=_decode_cursor(req),
            limit=limit + 1,
        )
        more = len(page) > limit
        page = page[:limit]
        resp.media = {
            "events": [_event_json(event) for event in page],
            "next_cursor": _encode_cursor(AuditCursor.after(page[-1])) if more else None,
        }


def _event_json(event: Any) -> dict[str, Any]:
    data = event_to_dict(event)
    data["at"] = iso(event.at)
    return data


class AuditExport(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.AUDIT_VIEW)
        since = _query_time(req, "since")
        until = _query_time(req, "until")
        actor = _query_actor(req)
        services = self.services
        lines = list(
            services.audit.export_jsonl(
                organization_id=auth.organization_id, since=since, until=until, actor_id=actor
            )
        )
        services.audit.record(
            SecurityEventType.DATA_EXPORTED,
            actor_id=auth.principal.user_id,
            organization_id=auth.organization_id,
            details={"format": "jsonl", "record_count": len(lines), "method": "audit_log"},
            **self.meta(req),
        )
        resp.content_type = "application/x-ndjson"
        resp.set_header("Content-Disposition", 'attachment; filename="audit-events.jsonl"')
        resp.text = "".join(lines)


# --- GDPR ------------------------------------------------------------------------------------


class MeExport(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = require_interactive_user(req)
        services = self.services
        data = gdpr.export_user_data(services, caller.user_id)
        services.audit.record(
            SecurityEventType.DATA_EXPORTED,
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            details={"format": "json", "record_count": _count_records(data), "method": "gdpr"},
            **self.meta(req),
        )
        resp.set_header("Content-Disposition", 'attachment; filename="my-data.json"')
        resp.media = data


def _count_records(data: dict[str, Any]) -> int:
    return 1 + sum(len(value) for value in data.values() if isinstance(value, list))


class MeDelete(_Base):
    """``DELETE /api/v1/me``: re-authenticate, then :func:`reference_server.gdpr.delete_account`.

    Re-authentication (:func:`reference_server.reauth.require_reauthentication`): a step-up
    token for ``account.delete`` when MFA is on, else the current password, else (an account
    with neither) a login in the last five minutes. The route is limited like a login (RL-1):
    it checks a password, and must not be a way around the login limit to guess one.
    """

    rate_limits: ClassVar[dict[str, str]] = {"DELETE": LOGIN}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = require_interactive_user(req)
        services = self.services
        body = self.body(req) if req.content_length else {}
        user = users.get_user(services, caller.user_id)
        if user is None:
            raise ApiError(404, "not_found", "Not found.")
        require_reauthentication(
            req, services, body, caller=caller, user=user, action=ACCOUNT_DELETE
        )
        purge_after = gdpr.delete_account(services, caller.user_id, **self.meta(req))
        resp.status = falcon.HTTP_202
        resp.media = {"status": "deleted", "purge_after": iso(purge_after)}


# --- OpenAPI ---------------------------------------------------------------------------------

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_ID_PARAM = {
    "name": "credential_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_STEP_UP_PARAM = {
    "name": _STEP_UP_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "A step-up token for vault.read (MFA-6); required when the user has MFA on.",
}
_SECRET = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "additionalProperties": {"type": "string"}},
    ]
}
_CREDENTIAL = obj(
    {
        "id": {"type": "string", "format": "uuid"},
        "provider": {"type": "string"},
        "name": {"type": "string"},
        "created_at": _TIME,
        "updated_at": _TIME,
    },
    required=("id", "provider", "name", "created_at", "updated_at"),
)
_ENTITLEMENTS = obj(
    {
        "plan": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
        "max_companies": {"type": ["integer", "null"]},
        "max_users": {"type": ["integer", "null"]},
    },
    required=("plan", "features", "max_companies", "max_users"),
)
_LICENSE_STATUS = obj(
    {
        "state": {"enum": ["unlicensed", "invalid", "valid", "grace", "expired"]},
        "plan": {"type": "string"},
        "entitlements": _ENTITLEMENTS,
        "license": {"oneOf": [{"type": "null"}, {"type": "object"}]},
        "expires_at": _TIME_OR_NULL,
        "grace_ends_at": _TIME_OR_NULL,
        "clock_rollback": {"type": "boolean"},
    },
    required=("state", "plan", "entitlements", "license", "clock_rollback"),
)
_B64 = {"type": "string", "contentEncoding": "base64", "maxLength": _MAX_XML_B64}
_EVENT = obj(
    {
        "event_id": {"type": "string"},
        "type": {"type": "string"},
        "at": _TIME,
        "outcome": {"enum": ["success", "failure"]},
        "actor_id": {"type": ["string", "null"]},
        "subject_id": {"type": ["string", "null"]},
        "organization_id": {"type": ["string", "null"]},
        "company_id": {"type": ["string", "null"]},
        "ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
    required=("event_id", "type", "at", "outcome"),
)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_AUDIT_FILTERS = [
    _query("since", _TIME, "Only events at or after this time."),
    _query("until", _TIME, "Only events before this time."),
    _query("actor", {"type": "string"}, "Only events of this actor (a user id)."),
]


def _export_operation() -> dict[str, Any]:
    op = operation(
        "Export the organization's audit log as JSON Lines",
        tag="audit",
        organization=True,
        parameters=_AUDIT_FILTERS,
        responses={200: None},
    )
    op["responses"]["200"]["content"] = {"application/x-ndjson": {"schema": {"type": "string"}}}
    return op


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/storage-credentials": {
        "get": operation(
            "List the company's storage credentials (never the secrets)",
            tag="vault",
            company=True,
            responses={
                200: obj({"items": {"type": "array", "items": _CREDENTIAL}}, required=("items",))
            },
        ),
        "post": operation(
            "Store a storage credential, sealed by the vault",
            tag="vault",
            company=True,
            request=obj(
                {
                    "provider": {"type": "string", "pattern": _PROVIDER.pattern},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "secret": _SECRET,
                },
                required=("provider", "name", "secret"),
            ),
            responses={201: _CREDENTIAL},
        ),
    },
    "/api/v1/storage-credentials/{credential_id}": {
        "put": operation(
            "Replace a storage credential's secret (and optionally its name)",
            tag="vault",
            company=True,
            parameters=[_ID_PARAM],
            request=obj(
                {"secret": _SECRET, "name": {"type": "string", "minLength": 1}},
                required=("secret",),
            ),
            responses={200: _CREDENTIAL},
        ),
        "delete": operation(
            "Delete a storage credential (soft delete; the secret is wiped)",
            tag="vault",
            company=True,
            parameters=[_ID_PARAM],
            responses={204: None},
        ),
    },
    "/api/v1/storage-credentials/{credential_id}/secret": {
        "get": operation(
            "Reveal a storage credential's secret (step-up when MFA is on)",
            tag="vault",
            company=True,
            parameters=[_ID_PARAM, _STEP_UP_PARAM],
            responses={200: obj({**_CREDENTIAL["properties"], "secret": _SECRET})},
        )
    },
    "/api/v1/license": {
        "get": operation(
            "The organization's license status",
            tag="license",
            organization=True,
            responses={200: _LICENSE_STATUS},
        ),
        "post": operation(
            "Install (activate) a license for the organization",
            tag="license",
            organization=True,
            request=obj({"license": {"type": "string", "minLength": 1}}, required=("license",)),
            responses={200: _LICENSE_STATUS},
        ),
    },
    "/api/v1/xml/sign": {
        "post": operation(
            "Sign an XML document (enveloped XMLDSig or XAdES-BES)",
            tag="xml",
            company=True,
            request=obj(
                {"xml": _B64, "form": {"enum": ["enveloped", "xades"]}},
                required=("xml", "form"),
            ),
            responses={
                200: obj({"xml": {"type": "string"}, "form": {"type": "string"}}, required=("xml",))
            },
        )
    },
    "/api/v1/xml/verify": {
        "post": operation(
            "Verify an XML signature against the server's signing certificate",
            tag="xml",
            company=True,
            request=obj(
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
                        "signer": obj(
                            {
                                "subject": {"type": "string"},
                                "issuer": {"type": "string"},
                                "serial_number": {"type": "string"},
                                "fingerprint_sha256": {"type": "string"},
                                "not_valid_after": _TIME,
                            },
                            required=("subject", "issuer", "fingerprint_sha256"),
                        ),
                        "signing_time": _TIME_OR_NULL,
                    },
                    required=("valid", "signed_content_sha256", "signer"),
                )
            },
        )
    },
    "/api/v1/xml/validate": {
        "post": operation(
            "Validate an XML document against a provider's schema",
            tag="xml",
            company=True,
            description=(
                "An invalid document answers 422 `schema_invalid` with `errors`: "
                "`[{line, message}]`."
            ),
            request=obj(
                {"xml": _B64, "provider": {"type": "string", "minLength": 1}},
                required=("xml", "provider"),
            ),
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
    },
    "/api/v1/xml/providers": {
        "get": operation(
            "The schema providers this server can validate against",
            tag="xml",
            responses={
                200: obj(
                    {"providers": {"type": "array", "items": {"type": "object"}}},
                    required=("providers",),
                )
            },
        )
    },
    "/api/v1/audit-events": {
        "get": operation(
            "The organization's security events, newest first",
            tag="audit",
            organization=True,
            parameters=[
                *_AUDIT_FILTERS,
                _query(
                    "type",
                    {"type": "array", "items": {"enum": [t.value for t in SecurityEventType]}},
                    "Only these event types (repeat or comma-separate).",
                ),
                _query("cursor", {"type": "string"}, "The next_cursor of the previous page."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE}, "Page."),
            ],
            responses={
                200: obj(
                    {
                        "events": {"type": "array", "items": _EVENT},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                    required=("events", "next_cursor"),
                )
            },
        )
    },
    "/api/v1/audit-events/export": {"get": _export_operation()},
    "/api/v1/me/export": {
        "get": operation(
            "Export all of my data (GDPR)",
            tag="gdpr",
            auth="user",
            responses={200: {"type": "object", "required": ["profile", "audit_events"]}},
        )
    },
    "/api/v1/me": {
        "delete": operation(
            "Delete my account (GDPR): anonymised now, purged after the grace period",
            tag="gdpr",
            auth="user",
            description=(
                "Re-authenticate: when MFA is on, a `step_up_token` for `account.delete`; "
                "else `current_password`; an account with neither must have logged in during "
                "the last 5 minutes. Without it: 403 `reauthentication_required` with "
                "`accepted`; a wrong password: 403 `invalid_credentials`. Limited like a login. "
                "An Owner of an organization with other members gets 409 "
                "`ownership_transfer_required`."
            ),
            request=obj(
                {"current_password": {"type": "string"}, "step_up_token": {"type": "string"}}
            ),
            responses={
                202: obj(
                    {"status": {"const": "deleted"}, "purge_after": _TIME},
                    required=("status", "purge_after"),
                )
            },
        )
    },
}


def register(app: Router, services: Services) -> None:
    """Add this module's routes."""
    app.add_route("/api/v1/storage-credentials", StorageCredentials(services))
    app.add_route("/api/v1/storage-credentials/{credential_id}", StorageCredential(services))
    app.add_route(
        "/api/v1/storage-credentials/{credential_id}/secret", StorageCredentialSecret(services)
    )
    app.add_route("/api/v1/license", License(services))
    app.add_route("/api/v1/xml/sign", XmlSign(services))
    app.add_route("/api/v1/xml/verify", XmlVerify(services))
    app.add_route("/api/v1/xml/validate", XmlValidate(services))
    app.add_route("/api/v1/xml/providers", XmlProviders(services))
    app.add_route("/api/v1/audit-events", AuditEvents(services))
    app.add_route("/api/v1/audit-events/export", AuditExport(services))
    app.add_route("/api/v1/me/export", MeExport(services))
    app.add_route("/api/v1/me", MeDelete(services))
