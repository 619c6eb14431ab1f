"""Warm handoff of a live call to a human operator, without ever dropping the call.

This module is the gateway side of human-in-the-loop. It holds:

- :class:`OperatorLeg` — the operator's audio in a handed-off call (an ABC; the WebRTC
  implementation with aiortc lives in ``transports/webrtc*.py``, tests use a fake). Frames are
  the gateway's internal type: 16 kHz mono PCM16, 20 ms (640 bytes).
- the handoff state machine (waiting for an operator → operator talking → handed back / ended /
  timed out), driven by the hitl service's ``WaitDecision`` stream.

Contract of :class:`OperatorLeg` (agreed with helper D):
- ``frames()`` yields the operator's voice as 640-byte frames and ends when the operator leaves
  (or ``close()`` was called); it never raises on a normal hang-up.
- ``send_caller_audio(pcm)`` queues the caller's voice (any multiple of 2 bytes of 16 kHz PCM16)
  for the operator to hear; it never blocks on the network (drop rather than stall the call).
- ``close()`` is idempotent and ends ``frames()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

FRAME_BYTES = 640  # 20 ms of 16 kHz mono PCM16


class OperatorLeg(ABC):
    """The operator's side of a handed-off call's audio."""

    name: str = "operator"

    @abstractmethod
    def frames(self) -> AsyncIterator[bytes]:
        """The operator's voice: 20 ms 16 kHz mono PCM16 frames, until they leave."""

    @abstractmethod
    async def send_caller_audio(self, pcm: bytes) -> None:
        """Queue the caller's voice (16 kHz mono PCM16) for the operator to hear."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the call (idempotent); ``frames()`` ends."""
