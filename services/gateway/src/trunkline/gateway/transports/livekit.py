"""LiveKit calls: the agent is a participant in the caller's room (``livekit`` rtc SDK).

- Caller: the first remote participant that is not an agent. Only audio is subscribed (the room
  is joined with ``auto_subscribe`` off): a video track is never subscribed, only logged. The SDK
  decodes the caller's Opus and resamples it (whatever rate the caller published at) to 16 kHz
  mono; the frames are cut into the internal 20 ms PCM16 frames (``AudioIn``).
- Agent audio: published as one microphone track from an ``AudioSource`` at 48 kHz (TTS renders
  at ``out_rate``, Opus runs at 48 kHz: no resample). Reply frames go to the source as the turn
  machine releases them (``feed_ahead``), three 20 ms frames per capture once the source holds
  40 ms (each capture's FFI callback reaches every room of the process): the SDK's native queue
  sends them at real time, 10 ms at a time, whatever this event loop's jitter, and the first one
  leaves at once. The outbound clock
  is a steady 20 ms :class:`~trunkline.gateway.core.pacer.Pacer` ticked by the web app's shared
  :class:`~trunkline.gateway.transports.pacing.PlayoutClock` (else by a task of this room's):
  every slot is a ``Played`` tick whether or not there is audio (in silence nothing is captured:
  the track sends nothing). Marks are echoed when the frames before them have gone to the
  source. ``clear`` empties the source's queue (barge-in) and echoes the marks left.
- DTMF: the caller's SIP DTMF (``sip_dtmf_received``: a SIP participant's keypad, or a
  participant's ``publish_dtmf``) becomes a ``Dtmf`` event for the session, as Twilio's does.
- Hang-up: the caller leaving the room, the room disconnecting, or no caller in
  ``caller_timeout_s``. A reconnect (``reconnecting``/``reconnected``, done by the SDK) is logged
  and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from livekit import rtc

from trunkline.audio import INTERNAL_RATE, Framer, frame_bytes
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.pacer import Pacer
from trunkline.gateway.transports.base import (
    DTMF_DIGITS,
    AudioIn,
    Dtmf,
    Hangup,
    MarkEcho,
    Played,
    Transport,
    TransportEvent,
)
from trunkline.gateway.transports.livekit_ffi import quiet_room
from trunkline.gateway.transports.pacing import PlayoutClock

log = logging.getLogger(__name__)
OPUS_RATE = 48000
SOURCE_QUEUE_MS = 240  # the SDK's own buffer ahead of the encoder (room for a batch and a lead)
CAPTURE_BATCH_FRAMES = 3  # reply frames handed to the source in one capture (60 ms)
HOLD_AHEAD_S = 0.04  # frames wait for a whole batch only while the source holds this much
STREAM_FRAME_MS = 20  # caller audio from the SDK in 20 ms frames (10 ms: twice the events)


class LiveKitTransport(Transport):
    """One room's call. Create it, ``await room.connect(...)`` with ``room_options()``, then
    :meth:`start` (publishes the agent's track), :meth:`wait_caller`, then run a session."""

    name = "livekit"
    out_rate = OPUS_RATE
    send_silence = False  # capture a silent frame in every slot without reply audio
    shared_clock = True  # ticked by the web app's PlayoutClock when it has one
    feed_ahead = True  # reply frames go to the source as they come (its queue paces them)
    source_queue_ms = SOURCE_QUEUE_MS
    capture_batch_frames = CAPTURE_BATCH_FRAMES  # 1: one capture per 20 ms frame
    narrow_ffi = True  # leave per-frame callbacks out of the room's FFI subscription

    def __init__(
        self,
        room: rtc.Room,
        clock: Clock,
        *,
        label: str = "",
        caller_timeout_s: float = 30.0,
        playout: PlayoutClock | None = None,
    ) -> None:
        self.room = room
        self.clock = clock
        self.playout = playout  # the web app's shared 20 ms clock (else a task of this room's)
        self.label = label or "room"
        self.caller_timeout_s = caller_timeout_s
        self.caller: rtc.RemoteParticipant | None = None
        self.caller_track: rtc.RemoteAudioTrack | None = None
        self.dtmf: list[str] = []
        self.ignored_tracks: list[str] = []  # "identity:kind" of tracks never subscribed
        self._seen: set[str] = set()  # publication sids already handled
        self.frames_played = 0  # reply frames handed to the source
        self.captures = 0  # capture_frame calls (each one an FFI request and callback)
        self.quieted = False  # the room's FFI subscription left per-frame callbacks out
        self.slots_late = 0  # 20 ms slots served after the next one was due (event loop late)
        self.pacer = Pacer()
        self._frame_bytes = frame_bytes(self.out_rate)
        self._items: deque[bytes | str] = deque()
        self._partial = bytearray()
        self._events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._caller_found = asyncio.Event()
        self._listened = asyncio.Event()  # the caller subscribed to the agent's track
        self._reader: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._rescue: asyncio.Task[None] | None = None  # feeds held frames the source needs
        self._feeding = asyncio.Lock()  # one feeder at a time: frames leave in order
        self._ended = False
        self.source = rtc.AudioSource(self.out_rate, 1, queue_size_ms=self.source_queue_ms)
        self._silence = bytes(self._frame_bytes)
        self.track = rtc.LocalAudioTrack.create_audio_track("agent", self.source)
        room.on("track_published", self._on_published)
        room.on("track_subscribed", self._on_subscribed)
        room.on("participant_connected", self._on_participant)
        room.on("participant_disconnected", self._on_left)
        room.on("local_track_subscribed", lambda _track: self._listened.set())
        room.on("sip_dtmf_received", self._on_dtmf)
        room.on("disconnected", self._on_disconnected)
        room.on("reconnecting", lambda: log.info("livekit %s: reconnecting", self.label))
        room.on("reconnected", lambda: log.info("livekit %s: reconnected", self.label))

    @staticmethod
    def room_options() -> rtc.RoomOptions:
        return rtc.RoomOptions(auto_subscribe=False)

    async def start(self) -> None:
        """Publish the agent's track and take the participants already in the room."""
        if self.narrow_ffi:  # no other room's per-frame callbacks in this room's queue
            self.quieted = quiet_room(self.room)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(self.track, options)
        for participant in list(self.room.remote_participants.values()):
            self._on_participant(participant)
            for publication in list(participant.track_publications.values()):
                self._on_published(publication, participant)

    async def wait_caller(self, listen_timeout_s: float = 5.0) -> bool:
        """True once a caller is in the room (False after ``caller_timeout_s``: hung up). Then
        waits up to ``listen_timeout_s`` for the caller to subscribe to the agent's track, so
        the greeting is not spoken into a track nobody receives yet."""
        try:
            await asyncio.wait_for(self._caller_found.wait(), self.caller_timeout_s)
        except TimeoutError:
            self.hang_up(f"no caller joined within {self.caller_timeout_s:.0f} s")
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listened.wait(), listen_timeout_s)
        return not self._ended

    # -- room events ----------------------------------------------------------------------------

    def _is_caller(self, participant: rtc.RemoteParticipant) -> bool:
        if self.caller is not None:
            return participant.identity == self.caller.identity
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return False
        self.caller = participant
        log.info("livekit %s: caller %s", self.label, participant.identity)
        self._caller_found.set()
        return True

    def _on_participant(self, participant: rtc.RemoteParticipant) -> None:
        self._is_caller(participant)

    def _on_published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if not self._is_caller(participant) or publication.sid in self._seen:
            return  # (a track published while joining is seen twice: event and scan)
        self._seen.add(publication.sid)
        if publication.kind != rtc.TrackKind.KIND_AUDIO:
            kind = rtc.TrackKind.Name(publication.kind)
            self.ignored_tracks.append(f"{participant.identity}:{kind}")
            log.info(
                "livekit %s: %s published a %s track: ignored (audio only, never subscribed)",
                self.label,
                participant.identity,
                kind,
            )
            return
        if self._reader is None:
            publication.set_subscribed(True)

    def _on_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if not isinstance(track, rtc.RemoteAudioTrack) or not self._is_caller(participant):
            return
        if self._reader is None:
            self.caller_track = track
            self._reader = asyncio.ensure_future(self._read(track))

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if self.caller is not None and participant.identity == self.caller.identity:
            self.hang_up(f"the caller {participant.identity} left the room")

    def _on_dtmf(self, dtmf: rtc.SipDTMF) -> None:
        digit = dtmf.digit or ""
        if digit not in DTMF_DIGITS or (
            self.caller
            and dtmf.participant is not None
            and dtmf.participant.identity != self.caller.identity
        ):
            log.info(
                "livekit %s: DTMF %r ignored (not a key, or not the caller's)", self.label, digit
            )
            return
        self.dtmf.append(digit)
        log.info("livekit %s: DTMF %r", self.label, digit)
        self._events.put_nowait(Dtmf(digit, self.clock.now()))

    def _on_disconnected(self, reason: object) -> None:
        self.hang_up(f"room disconnected ({reason})")

    async def _read(self, track: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=INTERNAL_RATE, num_channels=1, frame_size_ms=STREAM_FRAME_MS
        )
        framer = Framer(INTERNAL_RATE)
        size = framer.frame_bytes
        try:
            async for event in stream:
                now = self.clock.now()
                pcm = bytes(event.frame.data)
                if len(pcm) == size and not framer.pending:  # the SDK's 20 ms frames: as they are
                    self._received(pcm, now)
                    continue
                for whole in framer.push(pcm):
                    self._received(whole.pcm, now)
        finally:
            await stream.aclose()

    def _received(self, pcm: bytes, now: float) -> None:
        """One whole 20 ms caller frame (a subclass may time it: ``benchmarks/livekit``)."""
        self._events.put_nowait(AudioIn(pcm, now))

    def hang_up(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            log.info("livekit %s: %s", self.label, reason)
            self._events.put_nowait(Hangup(reason))

    # -- outbound -------------------------------------------------------------------------------

    async def _play(self) -> None:
        """Each due 20 ms slot: hand the next queued frame (if any) to the source, echo the marks
        before it, tick ``Played``."""
        while not self._ended:
            frames = self.pacer.due(self.clock.now())
            self.slots_late += max(0, frames - 1)
            for _ in range(frames):
                self.pacer.take()
                if self.feed_ahead:  # the frames went ahead; only held ones may be due
                    self._rescue_held()
                    if self.send_silence and not self._items and not self.source.queued_duration:
                        await self._capture(self._silence)
                    self._events.put_nowait(Played(1))
                    continue
                self._echo_marks()
                if self._items:
                    pcm = self._items.popleft()
                    assert isinstance(pcm, bytes)
                    await self._capture(pcm)
                    self.frames_played += 1
                    self._echo_marks()
                elif self.send_silence and not self.source.queued_duration:
                    await self._capture(self._silence)
                self._events.put_nowait(Played(1))
            await self.clock.sleep(max(0.0, self.pacer.next_at() - self.clock.now()))

    async def _capture(self, pcm: bytes) -> None:
        samples = len(pcm) // 2
        self.captures += 1
        frame = rtc.AudioFrame(pcm, self.out_rate, 1, samples)
        try:
            await self.source.capture_frame(frame)
        except Exception as exc:  # the room went away under the source
            self.hang_up(f"the agent's track failed: {exc}")

    def _echo_marks(self) -> None:
        while self._items and isinstance(self._items[0], str):
            name = self._items.popleft()
            assert isinstance(name, str)
            self._events.put_nowait(MarkEcho(name))

    async def events(self) -> AsyncIterator[TransportEvent]:
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._play())
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Hangup):
                return

    async def deliver(self, put: Callable[[TransportEvent], None]) -> bool:
        """With the shared clock (frames fed ahead, no silence to send): its ticks go to
        ``put`` from the clock's one task, this room's events from here (no task per room)."""
        if (
            self.playout is None
            or not self.shared_clock
            or not self.feed_ahead
            or self.send_silence
        ):
            return await super().deliver(put)

        def tick(event: TransportEvent) -> None:
            if isinstance(event, Played):
                self.slots_late += max(0, event.frames - 1)
                self._rescue_held()
            put(event)

        leave = self.playout.subscribe(self.pacer, tick)
        try:
            while True:
                event = await self._events.get()
                put(event)
                if isinstance(event, Hangup):
                    return True
        finally:
            leave()

    async def send_audio(self, pcm: bytes) -> None:
        self._partial += pcm
        whole = len(self._partial) - len(self._partial) % self._frame_bytes
        for start in range(0, whole, self._frame_bytes):
            self._items.append(bytes(self._partial[start : start + self._frame_bytes]))
        del self._partial[:whole]
        if self.feed_ahead:
            await self._feed()

    async def send_mark(self, name: str) -> None:
        if self._partial:
            self._items.append(bytes(self._partial).ljust(self._frame_bytes, b"\x00"))
            self._partial.clear()
        self._items.append(name)
        if self.feed_ahead:
            await self._feed()

    async def _feed(self, *, hold: bool = True) -> None:
        """Hand the queued frames to the source (its native queue sends them at real time, 10 ms
        at a time, whatever this event loop's jitter), echoing the marks in order.

        Frames go ``capture_batch_frames`` at a time: every capture is an FFI request whose
        callback the SDK hands to every room of the process (``Room`` subscribes to all but
        media-stream events), so one capture per 20 ms frame costs O(rooms) per frame. The
        trailing frames of a reply wait for a whole batch only while the source still holds
        ``HOLD_AHEAD_S`` (nothing waits when it runs low: a reply's first frame leaves at
        once); a mark after them, or a tick that finds the source low, sends them."""
        async with self._feeding:
            self._echo_marks()
            while self._items:
                batch = self._take_batch()
                if (
                    hold
                    and not self._items  # no mark behind them: the reply goes on
                    and len(batch) < self.capture_batch_frames
                    and self.source.queued_duration >= HOLD_AHEAD_S
                ):
                    self._items.extendleft(reversed(batch))
                    return
                await self._capture(b"".join(batch))
                self.frames_played += len(batch)
                self._echo_marks()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        while self._items and len(batch) < self.capture_batch_frames:
            head = self._items[0]
            if not isinstance(head, bytes):
                break
            batch.append(head)
            self._items.popleft()
        return batch

    def _rescue_held(self) -> None:
        """A tick: frames held for a batch go now if the source is running low."""
        if (
            self._items
            and (self._rescue is None or self._rescue.done())
            and self.source.queued_duration < HOLD_AHEAD_S
        ):
            self._rescue = asyncio.ensure_future(self._feed(hold=False))

    async def clear(self) -> None:
        self._partial.clear()
        self._items = deque(item for item in self._items if isinstance(item, str))
        self.source.clear_queue()
        if self.feed_ahead:
            self._echo_marks()  # nothing is left ahead of them (as Twilio echoes them on clear)

    @property
    def queued_frames(self) -> int:
        return sum(1 for item in self._items if isinstance(item, bytes))

    async def close(self) -> None:
        self.hang_up("closed by the gateway")
        for task in (self._pump, self._reader, self._rescue):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        with contextlib.suppress(Exception):
            await self.source.aclose()
