"""Score one scenario call: facts said and not said, actions taken, latency, faithfulness. Pure.

Each turn gets a list of :class:`Check` results; a turn passes when none failed, a scenario when
every turn passed. A check the platform cannot perform here (an escalation without the HITL
service exists) is ``unsupported``: reported, never counted as a pass.

Faithfulness is the eval's own check (``facts``), made on the reply the caller heard: every
clause's checkable facts must be stated by the agent's sources (spec, knowledge), the call's
live records (tool results, CRM accounts the call named), or be a long number or a name the
caller said (an account number, a year: never a weekday or time the caller asked about). The
gateway's ``grounded`` flag and guard interventions are reported beside it, not trusted for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from trunkline.evaluation.facts import FactBase, checkable_facts, clauses, sentence_starts
from trunkline.evaluation.normalize import phrase_in, tokens, wer_words
from trunkline.evaluation.observation import CallSeen, ToolCallSeen, TurnSeen
from trunkline.evaluation.scenario import Action, ActionKind, Scenario, ScenarioTurn
from trunkline.evaluation.sources import AgentSources, leaves
from trunkline.evaluation.wer import WerCount, wer
from trunkline.redaction import PLACEHOLDERS, redact


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"
    ERROR = "error"


def combined(statuses: Iterable[Status]) -> Status:
    """error > fail > unsupported > pass; nothing at all is a pass."""
    found = set(statuses)
    for status in (Status.ERROR, Status.FAIL, Status.UNSUPPORTED):
        if status in found:
            return status
    return Status.PASS


@dataclass(frozen=True, slots=True)
class ScoringOptions:
    escalation_supported: bool = True
    """False for a stack without the hitl service: an expected escalation that did not happen
    is then ``unsupported`` rather than failed."""
    max_gap: int = 3
    """Other words allowed between two words of an expected phrase."""
    latency_factor: float = 1.0
    """Every turn's latency budget times this (a slow or shared machine: say so in the report)."""
    latency_measured: bool = True
    """False where the driver hears no audio (a headless replay through a candidate): turns
    get no latency check (the rollout's shadow phase judges latency, on live turns)."""


@dataclass(frozen=True, slots=True)
class Check:
    kind: str  # reached, reply, must_contain, must_not_contain, action, not_action, latency,
    # faithful
    name: str
    status: Status
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ClauseVerdict:
    clause: str
    facts: tuple[str, ...]
    unsupported: tuple[str, ...]

    @property
    def checkable(self) -> bool:
        return bool(self.facts)

    @property
    def grounded(self) -> bool:
        return not self.unsupported


@dataclass(frozen=True, slots=True)
class TurnScore:
    index: int
    where: str
    said: str | None
    source: str  # "tts" | "wav"
    reached: bool
    checks: tuple[Check, ...]
    transcript: str = ""  # the caller as the stack's STT heard it (turn.completed)
    reply: str = ""  # the reply as the caller heard it (turn.completed)
    reply_heard: str | None = None  # the reply audio transcribed back
    reply_sources: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    tool_calls: tuple[str, ...] = ()
    clauses: tuple[ClauseVerdict, ...] = ()
    latency_ms: float | None = None
    budget_ms: float = 0.0
    caller_wer: WerCount | None = None
    reply_wer: WerCount | None = None
    gateway_grounded: bool | None = None
    interventions: tuple[str, ...] = ()
    expects: tuple[str, ...] = ()  # the kinds of actions the scenario expected

    @property
    def status(self) -> Status:
        return combined(c.status for c in self.checks)


@dataclass(frozen=True, slots=True)
class ScenarioScore:
    name: str
    agent: str
    tenant: str
    where: str
    tags: tuple[str, ...]
    description: str
    call_id: str
    turns: tuple[TurnScore, ...]
    end_reason: str = ""
    ended_by: str = ""
    error: str | None = None

    @property
    def status(self) -> Status:
        if self.error is not None:
            return Status.ERROR
        return combined(t.status for t in self.turns)


