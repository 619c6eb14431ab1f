"""The escalation triggers wired into a call: the caller's sentiment per turn (VADER), the
pure tracker's decision, its trace event and counter, and what the hitl service is told.

The pipeline asks :meth:`Escalations.check` after planning each turn: an escalation replaces the
turn's reply with the spec's hold message (so "I want a real person" never gets an LLM answer);
the session asks :meth:`Escalations.after_tools` once a turn's tools have run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from opentelemetry import trace
from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
    SentimentIntensityAnalyzer,
)

from trunkline.agents.spec import Escalation as EscalationSpec
from trunkline.gateway.core.callback import (
    CallbackAnswer,
    callback_answer,
    more_digits,
    spoken_digits,
)
from trunkline.gateway.core.escalation import (
    EscalationDecision,
    EscalationPolicy,
    EscalationTracker,
    TurnSignals,
    person_request,
)
from trunkline.gateway.core.replies import Intent, Plan, ReplySource
from trunkline.gateway.core.tools import ToolStatus
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.hitl import EscalationRequest, HumanLoop, Line, TurnGrounds
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.profile import AgentProfile
from trunkline.gateway.records import TurnRecord

MAX_CONTEXT_TURNS = 5  # the last turns' context and citations go to the operator


class Sentiment:
    """VADER's compound score, -1..1 (its lexicon is loaded once per process: share one)."""

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])


_SPEC = EscalationSpec()  # the agent spec's defaults: one home for the lines' words


@dataclass(frozen=True, slots=True)
class HandoffTexts:
    """What the caller hears around a handoff (the agent spec's ``escalation`` lines)."""

    handoff: str = _SPEC.handoff_message
    # a question: the caller's next turn answers it (core/callback.py)
    callback: str = _SPEC.callback_message
    callback_accepted: str = _SPEC.callback_accepted_message  # {number}: the number to call
    callback_declined: str = _SPEC.callback_declined_message
    resume: str = _SPEC.resume_message
    unavailable: str = _SPEC.unavailable_message
    approval: str = _SPEC.approval_message


@dataclass(frozen=True, slots=True)
class HumanSide:
    """One agent's human-in-the-loop setup (from its spec's ``escalation`` section)."""

    hitl: HumanLoop
    sentiment: Sentiment
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)
    texts: HandoffTexts = field(default_factory=HandoffTexts)
    hold_pcm: bytes = b""  # 16 kHz PCM16; empty: the generated soft tone
    operator_timeout_s: float = 60.0
    approval_timeout_s: float = 30.0


