"""gRPC surface of context: ``trunkline.context.v1.ContextService`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.context.v1 import context_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the context service issue (context arithmetic, ingestion, semantic cache)"


class ContextService(context_pb2_grpc.ContextServiceServicer):
    """Context arithmetic, knowledge ingestion and the semantic cache.

    Not built yet: each RPC answers UNIMPLEMENTED naming the issue that builds it.
    """

    Resolve = Unimplemented(ISSUE)
    StoreAnswer = Unimplemented(ISSUE)
    Ingest = Unimplemented(ISSUE)
    ListSources = Unimplemented(ISSUE)
    DeleteSource = Unimplemented(ISSUE)


CONTEXT_SERVICE = service_name(ContextService)


def register(server: grpc.aio.Server, servicer: ContextService) -> None:
    context_pb2_grpc.add_ContextServiceServicer_to_server(servicer, server)
