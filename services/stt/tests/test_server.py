"""The SpeechToText gRPC surface on a real in-process server: audio formats, control messages,
partials, the summary, readiness and clear statuses for bad input. A fake recognizer (the real
ABC) makes the results exact; the real Whisper model answers silence at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from opentelemetry import trace

from trunkline.audio import pcm16_to_mulaw
from trunkline.config import ServiceSettings
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.runtime import ServiceShell
from trunkline.stt.backends import RecognizerUnavailableError, SpeechRecognizer
from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.core import Transcript, Vocabulary
from trunkline.stt.server import SPEECH_TO_TEXT, SpeechToTextService, register
from trunkline.telemetry import inject_headers
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

TENANT = call_pb2.CallContext(tenant_id="acme", call_id="call-1")
PCM16 = audio_pb2.AUDIO_ENCODING_PCM16
MULAW = audio_pb2.AUDIO_ENCODING_MULAW
Request = stt_pb2.StreamingRecognizeRequest
END = stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE)
CANCEL = stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_CANCEL)
FLUSH = stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_FLUSH)


class CountingRecognizer(SpeechRecognizer):
    """A partial per chunk and a final naming the 16 kHz bytes heard. Its start can be held."""

    backend_name = "counting"

    def __init__(self, *, down: bool = False) -> None:
        super().__init__()
        self.down = down
        self.release = asyncio.Event()
        self.release.set()
        self.vocabularies: list[Vocabulary] = []

    async def _start_impl(self) -> None:
        await self.release.wait()

    async def _utterance_impl(
        self, audio: AsyncIterator[bytes], sample_rate: int, vocabulary: Vocabulary
    ) -> AsyncGenerator[Transcript, None]:
        self.vocabularies.append(vocabulary)
        if self.down:
            raise RecognizerUnavailableError("the recognizer is down")
        total = 0
        async for chunk in audio:
            total += len(chunk)
            yield Transcript(text=f"partial {total}", is_final=False)
        level = 0.9 if total == 0 else 0.1
        yield Transcript(text=f"heard {total}", is_final=True, no_speech_prob=level)


async def start_server(recognizer: SpeechRecognizer) -> tuple[ServiceShell, str]:
    servicer = SpeechToTextService(recognizer)
    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=1.0),
        services=[SPEECH_TO_TEXT],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda server: register(server, servicer))
    return shell, f"127.0.0.1:{port}"


@pytest.fixture
async def stt() -> AsyncIterator[stt_pb2_grpc.SpeechToTextStub]:
    recognizer = CountingRecognizer()
    await recognizer.start()
    shell, addr = await start_server(recognizer)
    async with grpc.aio.insecure_channel(addr) as channel:
        yield stt_pb2_grpc.SpeechToTextStub(channel)
    await shell.shutdown()


def config(encoding: Any = PCM16, rate: int = 16_000, *, channels: int = 0, **kw: Any) -> Request:
    fmt = audio_pb2.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels)
    return Request(context=TENANT, config=stt_pb2.RecognitionConfig(audio_format=fmt, **kw))


async def exchange(
    stub: stt_pb2_grpc.SpeechToTextStub, requests: Sequence[Request]
) -> list[stt_pb2.StreamingRecognizeResponse]:
    async def send() -> AsyncIterator[Request]:
        for request in requests:
            yield request

    return [response async for response in stub.StreamingRecognize(send())]


async def refused(stub: stt_pb2_grpc.SpeechToTextStub, requests: Sequence[Request]) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await exchange(stub, requests)
    return error.value


def seconds(value: Duration) -> float:
    return value.ToNanoseconds() / 1e9


FRAME_16K = b"\x10\x00" * 320  # 20 ms at 16 kHz


async def test_pcm16_utterances_give_finals_and_a_summary(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    responses = await exchange(
        stt,
        [
            config(),
            *[Request(audio=FRAME_16K)] * 10,
            Request(control=END),
            *[Request(audio=FRAME_16K)] * 5,
        ],
    )
    finals = [r.transcript for r in responses[:-1]]
    assert [(t.utterance_index, t.is_final, t.text) for t in finals] == [
        (0, True, f"heard {640 * 10}"),
        (1, True, f"heard {640 * 5}"),
    ]
    assert seconds(finals[0].audio_duration) == pytest.approx(0.2)
    assert seconds(finals[1].audio_offset) == pytest.approx(0.2)
    assert finals[0].no_speech_probability == pytest.approx(0.1)
    summary = responses[-1].summary
    assert summary.utterance_count == 2
    assert summary.usage.audio_in_seconds == pytest.approx(0.3)


async def test_mulaw_8k_is_decoded_and_upsampled_to_16k(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2").tobytes()
    mulaw = pcm16_to_mulaw(tone)  # one second, 8000 bytes
    chunks = [Request(audio=mulaw[i : i + 160]) for i in range(0, len(mulaw), 160)]
    responses = await exchange(stt, [config(MULAW, 8000), *chunks, Request(control=END)])
    final = responses[0].transcript
    assert final.text == f"heard {8000 * 2 * 2}"  # twice the samples, two bytes each
    assert seconds(final.audio_duration) == pytest.approx(1.0)
    assert responses[-1].summary.usage.audio_in_seconds == pytest.approx(1.0)


async def test_partials_only_when_asked(stt: stt_pb2_grpc.SpeechToTextStub) -> None:
    frames = [Request(audio=FRAME_16K)] * 3
    quiet = await exchange(stt, [config(), *frames, Request(control=END)])
    assert [r.transcript.is_final for r in quiet[:-1]] == [True]
    chatty = await exchange(stt, [config(partial_results=True), *frames, Request(control=END)])
    texts = [(r.transcript.is_final, r.transcript.text) for r in chatty[:-1]]
    assert texts == [
        (False, "partial 640"),
        (False, "partial 1280"),
        (False, "partial 1920"),
        (
            True,
            "heard 1920",
        ),
    ]


async def test_a_flush_is_answered_by_a_partial_and_the_utterance_goes_on(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    frames = [Request(audio=FRAME_16K)] * 2
    responses = await exchange(
        stt,
        [
            config(partial_results=True),
            *frames,
            Request(control=FLUSH),
            *frames,
            Request(control=END),
        ],
    )
    texts = [(r.transcript.utterance_index, r.transcript.text) for r in responses[:-1]]
    # the backend's answer to the flush (an empty chunk: "partial 1280" again) comes in order
    assert texts == [
        (0, "partial 640"),
        (0, "partial 1280"),
        (0, "partial 1280"),
        (0, "partial 1920"),
        (0, "partial 2560"),
        (0, "heard 2560"),
    ]
    assert responses[-1].summary.utterance_count == 1


async def test_a_flush_carrying_a_trace_context_is_answered_under_a_span_continuing_it(
    stt: stt_pb2_grpc.SpeechToTextStub, span_recorder: SpanRecorder
) -> None:
    """The gateway opens an utterance's stream before the turn that needs its transcript: each
    flush carries the asking span's context and the service's work continues that span."""
    tracer = span_recorder.provider.get_tracer("test")
    flushes = []
    for name in ("read-ahead", "turn-stt"):
        with tracer.start_as_current_span(name) as asking:
            carrier = inject_headers()
        flushes.append((asking, stt_pb2.RecognitionControl(
            action=stt_pb2.CONTROL_ACTION_FLUSH, trace_context=carrier
        )))  # fmt: skip
    frames = [Request(audio=FRAME_16K)] * 2
    await exchange(
        stt,
        [
            config(partial_results=True),
            *frames,
            Request(control=flushes[0][1]),
            *frames,
            Request(control=flushes[1][1]),
            Request(control=FLUSH),  # no context: no span of its own
            Request(control=END),
        ],
    )
    served = [span for span in span_recorder.spans() if span.name == "stt.flush"]
    assert len(served) == 2
    for (asking, _), span in zip(flushes, served, strict=True):
        assert span.parent is not None
        assert span.parent.span_id == asking.get_span_context().span_id
        assert span.context.trace_id == asking.get_span_context().trace_id
        assert span.kind is trace.SpanKind.SERVER
    assert [span.attributes["stt.flush_audio_ms"] for span in served] == [40.0, 80.0]


async def test_cancel_drops_the_utterance_and_the_stream_goes_on(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    responses = await exchange(
        stt,
        [
            config(),
            Request(audio=FRAME_16K),
            Request(control=CANCEL),
            Request(audio=FRAME_16K),
            Request(audio=FRAME_16K),
            Request(control=END),
        ],
    )
    finals = [r.transcript for r in responses if r.HasField("transcript")]
    assert [(t.utterance_index, t.text) for t in finals] == [(1, "heard 1280")]
    assert responses[-1].summary.utterance_count == 1


async def test_a_final_over_the_streams_no_speech_threshold_loses_its_text(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    responses = await exchange(
        stt, [config(no_speech_threshold=0.05), Request(audio=FRAME_16K), Request(control=END)]
    )
    final = responses[0].transcript
    assert (final.is_final, final.text, final.confidence) == (True, "", 0.0)
    assert final.no_speech_probability == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([Request(context=TENANT, audio=FRAME_16K)], "the first message must carry the config"),
        ([config(), config()], "a second config"),
        ([config(audio_pb2.AUDIO_ENCODING_ALAW)], "AUDIO_ENCODING_ALAW is not supported"),
        ([config(PCM16, 0)], "sample rate 0 Hz is not supported"),
        ([config(PCM16, 22_050)], "sample rate 22050 Hz is not supported"),
        ([config(channels=2)], "only mono audio"),
        ([config(language="fr-FR")], "language 'fr-FR' is not supported"),
        ([config(), Request(control=stt_pb2.RecognitionControl())], "not a known action"),
        ([config(), Request()], "none of config, audio or control"),
        ([config(phrase_hints=["x" * 101])], "is 101 characters; at most 100"),
        ([config(phrase_hints=[f"w{i}" for i in range(201)])], "201 phrase_hints; at most 200"),
        ([config(phrase_boost=-1.0)], "phrase_boost -1 is outside 0 .. 100"),
    ],
)
async def test_bad_streams_are_invalid_argument_with_the_reason(
    stt: stt_pb2_grpc.SpeechToTextStub, requests: list[Request], message: str
) -> None:
    error = await refused(stt, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


async def test_the_streams_vocabulary_reaches_the_recognizer_cleaned() -> None:
    recognizer = CountingRecognizer()
    await recognizer.start()
    shell, addr = await start_server(recognizer)
    hints = ["Acme Dental", " saturday ", "Saturday", "", "teeth  whitening"]
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = stt_pb2_grpc.SpeechToTextStub(channel)
            first = config(phrase_hints=hints, phrase_boost=6.0)
            await exchange(stub, [first, Request(audio=FRAME_16K), Request(control=END)])
            await stub.Recognize(
                stt_pb2.RecognizeRequest(context=TENANT, config=first.config, audio=FRAME_16K)
            )
    finally:
        await shell.shutdown()
    expected = Vocabulary(("Acme Dental", "saturday", "teeth whitening"), 6.0)
    assert recognizer.vocabularies == [expected, expected]


async def test_a_stream_without_tenant_is_refused(stt: stt_pb2_grpc.SpeechToTextStub) -> None:
    first = config()
    first.ClearField("context")
    error = await refused(stt, [first])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id is required" in error.details()


async def test_service_side_endpointing_says_it_is_not_built(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    first = config()
    first.config.endpoint_silence.FromMilliseconds(500)
    error = await refused(stt, [first])
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CONTROL_ACTION_END_OF_UTTERANCE" in error.details()


async def test_recognize_converts_a_whole_mulaw_utterance(
    stt: stt_pb2_grpc.SpeechToTextStub,
) -> None:
    fmt = audio_pb2.AudioFormat(encoding=MULAW, sample_rate_hz=8000)
    reply = await stt.Recognize(
        stt_pb2.RecognizeRequest(
            context=TENANT,
            config=stt_pb2.RecognitionConfig(audio_format=fmt),
            audio=pcm16_to_mulaw(bytes(16_000)),
        )
    )
    assert reply.transcript.is_final
    assert reply.transcript.text == f"heard {16_000 * 2}"
    assert reply.usage.audio_in_seconds == pytest.approx(1.0)


async def test_recognize_refuses_odd_pcm16(stt: stt_pb2_grpc.SpeechToTextStub) -> None:
    fmt = audio_pb2.AudioFormat(encoding=PCM16, sample_rate_hz=16_000)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stt.Recognize(
            stt_pb2.RecognizeRequest(
                context=TENANT, config=stt_pb2.RecognitionConfig(audio_format=fmt), audio=b"\x01"
            )
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "even number of bytes" in (error.value.details() or "")


async def test_a_backend_that_stays_down_is_unavailable() -> None:
    recognizer = CountingRecognizer(down=True)
    await recognizer.start()
    shell, addr = await start_server(recognizer)
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = stt_pb2_grpc.SpeechToTextStub(channel)
            error = await refused(stub, [config(), Request(audio=FRAME_16K), Request(control=END)])
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "stt backend counting failed: the recognizer is down" in error.details()
    finally:
        await shell.shutdown()


async def test_health_is_serving_only_once_the_model_is_loaded() -> None:
    recognizer = CountingRecognizer()
    recognizer.release.clear()
    loading = asyncio.ensure_future(recognizer.start())
    shell, addr = await start_server(recognizer)
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=SPEECH_TO_TEXT)
            )
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = stt_pb2_grpc.SpeechToTextStub(channel)
            early = await refused(stub, [config()])
            assert early.code() == grpc.StatusCode.UNAVAILABLE
            assert "not ready yet" in early.details()
            recognizer.release.set()
            await loading
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    finally:
        await shell.shutdown()


async def test_whisper_over_grpc_answers_silence_with_an_empty_final() -> None:
    recognizer = WhisperRecognizer()
    await recognizer.start()
    shell, addr = await start_server(recognizer)
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = stt_pb2_grpc.SpeechToTextStub(channel)
            silence = [Request(audio=b"\xff" * 160)] * 50  # 1 s of mu-law 8 kHz silence
            responses = await exchange(stub, [config(MULAW, 8000), *silence, Request(control=END)])
    finally:
        await shell.shutdown()
        await recognizer.close()
    final = responses[0].transcript
    assert (final.is_final, final.text) == (True, "")
    assert final.no_speech_probability == pytest.approx(1.0)
    assert responses[-1].summary.utterance_count == 1
