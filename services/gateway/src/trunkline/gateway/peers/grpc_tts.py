"""TTS over gRPC: one ``StreamingSynthesize`` stream per reply, as the contract is designed.

A reply (:meth:`GrpcSynthesizer.reply`) opens the stream at its first clause: the config (voice,
PCM16 at the transport's output rate), then each clause as a ``TextClause`` with its own id, its
audio read back until its ``ClauseDone``. Closing a clause's iterator early (barge-in) sends
``CancelSynthesis``: the server drops what it has not finished and acknowledges; the reply's end
half-closes the stream. A stream that fails is dropped and the retried clause opens a new one.
``synthesize`` (a lone clause: the filler) is the same stream with one clause.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
from opentelemetry import trace

from trunkline.gateway.peers.base import PeerEnv, SpokenReply, Synthesizer
from trunkline.gateway.peers.grpc_common import call_context, ms, rpc_errors
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.profile import VoiceProfile
from trunkline.proto.common.v1 import audio_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc


class GrpcSynthesizer(Synthesizer):
    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        voice: VoiceProfile | None = None,
        policy: RetryPolicy | None = None,
        sample_rate: int = 16000,
    ) -> None:
        """``sample_rate``: the transport's output rate (8 kHz telephony, 48 kHz WebRTC)."""
        super().__init__(env, policy)
        self.sample_rate = sample_rate
        self._stub = tts_pb2_grpc.TextToSpeechStub(channel)
        voice = voice or VoiceProfile()
        audio_format = audio_pb2.AudioFormat(
            encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=sample_rate, channels=1
        )
        self._config = tts_pb2.SynthesisConfig(
            voice=voice.name, audio_format=audio_format, speaking_rate=voice.speaking_rate
        )
        self._ids = itertools.count(1)

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        clause_id = f"c{next(self._ids)}"
        requests = [
            tts_pb2.StreamingSynthesizeRequest(context=call_context(call), config=self._config),
            tts_pb2.StreamingSynthesizeRequest(
                text=tts_pb2.TextClause(clause_id=clause_id, text=text)
            ),
        ]
        stream = self._stub.StreamingSynthesize(iter(requests))
        carry = b""  # an odd byte split across chunks stays until its pair arrives
        try:
            with rpc_errors(self.stage):
                async for response in stream:
                    match response.WhichOneof("response"):
                        case "audio":
                            pcm = carry + response.audio.audio
                            cut = len(pcm) - len(pcm) % 2
                            carry = pcm[cut:]
                            if cut:
                                yield pcm[:cut]
                        case "clause_done":
                            _annotate(response.clause_done)
                            return
                        case "cancelled":
                            return
        finally:
            stream.cancel()  # no-op after the end; drops the clause when closed early

    def reply(self, call: CallInfo) -> SpokenReply:
        return _GrpcReply(self, call)

    def _open(self, call: CallInfo) -> _ReplyStream:
        first = tts_pb2.StreamingSynthesizeRequest(context=call_context(call), config=self._config)
        return _ReplyStream(self._stub, first)

    def _clause_id(self) -> str:
        return f"c{next(self._ids)}"


_Response = tts_pb2.StreamingSynthesizeResponse | BaseException | None