class Escalations:
    """One call's escalation decisions."""

    def __init__(self, side: HumanSide, metrics: GatewayMetrics | None = None) -> None:
        self.side = side
        self.tracker = EscalationTracker(side.policy)
        self.metrics = metrics
        self._planned: dict[int, TurnSignals] = {}  # turn id -> its signals, until finished
        self.clips: Callable[[str], bytes | None] = lambda text: None  # rendered lines
        self.callback_ticket = ""  # the caller was asked about a callback on this ticket
        self._dictating: tuple[str, str] | None = None  # the number so far (ticket, digits)
        self._answers: dict[int, CallbackAnswer] = {}  # turn id -> the caller's answer

    def ask_callback(self, ticket_id: str) -> None:
        """The caller was just asked whether a colleague should call back: the next turn
        may answer it."""
        self.callback_ticket = ticket_id

    def _callback(self, text: str, record: TurnRecord, plan: Plan) -> Plan | None:
        """The turn that follows a callback offer: its answer (yes, no, a number) and the
        reply to it; None when it is no answer (the turn goes on as any other)."""
        # "No, I want to talk to a person now": not an answer, a new request for a person
        answer = None if person_request(text) is not None else callback_answer(text)
        trace.get_current_span().add_event(
            "callback.answer",
            {
                "ticket_id": self.callback_ticket,
                "answered": answer is not None,
                "accepted": answer is not None and answer.accepted,
                "detail": answer.detail if answer is not None else "",
            },
        )
        if answer is None:
            return None
        return self._confirm(answer, record, plan)

    def _confirm(self, answer: CallbackAnswer, record: TurnRecord, plan: Plan) -> Plan:
        self._answers[record.turn_id] = answer
        record.reply_source = ReplySource.CALLBACK
        trace.get_current_span().set_attribute("turn.reply_source", str(ReplySource.CALLBACK))
        texts = self.side.texts
        if answer.accepted:
            number = spoken_digits(answer.number) if answer.number else "this number"
            reply = texts.callback_accepted.replace("{number}", number)
        else:
            reply = texts.callback_declined
        record.hang_up = False
        return replace(plan, source=ReplySource.CALLBACK, text=reply, reason=answer.detail)

    def unfinished_answer(self) -> tuple[str, CallbackAnswer] | None:
        """The caller's answer in a turn that has not finished (the call ends while the agent
        confirms it): the caller said it all the same."""
        if not self.callback_ticket or not self._answers:
            return None
        answer = self._answers.pop(max(self._answers))
        self._answers.clear()
        ticket, self.callback_ticket = self.callback_ticket, ""
        return ticket, answer

    def answered(self, record: TurnRecord) -> tuple[str, CallbackAnswer] | None:
        """The finished turn's answer to the callback offer (ticket id, answer), once. A turn
        with words that is no answer ends the question (the caller moved on; the offer stays
        unaccepted); a dropped speculative turn never counts."""
        answer = self._answers.pop(record.turn_id, None)
        for stale in [t for t in self._answers if t < record.turn_id]:
            del self._answers[stale]
        if answer is None:
            if record.user_text.strip():
                self.callback_ticket, self._dictating = "", None
            return None
        ticket, self.callback_ticket = self.callback_ticket, ""
        # a number may go on in the next turn (dictated in groups)
        self._dictating = (ticket, answer.number) if answer.number else None
        return ticket, answer

    def clip(self, plan: Plan) -> bytes | None:
        """The hold message's audio when it was rendered before (the turn skips TTS)."""
        return self.clips(plan.text) if plan.source is ReplySource.HANDOFF else None

    def before_context(self, text: str, record: TurnRecord) -> Plan | None:
        """The hold message at once when the words ask outright for a person ("I need a real
        human, not a robot"; also right after a callback offer): the turn skips the context
        service. None: the turn resolves its context and is decided by :meth:`check`."""
        if self._dictating is not None and (rest := more_digits(text)) is not None:
            # the rest of the number the caller is dictating: the answer, completed
            self.callback_ticket, number = self._dictating
            whole = CallbackAnswer(True, number + rest, f"the number, continued: {rest}")
            return self._confirm(whole, record, Plan(Intent.QUESTION, ReplySource.CALLBACK))
        if self.callback_ticket:  # the answer to a callback offer needs no context either
            answering = self._callback(text, record, Plan(Intent.QUESTION, ReplySource.CALLBACK))
            if answering is not None:
                return answering
        if not self.side.policy.enabled or person_request(text) is None:
            return None
        asked = Plan(Intent.QUESTION, ReplySource.HANDOFF, reason="an outright request")
        plan = self.check(text, record, asked)
        if record.escalation is None:
            return None
        record.intent, record.reply_source = self.side.policy.human_intent, plan.source
        span = trace.get_current_span()
        span.set_attribute("turn.intent", record.intent)
        span.set_attribute("turn.reply_source", str(plan.source))
        span.add_event("escalation.before_context", {"text": text[:256]})
        return plan

    def check(self, text: str, record: TurnRecord, plan: Plan) -> Plan:
        """Decide on the planned turn (a preview: the turn counts once it finished, see
        :meth:`finished`); an escalation speaks the hold message instead. Right after a
        callback offer the turn may be the caller's answer: the reply confirms it."""
        if self.callback_ticket:
            answering = self._callback(text, record, plan)
            if answering is not None:
                return answering
        context = record.context
        signals = TurnSignals(
            text=text,
            intent=context.intent if context is not None else "",
            intent_score=context.intent_score if context is not None else 0.0,
            sentiment=self.side.sentiment.score(text),
            reply_source=str(plan.source),
            retrieval_confidence=context.confidence if context is not None else 0.0,
        )
        decision = self.tracker.preview(signals)
        self._planned[record.turn_id] = signals
        self._trace(decision, "turn")
        if not decision.escalate:
            return plan
        record.escalation = decision
        record.hang_up = False
        reason = f"escalation: {decision.reason}: {decision.detail}"
        return replace(
            plan, source=ReplySource.HANDOFF, text=self.side.texts.handoff, reason=reason
        )

    def finished(self, record: TurnRecord) -> EscalationDecision | None:
        """Count a finished turn (its plan's signals, then its failed tools); the decision
        when the call escalates. Turns dropped before finishing were never counted, nor is a
        turn whose reply the caller spoke over unheard: its words go on in the next turn."""
        signals = self._planned.pop(record.turn_id, None)
        for stale in [t for t in self._planned if t < record.turn_id]:
            del self._planned[stale]
        if record.interrupted and not record.agent_text and record.escalation is None:
            signals = None
        if signals is not None:
            decision = self.tracker.observe(signals)
            self._count(decision)
            if decision.escalate:
                return record.escalation or decision
        return self.after_tools(record)

    def after_tools(self, record: TurnRecord) -> EscalationDecision | None:
        """The turn's failed tool calls counted; a decision when they escalate the call."""
        failures = sum(t.status is ToolStatus.FAILED for t in record.tool_calls)
        if not failures or record.escalation is not None:
            return None
        decision = self.tracker.observe_tools(failures)
        self._trace(decision, "tools")
        self._count(decision)
        return decision if decision.escalate else None

    def _trace(self, decision: EscalationDecision, stage: str) -> None:
        attributes: dict[str, str | float | int | bool] = {
            f"escalation.{k}": v for k, v in decision.inputs.items()
        }
        attributes["escalation.stage"] = stage
        attributes["escalation.escalate"] = decision.escalate
        attributes["escalation.reason"] = str(decision.reason or "")
        attributes["escalation.detail"] = decision.detail
        trace.get_current_span().add_event("escalation.decision", attributes)

    def _count(self, decision: EscalationDecision) -> None:
        if self.metrics is not None:
            labels: dict[str, str | bool] = {
                "reason": str(decision.reason or "none"),
                "escalate": decision.escalate,
            }
            self.metrics.escalation_decisions.add(1, labels)


