"""Usage x price = cost lines: a pure function over :class:`~decimal.Decimal`, no floats.

Quantities are exact: tokens, characters, tool calls and billed minutes are whole numbers,
audio seconds have at most :data:`SECOND_DECIMALS` places (milliseconds). Rates have at most
``prices.RATE_DECIMALS`` (9) places, token rates are per 1,000 tokens, so every line's cost
has at most :data:`COST_DECIMALS` (12) places and is stored exactly (as an integer count of
10^-12 currency units, see :func:`to_picos`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from trunkline.ledger.prices import PriceVersion

SECOND_DECIMALS = 3
COST_DECIMALS = 12
_PICO = Decimal(10) ** -COST_DECIMALS
_THOUSAND = Decimal(1000)
_MINUTE = 60


class Component(StrEnum):
    """What a cost line pays for; the report's totals are per component."""

    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    TELEPHONY = "telephony"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one turn (or one call, for telephony) consumed."""

    stt_seconds: Decimal = Decimal(0)
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, taken from the prefix cache
    completion_tokens: int = 0
    tts_characters: int = 0
    tts_seconds: Decimal = Decimal(0)
    tools: tuple[str, ...] = ()  # names of the tool calls that ran, in order
    telephony_seconds: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name in ("stt_seconds", "tts_seconds", "telephony_seconds"):
            value: Decimal = getattr(self, name)
            if value < 0 or value != value.quantize(Decimal(10) ** -SECOND_DECIMALS):
                raise ValueError(f"{name} {value} is not a non-negative count of milliseconds")
        counts = (self.prompt_tokens, self.cached_tokens, self.completion_tokens)
        if min(*counts, self.tts_characters) < 0:
            raise ValueError("token and character counts cannot be negative")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens {self.cached_tokens} exceeds prompt_tokens {self.prompt_tokens}"
            )


@dataclass(frozen=True, slots=True)
class CostLine:
    """``cost = quantity * rate / per``, exactly."""

    component: Component
    item: str  # "audio", "prompt", "cached", "completion", "characters", "minutes", tool name
    quantity: Decimal
    unit: str  # "second", "token", "character", "minute", "call"
    rate: Decimal
    per: int  # 1000 for token rates, else 1
    cost: Decimal


def _line(  # noqa: PLR0917 - the line's own fields, in order
    component: Component, item: str, quantity: Decimal, unit: str, rate: Decimal, per: int = 1
) -> CostLine:
    cost = quantity * rate / per if per != 1 else quantity * rate
    if cost != cost.quantize(_PICO):
        raise ArithmeticError(f"{component}/{item}: {quantity} x {rate} / {per} is not exact")
    return CostLine(component, item, quantity, unit, rate, per, cost)


def billed_minutes(seconds: Decimal) -> int:
    """Started minutes: 0 s is 0, 0.001..60 s is 1, 60.001 s is 2."""
    whole, rest = divmod(seconds, _MINUTE)
    return int(whole) + (1 if rest > 0 else 0)


def price(usage: Usage, rates: PriceVersion) -> tuple[CostLine, ...]:
    """The cost lines of ``usage`` at ``rates``; quantities of zero give no line."""
    lines: list[CostLine] = []
    if usage.stt_seconds:
        lines.append(
            _line(Component.STT, "audio", usage.stt_seconds, "second", rates.stt.per_second)
        )
    uncached = usage.prompt_tokens - usage.cached_tokens
    if uncached:
        lines.append(
            _line(
                Component.LLM, "prompt", Decimal(uncached), "token", rates.llm.prompt_per_1k, 1000
            )
        )
    if usage.cached_tokens:
        cached_rate = rates.llm.cached_per_1k
        if cached_rate is None:
            cached_rate = rates.llm.prompt_per_1k
        lines.append(
            _line(Component.LLM, "cached", Decimal(usage.cached_tokens), "token", cached_rate, 1000)
        )
    if usage.completion_tokens:
        lines.append(
            _line(
                Component.LLM,
                "completion",
                Decimal(usage.completion_tokens),
                "token",
                rates.llm.completion_per_1k,
                1000,
            )
        )
    lines.extend(_tts(usage, rates))
    for tool in sorted(set(usage.tools)):
        count = Decimal(usage.tools.count(tool))
        lines.append(_line(Component.TOOL, tool, count, "call", rates.tools.rate(tool)))
    if usage.telephony_seconds:
        minutes = Decimal(billed_minutes(usage.telephony_seconds))
        lines.append(
            _line(Component.TELEPHONY, "minutes", minutes, "minute", rates.telephony.per_minute)
        )
    return tuple(lines)


def _tts(usage: Usage, rates: PriceVersion) -> list[CostLine]:
    if rates.tts.per_second is not None:
        if not usage.tts_seconds:
            return []
        return [_line(Component.TTS, "audio", usage.tts_seconds, "second", rates.tts.per_second)]
    if not usage.tts_characters:
        return []
    rate = rates.tts.per_character or Decimal(0)
    return [_line(Component.TTS, "characters", Decimal(usage.tts_characters), "character", rate)]


def total(lines: Sequence[CostLine]) -> Decimal:
    return sum((line.cost for line in lines), Decimal(0))


def to_picos(cost: Decimal) -> int:
    """``cost`` as an integer count of 10^-12 currency units (exact: see the module doc)."""
    scaled = cost.scaleb(COST_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise ArithmeticError(f"{cost} has more than {COST_DECIMALS} decimal places")
    return int(scaled)


def from_picos(picos: int) -> Decimal:
    return Decimal(picos).scaleb(-COST_DECIMALS)


def seconds(value: float | Decimal) -> Decimal:
    """A duration from an event as exact milliseconds (half up): the one place a float
    becomes a quantity (through its shortest decimal text, never its binary value)."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return exact.quantize(Decimal(10) ** -SECOND_DECIMALS, rounding=ROUND_HALF_UP)
