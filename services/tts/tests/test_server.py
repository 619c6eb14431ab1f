"""The TextToSpeech gRPC surface on a real in-process server: clause streaming, output formats,
cancel overtaking queued text while audio flows, voices, readiness and clear statuses for bad
input. A fake synthesizer (the real ABC) makes timing and audio exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.config import ServiceSettings
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc
from trunkline.runtime import ServiceShell
from trunkline.tts.backends import NativeAudio, Synthesizer, SynthesizerUnavailableError
from trunkline.tts.core import VoiceInfo
from trunkline.tts.server import TEXT_TO_SPEECH, TextToSpeechService, register

pytestmark = pytest.mark.integration

RATE = 8_000
TENANT = call_pb2.CallContext(tenant_id="acme", call_id="call-1")
Request = tts_pb2.StreamingSynthesizeRequest
Response = tts_pb2.StreamingSynthesizeResponse


class WordSynthesizer(Synthesizer):
    """0.1 s per word, one piece per word. ``gate`` (when set) holds every piece after the first
    of a clause; ``down`` fails every call; ``release`` holds the start (model loading)."""

    backend_name = "words"

    def __init__(self, *, down: bool = False) -> None:
        super().__init__()
        self.down = down
        self.gate: asyncio.Event | None = None
        self.started: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def _start_impl(self) -> None:
        await self.release.wait()

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo("fake-voice", "en-US", RATE, "words", "a test voice"),
            VoiceInfo("voix", "fr-FR", RATE, "words"),
        ]

    async def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        if self.down:
            raise SynthesizerUnavailableError("the synthesizer is down")
        self.started.append(text)
        for index, _ in enumerate(text.split()):
            if index and self.gate is not None:
                await self.gate.wait()
            yield NativeAudio(np.full(RATE // 10, 0.25, np.float32), RATE)


async def start_server(synth: Synthesizer) -> tuple[ServiceShell, str]:
    servicer = TextToSpeechService(synth)
    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=1.0),
        services=[TEXT_TO_SPEECH],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda server: register(server, servicer))
    return shell, f"127.0.0.1:{port}"


@pytest.fixture
async def served() -> AsyncIterator[tuple[WordSynthesizer, tts_pb2_grpc.TextToSpeechStub]]:
    synth = WordSynthesizer()
    await synth.start()
    shell, addr = await start_server(synth)
    async with grpc.aio.insecure_channel(addr) as channel:
        yield synth, tts_pb2_grpc.TextToSpeechStub(channel)
    await shell.shutdown()


@pytest.fixture
def tts(served: tuple[WordSynthesizer, tts_pb2_grpc.TextToSpeechStub]) -> Any:
    return served[1]


def config(
    encoding: Any = audio_pb2.AUDIO_ENCODING_PCM16, rate: int = 0, *, channels: int = 0, **kw: Any
) -> Request:
    fmt = audio_pb2.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels)
    return Request(context=TENANT, config=tts_pb2.SynthesisConfig(audio_format=fmt, **kw))


def text(clause_id: str, words: str) -> Request:
    return Request(text=tts_pb2.TextClause(clause_id=clause_id, text=words))


async def exchange(stub: tts_pb2_grpc.TextToSpeechStub, requests: Sequence[Request]) -> list[Any]:
    async def send() -> AsyncIterator[Request]:
        for request in requests:
            yield request

    return [response async for response in stub.StreamingSynthesize(send())]


async def refused(stub: tts_pb2_grpc.TextToSpeechStub, requests: Sequence[Request]) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await exchange(stub, requests)
    return error.value


def seconds(value: Duration) -> float:
    return value.ToNanoseconds() / 1e9


def kinds(responses: Sequence[Response]) -> list[tuple[str, str]]:
    out = []
    for response in responses:
        kind = response.WhichOneof("response")
        if kind == "audio":
            out.append(("audio", f"{response.audio.clause_id}.{response.audio.sequence}"))
        elif kind == "clause_done":
            out.append(("done", response.clause_done.clause_id))
        else:
            out.append(("cancelled", ",".join(response.cancelled.clause_ids)))
    return out


async def test_clauses_stream_in_order_with_a_done_each(tts: Any) -> None:
    chunk = Duration()
    chunk.FromMilliseconds(100)
    responses = await exchange(
        tts, [config(chunk_duration=chunk), text("t1.c0", "two words"), text("t1.c1", "one")]
    )
    assert kinds(responses) == [
        ("audio", "t1.c0.0"),
        ("audio", "t1.c0.1"),
        ("done", "t1.c0"),
        ("audio", "t1.c1.0"),
        ("done", "t1.c1"),
    ]
    first = responses[0].audio
    assert seconds(first.duration) == pytest.approx(0.1, abs=0.002)
    done = responses[2].clause_done
    assert done.chunk_count == 2
    assert seconds(done.audio_duration) == pytest.approx(0.2, abs=0.01)
    assert 0 < seconds(done.time_to_first_audio) <= seconds(done.synthesis_time)
    assert (done.usage.characters, done.usage.audio_out_seconds) == (
        len("two words"),
        pytest.approx(0.2, abs=0.01),
    )
    pcm = b"".join(r.audio.audio for r in responses if r.HasField("audio"))
    assert len(pcm) / 2 / RATE == pytest.approx(0.3)  # the voice's native rate by default


async def test_audio_is_resampled_to_the_requested_rate(tts: Any) -> None:
    responses = await exchange(tts, [config(rate=16_000), text("a", "three words here")])
    pcm = b"".join(r.audio.audio for r in responses if r.HasField("audio"))
    assert len(pcm) / 2 / 16_000 == pytest.approx(0.3, abs=0.005)
    done = responses[-1].clause_done
    assert seconds(done.audio_duration) == pytest.approx(0.3, abs=0.005)


async def test_mulaw_output_defaults_to_8k_one_byte_per_sample(tts: Any) -> None:
    responses = await exchange(tts, [config(audio_pb2.AUDIO_ENCODING_MULAW), text("a", "hello")])
    audio = responses[0].audio.audio
    assert len(audio) == RATE * 40 // 1000  # a default 40 ms chunk at 8 kHz: 320 samples
    assert len(set(audio)) == 1  # the constant fake signal, one mu-law code


async def test_cancel_overtakes_queued_text_while_audio_flows(
    served: tuple[WordSynthesizer, tts_pb2_grpc.TextToSpeechStub],
) -> None:
    synth, stub = served
    synth.gate = asyncio.Event()  # the backend stalls after each clause's first word
    requests: asyncio.Queue[Request | None] = asyncio.Queue()

    async def send() -> AsyncIterator[Request]:
        while (request := await requests.get()) is not None:
            yield request

    first_config = config()
    first_config.config.chunk_duration.FromMilliseconds(100)  # one chunk per word
    for request in (first_config, text("a", "one two three"), text("b", "never spoken")):
        requests.put_nowait(request)
    call = stub.StreamingSynthesize(send())
    first = await call.read()
    assert kinds([first]) == [("audio", "a.0")]
    requests.put_nowait(Request(cancel=tts_pb2.CancelSynthesis(reason="barge-in")))
    ack = await call.read()  # the backend is still stalled: the cancel was read meanwhile
    assert kinds([ack]) == [("cancelled", "a,b")]
    assert ack.cancelled.usage.audio_out_seconds == pytest.approx(0.1, abs=0.01)
    assert ack.cancelled.usage.characters == len("one two three")
    assert seconds(ack.cancelled.cancel_time) < 1.0
    synth.gate.set()
    requests.put_nowait(text("c", "next turn"))
    requests.put_nowait(None)
    rest = []
    while (response := await call.read()) is not grpc.aio.EOF:
        rest.append(response)
    assert kinds(rest) == [("audio", "c.0"), ("audio", "c.1"), ("done", "c")]
    assert synth.started == ["one two three", "next turn"]
    assert await call.code() == grpc.StatusCode.OK


async def test_list_voices_filters_by_language(tts: Any) -> None:
    everything = await tts.ListVoices(tts_pb2.ListVoicesRequest())
    assert [v.id for v in everything.voices] == ["fake-voice", "voix"]
    english = await tts.ListVoices(tts_pb2.ListVoicesRequest(language="en"))
    assert [(v.id, v.language, v.native_sample_rate_hz, v.backend) for v in english.voices] == [
        ("fake-voice", "en-US", RATE, "words")
    ]
    assert english.voices[0].description == "a test voice"
    none = await tts.ListVoices(tts_pb2.ListVoicesRequest(language="en-GB"))
    assert list(none.voices) == []


async def test_a_named_voice_is_used(tts: Any) -> None:
    responses = await exchange(tts, [config(voice="voix"), text("a", "bonjour")])
    assert kinds(responses) == [("audio", "a.0"), ("audio", "a.1"), ("audio", "a.2"), ("done", "a")]


def _long_chunk() -> Request:
    request = config()
    request.config.chunk_duration.FromSeconds(5)
    return request


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (
            [Request(context=TENANT, text=tts_pb2.TextClause(clause_id="a", text="hi"))],
            "first message must carry the config (got text)",
        ),
        ([config(), config()], "a second config"),
        ([config(voice="nobody")], "unknown voice 'nobody'; known voices: fake-voice, voix"),
        ([config(audio_pb2.AUDIO_ENCODING_OPUS)], "AUDIO_ENCODING_OPUS is not supported"),
        ([config(rate=11_025)], "sample_rate_hz 11025 is not supported"),
        ([config(channels=2)], "only mono audio"),
        ([config(speaking_rate=10.0)], "speaking_rate 10.0 is outside"),
        ([_long_chunk()], "chunk_duration 5.0s is outside"),
        ([config(), text("", "hi")], "text.clause_id is required"),
        ([config(), text("a", "hi"), text("a", "again")], "clause_id 'a' was already used"),
        ([config(), Request()], "none of config, text or cancel"),
    ],
)
async def test_bad_streams_are_invalid_argument_with_the_reason(
    tts: Any, requests: list[Request], message: str
) -> None:
    error = await refused(tts, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


async def test_a_stream_without_tenant_is_refused(tts: Any) -> None:
    first = config()
    first.ClearField("context")
    error = await refused(tts, [first])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id is required" in error.details()


async def test_a_backend_that_stays_down_is_unavailable() -> None:
    synth = WordSynthesizer(down=True)
    await synth.start()
    shell, addr = await start_server(synth)
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            error = await refused(
                tts_pb2_grpc.TextToSpeechStub(channel), [config(), text("a", "hi")]
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "tts backend words failed: the synthesizer is down" in error.details()
    finally:
        await shell.shutdown()


async def test_health_is_serving_only_once_the_voice_is_loaded() -> None:
    synth = WordSynthesizer()
    synth.release.clear()
    loading = asyncio.ensure_future(synth.start())
    shell, addr = await start_server(synth)
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=TEXT_TO_SPEECH)
            )
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as early:
                await tts_pb2_grpc.TextToSpeechStub(channel).ListVoices(tts_pb2.ListVoicesRequest())
            assert early.value.code() == grpc.StatusCode.UNAVAILABLE
            synth.release.set()
            await loading
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    finally:
        await shell.shutdown()
