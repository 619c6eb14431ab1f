"""The LiveKit leg of ``make bench-voice``: the same prepared caller turns, spoken into a LiveKit
room of the distributed stack by a Python participant (``livekit`` rtc SDK, Opus both ways through
the stack's ``livekit-server``), timed as the Twilio caller times its turns.

- voice-to-voice: the caller's last voiced frame leaving its track's source -> the first loud
  frame of the reply as the caller's track received it (after its jitter buffer);
- barge-in: a turn with ``barge_in_ms`` starts that long after the reply before it was first
  heard; stop = the caller's onset -> the end of the agent's last loud frame heard before a
  pause of ``STOP_GAP_S`` (the agent's track sends nothing once it stopped).

A turn without barge-in waits until the agent was quiet for ``reply_quiet_ms``. The result is a
:class:`~trunkline.cli.caller.result.CallResult` like the Twilio caller's (LiveKit has no marks
or clears: those counts are 0).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import numpy as np

from trunkline.audio import mulaw_to_pcm16, resample_pcm16
from trunkline.cli.caller import CallOptions, CallResult, PreparedTurn
from trunkline.cli.caller.result import GreetingResult, TurnResult
from trunkline.gateway.livekit_dispatch import room_token
from trunkline.gateway.livekit_rooms import LiveKitKey, parse_room
from trunkline.gateway.transports.livekit_peer import LiveKitCaller

RATE = 16_000
VOICED_DBFS = -45.0  # the Twilio caller's own floor for a voiced frame
STOP_GAP_S = 0.5  # no loud frame heard for this long: the agent has stopped


def voiced_span(pcm: bytes, rate: int = RATE) -> tuple[int, int] | None:
    """Indices of the first and last voiced 20 ms frames of ``pcm`` (PCM16 mono at ``rate``)."""
    step = rate // 50
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    usable = len(samples) // step * step
    if not usable:
        return None
    frames = samples[:usable].reshape(-1, step)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    voiced = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-9) / 32768) > VOICED_DBFS)
    return (int(voiced[0]), int(voiced[-1])) if voiced.size else None


def stopped_at(loud: list[float], onset: float) -> float | None:
    """When the agent's speech that was going on at ``onset`` ended (the end of its last loud
    frame before a pause of ``STOP_GAP_S``); None when nothing loud was heard in the
    ``STOP_GAP_S`` before the onset (the agent was not speaking)."""
    before = [t for t in loud if onset - STOP_GAP_S <= t < onset]
    if not before:
        return None
    last = before[-1]
    for t in loud:
        if t < onset:
            continue
        if t - last >= STOP_GAP_S:
            break
        last = t
    return last + 0.02


def ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000


@dataclass(frozen=True, slots=True)
class Room:
    url: str  # the stack's livekit-server (ws://127.0.0.1:P)
    key: LiveKitKey
    tenant: str
    agent: str

    def new(self) -> tuple[str, str]:
        """A new room for the agent and a caller's token for it: (room, token)."""
        room = f"{self.tenant}.{self.agent}.{uuid.uuid4().hex[:10]}"
        return room, room_token(self.key, room, "bench-caller")

    def call_id(self, room: str) -> str:
        """The gateway's call id for a room (what its turn events carry)."""
        return parse_room(room, {self.tenant: frozenset({self.agent})}).call_id


async def heard_after(caller: LiveKitCaller, after: float, limit_s: float) -> float | None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if (at := caller.first_loud(after)) is not None:
            return at
        await asyncio.sleep(0.01)
    return None


async def quiet(caller: LiveKitCaller, since: float, quiet_s: float, limit_s: float) -> None:
    """Until nothing loud was heard for ``quiet_s`` (counting from ``since`` when nothing was)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        last = max(caller.last_loud or since, since)
        if time.monotonic() - last >= quiet_s:
            return
        await asyncio.sleep(0.05)


async def wait_said(caller: LiveKitCaller, index: int, limit_s: float) -> float | None:
    """When said frame ``index`` (of every frame said in the call) left for the source."""
    deadline = time.monotonic() + limit_s
    while len(caller.said_times) <= index:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.01)
    return caller.said_times[index]


async def livekit_call(room: Room, turns: list[PreparedTurn], options: CallOptions) -> CallResult:
    """One call of ``turns`` into a new room; the same figures as the Twilio caller's."""
    name, token = room.new()
    caller = LiveKitCaller(RATE)
    started, wall = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: list[TurnResult] = []
    quiet_s, limit_s = options.reply_quiet_ms / 1000, options.reply_timeout_s
    try:
        await caller.join(room.url, token)
        greeted = await heard_after(caller, started, limit_s)
        greeting = GreetingResult(ms(started, greeted), None)
        replied = greeted  # when the reply before this turn was first heard
        for i, prepared in enumerate(turns):
            pcm = resample_pcm16(mulaw_to_pcm16(prepared.mulaw), 8000, RATE)
            span = voiced_span(pcm)
            barge = prepared.turn.barge_in_ms
            if barge is not None and replied is not None:
                await asyncio.sleep(max(0.0, replied + barge / 1000 - time.monotonic()))
            else:
                await quiet(caller, time.monotonic(), quiet_s, limit_s)
            base = len(caller.said_times) + caller.pending
            caller.say(pcm)
            onset = end = None
            if span is not None:
                onset = await wait_said(caller, base + span[0], limit_s)
                end = await wait_said(caller, base + span[1], limit_s)
            first = None if end is None else await heard_after(caller, end, limit_s)
            stop = None
            if barge is not None and onset is not None:
                stop = stopped_at(caller.loud_times, onset)
            results.append(
                TurnResult(
                    index=i,
                    source="tts",
                    caller_text=prepared.turn.text,
                    caller_audio_ms=len(pcm) / 2 / RATE * 1000,
                    speech_start_ms=ms(started, onset),
                    speech_end_ms=ms(started, end),
                    voice_to_voice_ms=ms(end, first),
                    reply_played_ms=None,
                    reply_received_ms=0.0,
                    barge_in_at_ms=barge,
                    agent_was_speaking=None if barge is None else stop is not None,
                    barge_in_clear_ms=None,
                    barge_in_stop_ms=ms(onset, stop),
                    outcome="answered" if first is not None else "no reply",
                )
            )
            replied = first
        await quiet(caller, time.monotonic(), quiet_s, limit_s)
    finally:
        await caller.leave()
    return CallResult(
        call_sid=room.call_id(name),
        stream_sid=name,
        url=room.url,
        started_at=wall,
        duration_ms=(time.monotonic() - started) * 1000,
        greeting=greeting,
        turns=results,
        frames_sent=len(caller.said_times),
        max_send_late_ms=0.0,
        marks_received=0,
        marks_echoed=0,
        clears=0,
    )