class _ReplyStream:
    """One open ``StreamingSynthesize``: requests written in order, responses handed to the
    clause they belong to (an acknowledged cancel ends every clause it lists)."""

    def __init__(
        self, stub: tts_pb2_grpc.TextToSpeechStub, first: tts_pb2.StreamingSynthesizeRequest
    ) -> None:
        self._outbox: asyncio.Queue[tts_pb2.StreamingSynthesizeRequest | None] = asyncio.Queue()
        self._outbox.put_nowait(first)
        self._clauses: dict[str, asyncio.Queue[_Response]] = {}
        # a bidi call driven by write()/done_writing() (the stubs type only the iterator form)
        self._call: Any = cast(Any, stub).StreamingSynthesize()
        self._writer = asyncio.create_task(self._write())
        self._reader = asyncio.create_task(self._read())
        self.failed = False

    def speak(self, clause_id: str, text: str) -> asyncio.Queue[_Response]:
        queue: asyncio.Queue[_Response] = asyncio.Queue()
        self._clauses[clause_id] = queue
        clause = tts_pb2.TextClause(clause_id=clause_id, text=text)
        self._outbox.put_nowait(tts_pb2.StreamingSynthesizeRequest(text=clause))
        if self._reader.done():
            queue.put_nowait(None)
        return queue

    def cancel(self, clause_id: str, reason: str) -> None:
        """Stop the clause: the server drops it (and anything queued behind it)."""
        if self._clauses.pop(clause_id, None) is not None:
            cancel = tts_pb2.CancelSynthesis(reason=reason)
            self._outbox.put_nowait(tts_pb2.StreamingSynthesizeRequest(cancel=cancel))

    def done(self, clause_id: str) -> None:
        self._clauses.pop(clause_id, None)

    def close(self) -> None:
        """The reply is over: every clause of it is done or was cancelled, so the RPC is
        cancelled at once (waiting for the server to end it after a half-close kept a call's
        teardown waiting: the Plivo test lost its call_ended event)."""
        self._outbox.put_nowait(None)
        self._drop()

    def _drop(self) -> None:
        self._call.cancel()
        self._writer.cancel()
        self._reader.cancel()

    async def _write(self) -> None:
        try:
            while (request := await self._outbox.get()) is not None:
                await self._call.write(request)
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the reader reports the call's status

    async def _read(self) -> None:
        try:
            async for response in self._call:
                kind = response.WhichOneof("response")
                if kind == "audio":
                    self._to(response.audio.clause_id, response)
                elif kind == "clause_done":
                    self._to(response.clause_done.clause_id, response)
                elif kind == "cancelled":
                    for clause_id in response.cancelled.clause_ids:
                        self._to(clause_id, None)
        except BaseException as exc:
            self.failed = True
            for queue in self._clauses.values():
                queue.put_nowait(exc)
            if not isinstance(exc, grpc.aio.AioRpcError | asyncio.CancelledError):
                raise
            return
        for queue in self._clauses.values():
            queue.put_nowait(None)

    def _to(self, clause_id: str, response: _Response) -> None:
        queue = self._clauses.get(clause_id)
        if queue is not None:
            queue.put_nowait(response)


class _GrpcReply(SpokenReply):
    """A reply over one stream: each clause a ``TextClause``; barge-in a ``CancelSynthesis``."""

    tts: GrpcSynthesizer

    def __init__(self, tts: GrpcSynthesizer, call: CallInfo) -> None:
        super().__init__(tts, call)
        self._stream: _ReplyStream | None = None

    def say(self, text: str) -> AsyncIterator[bytes]:
        return self.tts._stream(lambda: self._say(text), "tts_ttfa", self.call)

    async def _say(self, text: str) -> AsyncIterator[bytes]:
        stream = self._stream
        if stream is None or stream.failed:
            if stream is not None:
                stream.close()
            stream = self._stream = self.tts._open(self.call)
        clause_id = self.tts._clause_id()
        responses = stream.speak(clause_id, text)
        carry = b""  # an odd byte split across chunks stays until its pair arrives
        finished = False
        try:
            with rpc_errors(self.tts.stage):
                while (response := await responses.get()) is not None:
                    if isinstance(response, BaseException):
                        raise response
                    if response.WhichOneof("response") == "clause_done":
                        _annotate(response.clause_done)
                        finished = True
                        return
                    pcm = carry + response.audio.audio
                    cut = len(pcm) - len(pcm) % 2
                    carry = pcm[cut:]
                    if cut:
                        yield pcm[:cut]
                finished = True  # cancelled, or the stream ended
        finally:
            if finished:
                stream.done(clause_id)
            else:  # closed early: barge-in
                stream.cancel(clause_id, "barge-in")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _annotate(done: tts_pb2.ClauseDone) -> None:
    span = trace.get_current_span()
    span.set_attribute("tts.server_ttfa_ms", ms(done.time_to_first_audio))
    span.set_attribute("tts.synthesis_ms", ms(done.synthesis_time))
    span.set_attribute("tts.audio_ms", ms(done.audio_duration))
    span.set_attribute("tts.chunks", done.chunk_count)
