"""The agent spec: one versioned agent as data (DESIGN.md §4), loadable from YAML.

Self-contained on purpose (only pydantic and PyYAML) so it can move into a shared lib unchanged.
Every model is frozen and rejects unknown keys, so a typo in a YAML file is an error, not a
silently ignored setting.

Example::

    spec = load_agent_spec(Path("agents/acme-dental.yaml"))
    spec.ref                     # "acme-dental@1.0.0"
    spec.tools_for_role("caller")
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trunkline.agents.dtmf import normalise_menu
from trunkline.agents.templates import template_fields

__all__ = [
    "AgentSpec",
    "AgentSpecError",
    "AnswerStrategy",
    "Escalation",
    "Grounding",
    "GuardFallback",
    "HumanRequest",
    "Intent",
    "Intents",
    "LiveSource",
    "ModelSpec",
    "QualifiedOutcome",
    "RankMode",
    "Retrieval",
    "RiskLevel",
    "Sampling",
    "SetOperation",
    "SetOperator",
    "Stt",
    "TokenBudget",
    "ToolSpec",
    "Voice",
    "host_allowed",
    "load_agent_spec",
    "parse_agent_spec",
    "url_host",
]

_SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_TOOL_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$"
_SOURCE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class AgentSpecError(ValueError):
    """An agent spec that cannot be read or is invalid; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"  # needs a human approval before it runs


class RankMode(StrEnum):
    CROSS_ENCODER = "cross_encoder"  # a scoring endpoint (vLLM / TEI)
    EMBEDDED = "embedded"  # the in-process fallback ranker
    NONE = "none"  # keep vector-search order


class Sampling(_Strict):
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    max_reply_tokens: int = Field(default=160, gt=0, le=8192)
    seed: int | None = None
    stop: tuple[str, ...] = ()


class ModelSpec(_Strict):
    name: str = Field(default="smollm2-135m-instruct", min_length=1)
    sampling: Sampling = Sampling()


class TokenBudget(_Strict):
    """Prompt tokens: system prompt + tools + context block + history + the new user turn."""

    prompt_tokens: int = Field(default=1536, gt=0)


class Voice(_Strict):
    name: str = Field(default="en_US-joe-medium", min_length=1)
    language: str = Field(default="en-US", min_length=2)
    speaking_rate: float = Field(default=1.0, gt=0.0, le=3.0)


class ToolAnswer(_Strict):
    """A tool's result said in the spec's words: ``say`` with ``{field}`` placeholders filled
    from the result, when the result has every ``when`` field with that value."""

    say: str = Field(min_length=1, max_length=500)
    when: dict[str, Any] = Field(default_factory=dict)

    @field_validator("say")
    @classmethod
    def _plain_placeholders(cls, value: str) -> str:
        try:
            template_fields(value)
        except ValueError as exc:
            raise ValueError(f"say is not a valid template: {exc}") from exc
        return value


