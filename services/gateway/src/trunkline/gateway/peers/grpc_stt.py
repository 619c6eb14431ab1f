"""STT over gRPC: one ``StreamingRecognize`` stream per caller utterance, fed as it grows.

Each transcription the gateway asks for (a read-ahead every 400 ms of speech, the turn's own at
the first silent frame) carries the utterance so far. While that audio extends what the open
stream was sent, only the new audio goes out, then ``CONTROL_ACTION_FLUSH``: the service answers
with a partial covering all of it and the utterance goes on, so the service keeps what its reads
agree on (its stable prefix) and decodes only the audio after it. Audio that does not extend the
stream's (the caller's next utterance) ends the old stream (``END_OF_UTTERANCE``, half-close)
and opens a new one; so does the end of the call (:meth:`GrpcTranscriber.close`). An empty
answer means no speech. The agent's vocabulary (``trunkline.agents.vocabulary``) goes in the
config as phrase hints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

import grpc
from opentelemetry import trace

from trunkline.gateway.peers.base import PeerEnv, Transcriber
from trunkline.gateway.peers.grpc_common import call_context, ms, rpc_errors
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, Transcript
from trunkline.proto.common.v1 import audio_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.telemetry import inject_headers

CHUNK_BYTES = 3200  # 100 ms of 16 kHz PCM16
BYTES_PER_S = 32_000
PCM16_16K = audio_pb2.AudioFormat(
    encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16000, channels=1
)
_END = stt_pb2.RecognitionControl(action=stt_pb2.CONTROL_ACTION_END_OF_UTTERANCE)
_SLACK_S = 0.001  # durations travel in nanoseconds: a covering answer may round below


class _UtteranceStream:
    """One open ``StreamingRecognize`` for one utterance: audio in as it grows, flushes
    answered by the transcript that first covers the audio sent before them."""

    def __init__(
        self,
        stub: stt_pb2_grpc.SpeechToTextStub,
        first: stt_pb2.StreamingRecognizeRequest,
    ) -> None:
        self.sent = bytearray()
        self._outbox: asyncio.Queue[stt_pb2.StreamingRecognizeRequest | None] = asyncio.Queue()
        self._outbox.put_nowait(first)
        self._waiters: list[tuple[float, asyncio.Future[stt_pb2.Transcript | None]]] = []
        # a bidi call driven by write()/done_writing() (the stubs type only the iterator form)
        self._call: Any = cast(Any, stub).StreamingRecognize()
        self._writer = asyncio.create_task(self._write())
        self._reader = asyncio.create_task(self._read())
        self.failed: BaseException | None = None
        self.ended = False

    def extended_by(self, audio: bytes) -> bool:
        """Whether ``audio`` is what this stream was sent, and maybe more."""
        n = len(self.sent)
        return not self.ended and len(audio) >= n and memoryview(audio)[:n] == self.sent

    def send(self, audio: bytes) -> None:
        """Send the part of ``audio`` (which extends ``sent``) not sent yet."""
        for start in range(len(self.sent), len(audio), CHUNK_BYTES):
            piece = audio[start : start + CHUNK_BYTES]
            self._outbox.put_nowait(stt_pb2.StreamingRecognizeRequest(audio=piece))
            self.sent += piece

    async def flush(self) -> stt_pb2.Transcript | None:
        """The transcript of everything sent so far (None: the stream ended without one)."""
        need = len(self.sent) / BYTES_PER_S - _SLACK_S
        waiter: asyncio.Future[stt_pb2.Transcript | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append((need, waiter))
        flush = stt_pb2.RecognitionControl(
            action=stt_pb2.CONTROL_ACTION_FLUSH, trace_context=inject_headers()
        )  # the service answers under a span continuing the caller's (the turn's stt span)
        self._outbox.put_nowait(stt_pb2.StreamingRecognizeRequest(control=flush))
        if self._reader.done():
            self._settle(None)
        try:
            return await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove((need, waiter))

    def end(self) -> None:
        """The utterance is over: its final is left to the service; the stream half-closes."""
        if not self.ended:
            self.ended = True
            self._outbox.put_nowait(stt_pb2.StreamingRecognizeRequest(control=_END))
            self._outbox.put_nowait(None)

    async def close(self) -> None:
        self.end()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        except (TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._call.cancel()
            for task in (self._writer, self._reader):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _write(self) -> None:
        """Requests out in order, then half-close. A failed write ends the writer: the reader
        gets the call's status (a request iterator would hide it behind INTERNAL)."""
        try:
            while (request := await self._outbox.get()) is not None:
                await self._call.write(request)
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return

    async def _read(self) -> None:
        try:
            async for response in self._call:
                if response.WhichOneof("response") == "transcript":
                    self._answer(response.transcript)
        except BaseException as exc:  # the waiters raise it through rpc_errors
            self.failed = exc
            self.ended = True
            for _, waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            if not isinstance(exc, asyncio.CancelledError | grpc.aio.AioRpcError):
                raise
            return
        self.ended = True
        self._settle(None)

    def _answer(self, transcript: stt_pb2.Transcript) -> None:
        covered = transcript.audio_duration.ToNanoseconds() / 1e9
        for need, waiter in self._waiters:
            if not waiter.done() and (transcript.is_final or covered >= need):
                waiter.set_result(transcript)

    def _settle(self, result: stt_pb2.Transcript | None) -> None:
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(result)


