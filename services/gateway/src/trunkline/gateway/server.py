"""gRPC surface of the gateway: ``trunkline.gateway.v1.GatewayAdmin`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.gateway.v1 import admin_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the gateway admin issue (list calls, hang up, transfer)"


class GatewayAdminService(admin_pb2_grpc.GatewayAdminServicer):
    """Operations on live calls.

    Not built yet: each RPC answers UNIMPLEMENTED naming the issue that builds it.
    """

    ListCalls = Unimplemented(ISSUE)
    GetCall = Unimplemented(ISSUE)
    HangUp = Unimplemented(ISSUE)
    Transfer = Unimplemented(ISSUE)


GATEWAY_ADMIN = service_name(GatewayAdminService)


def register(server: grpc.aio.Server, servicer: GatewayAdminService) -> None:
    admin_pb2_grpc.add_GatewayAdminServicer_to_server(servicer, server)
