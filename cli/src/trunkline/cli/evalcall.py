"""The eval's calls on the local stack: one scenario = one simulated phone call.

:class:`StackDriver` is the ``trunkline.evaluation`` :class:`CallDriver` of ``trunkline eval``:
it synthesises the caller's lines with the stack's TTS (or reads the scenario's WAVs), dials
the gateway over the Twilio media-stream protocol with the simulated caller (each caller turn
waits for its ``turn.completed`` before the next, so a filler and a slow answer after it are
both heard), reads the call's
``turn.completed``, ``escalation`` and ``call_ended`` events back from JetStream once the call
is over, and transcribes what the caller heard of each reply with the stack's STT
(``Recognize``: Whisper on the embedded default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import nats.errors
import numpy as np
from numpy.typing import NDArray

from trunkline.audio import INTERNAL_RATE
from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS_PREFIX
from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    CallResult,
    SimulatedCaller,
    direct_target,
    prepare_script,
)
from trunkline.cli.record import StackRecord
from trunkline.cli.tenants import LocalTenant
from trunkline.cli.turns import TurnFeed
from trunkline.evaluation import CallDriver, CallSeen, Scenario, TurnEvent, TurnSeen
from trunkline.evaluation.events import end_reason_name, turn_event
from trunkline.evaluation.observation import assign_events
from trunkline.evaluation.scenario import ActionKind
from trunkline.evaluation.sources import AgentSources
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc

EVAL_OPTIONS = CallOptions(reply_quiet_ms=4000.0, reply_timeout_s=30.0)
"""As the demo's: a reply is over after 4 s without agent speech (a filler can come first and
the answer seconds later on a busy 2-core machine)."""
HANG_UP_WAIT_MS = 4000.0
"""After a goodbye the caller stays on this long (beyond the reply's end) for the agent to hang
up, before hanging up itself."""
MAX_RECOGNIZE_S = 28  # Whisper's window is 30 s; a longer reply is transcribed on its start
VOICED = 500  # |sample| above this (16-bit) is sound, for trimming the silence before a reply


class EventsError(RuntimeError):
    """The call's events could not be read back from JetStream."""


@dataclass(frozen=True, slots=True)
class CallEvents:
    turns: list[TurnEvent]
    escalations: list[float]  # epoch seconds
    end_reason: str  # "" when no call_ended event came


def _epoch(stamp: object) -> float:
    seconds = getattr(stamp, "seconds", 0)
    nanos = getattr(stamp, "nanos", 0)
    return float(seconds) + float(nanos) / 1e9


async def read_call_events(
    bus: Bus, tenant: str, call_id: str, timeout_s: float = 15.0
) -> CallEvents:
    """The call's events from the EVENTS stream (an ordered consumer from the first message),
    waiting up to ``timeout_s`` for its ``call_ended``."""
    subject = f"{EVENTS_PREFIX}.*.{tenant}.{call_id}"
    js = bus.client.jetstream()
    try:
        sub = await js.subscribe(subject, ordered_consumer=True)
    except Exception as exc:
        raise EventsError(f"cannot read {subject} from JetStream: {exc!r}") from None
    turns: list[TurnEvent] = []
    escalations: list[float] = []
    end_reason = ""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            wait = 0.3 if end_reason else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=wait)
            except nats.errors.TimeoutError:
                break
            kind = msg.subject.split(".")[2]
            if kind == "turn":
                turns.append(turn_event(events_pb2.TurnCompleted.FromString(msg.data)))
            elif kind == "escalation":
                event = events_pb2.EscalationRequested.FromString(msg.data)
                escalations.append(_epoch(event.occurred_at))
            elif kind == "call_ended":
                ended = events_pb2.CallEnded.FromString(msg.data)
                end_reason = end_reason_name(ended.reason) or "unspecified"
    finally:
        await sub.unsubscribe()
    return CallEvents(turns, escalations, end_reason)


async def recognize(addr: str, tenant: str, pcm: bytes, timeout_s: float = 60.0) -> str:
    """What the stack's STT hears in 16 kHz PCM16 audio."""
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = stt_pb2_grpc.SpeechToTextStub(channel)
        reply = await stub.Recognize(
            stt_pb2.RecognizeRequest(
                context=call_pb2.CallContext(tenant_id=tenant, call_id="eval-reply-check"),
                config=stt_pb2.RecognitionConfig(
                    audio_format=audio_pb2.AudioFormat(
                        encoding=audio_pb2.AUDIO_ENCODING_PCM16,
                        sample_rate_hz=INTERNAL_RATE,
                        channels=1,
                    )
                ),
                audio=pcm,
            ),
            timeout=timeout_s,
        )
    return str(reply.transcript.text)


