"""When a call goes to a person (pure): the agent spec's escalation triggers, decided per turn.

Each turn gives :class:`TurnSignals` (what the caller said, its closest intent, the caller's
sentiment, how the turn was answered, its tool calls); :class:`EscalationTracker` keeps the few
counters the triggers need across turns and returns one :class:`EscalationDecision` per turn,
with every input that went into it (for the trace). Triggers, first match wins:

1. ``caller_request`` — the utterance's closest example phrase is the agent's ``human`` intent
   ("I want to talk to a real person"), at the intent threshold or above; or one of its
   sentences asks outright for a person (:func:`person_request`: "put me through to a
   representative", "I need a real human, not a robot"; the intent compares the whole
   utterance, and a complaint before the request dilutes it).
2. ``frustration`` — a falling sentiment trend: over the last ``sentiment_window`` turns every
   turn is negative (VADER compound below ``NEGATIVE``), the last is no better than the first,
   and their mean frustration (minus the compound; a rule phrase such as "third time I am
   calling" counts as 1.0) reaches ``frustration_threshold``. One angry word is no trend.
3. ``out_of_domain`` / ``low_confidence`` — ``max_failed_turns`` turns in a row deflected as
   out of domain, or answered from retrieval below ``low_confidence_threshold`` (a fallback
   from the grounding guard, and the spec's in-domain reply to a question the knowledge
   lacks, count as low confidence).
4. ``not_understood`` — ``max_repeats`` "I didn't catch that" replies in a row.
5. ``tool_failures`` — ``max_tool_failures`` tool calls failed in this call.
6. ``repeated_question`` — the same question (same content words, give or take one) asked
   ``same_question_times`` times in this call.
"""

from __future__ import annotations

import copy
import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

NEGATIVE = -0.05  # VADER's own cut: a compound below it is a negative utterance
SAME_QUESTION_JACCARD = 0.6  # content words shared by two utterances that ask the same thing

# Rules VADER misses: words of frustration that carry no negative lexicon entry.
FRUSTRATION_RULES = re.compile(
    r"\b(?:(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time (?:i(?:'m| am)? |i've )?"
    r"(?:call|ask|explain|tell|say|tri|try)\w*"
    r"|(?:already|keep) (?:told|tell|said|say|asked|ask|explained)\w*"
    r"|not (?:listening|helping|helpful)|(?:this|that) is (?:ridiculous|absurd|useless)"
    r"|waste of (?:my )?time|going (?:round|around) in circles)",
    re.I,
)

# An outright request for a person, in any sentence of the utterance ("... nobody fixed it. I
# want to talk to a real person."; "I need a real human, not a robot"). Not "are you a real
# person?", not "talk about my bill", not "I don't want to talk to a person".
_PEOPLE = (
    r"(?:real |actual |live )?(?:person|human(?: being)?|someone|somebody|agent|representative"
    r"|operator|manager|colleague)"
)
_HUMAN = r"(?:real |actual |live )?(?:person|human(?: being)?|representative|operator)"
_MACHINE = r"(?:robot|bot|machine|computer|recording|ai|chatbot)"
PERSON_REQUEST = re.compile(
    rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a |an |some |your |the )?{_PEOPLE}\b"
    rf"|\b(?:transfer|put|connect)\s+me\s+(?:through\s+)?(?:to|with)\s+"
    rf"(?:a |an |your |the )?{_PEOPLE}\b"
    rf"|\b(?:get|give)\s+me\s+(?:a |an )?{_PEOPLE}\b"
    # "I need a real human", "I'd like a representative" (not "I need a person's name")
    rf"|\b(?:i|we)(?:'d| would)?\s+(?:really |just |only )?(?:need|want|like|prefer)\s+"
    rf"(?:a |an |some )?{_HUMAN}\b(?!'s)",
    re.I,
)
# A sentence that is the contrast itself: "A human, not a robot!" (not "you sound like a real
# person, not a robot").
_CONTRAST = re.compile(
    rf"\s*(?:please |just |i said )?(?:a |an )?{_HUMAN}s?,?\s+(?:not|instead of|rather than)\s+"
    rf"(?:a |an |the |this |some )?{_MACHINE}\b",
    re.I,
)
# The whole utterance is the request: "Representative.", "Operator, please!", "Human please".
_JUST_A_PERSON = re.compile(
    r"\s*(?:(?:a|an|the)\s+)?(?:real |live )?(?:human|person|operator|representative|agent)"
    r"[,.!]?\s*(?:please)?[.!]*\s*",
    re.I,
)
# A question about what the agent is: "Are you a real person, not a robot?"
_ASKS_ABOUT = re.compile(
    r"\s*(?:are you|am i (?:talking|speaking) (?:to|with)|is (?:this|that|it))\s+(?:a |an )?"
    r"(?:real |actual |live )?(?:person|human)\b",
    re.I,
)
_NEGATED = re.compile(r"(?:\b\w+n't|\bnot|\bnever|\bno need to)\s+(?:\w+\s+){0,2}$", re.I)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def person_request(text: str) -> str | None:
    """The words of an outright request for a person in ``text``, or None. A yes/no question
    about what the agent is ("Are you a real person?") and a negated request ("I don't want to
    talk to a person") are no request."""
    text = text.replace("\u2019", "'")
    if _JUST_A_PERSON.fullmatch(text):
        return text.strip()
    for sentence in _SENTENCE.findall(text):
        if _ASKS_ABOUT.match(sentence):
            continue
        if (contrast := _CONTRAST.match(sentence)) is not None:
            return contrast.group().strip()
        for found in PERSON_REQUEST.finditer(sentence):
            if not _NEGATED.search(sentence[: found.start()]):
                return found.group()
    return None