class ToolSpec(_Strict):
    name: str = Field(pattern=_TOOL_NAME)
    description: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the arguments; must be an object schema",
    )
    endpoint: str = Field(min_length=1, description="where the tool executor sends the call")
    allowed_roles: tuple[str, ...] = Field(min_length=1)
    risk: RiskLevel = RiskLevel.LOW
    timeout_s: float = Field(default=3.0, gt=0.0, le=60.0)
    fixed_arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="arguments the spec fixes: they replace whatever the model sends",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers; ${env:NAME} is read from the gateway's environment at call "
        "time (secrets stay out of the spec, the prompt and the logs)",
    )
    max_calls_per_call: int | None = Field(default=None, ge=1, description="per call")
    max_calls_per_minute: int | None = Field(
        default=None, ge=1, description="per tenant, over the last 60 s"
    )
    call_when_heard: bool = Field(
        default=False,
        description="the gateway calls it itself, before the model, in a turn whose words give "
        "every required argument (an account number after 'account' or 'number'); the result "
        "is the model's first tool round. Only for risk: low tools",
    )
    answers: tuple[ToolAnswer, ...] = Field(
        default=(),
        description="with call_when_heard: the result said in these words (the first that fits, "
        "its {field}s filled from the result) instead of by the model",
    )

    @model_validator(mode="after")
    def _fixed_are_parameters(self) -> Self:
        props = self.parameters.get("properties", {})
        unknown = sorted(k for k in self.fixed_arguments if k not in props)
        if unknown:
            raise ValueError(f"fixed_arguments {', '.join(unknown)} are not in parameters")
        return self

    @model_validator(mode="after")
    def _heard_is_a_lookup(self) -> Self:
        if not self.call_when_heard:
            if self.answers:
                raise ValueError("answers are said for a call_when_heard tool only")
            return self
        if self.risk is not RiskLevel.LOW:
            raise ValueError(
                "call_when_heard is only for risk: low tools (no side effects, no approval)"
            )
        if not self.parameters.get("required"):
            raise ValueError("call_when_heard needs required arguments to hear")
        return self

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("parameters must be a JSON schema with type: object")
        props = value.get("properties", {})
        if not isinstance(props, dict):
            raise ValueError("parameters.properties must be a mapping")
        required = value.get("required", [])
        if not isinstance(required, list) or any(r not in props for r in required):
            raise ValueError("parameters.required must list names present in properties")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "builtin:")):
            raise ValueError("endpoint must be an http(s):// URL or builtin:<name>")
        return value

    @property
    def requires_approval(self) -> bool:
        return self.risk is RiskLevel.HIGH


class SetOperator(StrEnum):
    UNION = "union"  # the retrieved set plus the source's records
    INTERSECTION = "intersection"  # only items whose entity has a record in the source
    DIFFERENCE = "difference"  # drop items whose entity has a record in the source


class LiveSource(_Strict):
    """A live HTTP JSON API (CRM, billing) whose records join the retrieved set by entity.

    The context service GETs ``base_url`` + ``path``; ``path`` may hold ``{name}`` placeholders
    filled from the call-state entities (e.g. ``/customers/{customer_id}/products``). The answer
    is a JSON list of objects, or an object holding the list under ``records_path`` (dotted).
    Each record is keyed by its ``entity_key`` field, matched against the chunks' entity.
    """

    name: str = Field(pattern=_SOURCE_NAME)
    base_url: str = Field(min_length=1)
    path: str = Field(default="", description="path template, {entity} placeholders")
    entity_key: str = Field(min_length=1, description="record field that keys it by entity")
    text_fields: tuple[str, ...] = Field(default=(), description="empty: every other field")
    records_path: str = ""
    timeout_s: float = Field(default=0.3, gt=0.0, le=10.0)
    max_records: int = Field(default=20, ge=1, le=500)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s):// URL")
        return value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("path must start with '/'")
        return value

    @property
    def url_template(self) -> str:
        """``base_url`` + ``path``, placeholders still in."""
        return self.base_url.rstrip("/") + self.path


class SetOperation(_Strict):
    """One step of set algebra (context stage 5), applied in order after ranking."""

    op: SetOperator
    source: str = Field(pattern=_SOURCE_NAME, description="a live_sources name")


