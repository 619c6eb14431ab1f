"""gRPC surface of hitl: ``trunkline.hitl.v1.HumanLoop`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.hitl.v1 import hitl_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the human-in-the-loop issue (escalation and approval queues, takeover, console)"


class HumanLoopService(hitl_pb2_grpc.HumanLoopServicer):
    """Escalations, approvals and takeover. Not built yet: each RPC answers UNIMPLEMENTED."""

    Escalate = Unimplemented(ISSUE)
    RequestApproval = Unimplemented(ISSUE)
    WaitDecision = Unimplemented(ISSUE)
    ListQueue = Unimplemented(ISSUE)
    Decide = Unimplemented(ISSUE)
    TakeOver = Unimplemented(ISSUE)
    Claim = Unimplemented(ISSUE)
    HandBack = Unimplemented(ISSUE)
    Cancel = Unimplemented(ISSUE)
    OfferCallback = Unimplemented(ISSUE)


HUMAN_LOOP = service_name(HumanLoopService)


def register(server: grpc.aio.Server, servicer: HumanLoopService) -> None:
    hitl_pb2_grpc.add_HumanLoopServicer_to_server(servicer, server)