# -- single checks -------------------------------------------------------------------------------


def _said(reply: str, heard: str | None) -> tuple[str, ...]:
    """What to look for phrases in: the reply text of the turn event, and where that text is
    redacted (the gateway publishes ``[PHONE]`` where the caller heard the number) also the
    reply audio transcribed back, which is what the caller heard."""
    redacted = any(mark in reply for mark in PLACEHOLDERS.values())
    return (reply, heard) if redacted and heard else (reply,)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _same_value(expected: str, actual: object, key: str = "") -> bool:
    """An argument as expected: the same digits when both have digits (441-729 = 441729),
    else the same normalised words. Events carry redacted arguments (``[ACCOUNT]``): then the
    expected value must redact to the same placeholder (the digits cannot be compared)."""
    seen = json.dumps(actual) if isinstance(actual, dict | list) else str(actual)
    if seen in PLACEHOLDERS.values():
        as_json = json.dumps({key: expected}, separators=(",", ":"))
        return redact(as_json) == json.dumps({key: seen}, separators=(",", ":"))
    digits_e, digits_a = re.sub(r"\D", "", expected), re.sub(r"\D", "", seen)
    if digits_e and digits_a:
        return digits_e == digits_a
    return wer_words(expected) == wer_words(seen)


def _describe_call(call: ToolCallSeen) -> str:
    args = ", ".join(f"{k}={v}" for k, v in sorted(call.arguments.items()))
    return f"{call.name}({args}) -> {call.status or 'unspecified'}"


def _tool_matches(action: Action, call: ToolCallSeen) -> bool:
    return (
        call.name == action.tool
        and call.status == action.status
        and all(
            k in call.arguments and _same_value(v, call.arguments[k], k)
            for k, v in action.arguments
        )
    )


def _happened(action: Action, seen: TurnSeen, call: CallSeen, last: bool) -> tuple[bool, str]:
    """Whether ``action`` happened in this turn, and what was seen instead or as well."""
    sources = ", ".join(s or "unspecified" for s in seen.reply_sources) or "no event"
    if action.kind is ActionKind.TOOL:
        calls = seen.tool_calls
        made = "; ".join(_describe_call(c) for c in calls) or "no tool call"
        return any(_tool_matches(action, c) for c in calls), made
    if action.kind is ActionKind.DEFLECTION:
        return "deflection" in seen.reply_sources, f"reply_source {sources}"
    if action.kind is ActionKind.REPLY_SOURCE:
        return action.reply_source in seen.reply_sources, f"reply_source {sources}"
    if action.kind is ActionKind.HANG_UP:
        ended = call.end_reason or "no call_ended event"
        ok = seen.hang_up and (call.end_reason == "agent_hangup") and last
        return ok, f"hang_up={str(seen.hang_up).lower()}, call ended: {ended}"
    return seen.escalated, "an escalation event" if seen.escalated else "no escalation event"


def _action_check(
    action: Action, seen: TurnSeen, call: CallSeen, last: bool, options: ScoringOptions
) -> Check:
    ok, detail = _happened(action, seen, call, last)
    name = action.describe()
    if ok:
        return Check("action", name, Status.PASS, detail)
    if action.kind is ActionKind.ESCALATION and not options.escalation_supported:
        return Check("action", name, Status.UNSUPPORTED,
                     "not scored: this run has no hitl service (--escalation-unsupported); "
                     "no EscalationRequested event was published")  # fmt: skip
    return Check("action", name, Status.FAIL, detail)


