"""The simulated caller: dials a Twilio media-stream server and talks through a scenario.

It behaves like Twilio plus a phone: ``connected`` and ``start`` (custom parameters carry the
auth), then 20 ms inbound media for the whole call (silence between utterances), agent media
played in real time, marks echoed when playback reaches them, ``clear`` obeyed at once, and
``stop`` at hang-up. Each caller turn waits for the agent's reply to end (no agent speech for
``reply_quiet_ms``), or barges in ``barge_in_ms`` into it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp

from trunkline.audio import TELEPHONY_RATE
from trunkline.cli.caller.audio import DEFAULT_VOICE_DBFS, is_voiced, voiced_span
from trunkline.cli.caller.dial import CallIdentity, DialError, StreamTarget
from trunkline.cli.caller.latency import CallLog, Received, Spoken, barge_in, reply
from trunkline.cli.caller.mic import Microphone
from trunkline.cli.caller.protocol import (
    AgentClear,
    AgentMark,
    AgentMedia,
    ProtocolError,
    TwilioMessages,
    parse_server,
)
from trunkline.cli.caller.recorder import CallRecorder
from trunkline.cli.caller.result import CallResult, GreetingResult, TurnResult
from trunkline.cli.caller.scenario import PreparedTurn
from trunkline.cli.caller.speaker import Speaker
from trunkline.cli.caller.wakeup import Wakeup

log = logging.getLogger(__name__)

AgentText = Callable[[str, int], Awaitable[str | None]]
"""Pluggable transcript source: (call sid, caller turn index) -> what the agent said, if known."""
TurnDone = Callable[[str, int], Awaitable[object]]
"""Optional: resolves once the agent has finished caller turn ``index`` (e.g. its
``turn.completed`` event); the caller then waits for that reply's audio to end before going on,
so a filler followed by a slow answer is heard whole (the eval uses it)."""

T = TypeVar("T")


class CallEndedError(RuntimeError):
    """The server ended the call before the scenario did."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    reply_quiet_ms: float = 800.0  # the agent's reply is over after this long without speech
    reply_timeout_s: float = 15.0  # no reply this long after the caller stopped: "no reply"
    max_reply_s: float = 60.0  # a reply longer than this is not waited for any more
    wait_greeting: bool = True
    greeting_timeout_s: float = 5.0
    hangup_ms: float = 300.0  # silence after the last reply before ``stop``
    voice_dbfs: float = DEFAULT_VOICE_DBFS  # caller frames louder than this are speech
    agent_voice_dbfs: float = DEFAULT_VOICE_DBFS  # agent frames louder than this are speech
    agent_text_timeout_s: float = 5.0
    turn_done_timeout_s: float = 30.0  # longest wait for ``turn_done`` per turn
    connect_timeout_s: float = 10.0


@dataclass(slots=True)
class _TurnRecord:
    spoken: Spoken
    after: float  # replies count from here (the voiced end, or a clear after the onset)


