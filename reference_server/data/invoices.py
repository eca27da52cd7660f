"""Invoices of companies (RBAC-3, RBAC-4): every read and write is scoped to one live company
(the request's ``X-Company``, resolved by the kit) and to live invoices; deletion is soft."""

from __future__ import annotations

from reference_server.data import tables
from reference_server.data.rows import ScopedRows

__all__ = ["Invoices"]


class Invoices(ScopedRows):
    table = tables.invoices
    scope = "company_id"
