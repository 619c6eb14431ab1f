"""gRPC surface of tts: ``trunkline.tts.v1.TextToSpeech`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.tts.v1 import tts_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the text-to-speech issue (streaming synthesis, piper/riva backends)"


class TextToSpeechService(tts_pb2_grpc.TextToSpeechServicer):
    """Streaming speech synthesis.

    Not built yet: each RPC answers UNIMPLEMENTED naming the issue that builds it.
    """

    StreamingSynthesize = Unimplemented(ISSUE)
    ListVoices = Unimplemented(ISSUE)


TEXT_TO_SPEECH = service_name(TextToSpeechService)


def register(server: grpc.aio.Server, servicer: TextToSpeechService) -> None:
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(servicer, server)
