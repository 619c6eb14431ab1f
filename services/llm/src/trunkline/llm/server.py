"""gRPC surface of llm: ``trunkline.llm.v1.LanguageModel`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.llm.v1 import llm_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the language-model issue (prompt compile, llama.cpp/openai backends)"


class LanguageModelService(llm_pb2_grpc.LanguageModelServicer):
    """Prompt compilation and streaming generation.

    Not built yet: each RPC answers UNIMPLEMENTED naming the issue that builds it.
    """

    Generate = Unimplemented(ISSUE)
    CountTokens = Unimplemented(ISSUE)


LANGUAGE_MODEL = service_name(LanguageModelService)


def register(server: grpc.aio.Server, servicer: LanguageModelService) -> None:
    llm_pb2_grpc.add_LanguageModelServicer_to_server(servicer, server)
