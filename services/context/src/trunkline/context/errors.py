"""Errors the server maps to gRPC statuses."""

from __future__ import annotations


class ContextError(Exception):
    """Base of the context service's errors."""


class InvalidRequestError(ContextError, ValueError):
    """Malformed input (bad identifier, empty query, unsupported file type): INVALID_ARGUMENT."""


class UnknownTenantError(ContextError):
    """The tenant has no knowledge base: NOT_FOUND."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"unknown tenant {tenant!r}: no knowledge base has been ingested for it")
        self.tenant = tenant


class AccessDeniedError(ContextError):
    """The caller role has access to nothing of this tenant: PERMISSION_DENIED."""

    def __init__(self, tenant: str, role: str) -> None:
        super().__init__(f"role {role!r} has no access to the knowledge of tenant {tenant!r}")
        self.tenant = tenant
        self.role = role


class BackendError(ContextError):
    """A backend (model, store, scoring endpoint, data source) failed after its retries."""