def escalation_request(
    call: CallInfo,
    turns: Sequence[TurnRecord],
    decision: EscalationDecision,
    entities: dict[str, str],
    timeout_s: float | None = None,
) -> EscalationRequest:
    """What the operator gets: the transcript, the last turns' context and citations, and the
    caller's record as the call knows it (caller id, entities, the last record a tool read)."""
    lines: list[Line] = []
    for turn in turns:
        if turn.user_text:
            lines.append(Line("caller", turn.user_text, turn.turn_id))
        if turn.agent_text:
            lines.append(Line("agent", turn.agent_text, turn.turn_id, turn.interrupted))
    grounds = tuple(
        TurnGrounds(t.turn_id, t.user_text, t.context.block, t.context.sources)
        for t in turns[-MAX_CONTEXT_TURNS:]
        if t.context is not None and t.user_text
    )
    customer: dict[str, str] = {}
    if call.caller_address:
        customer["caller_id"] = call.caller_address
    customer.update(entities)
    record_id, source = _last_record(turns, customer)
    return EscalationRequest(
        reason=str(decision.reason or ""),
        detail=decision.detail,
        sentiment=decision.sentiment,
        frustration=decision.frustration,
        transcript=tuple(lines),
        turns=grounds,
        customer=customer,
        customer_id=record_id or entities.get("account_id", ""),
        customer_source=source or ("caller-id" if call.caller_address else ""),
        timeout_s=timeout_s,
        request_id=f"{call.call_id}-{turns[-1].turn_id if turns else 0}",
    )


def _last_record(turns: Sequence[TurnRecord], fields: dict[str, str]) -> tuple[str, str]:
    """Scalar fields of the last record a tool read successfully, added to ``fields``."""
    for turn in reversed(turns):
        for tool in reversed(turn.tool_calls):
            if tool.status is not ToolStatus.SUCCEEDED:
                continue
            try:
                value = json.loads(tool.result_json)
            except json.JSONDecodeError:
                continue
            if not isinstance(value, dict):
                continue
            for key, item in value.items():
                if isinstance(item, str | int | float | bool):
                    fields[str(key)] = str(item)
            return str(value.get("account_id", value.get("id", ""))), tool.name
    return "", ""


def escalation_policy(profile: AgentProfile) -> EscalationPolicy:
    """The agent spec's ``escalation`` section (and its intent threshold) for the core."""
    spec = profile.escalation
    return EscalationPolicy(
        enabled=spec.enabled,
        intent_threshold=profile.intents.threshold,
        sentiment_window=spec.sentiment_window,
        frustration_threshold=spec.frustration_threshold,
        out_of_domain_threshold=spec.out_of_domain_threshold,
        low_confidence_threshold=spec.low_confidence_threshold,
        max_failed_turns=spec.max_failed_turns,
        max_repeats=spec.max_repeats,
        max_tool_failures=spec.max_tool_failures,
        same_question_times=spec.same_question_times,
    )
