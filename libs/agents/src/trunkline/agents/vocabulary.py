"""The words an agent's callers are likely to say, for biasing speech recognition.

Pure: texts in, phrases out. :func:`agent_vocabulary` is the one place the list is made: the
spec's own ``stt.vocabulary`` first, then (with ``stt.derive_vocabulary``) the business name,
the weekdays, names and services found in the agent's texts (system prompt, greeting,
description, tool enum values) and in its knowledge (Markdown text), capped at
``stt.max_terms``. Whoever holds the knowledge passes it in; the gateway does for the agents it
loads (``<agents>/<name>/knowledge/`` beside the spec).

What counts as a term:

- a weekday anywhere makes all seven terms (a caller asks about the day the text leaves out);
- a run of Capitalised words that is not just the first word of a sentence ("Acme Dental",
  "Main Street", "Springfield"), a number right after it included ("Volt Fixed 12");
- a short Markdown heading (three words at most, no question, no list, not opening with a
  common word like "Your" or "Where") ("## Teeth whitening");
- the string values of a tool parameter's ``enum``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from trunkline.agents.spec import AgentSpec

__all__ = ["WEEKDAYS", "agent_vocabulary", "heading_terms", "name_terms", "text_terms"]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAY = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")s?\b", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'&-]*[A-Za-z]|[A-Za-z]|\d+|[.!?:;,()\n]")
_SENTENCE_END = frozenset(".!?:;\n")
# Words that are never a name on their own (sentence starters, pronouns, greetings).
_COMMON = frozenset(
    """a an and are as at be but by can do for from have he her his how i if in is it its me my
    no not of on or our please she so that the their then there they this to us we what when
    where which who why will with would you your yes hello hi thanks thank""".split()  # noqa: SIM905
)
_MAX_HEADING_WORDS = 3
_MAX_NAME_WORDS = 4


def _key(term: str) -> str:
    return " ".join(term.lower().split())


def _unique(terms: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for term in terms:
        clean = " ".join(term.split()).strip(" ,.;:!?\"'()")
        key = _key(clean)
        if clean and key not in seen:
            seen.add(key)
            yield clean


def weekday_terms(text: str) -> list[str]:
    """All seven weekdays when ``text`` names any of them, else none."""
    return list(WEEKDAYS) if _WEEKDAY.search(text) else []


def heading_terms(text: str) -> list[str]:
    """Short Markdown headings that name a thing, not a question ("## Teeth whitening")."""
    terms = []
    for match in _HEADING.finditer(text):
        heading = match.group(1).strip()
        words = heading.split()
        if "?" in heading or "," in heading or len(words) > _MAX_HEADING_WORDS:
            continue
        if words[0].lower() in _COMMON:  # "Your account", "Where we are": not a name
            continue
        terms.append(heading)
    return terms


def name_terms(text: str) -> list[str]:
    """Runs of Capitalised words; a lone capital at a sentence's start is not a name, nor the
    first word of a run there when the text also writes it in lower case ("Leaving Volt Flex is
    free ... before leaving" -> "Volt Flex")."""
    lower_words = set(re.findall(r"\b[a-z][a-z'-]*\b", text))
    terms: list[str] = []
    run: list[str] = []
    run_starts_sentence = False
    sentence_start = True

    def flush() -> None:
        nonlocal run
        words = [w for w in run if w.lower() not in _COMMON] if len(run) == 1 else run
        while words and words[0].lower() in _COMMON:
            words = words[1:]  # "The Volt Energy" -> "Volt Energy"
        if run_starts_sentence and len(words) > 1 and words[0].lower() in lower_words:
            words = words[1:]
        if words and not (len(words) == 1 and run_starts_sentence and len(run) == 1):
            terms.append(" ".join(words[:_MAX_NAME_WORDS]))
        run = []

    for token in _TOKEN.findall(text):
        if token in _SENTENCE_END:
            flush()
            sentence_start = True
            continue
        capital = (token[0].isupper() and not token.isupper()) or (
            token.isupper() and len(token) > 1
        )
        if capital and not _WEEKDAY.fullmatch(token):
            if not run:
                run_starts_sentence = sentence_start
            run.append(token)
        elif token.isdigit() and run and not run[-1].isdigit():
            run.append(token)  # "Volt Fixed 12"
            flush()
        else:
            flush()
        sentence_start = False
    flush()
    return terms


def text_terms(text: str) -> list[str]:
    """Weekdays, names and headings of one text, in that order, without repeats."""
    return list(_unique([*weekday_terms(text), *name_terms(text), *heading_terms(text)]))


def _enum_values(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "enum" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from _enum_values(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _enum_values(item)


def business_name(spec: AgentSpec) -> str:
    """The agent's name as words ("acme-dental" -> "Acme Dental")."""
    return " ".join(part.capitalize() for part in spec.name.split("-"))


def agent_vocabulary(spec: AgentSpec, knowledge: Iterable[str] = ()) -> tuple[str, ...]:
    """The phrases speech recognition should favour for ``spec``'s calls, most useful first."""
    cap = spec.stt.max_terms
    explicit = list(spec.stt.vocabulary)
    if not spec.stt.derive_vocabulary:
        return tuple(_unique(explicit))[:cap]
    # the agent's own texts first, so their names come before the knowledge's
    every = "\n\n".join([spec.system_prompt, spec.greeting, spec.description, *knowledge])
    derived = [
        business_name(spec),
        *weekday_terms(every),
        *name_terms(every),
        *heading_terms(every),
        *(value for tool in spec.tools for value in _enum_values(tool.parameters)),
    ]
    return tuple(_unique([*explicit, *derived]))[:cap]