def _not_action_check(action: Action, seen: TurnSeen, call: CallSeen, last: bool) -> Check:
    if action.kind is ActionKind.TOOL:
        ran = [c for c in seen.tool_calls if c.name == action.tool and c.status == "succeeded"]
        ran = [
            c
            for c in ran
            if all(
                k in c.arguments and _same_value(v, c.arguments[k], k) for k, v in action.arguments
            )
        ]
        detail = "; ".join(_describe_call(c) for c in seen.tool_calls) or "no tool call"
        return Check("not_action", action.describe(), Status.FAIL if ran else Status.PASS, detail)
    if action.kind is ActionKind.HANG_UP:
        hung = seen.hang_up or (last and call.end_reason == "agent_hangup")
        detail = f"hang_up={str(seen.hang_up).lower()}, call ended: {call.end_reason or '-'}"
        return Check("not_action", "hang_up", Status.FAIL if hung else Status.PASS, detail)
    ok, detail = _happened(action, seen, call, last)
    return Check("not_action", action.describe(), Status.FAIL if ok else Status.PASS, detail)


def _grounding_texts(
    turn: ScenarioTurn, seen: TurnSeen, sources: AgentSources
) -> tuple[list[str], list[str]]:
    """What this turn adds to what the agent may say: tool arguments and results, the CRM
    account of any account number the caller or a tool named (sources), and the caller's words
    (echoes: only their long numbers and names count, see ``FactBase.add_echo``)."""
    echoes = [t for t in (turn.text, seen.caller_transcript) if t]
    texts: list[str] = []
    for c in seen.tool_calls:
        texts += leaves(c.arguments)
        try:
            texts += leaves(json.loads(c.result_json)) if c.result_json else []
        except ValueError:
            texts.append(c.result_json)
    named = " ".join(texts + echoes)
    digits = set(re.findall(r"\d+", re.sub(r"(?<=\d)[\s,-]+(?=\d)", "", named)))
    digits |= {t.text for t in tokens(named) if t.kind == "number"}
    for account, record in sources.records.items():
        if account in digits:
            texts += record
    return texts, echoes


def without_filler(heard: str, filler: str) -> str:
    """``heard`` without a leading ``filler`` ("One moment, please."): the caller hears it
    before a slow reply, but it is no part of the reply's text in ``turn.completed``."""
    words, lead = heard.split(), wer_words(filler)
    for cut in range(len(words) + 1):
        said = wer_words(" ".join(words[:cut]))
        if said == lead and lead:
            return " ".join(words[cut:])
        if len(said) > len(lead):
            break
    return heard


def verdicts(reply: str, base: FactBase) -> tuple[ClauseVerdict, ...]:
    """Each clause of ``reply`` with its facts and those ``base`` does not support."""
    out = []
    for clause, start in zip(clauses(reply), sentence_starts(reply), strict=True):
        facts = checkable_facts(clause, start)
        missing = base.unsupported(facts)
        out.append(ClauseVerdict(clause, tuple(map(str, facts)), tuple(map(str, missing))))
    return tuple(out)


# -- a turn, a scenario -----------------------------------------------------------------------


