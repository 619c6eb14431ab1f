"""The knowledge-answer strategies, each applied to one resolved question (pure but for the
clock it is given): the gateway's own pieces, composed as ``trunkline.gateway.pipeline`` does.

- ``extractive``: the best passage of the context block (``core/extractive.py``);
- ``raw_llm``: every clause the LLM generated, as it was generated;
- ``guarded_llm``: each generated clause through the grounding guard (``core/grounding.py``); the
  first that fails stops the reply and the spec's fallback is spoken in its place (the best
  passage when nothing was said yet, else the safe line), as ``Pipeline._speak`` does;
- ``spec_policy``: what the agent spec decides (``core/replies.plan_reply``): a confident
  knowledge answer from its best passage, a deflection or small-talk reply, or the guarded LLM.

Times are seconds from the end of Resolve to the first clause that would go to TTS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.gateway.core.clauses import speakable, split_text
from trunkline.gateway.core.extractive import best_passage
from trunkline.gateway.core.grounding import Support
from trunkline.gateway.core.replies import (
    Fallback,
    GuardPolicy,
    ReplyPolicy,
    ReplySource,
    Retrieved,
    plan_reply,
)

Clock = Callable[[], float]
STRATEGIES = ("extractive", "raw_llm", "guarded_llm", "spec_policy")


@dataclass(frozen=True, slots=True)
class Generated:
    """One LLM reply: its clauses as the gateway's splitter cut them, each with the seconds
    from the generate request to when it was cut."""

    clauses: tuple[tuple[str, float], ...]
    text: str = ""
    tool_calls: int = 0
    total_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    spoken: tuple[str, ...]  # the clauses the caller would hear
    first_s: float | None  # to the first speakable clause; None: nothing is spoken
    held_back: str = ""  # the clause the guard stopped
    unsupported: tuple[str, ...] = ()  # its facts nothing supported
    fallback: str = ""  # what was spoken in its place: best_passage or safe_line
    source: str = ""  # spec_policy: the planner's reply source

    @property
    def text(self) -> str:
        return " ".join(self.spoken)

    @property
    def intervened(self) -> bool:
        return bool(self.held_back)


@dataclass(frozen=True, slots=True)
class Turn:
    """One resolved question and the agent's policies, as the pipeline holds them."""

    question: str
    retrieved: Retrieved
    support: Support  # the turn's: the agent's prompt and greeting, and the context block
    replies: ReplyPolicy
    guard: GuardPolicy
    min_clause_words: int = 3
    clock: Clock = time.perf_counter


def extractive(turn: Turn) -> Answer:
    started = turn.clock()
    passage = best_passage(turn.question, turn.retrieved.block, turn.replies.max_answer_words)
    spoken = tuple(split_text(passage.text, turn.min_clause_words)) if passage.text else ()
    return Answer(spoken, turn.clock() - started if spoken else None)


def raw_llm(generated: Generated) -> Answer:
    spoken = [(speakable(c), at) for c, at in generated.clauses]
    spoken = [(c, at) for c, at in spoken if c]
    return Answer(tuple(c for c, _ in spoken), spoken[0][1] if spoken else None)


def guarded_llm(turn: Turn, generated: Generated) -> Answer:
    spoken: list[str] = []
    first: float | None = None
    checking = 0.0  # guard time so far: each clause waits for its own and earlier checks
    for generated_clause, at in generated.clauses:
        clause = speakable(generated_clause)
        if not clause:
            continue
        started = turn.clock()
        verdict = turn.support.check(clause)
        checking += turn.clock() - started
        if verdict.passed:
            spoken.append(clause)
            first = at + checking if first is None else first
            continue
        started = turn.clock()
        kind, text = _fallback(turn, spoken=bool(spoken))
        said = split_text(text, turn.min_clause_words) if text else []
        if first is None and said:
            first = at + checking + turn.clock() - started
        return Answer((*spoken, *said), first, clause, verdict.unsupported, kind if said else "")
    return Answer(tuple(spoken), first)


def _fallback(turn: Turn, *, spoken: bool) -> tuple[str, str]:
    """As ``Pipeline._fallback``: (which, text)."""
    replies, retrieved = turn.replies, turn.retrieved
    if not spoken and turn.guard.fallback is Fallback.BEST_PASSAGE:
        passage = best_passage(turn.question, retrieved.block, replies.max_answer_words)
        if passage.text and retrieved.confidence >= replies.min_confidence:
            return "best_passage", passage.text
    return "safe_line", turn.guard.safe_line


def spec_policy(turn: Turn, generated: Generated) -> Answer:
    """The planner's decision (an STT confidence of 1: the question as typed), then the
    planned text, or the guarded LLM when the plan leaves the answer to it."""
    started = turn.clock()
    plan = plan_reply(turn.question, 1.0, turn.retrieved, turn.replies)
    planned_s = turn.clock() - started
    if plan.text:
        spoken = tuple(split_text(plan.text, turn.min_clause_words))
        return Answer(spoken, planned_s, source=str(plan.source))
    answer = guarded_llm(turn, generated)
    source = ReplySource.FALLBACK if answer.intervened else plan.source
    first = None if answer.first_s is None else answer.first_s + planned_s
    return Answer(
        answer.spoken, first, answer.held_back, answer.unsupported, answer.fallback, str(source)
    )


def supported_clauses(answer: Answer, support: Support) -> int:
    """How many spoken clauses the guard's checker finds fully supported."""
    return sum(1 for clause in answer.spoken if support.check(clause).passed)
