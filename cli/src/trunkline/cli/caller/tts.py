"""Caller utterances from text, synthesized by the TTS service (``TextToSpeech`` over gRPC)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
from grpc import aio

from trunkline.cli.caller.audio import pcm16_to_mulaw8k
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc

SYNTH_RATE = 16000


class SynthesisError(RuntimeError):
    """The TTS service could not speak the caller's lines; the text says why."""


async def list_voices(addr: str, timeout_s: float = 10.0) -> list[str]:
    """Voice ids the TTS service offers."""
    async with aio.insecure_channel(addr) as channel:
        stub = tts_pb2_grpc.TextToSpeechStub(channel)
        try:
            reply = await stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise SynthesisError(f"ListVoices at {addr} failed: {exc}") from None
    return [voice.id for voice in reply.voices]


def caller_voice(voices: Sequence[str], agent_voice: str = "") -> str:
    """A voice unlike the agent's: the last listed one that is not ``agent_voice`` (the first
    listed is usually the default), or "" (service default) when there is no other."""
    others = [v for v in voices if v and v != agent_voice]
    if agent_voice or len(voices) > 1:
        return others[-1] if others else ""
    return ""


async def synthesize(
    addr: str,
    texts: Sequence[str],
    *,
    tenant: str,
    voice: str = "",
    speaking_rate: float = 0.0,
    timeout_s: float = 60.0,
) -> list[bytes]:
    """Speak each text on one stream; returns mu-law 8 kHz audio per text, in order."""
    if not texts:
        return []
    ids = [f"caller.{i}" for i in range(len(texts))]
    audio: dict[str, bytearray] = {cid: bytearray() for cid in ids}
    done: set[str] = set()
    finished = asyncio.Event()

    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(
            context=call_pb2.CallContext(tenant_id=tenant, call_id="simulated-caller"),
            config=tts_pb2.SynthesisConfig(
                voice=voice,
                speaking_rate=speaking_rate,
                audio_format=audio_pb2.AudioFormat(
                    encoding=audio_pb2.AUDIO_ENCODING_PCM16,
                    sample_rate_hz=SYNTH_RATE,
                    channels=1,
                ),
            ),
        )
        for cid, text in zip(ids, texts, strict=True):
            yield tts_pb2.StreamingSynthesizeRequest(
                text=tts_pb2.TextClause(clause_id=cid, text=text)
            )
        await finished.wait()  # keep the stream open until every clause is done

    async with aio.insecure_channel(addr) as channel:
        stub = tts_pb2_grpc.TextToSpeechStub(channel)
        call = stub.StreamingSynthesize(requests(), timeout=timeout_s)
        try:
            async for response in call:
                kind = response.WhichOneof("response")
                if kind == "audio" and response.audio.clause_id in audio:
                    audio[response.audio.clause_id] += response.audio.audio
                elif kind == "clause_done":
                    done.add(response.clause_done.clause_id)
                    if done >= set(ids):
                        finished.set()
                        break
                elif kind == "cancelled":
                    raise SynthesisError("the TTS service cancelled the caller's lines")
        except grpc.RpcError as exc:
            raise SynthesisError(f"StreamingSynthesize at {addr} failed: {exc}") from None
        finally:
            finished.set()
            call.cancel()
    missing = [cid for cid in ids if cid not in done or not audio[cid]]
    if missing:
        raise SynthesisError(f"no audio for caller lines {missing}")
    return [pcm16_to_mulaw8k(bytes(audio[cid]), SYNTH_RATE) for cid in ids]
