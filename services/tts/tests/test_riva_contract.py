"""The ``riva`` backend speaks Riva's SynthesizeOnline protocol: checked against a real grpc.aio
server built from the Riva protos in ``nvidia-riva-client``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from riva.client.proto import riva_audio_pb2, riva_tts_pb2, riva_tts_pb2_grpc

from trunkline.tts.backends import (
    StreamSettings,
    SynthesisOptions,
    SynthesizerError,
    SynthesizerUnavailableError,
)
from trunkline.tts.backends.riva import RivaSynthesizer, RivaTtsConfig
from trunkline.tts.core import ClauseDone, SpeechChunk

pytestmark = pytest.mark.integration

RATE = 22_050


class FakeRivaTts(riva_tts_pb2_grpc.RivaSpeechSynthesisServicer):  # type: ignore[misc]
    """Checks each request like Riva would and answers with 0.1 s of tone per word, sent in
    odd-sized pieces (a PCM16 sample may straddle two responses)."""

    def __init__(self) -> None:
        self.requests: list[riva_tts_pb2.SynthesizeSpeechRequest] = []
        self.fail_with: grpc.StatusCode | None = None

    async def SynthesizeOnline(  # noqa: N802 - the Riva method name
        self,
        request_iterator: AsyncIterator[riva_tts_pb2.SynthesizeSpeechRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[riva_tts_pb2.SynthesizeSpeechResponse]:
        if self.fail_with is not None:
            code, self.fail_with = self.fail_with, None
            await context.abort(code, "injected")
        async for request in request_iterator:
            self.requests.append(request)
            if request.encoding != riva_audio_pb2.AudioEncoding.LINEAR_PCM:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "encoding")
            if request.sample_rate_hz != RATE or request.language_code != "en-US":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "rate or language")
            if request.voice_name != "English-US.Female-1" or not request.text:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "voice or text")
            samples = np.full(RATE // 10 * len(request.text.split()), 3000, "<i2").tobytes()
            for start in range(0, len(samples), 1001):
                yield riva_tts_pb2.SynthesizeSpeechResponse(audio=samples[start : start + 1001])


@pytest.fixture
async def riva_server() -> AsyncIterator[tuple[str, FakeRivaTts]]:
    server = grpc.aio.server()
    servicer = FakeRivaTts()
    riva_tts_pb2_grpc.add_RivaSpeechSynthesisServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


async def test_clause_audio_arrives_whole_and_resampled(
    riva_server: tuple[str, FakeRivaTts],
) -> None:
    address, servicer = riva_server
    synth = RivaSynthesizer(RivaTtsConfig(address=address))
    await synth.start()
    try:
        chunks = [
            c
            async for c in synth.synthesize(
                "Hello there. How are you today?", StreamSettings(sample_rate=16_000)
            )
        ]
    finally:
        await synth.close()
    assert [r.text for r in servicer.requests] == ["Hello there.", "How are you today?"]
    samples = np.frombuffer(b"".join(c.pcm for c in chunks), "<i2")
    assert samples.size == pytest.approx(16_000 * 0.6, abs=4)
    assert np.median(samples) == pytest.approx(3000, abs=2)


async def test_unavailable_is_retried_and_invalid_argument_is_not(
    riva_server: tuple[str, FakeRivaTts],
) -> None:
    address, servicer = riva_server
    synth = RivaSynthesizer(RivaTtsConfig(address=address), SynthesisOptions(retry_backoff_s=0.0))
    await synth.start()
    try:
        servicer.fail_with = grpc.StatusCode.UNAVAILABLE
        chunks = [c async for c in synth.synthesize("Hello there.")]
        assert chunks
        assert all(isinstance(c, SpeechChunk) for c in chunks)
        assert servicer.requests[0].text == "Hello there."  # the retry's request
    finally:
        await synth.close()


async def test_unknown_voice_and_down_server_fail_clearly(
    riva_server: tuple[str, FakeRivaTts],
) -> None:
    address, servicer = riva_server
    synth = RivaSynthesizer(
        RivaTtsConfig(address=address, voice_name="Nope"),
        SynthesisOptions(retry_backoff_s=0.0, retries=0),
    )
    await synth.start()
    try:
        with pytest.raises(SynthesizerError, match="INVALID_ARGUMENT"):
            _ = [c async for c in synth.synthesize("Hello.")]
        servicer.fail_with = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(SynthesizerUnavailableError):
            _ = [c async for c in synth.synthesize("Hello.")]
    finally:
        await synth.close()


async def test_clause_done_reports_the_audio(riva_server: tuple[str, FakeRivaTts]) -> None:
    address, _ = riva_server
    synth = RivaSynthesizer(RivaTtsConfig(address=address))
    await synth.start()

    async def inputs() -> AsyncIterator[object]:
        from trunkline.tts.core import Clause  # noqa: PLC0415

        yield Clause("x", "one two three")

    try:
        out = [e async for e in synth.stream(inputs())]  # type: ignore[arg-type]
    finally:
        await synth.close()
    done = out[-1]
    assert isinstance(done, ClauseDone)
    assert done.audio_s == pytest.approx(0.3, abs=0.001)