class Retrieval(_Strict):
    top_k: int = Field(default=4, ge=1, le=50)
    rank_mode: RankMode = RankMode.EMBEDDED
    token_budget: int = Field(default=400, gt=0, description="tokens for the context block")
    data_sources: tuple[str, ...] = Field(
        default=(), description="knowledge bases searched (names); empty: all of the tenant's"
    )
    candidates: int = Field(default=20, ge=1, le=200, description="search hits before ranking")
    near_duplicate_threshold: float = Field(
        default=0.8, gt=0.0, le=1.0, description="similarity above which chunks are duplicates"
    )
    min_confidence: float = Field(
        default=0.25, ge=0.0, le=1.0, description="retrieval confidence below it: out of domain"
    )
    live_sources: tuple[LiveSource, ...] = ()
    set_operations: tuple[SetOperation, ...] = ()

    @model_validator(mode="after")
    def _known_sources(self) -> Self:
        names = [s.name for s in self.live_sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate live source names: {', '.join(duplicates)}")
        unknown = sorted({op.source for op in self.set_operations} - set(names))
        if unknown:
            raise ValueError(f"set_operations name undeclared live sources: {', '.join(unknown)}")
        return self

    def live_source(self, name: str) -> LiveSource:
        for source in self.live_sources:
            if source.name == name:
                return source
        raise KeyError(f"no live source {name!r}")


class Escalation(_Strict):
    """When a call goes to a person, and what the caller hears meanwhile (the gateway's
    ``core/escalation.py`` decides per turn; ``handoff.py`` keeps the call up)."""

    enabled: bool = True
    frustration_threshold: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="mean frustration (minus the sentiment; a rule phrase such as 'third time "
        "I am calling' counts 1.0) over a falling, all-negative window that escalates",
    )
    sentiment_window: int = Field(default=3, ge=2, le=10, description="turns in the trend")
    out_of_domain_threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="an out_of_domain intent this close counts"
    )
    low_confidence_threshold: float = Field(
        default=0.3, ge=0.0, le=1.0, description="an answer from retrieval below it counts"
    )
    max_failed_turns: int = Field(
        default=2, ge=1, description="out-of-domain or low-confidence turns in a row"
    )
    max_repeats: int = Field(default=2, ge=1, description="'I didn't catch that' in a row")
    max_tool_failures: int = Field(default=2, ge=1, description="failed tool calls per call")
    same_question_times: int = Field(default=3, ge=2, description="the same question asked")
    handoff_message: str = Field(
        default="Let me connect you with a colleague who can help. Please stay on the line.",
        min_length=1,
        description="spoken when the call escalates (the hold message)",
    )
    hold_audio: str | None = Field(
        default=None,
        description="a WAV file played while the caller waits; none: a soft generated tone",
    )
    operator_timeout_s: float = Field(
        default=60.0, gt=0.0, le=3600.0, description="no operator by then: offer a callback"
    )
    callback_message: str = Field(
        default="I'm sorry, all my colleagues are busy right now. Would you like a colleague "
        "to call you back? You can say yes, no, or the number to call.",
        min_length=1,
        description="no operator in time: a question (the caller's next turn answers it)",
    )
    callback_accepted_message: str = Field(
        default="Thank you. A colleague will call you back at {number}. Meanwhile, I'm happy "
        "to keep helping you.",
        min_length=1,
        description="the caller accepted; {number}: the number given, or 'this number'",
    )
    callback_declined_message: str = Field(
        default="All right, no callback. How else can I help?",
        min_length=1,
        description="the caller declined the callback",
    )
    resume_message: str = Field(
        default="Thank you for holding. I'm back with you. How else can I help?", min_length=1
    )
    unavailable_message: str = Field(
        default="I'm sorry, I can't reach a colleague right now. I'll keep helping you myself.",
        min_length=1,
        description="spoken when the human-in-the-loop service cannot be reached",
    )
    approval_message: str = Field(
        default="One moment while I confirm that.",
        min_length=1,
        description="spoken while a high-risk tool call waits for a person's approval",
    )
    approval_timeout_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="no decision by then: not done (denied)"
    )

    @field_validator("hold_audio")
    @classmethod
    def _wav(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith(".wav"):
            raise ValueError("hold_audio must be a .wav file")
        return value


class AnswerStrategy(StrEnum):
    EXTRACTIVE = "extractive"  # the best knowledge passage, shortened for the ear; no LLM
    LLM = "llm"  # the LLM, every clause checked by the grounding guard


class GuardFallback(StrEnum):
    BEST_PASSAGE = "best_passage"  # speak the best-matching knowledge passage instead
    SAFE_LINE = "safe_line"  # speak ``safe_line``
    HANDOFF = "handoff"  # hand the call to a person (the safe line until HITL exists)


class Grounding(_Strict):
    """What reaches the caller's ear is supported: the grounding guard and knowledge answers."""

    guard: bool = Field(
        default=True,
        description="hold back a clause whose numbers, times, days or names nothing supports",
    )
    fallback: GuardFallback = GuardFallback.BEST_PASSAGE
    safe_line: str = Field(
        default="I'd rather check that than guess. Let me check that for you.", min_length=1
    )
    knowledge_answers: AnswerStrategy = Field(
        default=AnswerStrategy.EXTRACTIVE,
        description="how a question the knowledge answers confidently is answered",
    )
    confident_at: float = Field(
        default=0.5, ge=0.0, le=1.0, description="retrieval confidence from which it applies"
    )
    max_answer_words: int = Field(default=40, ge=5, le=200)


class Intent(_Strict):
    """One intent the gateway acts on without the LLM: example phrases and its reply."""

    examples: tuple[str, ...] = ()
    reply: str = Field(min_length=1)


class HumanRequest(_Strict):
    """Example phrases of a caller asking for a person (no reply: the call escalates)."""

    examples: tuple[str, ...] = (
        "I want to talk to a real person.",
        "Can I speak to a human, please?",
        "Let me talk to someone from your staff.",
        "Transfer me to an agent.",
        "I need to speak with a representative.",
        "Get me a manager.",
        "Operator, please.",
        "Put me through to a person.",
        "I don't want to talk to a machine.",
    )


class Intents(_Strict):
    """Out of domain, small talk, goodbye, a person asked for and (optional) in domain, detected
    by an embedding classifier over the examples (the context service embeds the query once for
    retrieval and compares it with them). A query whose closest example scores ``threshold`` or
    more gets that intent."""

    threshold: float = Field(default=0.62, ge=0.0, le=1.0)
    out_of_domain: Intent = Intent(
        examples=(
            "What's the weather like tomorrow?",
            "Who won the football game last night?",
            "Can you tell me a joke?",
            "What is the capital of France?",
            "Who is the president?",
        ),
        reply="Sorry, I can't help with that. I can help with questions about our services.",
    )
    small_talk: Intent = Intent(
        examples=("How are you today?", "Are you a robot?", "Nice to talk to you.", "Hello there"),
        reply="I'm doing well, thank you! How can I help you today?",
    )
    goodbye: Intent = Intent(
        examples=(
            "Thanks, that is all, goodbye.",
            "That's everything, bye.",
            "No, that was all, thank you.",
            "Goodbye.",
            "Thank you, have a nice day, bye bye.",
        ),
        reply="Thank you for calling. Goodbye!",
    )
    hang_up_at: float = Field(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="a goodbye this close to an example ends the call; between threshold and "
        "this the caller is asked whether there is anything else",
    )
    anything_else: str = Field(
        default="You're welcome! Is there anything else I can help you with?", min_length=1
    )
    human: HumanRequest = Field(
        default=HumanRequest(),
        description="the caller asks for a person: the call escalates (escalation section)",
    )
    in_domain: Intent | None = Field(
        default=None,
        description="questions of the agent's own field that its knowledge may not answer (a "
        "patient's sore tooth): when a caller's question is this close (threshold) to one of "
        "these examples, nearer than to any other intent's, and the knowledge does not answer "
        "it confidently, this reply is said, not the deflection nor a guess (true without the "
        "knowledge: what the caller can do, never a diagnosis)",
    )
    min_stt_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="below it the caller is asked to repeat"
    )
    repeat_reply: str = Field(
        default="Sorry, I didn't catch that. Could you say it again?", min_length=1
    )

    def examples(self) -> dict[str, tuple[str, ...]]:
        """Example phrases by intent name."""
        return {
            "out_of_domain": self.out_of_domain.examples,
            "small_talk": self.small_talk.examples,
            "goodbye": self.goodbye.examples,
            "human": self.human.examples,
            "in_domain": self.in_domain.examples if self.in_domain is not None else (),
        }


