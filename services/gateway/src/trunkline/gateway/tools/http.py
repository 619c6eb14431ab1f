"""Tool calls as HTTP: POST the arguments as JSON to the tool's endpoint, read a JSON answer.

Only hosts the spec names are called, redirects are never followed, header secrets come from
the environment (``${env:NAME}``) and are scrubbed from errors and answers (``security.py``).
The request carries the call's identity (``X-Trunkline-Call-Id``, ``X-Trunkline-Tenant``,
``X-Trunkline-Caller-Role``) and the W3C trace context, so the tool's own spans join the turn.
The ``httpx.AsyncClient`` belongs to the gateway app (one pool for all calls).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from opentelemetry import propagate

from trunkline.gateway.core.tools import ToolPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.tools.base import ToolRunError, ToolRunner
from trunkline.gateway.tools.security import (
    ToolSecretError,
    outbound_allowed,
    resolve_headers,
    scrub,
)


class HttpToolRunner(ToolRunner):
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        if not tool.endpoint.startswith(("http://", "https://")):
            raise ToolRunError(f"{tool.name}: endpoint {tool.endpoint!r} is not an HTTP URL")
        if not outbound_allowed(tool, tool.endpoint):
            raise ToolRunError(f"{tool.name}: host of {tool.endpoint} is not allowed by the spec")
        try:
            secret_headers, secrets = resolve_headers(tool)
        except ToolSecretError as exc:
            raise ToolRunError(str(exc)) from exc
        headers = {
            **secret_headers,
            "X-Trunkline-Call-Id": call.call_id,
            "X-Trunkline-Tenant": call.tenant,
            "X-Trunkline-Caller-Role": call.caller_role,
        }
        propagate.inject(headers)
        try:
            response = await self._client.post(
                tool.endpoint,
                json=arguments,
                headers=headers,
                timeout=tool.timeout_s,
                follow_redirects=False,  # a redirect could lead to a host the spec never named
            )
        except httpx.TimeoutException as exc:
            raise ToolRunError(f"{tool.name} did not answer within {tool.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
            raise ToolRunError(f"{tool.name} unreachable: {detail}") from exc
        if response.is_redirect:
            raise ToolRunError(f"{tool.name} answered with a redirect, which is not followed")
        if response.status_code >= 400:
            body = scrub(response.text, secrets)[:200]
            raise ToolRunError(f"{tool.name} answered HTTP {response.status_code}: {body}")
        try:
            return json.loads(scrub(response.text, secrets))
        except ValueError as exc:
            raise ToolRunError(f"{tool.name} answered with no JSON body") from exc