def reply_audio(agent: NDArray[np.int16], start_ms: float, end_ms: float | None) -> bytes:
    """The agent's audio between two instants of the call, from its first sound, <= 28 s."""
    a = int(start_ms * INTERNAL_RATE / 1000)
    b = len(agent) if end_ms is None else int(end_ms * INTERNAL_RATE / 1000)
    samples = agent[a:b]
    voiced = np.flatnonzero(np.abs(samples.astype(np.int32)) > VOICED)
    if not voiced.size:
        return b""
    return samples[int(voiced[0]) : int(voiced[0]) + MAX_RECOGNIZE_S * INTERNAL_RATE].tobytes()


class StackDriver(CallDriver):
    """Places scenario calls on a running local stack (see the module docstring)."""

    def __init__(
        self,
        record: StackRecord,
        tenants: Mapping[str, LocalTenant],
        default_tenant: str,
        sources: Mapping[str, AgentSources],
        *,
        options: CallOptions = EVAL_OPTIONS,
        transcribe: bool = True,
        recordings: Path | None = None,
    ) -> None:
        self.record = record
        self.tenants = tenants
        self.default_tenant = default_tenant
        self.voices = {name: s.voice for name, s in sources.items()}
        self.options = options
        self.transcribe = transcribe
        self.recordings = recordings

    def _url(self, name: str) -> str:
        component = self.record.get(name)
        if component is None:
            raise RuntimeError(f"the stack has no {name}")
        return component.url

    def tenant_of(self, scenario: Scenario) -> str:
        return scenario.tenant or self.default_tenant

    async def run_call(self, scenario: Scenario) -> CallSeen:
        tenant = self.tenants[self.tenant_of(scenario)]
        turns = [CallerTurn(text=t.text, wav=t.wav, pause_ms=t.pause_ms) for t in scenario.turns]
        script = await prepare_script(
            turns, tts_addr=self._url("tts"), tenant=tenant.name,
            agent_voice=self.voices.get(scenario.agent, ""),
        )  # fmt: skip
        identity = CallIdentity()
        target = direct_target(
            self.record.media_url, identity, tenant=tenant.name, agent=scenario.agent,
            stream_secret=tenant.stream_secret, extra={"caller_role": scenario.caller_role},
        )  # fmt: skip
        options = self.options
        if scenario.turns[-1].expects(ActionKind.HANG_UP):
            options = replace(options, hangup_ms=HANG_UP_WAIT_MS)
        bus = await Bus.connect(self._url("nats"), name="trunkline-eval")
        feed = TurnFeed(bus, tenant.name)
        try:
            await feed.start()  # each turn waits for its turn.completed (a slow answer)
            caller = SimulatedCaller(target, identity, options, turn_done=feed.agent_text)
            loop = asyncio.get_running_loop()
            wall0, mono0 = time.time(), loop.time()
            result = await caller.run(script)
            t0_wall = wall0 + (caller.log.t0 - mono0)
            events = await read_call_events(bus, tenant.name, identity.call_sid)
        finally:
            await feed.stop()
            await bus.close()
        if self.recordings is not None:
            caller.write_recordings(call=self.recordings / f"{scenario.name}.wav")
        heard = await self._heard(caller, result, tenant.name)
        return self._seen(result, events, t0_wall, heard)

    async def _heard(
        self, caller: SimulatedCaller, result: CallResult, tenant: str
    ) -> list[str | None]:
        """Each answered reply's audio as the stack's STT hears it (None: not transcribed)."""
        if not self.transcribe:
            return [None] * len(result.turns)
        agent = caller.recorder.agent_16k()
        heard: list[str | None] = []
        for i, turn in enumerate(result.turns):
            end = result.turns[i + 1].speech_start_ms if i + 1 < len(result.turns) else None
            start = turn.speech_end_ms
            pcm = reply_audio(agent, start, end) if start is not None else b""
            if turn.outcome != "answered" or not pcm:
                heard.append(None)
                continue
            heard.append(await recognize(self._url("stt"), tenant, pcm))
        return heard

    @staticmethod
    def _seen(
        result: CallResult, events: CallEvents, t0_wall: float, heard: list[str | None]
    ) -> CallSeen:
        starts = [t0_wall + (t.speech_start_ms or 0.0) / 1000 for t in result.turns]
        greeting, per_turn = assign_events(starts, events.turns)
        escalated = [False] * len(starts)
        for at in events.escalations:
            index = max((i for i, s in enumerate(starts) if s <= at), default=None)
            if index is not None:
                escalated[index] = True
        turns = tuple(
            TurnSeen(
                events=tuple(per_turn[i]),
                answered=t.outcome == "answered",
                voice_to_voice_ms=t.voice_to_voice_ms,
                reply_heard=heard[i],
                escalated=escalated[i],
            )
            for i, t in enumerate(result.turns)
        )
        return CallSeen(
            call_id=result.call_sid,
            turns=turns,
            greeting=" ".join(e.reply for e in greeting),
            end_reason=events.end_reason,
            ended_by=result.ended_by,
            extra={"duration_ms": round(result.duration_ms), "clears": result.clears},
        )
