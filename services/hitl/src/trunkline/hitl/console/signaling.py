"""WebRTC signaling for the browser pages, relayed to the gateway's signaling endpoint.

The browser posts its SDP offer to the console (same origin, CSRF-checked); the console forwards
it to the gateway, which owns the call's media (aiortc), and returns the gateway's SDP answer.
A caller's offer carries ``{sdp, type, tenant, agent}``; an operator's ``{sdp, type, ticket_id,
token}`` where the token comes from the operator's take-over and never reaches the browser.
"""

from __future__ import annotations

import abc
from typing import Any

import httpx

OFFER_TYPES = ("offer",)
MAX_SDP = 32 * 1024


class SignalingError(Exception):
    """The offer could not be answered; ``status`` is the HTTP status to give the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Signaling(abc.ABC):
    @abc.abstractmethod
    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        """The SDP answer ``{sdp, type}`` to ``offer``; SignalingError when there is none."""


def check_offer(sdp: object, kind: object) -> tuple[str, str]:
    """A browser's ``(sdp, type)`` when they look like an SDP offer, else SignalingError(400)."""
    if kind not in OFFER_TYPES:
        raise SignalingError(400, f"type must be 'offer', not {kind!r}")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SignalingError(400, "sdp must be an SDP session description (starting with v=0)")
    if len(sdp) > MAX_SDP:
        raise SignalingError(413, f"sdp is longer than {MAX_SDP} bytes")
    return sdp, str(kind)


CALLER_PATH = "/webrtc/offer"
OPERATOR_PATH = "/webrtc/operator"


class GatewaySignaling(Signaling):
    """POSTs offers as JSON to the gateway's web app at ``base_url``: a caller's to
    ``/webrtc/offer``, an operator's (it names a ticket) to ``/webrtc/operator``."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout: float = 10.0) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._timeout = timeout

    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        url = self._base + (OPERATOR_PATH if "ticket_id" in offer else CALLER_PATH)
        try:
            reply = await self._http.post(url, json=offer, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise SignalingError(502, f"the gateway at {url} did not answer: {exc!r}") from exc
        if reply.status_code != 200:
            detail = reply.text[:300].strip()
            status = reply.status_code if 400 <= reply.status_code < 500 else 502
            raise SignalingError(status, f"the gateway refused the call: {detail}")
        try:
            data = reply.json()
            return {"sdp": str(data["sdp"]), "type": str(data["type"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise SignalingError(502, f"the gateway's answer is not an SDP answer: {exc}") from exc
