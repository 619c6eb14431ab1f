"""Per-tenant price tables: one YAML file per tenant, a list of dated versions.

::

    tenant: acme
    currency: USD
    versions:
      - version: "2026-11"
        effective_from: 2026-11-01T00:00:00Z
        stt: {per_second: "0.0001"}
        llm: {prompt_per_1k: "0.00015", cached_per_1k: "0.000075", completion_per_1k: "0.0006"}
        tts: {per_character: "0.000015"}          # or per_second
        telephony: {per_minute: "0.0085"}         # billed per started minute of the call
        tools: {per_call: "0.0005", per_tool: {lookup_account: "0.002"}}

Rates are read from the file's own text into :class:`~decimal.Decimal` (never through a float),
with at most :data:`RATE_DECIMALS` decimal places, so every cost line is exact (see
:mod:`trunkline.ledger.pricing`). A usage at time ``t`` is priced by the version with the
latest ``effective_from`` not after ``t``. A malformed file fails at load with its path and the
line of the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RATE_DECIMALS = 9
"""Most decimal places a rate may have: a cost line then fits in 12 places (see pricing)."""
_TENANT = r"^[A-Za-z0-9_-]+$"


class PriceTableError(ValueError):
    """A price table file is malformed; the message names the file and line."""


def _rate(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError(f"a rate must be a non-negative number, not {value}")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_DECIMALS:
        raise ValueError(f"{value} has more than {RATE_DECIMALS} decimal places")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SttRates(_Strict):
    per_second: Decimal = Decimal(0)

    @field_validator("per_second")
    @classmethod
    def _check(cls, value: Decimal) -> Decimal:
        return _rate(value)


class LlmRates(_Strict):
    prompt_per_1k: Decimal = Decimal(0)
    cached_per_1k: Decimal | None = Field(
        default=None, description="prompt tokens taken from the prefix cache; prompt rate if unset"
    )
    completion_per_1k: Decimal = Decimal(0)

    @field_validator("prompt_per_1k", "cached_per_1k", "completion_per_1k")
    @classmethod
    def _rates(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else _rate(value)


class TtsRates(_Strict):
    per_character: Decimal | None = None
    per_second: Decimal | None = None

    @field_validator("per_character", "per_second")
    @classmethod
    def _rates(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else _rate(value)

    @model_validator(mode="after")
    def _one_unit(self) -> TtsRates:
        if self.per_character is not None and self.per_second is not None:
            raise ValueError("tts is priced per_character or per_second, not both")
        return self


class TelephonyRates(_Strict):
    """Billed per started minute of the call (a 61 s call is two minutes), as carriers do."""

    per_minute: Decimal = Decimal(0)

    @field_validator("per_minute")
    @classmethod
    def _check(cls, value: Decimal) -> Decimal:
        return _rate(value)


class ToolRates(_Strict):
    per_call: Decimal = Decimal(0)
    per_tool: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("per_call")
    @classmethod
    def _default(cls, value: Decimal) -> Decimal:
        return _rate(value)

    @field_validator("per_tool")
    @classmethod
    def _each(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {name: _rate(rate) for name, rate in value.items()}

    def rate(self, tool: str) -> Decimal:
        return self.per_tool.get(tool, self.per_call)


class PriceVersion(_Strict):
    """The rates in force from ``effective_from`` until the next version."""

    version: str = Field(min_length=1, max_length=64)
    effective_from: datetime
    stt: SttRates = SttRates()
    llm: LlmRates = LlmRates()
    tts: TtsRates = TtsRates()
    telephony: TelephonyRates = TelephonyRates()
    tools: ToolRates = ToolRates()

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("effective_from needs a time zone (e.g. 2026-11-01T00:00:00Z)")
        return value


class PriceTable(_Strict):
    """A tenant's prices, oldest version first."""

    tenant: str = Field(pattern=_TENANT)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. USD")
    versions: tuple[PriceVersion, ...] = Field(min_length=1)
    source: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> PriceTable:
        labels = [v.version for v in self.versions]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"versions named twice: {', '.join(twice)}")
        starts = [v.effective_from for v in self.versions]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("versions must be listed oldest first, each effective_from later")
        return self

    def at(self, moment: datetime) -> PriceVersion:
        """The version in force at ``moment``; a usage before the first version is an error."""
        current: PriceVersion | None = None
        for version in self.versions:
            if version.effective_from <= moment:
                current = version
        if current is None:
            first = self.versions[0].effective_from.isoformat()
            raise LookupError(f"tenant {self.tenant!r} has no prices before {first}")
        return current


# -- loading with line numbers ---------------------------------------------------------------


def _plain(node: yaml.Node, lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> Any:
    """The node as dicts/lists/strings (scalars keep their source text), recording each
    value's 1-based line under its location."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            result[key] = _plain(value_node, lines, (*path, key))
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, lines, (*path, i)) for i, item in enumerate(node.value)]
    value = node.value
    return None if node.tag.endswith(":null") else value


def _line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def parse_price_table(text: str, source: str) -> PriceTable:
    """Parse one price table file's text; :class:`PriceTableError` names ``source`` and line."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise PriceTableError(f"{source}:{line}: not valid YAML: {problem}") from exc
    if node is None:
        raise PriceTableError(f"{source}:1: empty price table")
    lines: dict[tuple[Any, ...], int] = {}
    data = _plain(node, lines, ())
    if not isinstance(data, dict):
        raise PriceTableError(
            f"{source}:1: a price table is a mapping (tenant, currency, versions)"
        )
    try:
        return PriceTable.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        locs = [tuple(error["loc"]) for error in errors]
        for error in errors:
            loc = tuple(error["loc"])
            if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs):
                continue  # "versions: too short" beside the version that failed: noise
            where = ".".join(str(part) for part in loc) or "(table)"
            problems.append(f"{source}:{_line(lines, loc)}: {where}: {error['msg']}")
        raise PriceTableError("\n".join(problems)) from exc


def load_price_table(path: Path) -> PriceTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read the price table: {exc.strerror}") from exc
    return parse_price_table(text, str(path))


def load_price_tables(paths: Iterable[Path]) -> dict[str, PriceTable]:
    """Tables by tenant; a tenant given by two files is an error."""
    tables: dict[str, PriceTable] = {}
    for path in sorted(paths):
        table = load_price_table(path)
        if table.tenant in tables:
            other = tables[table.tenant].source
            raise PriceTableError(f"{path}:1: tenant {table.tenant!r} already priced by {other}")
        tables[table.tenant] = table
    return tables


def load_price_dir(directory: Path) -> dict[str, PriceTable]:
    """Every ``*.yaml`` in ``directory``."""
    if not directory.is_dir():
        raise PriceTableError(f"{directory}: no such price table folder")
    return load_price_tables(directory.glob("*.yaml"))
