"""The question set (``questions.yaml``): each question with the facts a right answer states.

A bad file fails with its path and line (``QuestionSetError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

QUESTIONS = Path(__file__).resolve().parent / "questions.yaml"
_TOP_KEYS = frozenset({"agent", "tenant", "questions"})
_KEYS = frozenset({"id", "ask", "must_contain", "must_not_contain"})


class QuestionSetError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    ask: str
    must_contain: tuple[tuple[str, ...], ...]  # every fact; each fact has alternatives
    must_not_contain: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True, slots=True)
class QuestionSet:
    agent: str
    tenant: str
    questions: tuple[Question, ...]
    path: Path


def load_questions(path: Path = QUESTIONS) -> QuestionSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QuestionSetError(f"{path}: cannot read the question set: {exc}") from None
    return parse_questions(text, path)


def parse_questions(text: str, path: Path = Path("<string>")) -> QuestionSet:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise QuestionSetError(f"{path}:{line}: not valid YAML: {exc.problem}") from None
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise QuestionSetError(f"{path}:1: expected a mapping with agent, tenant and questions")
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in root.value}
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise QuestionSetError(f"{path}:{lines[unknown[0]]}: unknown key {unknown[0]!r}")
    for key in ("agent", "tenant"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise QuestionSetError(f"{path}:{lines.get(key, 1)}: {key!r} must be a name")
    items = data.get("questions")
    node = next((v for k, v in root.value if k.value == "questions"), None)
    if not isinstance(items, list) or not items or not isinstance(node, yaml.SequenceNode):
        line = lines.get("questions", 1)
        raise QuestionSetError(f"{path}:{line}: 'questions' must be a non-empty list")
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for item, item_node in zip(items, node.value, strict=True):
        line = item_node.start_mark.line + 1
        question = _question(item, f"{path}:{line}", line)
        if question.id in seen:
            raise QuestionSetError(
                f"{path}:{line}: question id {question.id!r} repeats (first on line "
                f"{seen[question.id]})"
            )
        seen[question.id] = line
        questions.append(question)
    return QuestionSet(data["agent"], data["tenant"], tuple(questions), path)


def _question(item: Any, where: str, line: int) -> Question:
    if not isinstance(item, dict):
        raise QuestionSetError(f"{where}: a question must be a mapping with id, ask, must_contain")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise QuestionSetError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(_KEYS)})")
    qid, ask = item.get("id"), item.get("ask")
    if not isinstance(qid, str) or not qid.strip():
        raise QuestionSetError(f"{where}: 'id' must be a non-empty string")
    if not isinstance(ask, str) or not ask.strip():
        raise QuestionSetError(f"{where}: question {qid!r}: 'ask' must be a non-empty string")
    must = item.get("must_contain")
    if not isinstance(must, list) or not must:
        raise QuestionSetError(
            f"{where}: question {qid!r}: 'must_contain' must be a non-empty list"
        )
    facts = tuple(_alternatives(entry, f"{where}: question {qid!r}") for entry in must)
    must_not = item.get("must_not_contain") or []
    if not isinstance(must_not, list) or not all(_phrase(p) for p in must_not):
        raise QuestionSetError(
            f"{where}: question {qid!r}: 'must_not_contain' must be a list of phrases"
        )
    return Question(qid, ask.strip(), facts, tuple(must_not), line)


def _alternatives(entry: Any, where: str) -> tuple[str, ...]:
    options = [entry] if isinstance(entry, str) else entry
    if not isinstance(options, list) or not options or not all(_phrase(p) for p in options):
        raise QuestionSetError(
            f"{where}: a must_contain entry must be a phrase or a list of phrases, got {entry!r}"
        )
    return tuple(options)


def _phrase(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