class SimulatedCaller:
    """One call. ``run`` returns the result; the recorder then holds both audio tracks."""

    def __init__(
        self,
        target: StreamTarget,
        identity: CallIdentity | None = None,
        options: CallOptions | None = None,
        *,
        agent_text: AgentText | None = None,
        turn_done: TurnDone | None = None,
    ) -> None:
        self.target = target
        self.identity = identity or CallIdentity()
        self.options = options or CallOptions()
        self.agent_text = agent_text
        self.turn_done = turn_done
        self.messages = TwilioMessages(
            self.identity.stream_sid, self.identity.call_sid, self.identity.account_sid
        )
        self._loop = asyncio.get_running_loop()
        self.log = CallLog(t0=self._now())
        self.recorder = CallRecorder(self.log.t0)
        self._changed = Wakeup()  # each received message, and the end of the stream
        self._closed = asyncio.Event()
        self._close_reason = ""
        self._send_lock = asyncio.Lock()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._records: list[_TurnRecord] = []
        self._voiced_rx: list[float] = []  # receipt times of voiced agent frames, in order
        self._greeting_first: float | None = None
        self.mic: Microphone | None = None

    def _now(self) -> float:
        return self._loop.time()

    # -- wire ---------------------------------------------------------------------------------
    async def _send(self, text: str) -> None:
        if self._ws is None or self._ws.closed:
            raise CallEndedError(self._close_reason or "websocket closed")
        async with self._send_lock:
            await self._ws.send_str(text)

    async def _send_media(self, mulaw: bytes, timestamp_ms: int) -> None:
        await self._send(self.messages.media(mulaw, timestamp_ms))

    async def _echo_mark(self, name: str) -> None:
        with contextlib.suppress(CallEndedError, ConnectionError):
            await self._send(self.messages.mark(name))

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, speaker: Speaker) -> None:
        async for msg in ws:
            now = self._now()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    message = parse_server(msg.data)
                except ProtocolError as exc:
                    self.log.bad_messages.append(str(exc))
                    continue
                match message:
                    case AgentMedia(mulaw=mulaw):
                        voiced = is_voiced(mulaw, self.options.agent_voice_dbfs)
                        self.log.received.append(Received(now, len(mulaw), voiced))
                        if voiced:
                            self._voiced_rx.append(now)
                        speaker.push_media(mulaw, now)
                    case AgentMark(name=name):
                        self.log.marks_received.append((now, name))
                        speaker.push_mark(name)
                    case AgentClear():
                        self.log.clears.append(now)
                        for name in speaker.clear():
                            self.log.marks_echoed.append((now, name))
                            await self._echo_mark(name)
                self._changed.notify()
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.log.bad_messages.append("binary frame where JSON text was expected")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self._close_reason = f"websocket error: {ws.exception()!r}"
                break
        if not self._close_reason:
            self._close_reason = f"server closed the stream (code {ws.close_code})"
        self._closed.set()
        self._changed.notify()

    # -- waiting ------------------------------------------------------------------------------
    async def _until_closed(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.ensure_future(awaitable)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not task.done():
            task.cancel()
            raise CallEndedError(self._close_reason)
        return task.result()

    async def _wait(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``ready()`` (re-checked on every received message and every 10 ms)."""
        while not ready():
            if self._closed.is_set():
                raise CallEndedError(self._close_reason)
            remaining = deadline - self._now()
            if remaining <= 0:
                return False
            await self._changed.wait(min(remaining, 0.01))
        return True

    async def _sleep_until(self, t: float) -> None:
        await self._wait(lambda: self._now() >= t, t + 1.0)

    def _first_voiced_after(self, after: float) -> float | None:
        i = bisect.bisect_right(self._voiced_rx, after)
        return self._voiced_rx[i] if i < len(self._voiced_rx) else None

    def _last_speech(self) -> float:
        last_rx = self._voiced_rx[-1] if self._voiced_rx else 0.0
        last_play = next((p.end for p in reversed(self.log.played) if p.voiced), 0.0)
        return max(last_rx, last_play)

    async def _reply_start(self, after: float, within_s: float) -> float | None:
        found: list[float] = []

        def ready() -> bool:
            t = self._first_voiced_after(after)
            if t is not None:
                found.append(t)
            return t is not None

        await self._wait(ready, self._now() + within_s)
        return found[0] if found else None

    async def _reply_end(self, first: float) -> None:
        quiet = self.options.reply_quiet_ms / 1000
        await self._wait(
            lambda: self._now() - self._last_speech() >= quiet,
            first + self.options.max_reply_s,
        )

    async def _played_start(self, first_rx: float) -> float | None:
        def start() -> float | None:
            return next(
                (p.start for p in self.log.played if p.voiced and p.start >= first_rx), None
            )

        await self._wait(lambda: start() is not None, self._now() + 5.0)
        return start()

    # -- the call -----------------------------------------------------------------------------
    async def run(self, script: Sequence[PreparedTurn]) -> CallResult:
        started_at = datetime.now(UTC).isoformat()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.options.connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                ws = await session.ws_connect(self.target.url, max_msg_size=1 << 20)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DialError(f"cannot open {self.target.url}: {exc!r}") from None
            self._ws = ws
            await ws.send_str(self.messages.connected())
            await ws.send_str(self.messages.start(self.target.parameters))
            self.log.t0 = self._now()
            self.recorder = CallRecorder(self.log.t0)
            speaker = Speaker(
                self._now,
                self._echo_mark,
                self.log,
                self.recorder,
                self.options.agent_voice_dbfs,
            )
            self.mic = Microphone(
                self._send_media, self._now, self.log.t0, self.recorder.caller_frame
            )
            tasks = [
                asyncio.create_task(self._receive(ws, speaker)),
                asyncio.create_task(speaker.run()),
                asyncio.create_task(self.mic.run()),
            ]
            ended_by = "caller"
            try:
                await self._converse(script, self.mic)
                await self._sleep_until(self._now() + self.options.hangup_ms / 1000)
                await self._send(self.messages.stop())
            except (CallEndedError, ConnectionError) as exc:
                ended_by = str(exc) or self._close_reason or "connection lost"
            finally:
                self.log.end = self._now()
                self.recorder.finish(self.log.end)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await ws.close()
        return await self._result(script, started_at, ended_by)

    async def _converse(self, script: Sequence[PreparedTurn], mic: Microphone) -> None:
        options = self.options
        previous: float | None = None  # receipt of the first voiced frame of the last reply
        if options.wait_greeting:
            previous = await self._reply_start(self.log.t0, options.greeting_timeout_s)
            self._greeting_first = previous
            barges = bool(script) and script[0].turn.barge_in_ms is not None
            if previous is not None and not barges:
                await self._reply_end(previous)
        for i, prepared in enumerate(script):
            turn = prepared.turn
            if turn.barge_in_ms is not None and previous is not None:
                played = await self._played_start(previous)
                if played is not None:
                    await self._sleep_until(played + turn.barge_in_ms / 1000)
            else:
                await self._sleep_until(self._now() + turn.pause_ms / 1000)
            times = await self._until_closed(mic.say(prepared.mulaw))
            spoken = Spoken(times, voiced_span(prepared.mulaw, options.voice_dbfs))
            after = spoken.voiced_end if spoken.voiced_end is not None else spoken.end
            if turn.barge_in_ms is not None and spoken.onset is not None:
                clear = next((c for c in self.log.clears if c >= spoken.onset), None)
                after = max(after, clear) if clear is not None else after
            self._records.append(_TurnRecord(spoken, after))
            previous = await self._reply_start(after, options.reply_timeout_s)
            barges_next = i + 1 < len(script) and script[i + 1].turn.barge_in_ms is not None
            if previous is not None and not barges_next:
                await self._reply_end(previous)
            if self.turn_done is not None and not barges_next:
                await self._wait_turn_done(self.turn_done, i)
                previous = previous or await self._reply_start(after, 1.0)
                if previous is not None:
                    await self._reply_end(previous)

    async def _wait_turn_done(self, turn_done: TurnDone, index: int) -> None:
        timeout = self.options.turn_done_timeout_s
        done = asyncio.wait_for(turn_done(self.identity.call_sid, index), timeout)
        try:
            await self._until_closed(done)
        except TimeoutError:
            log.warning("turn %d not done after %.0f s", index, timeout)

    # -- figures ------------------------------------------------------------------------------
    async def _agent_text(self, index: int) -> str | None:
        if self.agent_text is None:
            return None
        try:
            return await asyncio.wait_for(
                self.agent_text(self.identity.call_sid, index), self.options.agent_text_timeout_s
            )
        except Exception as exc:  # a transcript source never breaks the report
            log.warning("agent transcript for turn %d unavailable: %r", index, exc)
            return None

    async def _result(
        self, script: Sequence[PreparedTurn], started_at: str, ended_by: str
    ) -> CallResult:
        t0, lg = self.log.t0, self.log
        afters = [r.after for r in self._records]
        greeting = None
        if self.options.wait_greeting:
            g = reply(lg, t0, afters[0] if afters else float("inf"))
            greeting = GreetingResult(
                None if g.first_audio is None else (g.first_audio - t0) * 1000,
                None if g.played_s is None else g.played_s * 1000,
            )
        turns = []
        for i, record in enumerate(self._records):
            turn = script[i].turn
            spoken = record.spoken
            before = afters[i + 1] if i + 1 < len(afters) else float("inf")
            figures = reply(lg, record.after, before)
            end = spoken.voiced_end
            v2v = None
            if figures.first_audio is not None and end is not None:
                v2v = (figures.first_audio - end) * 1000
            bi = None
            if turn.barge_in_ms is not None and spoken.onset is not None:
                bi = barge_in(lg, spoken.onset, spoken.end + 2.0)

            def rel(t: float | None) -> float | None:
                return None if t is None else (t - t0) * 1000

            turns.append(
                TurnResult(
                    index=i,
                    source=turn.source,
                    caller_text=turn.text,
                    caller_audio_ms=len(script[i].mulaw) * 1000 / TELEPHONY_RATE,
                    speech_start_ms=rel(spoken.onset),
                    speech_end_ms=rel(spoken.voiced_end),
                    voice_to_voice_ms=v2v,
                    reply_played_ms=None if figures.played_s is None else figures.played_s * 1000,
                    reply_received_ms=figures.received_s * 1000,
                    barge_in_at_ms=turn.barge_in_ms,
                    agent_was_speaking=None if bi is None else bi.agent_playing,
                    barge_in_clear_ms=None
                    if bi is None or bi.clear_s is None
                    else bi.clear_s * 1000,
                    barge_in_stop_ms=None if bi is None or bi.stop_s is None else bi.stop_s * 1000,
                    outcome="answered" if figures.first_audio is not None else "no reply",
                    agent_text=await self._agent_text(i),
                )
            )
        lateness = self.mic.lateness if self.mic is not None else []
        return CallResult(
            call_sid=self.identity.call_sid,
            stream_sid=self.identity.stream_sid,
            url=self.target.url,
            started_at=started_at,
            duration_ms=((lg.end or t0) - t0) * 1000,
            greeting=greeting,
            turns=turns,
            frames_sent=self.mic.frames_sent if self.mic is not None else 0,
            max_send_late_ms=max(lateness, default=0.0) * 1000,
            marks_received=len(lg.marks_received),
            marks_echoed=len(lg.marks_echoed),
            clears=len(lg.clears),
            bad_messages=lg.bad_messages[:20],
            ended_by=ended_by,
        )

    def write_recordings(self, agent: Path | None = None, call: Path | None = None) -> None:
        """Agent audio as heard (16 kHz mono) and/or both sides (16 kHz stereo), on the call's
        real timeline."""
        if agent is not None:
            self.recorder.write_agent(agent)
        if call is not None:
            self.recorder.write_call(call)
