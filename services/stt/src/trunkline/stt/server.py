"""gRPC surface of stt: ``trunkline.stt.v1.SpeechToText`` (proto <-> domain only)."""

from __future__ import annotations

import grpc

from trunkline.proto.stt.v1 import stt_pb2_grpc
from trunkline.runtime import Unimplemented, service_name

ISSUE = "the speech-to-text issue (streaming recognition, whisper/riva backends)"


class SpeechToTextService(stt_pb2_grpc.SpeechToTextServicer):
    """Streaming speech recognition.

    Not built yet: each RPC answers UNIMPLEMENTED naming the issue that builds it.
    """

    StreamingRecognize = Unimplemented(ISSUE)
    Recognize = Unimplemented(ISSUE)


SPEECH_TO_TEXT = service_name(SpeechToTextService)


def register(server: grpc.aio.Server, servicer: SpeechToTextService) -> None:
    stt_pb2_grpc.add_SpeechToTextServicer_to_server(servicer, server)