class Stt(_Strict):
    """Speech recognition for this agent: words to listen for (biasing).

    ``vocabulary``: words and phrases callers say that a general model mishears (names,
    products); they come first. With ``derive_vocabulary`` the agent's own texts add more
    (business name, weekdays, names and service headings of the prompt and knowledge; see
    ``trunkline.agents.vocabulary``). ``boost``: how strongly a backend that weighs phrases
    favours them (Riva ``SpeechContext.boost``); Whisper takes them as its prompt.
    """

    vocabulary: tuple[str, ...] = Field(default=(), max_length=200)
    derive_vocabulary: bool = True
    max_terms: int = Field(default=40, ge=0, le=200, description="cap on the biasing list")
    boost: float = Field(default=4.0, ge=0.0, le=50.0)

    @field_validator("vocabulary")
    @classmethod
    def _phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not v.strip() or len(v) > 100]
        if bad:
            raise ValueError(f"vocabulary entries must be 1..100 characters: {bad!r}")
        return tuple(v.strip() for v in value)


class TurnTakingPolicy(_Strict):
    """How this agent decides that the caller has finished speaking.

    ``semantic_end_of_turn``: at a short pause Smart Turn (an audio model that reads prosody)
    judges whether the turn is complete; at or above ``threshold`` the turn ends after the
    gateway's short silence (``GATEWAY_SMART_TURN_AFTER_MS``) instead of its full silence
    endpoint, which stays the fallback. Off by default: it can cut a caller off at a
    mid-sentence pause (``make bench-turn`` measures how often). ``min_speech_ms``: pauses
    before the caller has said that much are left to the silence endpoint (an opening "Oh,",
    "Sorry," or "Actually," scored complete). The defaults (0.8, 600 ms) cut no turn of the
    recorded phone conversation ``make bench-turn`` judges, natural or inserted pauses alike.
    ``number_hold_ms``: a pause whose transcript ends in a number read out (three or more
    digits: a card, account or phone number in groups) ends the turn only after this much
    silence, not the gateway's endpoint (400 ms), since callers pause between the groups about
    as long as at the end of a question; 0 turns it off (a value at or below the gateway's
    endpoint changes nothing). ``number_lengths``: the lengths of the numbers this agent's
    callers read out whole (its account numbers): a run of exactly that many digits is taken as
    complete and ends the turn at the usual endpoint, so a caller who has read the whole number
    is not made to wait ``number_hold_ms``. A group of that length read first ("441 729", 3+3)
    is still held; a longer number with a prefix of that length (a phone number read 3-3-4)
    ends at the usual endpoint if the caller pauses after that prefix longer than the endpoint.
    """

    semantic_end_of_turn: bool = False
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    min_speech_ms: int = Field(
        default=600, ge=0, le=5000, description="speech before Smart Turn judges a pause"
    )
    number_hold_ms: int = Field(
        default=1000,
        ge=0,
        le=5000,
        description="silence that ends a pause after a number read out (0: off)",
    )
    number_lengths: tuple[int, ...] = Field(
        default=(),
        max_length=8,
        description="digits in a number callers read out whole (an account number): not held",
    )

    @field_validator("number_lengths")
    @classmethod
    def _lengths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [n for n in value if not 3 <= n <= 15]
        if bad:
            raise ValueError(
                f"number_lengths must be 3..15 digits (shorter runs are never held, 16 is a "
                f"whole card and never held): {bad!r}"
            )
        return tuple(sorted(set(value)))