_STOPWORDS = (
    "a an the i me my we our you your it its is are was were be been am do does did can could "
    "would will shall should may might must to of in on at for from with about and or but "
    "so if then that this these those what when where which who whom how why there here "
    "please just again tell know want like yes no ok okay um uh hi hello hey"
)
_STOP = frozenset(_STOPWORDS.split(" "))
_WORD = re.compile(r"[a-z0-9']+")


class Reason(StrEnum):
    CALLER_REQUEST = "caller_request"
    FRUSTRATION = "frustration"
    OUT_OF_DOMAIN = "out_of_domain"
    LOW_CONFIDENCE = "low_confidence"
    NOT_UNDERSTOOD = "not_understood"
    TOOL_FAILURES = "tool_failures"
    REPEATED_QUESTION = "repeated_question"


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """The agent spec's ``escalation`` section as the core needs it."""

    enabled: bool = True
    human_intent: str = "human"  # the context service's intent name for "get me a person"
    intent_threshold: float = 0.62  # the spec's intents.threshold
    sentiment_window: int = 3
    frustration_threshold: float = 0.5
    out_of_domain_threshold: float = 0.8  # an answered turn this close to out_of_domain counts
    low_confidence_threshold: float = 0.3
    max_failed_turns: int = 2
    max_repeats: int = 2
    max_tool_failures: int = 2
    same_question_times: int = 3

    def __post_init__(self) -> None:
        if self.sentiment_window < 2:
            raise ValueError("sentiment_window must be at least 2 (a trend needs two turns)")
        for name in ("max_failed_turns", "max_repeats", "max_tool_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.same_question_times < 2:
            raise ValueError("same_question_times must be at least 2")


@dataclass(frozen=True, slots=True)
class TurnSignals:
    """What one turn tells the triggers (a greeting or an empty transcript is no turn)."""

    text: str
    intent: str = ""  # the closest example phrase's intent (context service)
    intent_score: float = 0.0
    sentiment: float = 0.0  # VADER compound, -1..1
    reply_source: str = ""  # "deflection", "repeat", "fallback", "llm", "knowledge" ...
    retrieval_confidence: float = 1.0
    tool_failures: int = 0  # tool calls of the turn that ran and failed


@dataclass(frozen=True, slots=True)
class EscalationDecision:
    escalate: bool
    reason: Reason | None = None
    detail: str = ""  # in words, for the operator and the trace
    sentiment: float = 0.0
    frustration: float = 0.0  # the window's mean frustration, 0..1
    inputs: dict[str, str | float | int | bool] = field(default_factory=dict)


def frustration_of(text: str, sentiment: float) -> float:
    """One turn's frustration, 0..1: minus its compound, or 1.0 when a rule phrase matches."""
    if FRUSTRATION_RULES.search(text):
        return 1.0
    return max(0.0, -sentiment)


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def same_question(a: frozenset[str], b: frozenset[str]) -> bool:
    """Same content words, give or take one in three (numbers and weekdays are words too, so
    "open on Monday?" and "open on Tuesday?" differ)."""
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= SAME_QUESTION_JACCARD


class EscalationTracker:
    """One call's escalation state: feed each answered turn, get a decision."""

    def __init__(self, policy: EscalationPolicy) -> None:
        self.policy = policy
        self._frustration: deque[float] = deque(maxlen=policy.sentiment_window)
        self._failed_in_a_row = 0
        self._last_failure: Reason | None = None
        self._repeats_in_a_row = 0
        self._tool_failures = 0
        self._questions: list[frozenset[str]] = []
        self.escalated = False

    def preview(self, turn: TurnSignals) -> EscalationDecision:
        """The decision ``observe`` would make, counting nothing (a speculative turn may still
        be dropped; only a finished turn is counted)."""
        return copy.deepcopy(self).observe(turn)

    def observe(self, turn: TurnSignals) -> EscalationDecision:
        """Count the turn and decide. After an escalation the counters start afresh (the agent
        that gets the call back is not escalated again by the same history)."""
        p = self.policy
        turn_frustration = frustration_of(turn.text, turn.sentiment)
        self._frustration.append(turn_frustration)
        failure = self._failure(turn)
        if failure is None:
            self._failed_in_a_row, self._last_failure = 0, None
        else:
            self._failed_in_a_row += 1
            self._last_failure = failure
        self._repeats_in_a_row = self._repeats_in_a_row + 1 if turn.reply_source == "repeat" else 0
        self._tool_failures += turn.tool_failures
        words = content_words(turn.text)
        asked = 1 + sum(same_question(words, q) for q in self._questions)
        if words and turn.reply_source != "repeat":
            self._questions.append(words)
        window = list(self._frustration)
        mean = sum(window) / len(window)
        inputs: dict[str, str | float | int | bool] = {
            "text": turn.text[:256],
            "intent": turn.intent,
            "intent_score": round(turn.intent_score, 3),
            "sentiment": round(turn.sentiment, 3),
            "turn_frustration": round(turn_frustration, 3),
            "window_frustration": round(mean, 3),
            "window_turns": len(window),
            "reply_source": turn.reply_source,
            "retrieval_confidence": round(turn.retrieval_confidence, 3),
            "failed_in_a_row": self._failed_in_a_row,
            "repeats_in_a_row": self._repeats_in_a_row,
            "tool_failures": self._tool_failures,
            "same_question_asked": asked if words else 0,
        }
        reason, detail = self._trigger(turn, window, mean, asked if words else 0)
        decision = EscalationDecision(
            escalate=p.enabled and reason is not None,
            reason=reason,
            detail=detail,
            sentiment=turn.sentiment,
            frustration=mean,
            inputs=inputs,
        )
        if decision.escalate:
            self.reset()
        return decision

    def observe_tools(self, failures: int) -> EscalationDecision:
        """Count the tool calls of the turn that failed (they ran after the turn was decided)
        and decide again on that trigger alone."""
        self._tool_failures += failures
        p = self.policy
        due = p.enabled and failures > 0 and self._tool_failures >= p.max_tool_failures
        inputs: dict[str, str | float | int | bool] = {
            "turn_tool_failures": failures,
            "tool_failures": self._tool_failures,
        }
        if not due:
            return EscalationDecision(False, inputs=inputs)
        detail = f"{self._tool_failures} tool calls failed"
        self.reset()
        return EscalationDecision(True, Reason.TOOL_FAILURES, detail, inputs=inputs)

    def reset(self) -> None:
        self._frustration.clear()
        self._failed_in_a_row, self._last_failure = 0, None
        self._repeats_in_a_row = 0
        self._tool_failures = 0
        self._questions.clear()

    # ---- triggers ---------------------------------------------------------------------------

    def _failure(self, turn: TurnSignals) -> Reason | None:
        p = self.policy
        if turn.reply_source == "deflection":
            return Reason.OUT_OF_DOMAIN
        if turn.intent == "out_of_domain" and turn.intent_score >= p.out_of_domain_threshold:
            return Reason.OUT_OF_DOMAIN
        if turn.reply_source in ("fallback", "in_domain"):  # in_domain: the knowledge lacked it
            return Reason.LOW_CONFIDENCE
        answered = turn.reply_source in ("llm", "knowledge")
        if answered and turn.retrieval_confidence < p.low_confidence_threshold:
            return Reason.LOW_CONFIDENCE
        return None

    def _trigger(
        self, turn: TurnSignals, window: list[float], mean: float, asked: int
    ) -> tuple[Reason | None, str]:
        p = self.policy
        if turn.intent == p.human_intent and turn.intent_score >= p.intent_threshold:
            return Reason.CALLER_REQUEST, f"the caller asked for a person: {turn.text!r}"
        if (asked_for := person_request(turn.text)) is not None:
            return Reason.CALLER_REQUEST, f"the caller asked for a person: {asked_for!r}"
        if self._falling(window, mean):
            return Reason.FRUSTRATION, (
                f"frustration {mean:.2f} over the last {len(window)} turns "
                f"(threshold {p.frustration_threshold:.2f})"
            )
        if self._failed_in_a_row >= p.max_failed_turns and self._last_failure is not None:
            what = "out of domain" if self._last_failure is Reason.OUT_OF_DOMAIN else "unsure"
            return self._last_failure, f"{self._failed_in_a_row} turns in a row {what}"
        if self._repeats_in_a_row >= p.max_repeats:
            return Reason.NOT_UNDERSTOOD, f"{self._repeats_in_a_row} times 'I didn't catch that'"
        if self._tool_failures >= p.max_tool_failures:
            return Reason.TOOL_FAILURES, f"{self._tool_failures} tool calls failed"
        if asked >= p.same_question_times:
            return Reason.REPEATED_QUESTION, f"the same question {asked} times: {turn.text!r}"
        return None, ""

    def _falling(self, window: list[float], mean: float) -> bool:
        p = self.policy
        if len(window) < p.sentiment_window:
            return False
        # frustration is minus the sentiment: every turn negative, the last no better than the
        # first, and on average frustrated enough.
        negative = all(f > -NEGATIVE for f in window)
        return negative and window[-1] >= window[0] and mean >= p.frustration_threshold
