"""A tool's result said in the agent spec's own words (pure; no I/O).

A tool the gateway calls itself when the caller's words give its arguments (``call_when_heard``)
may carry ``answers``: templates tried in order, each with ``when`` (fields the result must have,
with these values) and ``say`` (``{field}`` placeholders filled from the result). The first one
that matches and whose every placeholder has a value is the reply: true by construction (the
spec's words and the tool's own data), and no model in the way. None matches: the model phrases
the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trunkline.agents.templates import template_fields


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    say: str
    when: Mapping[str, Any] = field(default_factory=dict)


def spoken_value(value: Any) -> str | None:
    """A result field as words: 45.0 -> "45", 62.5 -> "62.5", text as is; None, a mapping or a
    list -> None (nothing to say)."""
    if value is None or isinstance(value, Mapping | list):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def tool_answer(answers: Sequence[ToolAnswer], result_json: str) -> str | None:
    """The first answer that fits the tool's result (JSON text), filled in; None when none fits
    or the result is not a JSON object."""
    try:
        result = json.loads(result_json or "null")
    except ValueError:
        return None
    if not isinstance(result, dict):
        return None
    for answer in answers:
        if any(result.get(k) != v for k, v in answer.when.items()):
            continue
        values = {name: spoken_value(result.get(name)) for name in template_fields(answer.say)}
        if any(v is None for v in values.values()):
            continue
        return answer.say.format(**values)
    return None
