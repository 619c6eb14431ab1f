"""How a turn is answered (pure): the agent spec's policy applied to what the turn knows.

In order: a transcript too unsure to answer → ask to repeat; a goodbye → the spec's goodbye
and hang up once it has played (a less certain one: "anything else?", and the call stays up);
a semantic-cache hit → the stored answer; small talk → the spec's reply; an out-of-domain
question (its closest example, or retrieval confidence below the agent's minimum) → the spec's
deflection; a question of the agent's own field that the knowledge does not answer
confidently (its closest example one of the spec's in-domain ones: a patient's sore tooth) →
the spec's in-domain reply; a question the knowledge answers confidently → the spec's
knowledge strategy (the best passage, or the LLM under the guard); everything else → the LLM
under the grounding guard.
A turn that carries an entity (an account number…) or needs live data always goes to the LLM,
which has the tools.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from trunkline.gateway.core.entities import spoken_number
from trunkline.gateway.core.events import Message
from trunkline.gateway.core.extractive import best_passage, has_content


class ReplySource(StrEnum):
    LLM = "llm"
    KNOWLEDGE = "knowledge"
    CACHE = "cache"
    DEFLECTION = "deflection"
    GOODBYE = "goodbye"
    SMALL_TALK = "small_talk"
    REPEAT = "repeat"
    FALLBACK = "fallback"
    GREETING = "greeting"
    HANDOFF = "handoff"  # the call escalates: the spec's hold message
    CALLBACK = "callback"  # the caller answered a callback offer: the spec's confirmation
    TOOL = "tool"  # a heard tool's result in the spec's words (its answers), no LLM
    IN_DOMAIN = "in_domain"  # the spec's reply to its own field's question the knowledge lacks


class Intent(StrEnum):
    QUESTION = "question"
    OUT_OF_DOMAIN = "out_of_domain"
    GOODBYE = "goodbye"
    SMALL_TALK = "small_talk"
    UNCLEAR = "unclear"


_THANKS = re.compile(r"\bthank", re.I)
_FAREWELL = re.compile(r"\b(?:good\s?bye|bye)\b", re.I)  # said outright: no doubt left
RESCUE_SCORE = 2.0  # a best passage this good answers a question retrieval scored low
IN_DOMAIN_EXAMPLES = "in_domain"  # the context service's name for the spec's in-domain examples


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """The agent spec's answers to intents and its knowledge strategy (``AgentSpec.intents``
    and ``.grounding``, ``retrieval.min_confidence``)."""

    intent_threshold: float = 0.62
    deflection: str = "Sorry, I can't help with that."
    small_talk: str = "I'm doing well, thank you! How can I help you today?"
    goodbye: str = "Thank you for calling. Goodbye!"
    hang_up_at: float = 0.75  # a goodbye at least this close ends the call
    anything_else: str = "You're welcome! Is there anything else I can help you with?"
    repeat: str = "Sorry, I didn't catch that. Could you say it again?"
    in_domain: str = ""  # the reply to an in-domain question the knowledge lacks ("": none)
    min_stt_confidence: float = 0.0
    min_confidence: float = 0.0  # retrieval confidence below it: out of domain
    extractive: bool = True  # knowledge answers from the best passage (else the LLM)
    confident_at: float = 0.5
    max_answer_words: int = 40


class Fallback(StrEnum):
    BEST_PASSAGE = "best_passage"
    SAFE_LINE = "safe_line"
    HANDOFF = "handoff"  # the safe line until the human-in-the-loop service takes calls


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """The agent spec's ``grounding``: whether LLM clauses are checked, and what is spoken
    instead of one that fails."""

    enabled: bool = True
    fallback: Fallback = Fallback.BEST_PASSAGE
    safe_line: str = "I'd rather check that than guess. Let me check that for you."


@dataclass(frozen=True, slots=True)
class Retrieved:
    """What Resolve told the turn (the gateway's ``ContextResult``, without its citations)."""

    block: str = ""
    confidence: float = 0.0
    cached_answer: str | None = None
    intent: str = ""  # the closest example phrase's intent
    intent_score: float = 0.0
    live_data: bool = False  # the block carries live records


@dataclass(frozen=True, slots=True)
class Plan:
    intent: Intent
    source: ReplySource
    text: str = ""  # the reply to speak; empty when the LLM answers
    hang_up: bool = False
    reason: str = ""  # why, for the trace


def plan_reply(
    transcript: str,
    stt_confidence: float,
    context: Retrieved,
    policy: ReplyPolicy,
) -> Plan:
    if stt_confidence < policy.min_stt_confidence:
        reason = f"stt confidence {stt_confidence:.2f} < {policy.min_stt_confidence:.2f}"
        return Plan(Intent.UNCLEAR, ReplySource.REPEAT, policy.repeat, reason=reason)
    intent, score = context.intent, context.intent_score
    sure = bool(intent) and score >= policy.intent_threshold
    # An account or order number (5+ digits, said as figures or words; a year is no entity).
    entity = spoken_number(transcript) is not None
    about = f"closest example {intent or '-'} {score:.2f}, retrieval {context.confidence:.2f}"
    if sure and intent == Intent.GOODBYE and not entity:
        if score >= policy.hang_up_at or _FAREWELL.search(transcript):
            return Plan(Intent.GOODBYE, ReplySource.GOODBYE, policy.goodbye, True, about)
        # "Thank you so much for your help" may end the call or not: ask, never hang up.
        return Plan(Intent.GOODBYE, ReplySource.GOODBYE, policy.anything_else, reason=about)
    if context.cached_answer:
        return Plan(Intent.QUESTION, ReplySource.CACHE, context.cached_answer, reason=about)
    if entity:
        return Plan(Intent.QUESTION, ReplySource.LLM, reason=f"entity; {about}")
    if not has_content(transcript):  # "Thank you." / "Hello?": nothing to answer
        reason = f"no content words; {about}"
        thanks = _THANKS.search(transcript) is not None
        text = policy.anything_else if thanks else policy.small_talk
        return Plan(Intent.SMALL_TALK, ReplySource.SMALL_TALK, text, reason=reason)
    confident = context.confidence >= policy.confident_at
    if sure and intent == Intent.SMALL_TALK and not confident:
        return Plan(Intent.SMALL_TALK, ReplySource.SMALL_TALK, policy.small_talk, reason=about)
    if sure and intent == Intent.OUT_OF_DOMAIN and not confident:
        return Plan(Intent.OUT_OF_DOMAIN, ReplySource.DEFLECTION, policy.deflection, reason=about)
    if context.live_data:  # the caller's own records are in the block: the LLM reads them
        return Plan(Intent.QUESTION, ReplySource.LLM, reason=f"live data; {about}")
    # A question of the agent's own field (close to an in-domain example) that the knowledge
    # does not answer confidently: the spec's in-domain reply, neither a deflection nor a guess.
    if sure and intent == IN_DOMAIN_EXAMPLES and policy.in_domain and not confident:
        return Plan(Intent.QUESTION, ReplySource.IN_DOMAIN, policy.in_domain, reason=about)
    passage = best_passage(transcript, context.block, policy.max_answer_words)
    # Retrieval confidence is the best cosine only: "Is there parking?" scores as low as an
    # off-topic question. A passage sharing two content words (a weekday or a number counts
    # double) is evidence enough that the question is in the domain.
    in_domain = context.confidence >= policy.min_confidence or passage.score >= RESCUE_SCORE
    if not in_domain:
        return Plan(Intent.OUT_OF_DOMAIN, ReplySource.DEFLECTION, policy.deflection, reason=about)
    if policy.extractive and passage.text and (confident or passage.score >= RESCUE_SCORE):
        reason = f"passage [{passage.item}] score {passage.score:.1f}; {about}"
        return Plan(Intent.QUESTION, ReplySource.KNOWLEDGE, passage.text, reason=reason)
    return Plan(Intent.QUESTION, ReplySource.LLM, reason=about)


def question_of(history: Sequence[Message], text: str) -> str:
    """What the caller asked in this turn: when the last turn's reply went unheard (the caller
    spoke on over it before a word of it played: the history ends with their own words), that
    turn's words and this one's ("My gums bleed when I brush." + "Should I get that looked
    at?"), else this turn's."""
    if history and history[-1].role == "user":
        return f"{history[-1].text} {text}"
    return text