class GrpcTranscriber(Transcriber):
    """One per call: at most one open utterance stream at a time."""

    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        *,
        language: str = "",
        phrase_hints: Sequence[str] = (),
        phrase_boost: float = 0.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self._stub = stt_pb2_grpc.SpeechToTextStub(channel)
        self._config = stt_pb2.RecognitionConfig(
            audio_format=PCM16_16K,
            language=language,
            phrase_hints=list(phrase_hints),
            phrase_boost=phrase_boost,
            partial_results=True,  # a flush is answered by a partial
        )
        self._open: _UtteranceStream | None = None
        self._ending: set[asyncio.Task[None]] = set()

    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript:
        stream = self._stream_for(call, audio)
        stream.send(audio)
        span = trace.get_current_span()
        span.set_attribute("stt.stream_audio_ms", round(len(audio) / BYTES_PER_S * 1000, 1))
        with rpc_errors(self.stage):
            transcript = await stream.flush()
        if transcript is None or not transcript.text:
            span.add_event("no transcript (no speech)")
            return Transcript("", 0.0)
        _annotate(transcript)
        return Transcript(str(transcript.text), float(transcript.confidence))

    def _stream_for(self, call: CallInfo, audio: bytes) -> _UtteranceStream:
        current = self._open
        if current is not None and current.failed is None and current.extended_by(audio):
            return current
        if current is not None:
            self._retire(current)
        first = stt_pb2.StreamingRecognizeRequest(context=call_context(call), config=self._config)
        self._open = _UtteranceStream(self._stub, first)
        return self._open

    def _retire(self, stream: _UtteranceStream) -> None:
        task = asyncio.create_task(stream.close())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        """End the open utterance stream (the call is over). Returns at once: the stream is
        drained and dropped in the background (a session being torn down must not wait)."""
        if self._open is not None:
            self._retire(self._open)
            self._open = None


def _annotate(transcript: stt_pb2.Transcript) -> None:
    span = trace.get_current_span()
    span.set_attribute("stt.processing_ms", ms(transcript.processing_time))
    span.set_attribute("stt.audio_ms", ms(transcript.audio_duration))
    span.set_attribute("stt.confidence", float(transcript.confidence))
    span.set_attribute("stt.no_speech_probability", float(transcript.no_speech_probability))
    span.set_attribute("stt.final", bool(transcript.is_final))
