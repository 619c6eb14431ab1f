"""The ``riva`` backend speaks Riva's StreamingRecognize protocol: checked against a real
grpc.aio server built from the Riva protos in ``nvidia-riva-client``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import riva.client
from riva.client.proto import riva_asr_pb2, riva_asr_pb2_grpc, riva_audio_pb2

from trunkline.stt.backends import RecognizerError, RecognizerOptions, RecognizerUnavailableError
from trunkline.stt.backends.riva import RivaConfig, RivaRecognizer
from trunkline.stt.core import AudioIn, EndOfUtterance, FlushUtterance, SttInput, Vocabulary

pytestmark = pytest.mark.integration

FRAME = b"\x10\x00" * 320  # 20 ms at 16 kHz


class FakeRivaAsr(riva_asr_pb2_grpc.RivaSpeechRecognitionServicer):  # type: ignore[misc]
    """Checks the stream like Riva would: config first (LINEAR_PCM, mono, 16 kHz, en-US), then
    audio only. Answers an interim result per chunk and, at half-close, two final results."""

    def __init__(self) -> None:
        self.configs: list[riva_asr_pb2.StreamingRecognitionConfig] = []
        self.audio_bytes: list[int] = []
        self.fail_with: grpc.StatusCode | None = None
        self.final_every = 0  # > 0: a streaming final each time this many bytes came in

    async def StreamingRecognize(  # noqa: N802 - the Riva method name
        self,
        request_iterator: AsyncIterator[riva_asr_pb2.StreamingRecognizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[riva_asr_pb2.StreamingRecognizeResponse]:
        if self.fail_with is not None:
            code, self.fail_with = self.fail_with, None
            await context.abort(code, "injected")
        first = True
        received = 0
        async for request in request_iterator:
            if first:
                if not request.HasField("streaming_config"):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config first")
                config = request.streaming_config.config
                if (
                    config.encoding != riva_audio_pb2.AudioEncoding.LINEAR_PCM
                    or config.sample_rate_hertz != 16_000
                    or config.audio_channel_count != 1
                    or config.language_code != "en-US"
                ):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad config")
                self.configs.append(request.streaming_config)
                first = False
                continue
            if request.HasField("streaming_config"):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config twice")
            received += len(request.audio_content)
            if self.final_every and received % self.final_every == 0:
                yield self._response(f"part {received}", is_final=True, confidence=0.7)
            elif request.streaming_config.interim_results or self.configs[-1].interim_results:
                yield self._response(f"heard {received}", is_final=False)
        self.audio_bytes.append(received)
        if received:
            yield self._response("hello there", is_final=True, confidence=0.8)
            yield self._response("how are you", is_final=True, confidence=0.9)

    @staticmethod
    def _response(
        text: str, *, is_final: bool, confidence: float = 0.0
    ) -> riva_asr_pb2.StreamingRecognizeResponse:
        alternative = riva_asr_pb2.SpeechRecognitionAlternative(
            transcript=text, confidence=confidence
        )
        result = riva_asr_pb2.StreamingRecognitionResult(
            alternatives=[alternative], is_final=is_final
        )
        return riva_asr_pb2.StreamingRecognizeResponse(results=[result])


@pytest.fixture
async def riva_server() -> AsyncIterator[tuple[str, FakeRivaAsr]]:
    server = grpc.aio.server()
    servicer = FakeRivaAsr()
    riva_asr_pb2_grpc.add_RivaSpeechRecognitionServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


async def test_partials_and_a_final_per_utterance(riva_server: tuple[str, FakeRivaAsr]) -> None:
    address, servicer = riva_server
    recognizer = RivaRecognizer(RivaConfig(address=address, phrase_hints=("Trunkline",)))
    await recognizer.start()

    async def inputs() -> AsyncIterator[SttInput]:
        for _ in range(3):
            yield AudioIn(FRAME)
        yield EndOfUtterance()
        yield AudioIn(FRAME)
        yield EndOfUtterance()

    try:
        out = [t async for t in recognizer.stream(inputs())]
    finally:
        await recognizer.close()
    partials = [t.text for t in out if not t.is_final and t.utterance_index == 0]
    assert partials == ["heard 640", "heard 1280", "heard 1920"]
    finals = [t for t in out if t.is_final]
    assert [(t.text, t.utterance_index) for t in finals] == [
        ("hello there how are you", 0),
        ("hello there how are you", 1),
    ]
    # two finals, "hello there" at 0.8 and "how are you" at 0.9: weighed by their words
    assert finals[0].confidence == pytest.approx((2 * 0.8 + 3 * 0.9) / 5)
    assert servicer.audio_bytes == [1920, 640]
    assert list(servicer.configs[0].config.speech_contexts[0].phrases) == ["Trunkline"]


async def test_unavailable_is_retried_with_the_audio_replayed(
    riva_server: tuple[str, FakeRivaAsr],
) -> None:
    address, servicer = riva_server
    recognizer = RivaRecognizer(RivaConfig(address=address), RecognizerOptions(retry_backoff_s=0.0))
    await recognizer.start()
    try:
        servicer.fail_with = grpc.StatusCode.UNAVAILABLE
        result = await recognizer.transcribe(FRAME * 2)
    finally:
        await recognizer.close()
    assert result.text == "hello there how are you"
    assert servicer.audio_bytes == [1280]


async def test_a_rejected_config_is_a_clear_error(riva_server: tuple[str, FakeRivaAsr]) -> None:
    address, _ = riva_server
    recognizer = RivaRecognizer(RivaConfig(address=address, language_code="de-DE"))
    await recognizer.start()
    try:
        with pytest.raises(RecognizerError, match="INVALID_ARGUMENT: bad config"):
            await recognizer.transcribe(FRAME)
    finally:
        await recognizer.close()


async def test_a_server_that_stays_down_surfaces_unavailable(
    riva_server: tuple[str, FakeRivaAsr],
) -> None:
    address, servicer = riva_server
    recognizer = RivaRecognizer(
        RivaConfig(address=address), RecognizerOptions(retries=0, retry_backoff_s=0.0)
    )
    await recognizer.start()
    try:
        servicer.fail_with = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(RecognizerUnavailableError):
            await recognizer.transcribe(FRAME)
    finally:
        await recognizer.close()


async def test_the_streams_vocabulary_is_a_boosted_speech_context(
    riva_server: tuple[str, FakeRivaAsr],
) -> None:
    """What Riva receives is what its own client builds for word boosting
    (``riva.client.add_word_boosting_to_config``): the stream's phrases at the stream's boost,
    the process's hints at the configured default boost."""
    address, servicer = riva_server
    recognizer = RivaRecognizer(RivaConfig(address=address, phrase_hints=("Trunkline",), boost=3.0))
    vocabulary = Vocabulary(("Acme Dental", "Saturday", "teeth whitening"), 12.0)
    await recognizer.start()
    try:
        result = await recognizer.transcribe(FRAME * 2, vocabulary=vocabulary)
    finally:
        await recognizer.close()
    assert result.text == "hello there how are you"

    expected = riva.client.StreamingRecognitionConfig(
        config=riva.client.RecognitionConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=16_000,
            language_code="en-US",
            max_alternatives=1,
            audio_channel_count=1,
            enable_automatic_punctuation=True,
        ),
        interim_results=True,
    )
    riva.client.add_word_boosting_to_config(expected, list(vocabulary.phrases), 12.0)
    riva.client.add_word_boosting_to_config(expected, ["Trunkline"], 3.0)
    sent = servicer.configs[0]
    assert sent == expected
    contexts = [(list(c.phrases), c.boost) for c in sent.config.speech_contexts]
    assert contexts == [
        (["Acme Dental", "Saturday", "teeth whitening"], 12.0),
        (["Trunkline"], 3.0),
    ]


