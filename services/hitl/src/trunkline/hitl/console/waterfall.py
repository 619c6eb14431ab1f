"""A turn's latency waterfall as bars to draw (pure; the template turns them into SVG).

``turn.completed`` carries each stage's duration (``StageTiming``) and sometimes its start. A
stage with a start is drawn where it started, relative to the earliest start; a turn without
starts is drawn end to end in pipeline order (endpointing, STT, context, LLM first token, TTS
first audio) — the critical path as the caller waits through it. The measured response time
(end of speech to first audio) is drawn as its own bar from zero, so where speculative work made
stages overlap, the picture shows the sum running past the response.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stage name in turn.completed -> label, in pipeline order.
STAGES: tuple[tuple[str, str], ...] = (
    ("turn.endpointing", "endpointing"),
    ("stt.final", "STT"),
    ("context.resolve", "context"),
    ("llm.prompt_compile", "prompt compile"),
    ("llm.time_to_first_token", "LLM first token"),
    ("tools.total", "tools"),
    ("tts.time_to_first_audio", "TTS first audio"),
)
RESPONSE = "turn.response"
# Drawn inside the LLM's first-token bar, not after it (compiling the prompt is part of it).
NESTED = {"llm.prompt_compile": "llm.time_to_first_token"}

WIDTH = 520
LABEL_WIDTH = 120
VALUE_WIDTH = 64
ROW_HEIGHT = 20
BAR_HEIGHT = 14
TOP = 4


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    started_at: float | None = None  # seconds since the epoch, None when not reported


@dataclass(frozen=True)
class Bar:
    stage: str
    label: str
    start_ms: float
    duration_ms: float
    x: float
    width: float
    y: float
    total: bool = False

    @property
    def ms_text(self) -> str:
        return f"{self.duration_ms:.0f} ms"


@dataclass(frozen=True)
class Waterfall:
    bars: tuple[Bar, ...]
    scale_ms: float  # the time the bar area spans
    width: int
    height: int
    label_width: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT

    @property
    def empty(self) -> bool:
        return not self.bars


def waterfall(stages: list[Stage]) -> Waterfall:
    """The bars of one turn: the known stages in pipeline order, then the response total."""
    by_name = {stage.name: stage for stage in stages if stage.seconds >= 0}
    known = [(name, label) for name, label in STAGES if name in by_name]
    starts = _starts([by_name[name] for name, _ in known])
    spans: list[tuple[str, str, float, float, bool]] = []
    for (name, label), start in zip(known, starts, strict=True):
        spans.append((name, label, start, by_name[name].seconds * 1000, False))
    response = by_name.get(RESPONSE)
    if response is not None:
        spans.append((RESPONSE, "response", 0.0, response.seconds * 1000, True))
    if not spans:
        return Waterfall((), 0.0, WIDTH, TOP * 2)
    scale = max(1.0, *(start + length for _, _, start, length, _ in spans))
    area = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = tuple(
        Bar(
            stage=name,
            label=label,
            start_ms=start,
            duration_ms=length,
            x=LABEL_WIDTH + area * start / scale,
            width=max(area * length / scale, 1.0),
            y=TOP + index * ROW_HEIGHT,
            total=total,
        )
        for index, (name, label, start, length, total) in enumerate(spans)
    )
    return Waterfall(bars, scale, WIDTH, TOP * 2 + len(bars) * ROW_HEIGHT)


def _starts(stages: list[Stage]) -> list[float]:
    """Start of each stage in ms: measured when every stage has a start, else end to end."""
    if stages and all(stage.started_at is not None for stage in stages):
        origin = min(stage.started_at or 0.0 for stage in stages)
        return [((stage.started_at or 0.0) - origin) * 1000 for stage in stages]
    names = {stage.name for stage in stages}
    starts: list[float] = []
    clock = 0.0
    for stage in stages:
        starts.append(clock)
        if NESTED.get(stage.name) not in names:  # a nested stage shares its parent's start
            clock += stage.seconds * 1000
    return starts
