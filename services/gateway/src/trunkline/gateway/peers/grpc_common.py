"""What the gRPC clients share: status mapping, the call context, durations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf.duration_pb2 import Duration

from trunkline.gateway.peers.base import PeerUnavailableError
from trunkline.gateway.peers.types import CallInfo
from trunkline.proto.common.v1 import call_pb2
from trunkline.runtime import status_lost

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class PeerError(Exception):
    """A peer answered with a status that retrying will not change (a bug or bad input)."""

    def __init__(self, peer: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{peer}: {code.name}: {details}")
        self.peer = peer
        self.code = code
        self.details = details


def translate(peer: str, exc: grpc.aio.AioRpcError) -> Exception:
    """``PeerUnavailableError`` for statuses worth retrying, ``PeerError`` otherwise."""
    code = exc.code()
    details = exc.details() or ""
    if code in RETRYABLE:
        return PeerUnavailableError(f"{peer}: {code.name}: {details}")
    if status_lost(exc):
        return PeerUnavailableError(f"{peer}: stream ended while sending ({details})")
    return PeerError(peer, code, details)


@contextmanager
def rpc_errors(peer: str) -> Iterator[None]:
    """Re-raise gRPC failures inside the block as the peer ABC's error types."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise translate(peer, exc) from exc


def call_context(call: CallInfo, turn_index: int = 0) -> call_pb2.CallContext:
    return call_pb2.CallContext(
        tenant_id=call.tenant,
        call_id=call.call_id,
        caller=call_pb2.Caller(address=call.caller_address, role=call.caller_role),
        agent=call_pb2.AgentRef(name=call.agent, version=call.agent_version),
        shadow=call.shadow,
        turn_index=turn_index,
    )


def seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def ms(duration: Duration) -> float:
    return round(seconds(duration) * 1000, 3)
