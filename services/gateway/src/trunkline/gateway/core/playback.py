"""Outbound audio for one agent turn: clause segments, pacing, marks and what the caller heard.

The far end plays one 20 ms frame per tick of the transport's outbound clock while it has audio
buffered; marks sent after each clause come back when the clause has been played and correct that
estimate. Frames are ``frame_bytes`` long: 20 ms at the transport's output rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FRAME_BYTES = 640  # 20 ms of 16 kHz mono PCM16


@dataclass(slots=True)
class Segment:
    """One clause of agent audio (or a filler) in play order."""

    mark: str
    text: str
    filler: bool = False
    pcm: bytearray = field(default_factory=bytearray)
    complete: bool = False
    start_frame: int = -1  # position in the turn's playback timeline once its first frame is sent
    sent_frames: int = 0
    mark_sent: bool = False
    played: bool = False

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.sent_frames


@dataclass(frozen=True, slots=True)
class Outbound:
    """What one tick decided to send: audio frames, then possibly marks (in order)."""

    items: tuple[bytes | str, ...]  # bytes: a PCM frame, str: a mark name


class Playback:
    """Queue and pace the segments of one turn."""

    def __init__(self, lead_frames: int = 3, frame_bytes: int = FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self.segments: list[Segment] = []
        self.sent_frames = 0
        self.played_frames = 0  # estimate, corrected by marks
        self.reply_frames_sent = 0
        self._credit = lead_frames
        self._lead = lead_frames

    def segment(self, mark: str, text: str, *, filler: bool = False) -> Segment:
        for seg in self.segments:
            if seg.mark == mark:
                return seg
        seg = Segment(mark=mark, text=text, filler=filler)
        self.segments.append(seg)
        return seg

    @property
    def has_unsent(self) -> bool:
        return any(s.pcm or (s.complete and not s.mark_sent) for s in self.segments)

    @property
    def idle(self) -> bool:
        """Nothing left to send and (by estimate) nothing left to play at the far end."""
        return not self.has_unsent and self.played_frames >= self.sent_frames

    @property
    def all_marks_played(self) -> bool:
        return all(s.played for s in self.segments if s.mark_sent)

    def tick(self) -> Outbound:
        """One 20 ms tick: the far end plays a frame; we send up to our pacing credit."""
        if self.played_frames < self.sent_frames:
            self.played_frames += 1
        self._credit = min(self._credit + 1, self._lead + 1)
        items: list[bytes | str] = []
        size = self.frame_bytes
        for seg in self.segments:
            if seg.mark_sent:
                continue
            while self._credit > 0 and (len(seg.pcm) >= size or (seg.complete and seg.pcm)):
                frame = bytes(seg.pcm[:size]).ljust(size, b"\x00")
                del seg.pcm[:size]
                if seg.start_frame < 0:
                    seg.start_frame = self.sent_frames
                seg.sent_frames += 1
                self.sent_frames += 1
                if not seg.filler:
                    self.reply_frames_sent += 1
                self._credit -= 1
                items.append(frame)
            if seg.complete and not seg.pcm:
                if seg.start_frame < 0:
                    seg.start_frame = self.sent_frames
                seg.mark_sent = True
                items.append(seg.mark)
                continue
            break  # this segment still has (or awaits) audio: keep order
        return Outbound(tuple(items))

    def cut_fillers(self) -> int:
        """Drop the unsent rest of any filler (the reply is here); returns the frames dropped.
        What was already sent (the lead) still plays at the far end."""
        dropped = 0
        for seg in self.segments:
            if seg.filler and seg.complete and seg.pcm:
                dropped += (len(seg.pcm) + self.frame_bytes - 1) // self.frame_bytes
                seg.pcm.clear()
        return dropped

    def mark_played(self, mark: str) -> bool:
        for seg in self.segments:
            if seg.mark == mark and seg.mark_sent:
                seg.played = True
                self.played_frames = max(self.played_frames, seg.end_frame)
                return True
        return False

    def heard_text(self) -> str:
        """The reply text the caller has heard: whole clauses played, plus the words of the clause
        in progress in proportion to how much of its audio has played."""
        words: list[str] = []
        for seg in self.segments:
            if seg.filler or seg.start_frame < 0:
                continue
            if seg.played or (seg.mark_sent and seg.end_frame <= self.played_frames):
                words.extend(seg.text.split())
                continue
            played = self.played_frames - seg.start_frame
            if played <= 0:
                break
            unsent = (len(seg.pcm) + self.frame_bytes - 1) // self.frame_bytes
            total = seg.sent_frames + unsent
            seg_words = seg.text.split()
            words.extend(seg_words[: len(seg_words) * played // max(total, 1)])
            break
        return " ".join(words)

    def full_text(self) -> str:
        return " ".join(s.text for s in self.segments if not s.filler and s.text)