def score_turn(
    index: int,
    turn: ScenarioTurn,
    *,
    seen: TurnSeen,
    call: CallSeen,
    base: FactBase,
    options: ScoringOptions,
    filler: str = "",
) -> TurnScore:
    """One turn's checks (``filler``: the agent's "one moment" line, not part of any reply)."""
    last = index == len(call.turns) - 1
    reply = seen.reply
    heard = None if seen.reply_heard is None else without_filler(seen.reply_heard, filler)
    checks: list[Check] = []
    if not seen.events:
        checks.append(Check("reply", "reply", Status.FAIL, "no turn.completed event"))
    elif not seen.answered or not reply:
        checks.append(Check("reply", "reply", Status.FAIL, "no agent speech heard"
                            if not seen.answered else "the event has no reply text"))  # fmt: skip
    else:
        checks.append(Check("reply", "reply", Status.PASS))
    texts = _said(reply, heard)
    for options_ in turn.must_contain:
        ok = any(phrase_in(p, t, options.max_gap) for p in options_ for t in texts)
        name = " | ".join(options_)
        checks.append(Check("must_contain", name, Status.PASS if ok else Status.FAIL,
                            "" if ok else f"reply: {_short(reply) or '(none)'}"))  # fmt: skip
    for phrase in turn.must_not_contain:
        said = any(phrase_in(phrase, t, options.max_gap) for t in texts)
        checks.append(Check("must_not_contain", phrase, Status.FAIL if said else Status.PASS,
                            f"reply: {_short(reply)}" if said else ""))  # fmt: skip
    checks += [_action_check(a, seen, call, last, options) for a in turn.actions]
    checks += [_not_action_check(a, seen, call, last) for a in turn.not_actions]
    v2v = seen.voice_to_voice_ms
    budget = turn.latency_ms * options.latency_factor
    within = v2v is not None and v2v <= budget
    if options.latency_measured:
        checks.append(Check("latency", f"<= {budget:.0f} ms",
                            Status.PASS if within else Status.FAIL,
                            "no reply audio" if v2v is None else f"{v2v:.0f} ms"))  # fmt: skip
    found = verdicts(reply, base)
    bad = [f"{', '.join(v.unsupported)} in {v.clause!r}" for v in found if v.unsupported]
    checks.append(Check("faithful", "spoken facts grounded", Status.FAIL if bad else Status.PASS,
                        "; ".join(bad)))  # fmt: skip
    transcript = seen.caller_transcript
    return TurnScore(
        index=index,
        where=str(turn.where),
        said=turn.text,
        source=turn.source,
        reached=True,
        checks=tuple(checks),
        transcript=transcript,
        reply=reply,
        reply_heard=seen.reply_heard,
        reply_sources=seen.reply_sources,
        intents=seen.intents,
        tool_calls=tuple(_describe_call(c) for c in seen.tool_calls),
        clauses=found,
        latency_ms=v2v,
        budget_ms=budget,
        # the event's transcript is redacted: so is the reference it is compared with
        caller_wer=wer(redact(turn.text), transcript) if turn.text and seen.events else None,
        reply_wer=None if not reply or heard is None else wer(reply, heard),
        gateway_grounded=seen.grounded,
        interventions=tuple(
            f"{i.action}: {i.clause} ({', '.join(i.unsupported)})" for i in seen.interventions
        ),
        expects=tuple(a.kind.value for a in turn.actions),
    )


def score_scenario(
    scenario: Scenario,
    call: CallSeen,
    sources: AgentSources,
    options: ScoringOptions | None = None,
    *,
    base: FactBase | None = None,
    tenant: str = "",
) -> ScenarioScore:
    """Score ``call`` against ``scenario``; ``base``: the agent's facts (built from ``sources``
    when not given, pass one to reuse it across scenarios)."""
    options = options or ScoringOptions()
    facts = base if base is not None else FactBase.of(sources.texts)
    turns: list[TurnScore] = []
    added: list[str] = []
    echoed: list[str] = []
    for i, turn in enumerate(scenario.turns):
        if call.error is not None or i >= len(call.turns):
            why = call.error or (
                f"the call ended ({call.end_reason or call.ended_by}) before this turn"
            )
            turns.append(TurnScore(i, str(turn.where), turn.text, turn.source, False,
                                   (Check("reached", "turn spoken", Status.FAIL, why),),
                                   budget_ms=turn.latency_ms * options.latency_factor,
                                   expects=tuple(a.kind.value for a in turn.actions)))  # fmt: skip
            continue
        seen = call.turns[i]
        texts, echoes = _grounding_texts(turn, seen, sources)
        added += texts
        echoed += echoes
        known = facts.merged(added, echoed)
        turns.append(score_turn(i, turn, seen=seen, call=call, base=known, options=options,
                                filler=sources.filler))  # fmt: skip
    return ScenarioScore(
        name=scenario.name,
        agent=scenario.agent,
        tenant=tenant or scenario.tenant or "",
        where=str(scenario.where),
        tags=scenario.tags,
        description=scenario.description,
        call_id=call.call_id,
        turns=tuple(turns),
        end_reason=call.end_reason,
        ended_by=call.ended_by,
        error=call.error,
    )