class QualifiedOutcome(_Strict):
    description: str = Field(min_length=1)
    tool: str | None = Field(default=None, description="a successful call of it qualifies")


class AgentSpec(_Strict):
    name: str = Field(pattern=_SLUG)
    version: str = Field(pattern=_VERSION)
    description: str = ""
    system_prompt: str = Field(min_length=1)
    greeting: str = Field(min_length=1)
    filler_text: str = Field(
        default="One moment, please.",
        min_length=1,
        description="spoken while a slow turn (a tool call, a cold start) is still working",
    )
    apology_text: str = Field(
        default="Sorry, I am having trouble right now. Please bear with me.",
        min_length=1,
        description="spoken when a turn's work failed",
    )
    model: ModelSpec = ModelSpec()
    token_budget: TokenBudget = TokenBudget()
    voice: Voice = Voice()
    tools: tuple[ToolSpec, ...] = ()
    retrieval: Retrieval = Retrieval()
    escalation: Escalation = Escalation()
    grounding: Grounding = Grounding()
    intents: Intents = Intents()
    stt: Stt = Stt()
    turn_taking: TurnTakingPolicy = TurnTakingPolicy()
    qualified_outcome: QualifiedOutcome | None = None
    dtmf: dict[str, str] = Field(
        default_factory=dict,
        description="keypad menu: a DTMF key (0-9, *, #, A-D) -> person | repeat | hang_up | "
        "'say: <text>' (trunkline.agents.dtmf); keys not named do nothing",
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="hosts tools and live sources may call ('*.example.com' for subdomains); "
        "empty: each tool only its own endpoint's host",
    )

    @field_validator("dtmf", mode="before")
    @classmethod
    def _menu(cls, value: object) -> dict[str, str]:
        return normalise_menu(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.allowed_hosts:
            urls = [(f"tool {t.name}", t.endpoint) for t in self.tools]
            urls += [(f"live source {s.name}", s.base_url) for s in self.retrieval.live_sources]
            for what, url in urls:
                host = url_host(url)
                if host is not None and not host_allowed(host, self.allowed_hosts):
                    raise ValueError(
                        f"{what}: host {host!r} of {url} is not in allowed_hosts "
                        f"({', '.join(self.allowed_hosts)})"
                    )
        names = [t.name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate tool names: {', '.join(duplicates)}")
        outcome = self.qualified_outcome
        if outcome is not None and outcome.tool is not None and outcome.tool not in names:
            raise ValueError(f"qualified_outcome.tool {outcome.tool!r} is not a declared tool")
        if self.model.sampling.max_reply_tokens >= self.token_budget.prompt_tokens:
            raise ValueError(
                "model.sampling.max_reply_tokens must be smaller than token_budget.prompt_tokens"
            )
        return self

    @property
    def ref(self) -> str:
        """``name@version``: what every turn records."""
        return f"{self.name}@{self.version}"

    def tool(self, name: str) -> ToolSpec:
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(f"agent {self.ref} has no tool {name!r}")

    def tools_for_role(self, role: str) -> tuple[ToolSpec, ...]:
        """The tools a caller with ``role`` may trigger (and so the model may see)."""
        return tuple(t for t in self.tools if role in t.allowed_roles or "*" in t.allowed_roles)


def url_host(url: str) -> str | None:
    """The lower-case host of an http(s) URL (None for ``builtin:`` endpoints)."""
    if not url.startswith(("http://", "https://")):
        return None
    return (urlsplit(url).hostname or "").lower()


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``host`` is one of ``allowed`` (``*.example.com``: any subdomain of example.com)."""
    host = host.lower().rstrip(".")
    for given in allowed:
        pattern = given.lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on the path ``loc`` (a missing key: its parent)."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, found = key.start_mark.line + 1, value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and (0 <= part < len(node.value))
        ):
            found = node.value[part]
            line = found.start_mark.line + 1
        node = found
    return line


def _describe(error: ValidationError, source: str = "", root: yaml.Node | None = None) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        line = _line_of(root, tuple(item["loc"])) if root is not None else None
        at = f"{source}:{line}: " if line is not None else ""
        lines.append(f"  {at}{where}: {item['msg']}")
    return "\n".join(lines)


def parse_agent_spec(text: str, source: str = "<string>") -> AgentSpec:
    """Parse one agent spec from YAML text; raise :class:`AgentSpecError` naming every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentSpecError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise AgentSpecError(f"{source}: an agent spec must be a mapping at the top level")
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        detail = _describe(exc, source, yaml.compose(text, Loader=yaml.SafeLoader))
        raise AgentSpecError(f"{source}: invalid agent spec:\n{detail}") from exc


def load_agent_spec(path: Path) -> AgentSpec:
    """Read and validate an agent spec YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentSpecError(f"{path}: cannot read agent spec: {exc}") from exc
    return parse_agent_spec(text, source=str(path))
