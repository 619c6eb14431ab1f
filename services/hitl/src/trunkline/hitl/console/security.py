"""Who is logged in, and the CSRF check every console action goes through.

The session lives in a cookie signed by Starlette's ``SessionMiddleware`` (itsdangerous): the
operator's id and tenant, and a random CSRF token. Every POST handler is wrapped in
:func:`action`, which rejects the request unless the token it carries (form field
``csrf_token`` or header ``X-CSRF-Token``) equals the session's — a page of another site can make
the browser send the cookie, never the token. Pages put the token in each form and in a
``<meta name="csrf-token">`` for the scripts' JSON posts.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_JSON_BYTES = 64 * 1024  # an SDP offer is a few KiB


class ActionError(Exception):
    """A console action the request does not allow; ``status`` and a message for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SessionOperator:
    id: str
    tenant: str
    name: str


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def current_operator(request: Request) -> SessionOperator | None:
    data = request.session.get("operator")
    if not isinstance(data, dict):
        return None
    try:
        return SessionOperator(str(data["id"]), str(data["tenant"]), str(data.get("name", "")))
    except KeyError:
        return None


def log_in(request: Request, operator: SessionOperator) -> None:
    """A fresh session for ``operator`` (a new CSRF token: nothing from before the login)."""
    request.session.clear()
    request.session["operator"] = {
        "id": operator.id,
        "tenant": operator.tenant,
        "name": operator.name,
    }
    csrf_token(request)


def log_out(request: Request) -> None:
    request.session.clear()


@dataclass(frozen=True)
class Submitted:
    """What an action received: form fields or a JSON object, and who sent it."""

    fields: dict[str, Any]
    operator: SessionOperator | None

    def text(self, name: str, default: str | None = None, max_length: int = 10_000) -> str:
        value = self.fields.get(name, default)
        if value is None:
            raise ActionError(400, f"the field {name!r} is missing")
        if not isinstance(value, str):
            raise ActionError(400, f"the field {name!r} must be text")
        if len(value) > max_length:
            raise ActionError(400, f"the field {name!r} is longer than {max_length} characters")
        return value


Endpoint = Callable[..., Awaitable[Response]]
"""``(request, submitted)``, or a method ``(self, request, submitted)``."""


async def _read(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/json":
        body = await request.body()
        if len(body) > MAX_JSON_BYTES:
            raise ActionError(413, f"the request body is larger than {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ActionError(400, f"the request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ActionError(400, "the request body must be a JSON object")
        return data
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form: FormData = await request.form(max_files=0, max_fields=50)
        return {key: value for key, value in form.items() if isinstance(value, str)}
    raise ActionError(415, f"unsupported content type {content_type or 'none'!r}: send a form")


def action(login: bool = True) -> Callable[[Endpoint], Endpoint]:
    """Wrap a POST handler: CSRF check, then (when ``login``) a logged-in operator required.

    Errors become :class:`ActionError` responses rendered by the app's handler.
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def handler(*args: Any) -> Response:
            request = args[-1]
            assert isinstance(request, Request)
            fields = await _read(request)
            sent = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
            expected = request.session.get(CSRF_FIELD)
            if (
                not isinstance(sent, str)
                or not isinstance(expected, str)
                or not hmac.compare_digest(sent.encode(), expected.encode())
            ):
                raise ActionError(
                    403, "the form's CSRF token is missing or stale: reload the page and try again"
                )
            operator = current_operator(request)
            if login and operator is None:
                raise ActionError(401, "log in first")
            return await endpoint(*args, Submitted(fields, operator))

        handler.csrf_checked = True  # type: ignore[attr-defined]
        return handler

    return wrap