async def test_a_vocabulary_without_boost_takes_the_default(
    riva_server: tuple[str, FakeRivaAsr],
) -> None:
    address, servicer = riva_server
    recognizer = RivaRecognizer(RivaConfig(address=address))
    await recognizer.start()
    try:
        await recognizer.transcribe(FRAME, vocabulary=Vocabulary(("Volt Energy",)))
        await recognizer.transcribe(FRAME)
    finally:
        await recognizer.close()
    with_vocabulary, without = servicer.configs
    assert [(list(c.phrases), c.boost) for c in with_vocabulary.config.speech_contexts] == [
        (["Volt Energy"], 4.0)
    ]
    assert not without.config.speech_contexts


async def test_streaming_finals_are_kept_and_a_flush_answers_with_them_at_once(
    riva_server: tuple[str, FakeRivaAsr],
) -> None:
    address, servicer = riva_server
    servicer.final_every = 2 * len(FRAME)  # Riva's own endpointing: a final every two frames
    recognizer = RivaRecognizer(RivaConfig(address=address))
    await recognizer.start()

    async def inputs() -> AsyncIterator[SttInput]:
        for _ in range(3):
            yield AudioIn(FRAME)
        await asyncio.sleep(0.2)  # Riva's answers to the audio so far arrive
        yield FlushUtterance()
        await asyncio.sleep(0.1)  # read before the end overtakes it
        yield AudioIn(FRAME)
        yield EndOfUtterance()

    try:
        out = [t async for t in recognizer.stream(inputs())]
    finally:
        await recognizer.close()
    flushed = [t for t in out if not t.is_final and t.audio_s > 0]
    assert [(t.text, t.audio_s) for t in flushed] == [("part 1280 heard 1920", 0.06)]
    final = out[-1]
    assert final.is_final
    # the streaming finals in order, then what Riva finalized at the end
    assert final.text == "part 1280 part 2560 hello there how are you"
    assert servicer.audio_bytes == [2560]
