from pathlib import Path

import pytest

from trunkline.agents import (
    AgentSpec,
    AgentSpecError,
    RiskLevel,
    SetOperator,
    load_agent_spec,
    parse_agent_spec,
)

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"

MINIMAL = """
name: tiny
version: "1"
system_prompt: Be brief.
greeting: Hi.
"""


def test_sample_agent_loads_with_tools_and_roles() -> None:
    spec = load_agent_spec(SAMPLE)
    assert spec.ref == "acme-dental@1.0.0"
    assert spec.tool("lookup_account").parameters["required"] == ["account_id"]
    assert [t.name for t in spec.tools_for_role("caller")] == ["lookup_account", "book_appointment"]
    assert [t.name for t in spec.tools_for_role("operator")][-1] == "issue_refund"
    assert spec.tool("issue_refund").requires_approval
    assert spec.tool("issue_refund").risk is RiskLevel.HIGH
    assert spec.qualified_outcome is not None
    assert spec.qualified_outcome.tool == "book_appointment"
    assert spec.turn_taking.number_lengths == (6,)  # its account numbers (crm.json)
    assert spec.tool("lookup_account").call_when_heard  # the gateway looks a heard number up
    assert [a.when for a in spec.tool("lookup_account").answers] == [
        {"found": True},
        {"found": True},
        {"found": False},
    ]


def test_minimal_spec_gets_defaults_and_is_frozen() -> None:
    spec = parse_agent_spec(MINIMAL)
    assert spec.model.sampling.max_reply_tokens == 160
    assert spec.tools == ()
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_the_path() -> None:
    with pytest.raises(AgentSpecError, match=r"model\.sampling\.temprature: Extra inputs"):
        parse_agent_spec(MINIMAL + "model:\n  sampling:\n    temprature: 0.5\n", source="x.yaml")


def test_every_problem_is_listed_with_the_source() -> None:
    text = "name: Not A Slug\nversion: '1'\nsystem_prompt: ''\n"
    with pytest.raises(AgentSpecError) as info:
        parse_agent_spec(text, source="bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml: invalid agent spec")
    for where in ("name:", "system_prompt:", "greeting:"):
        assert where in message


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            "tools:\n  - {name: a, description: d, endpoint: 'http://x', allowed_roles: [c]}\n"
            "  - {name: a, description: d, endpoint: 'http://x', allowed_roles: [c]}\n",
            "duplicate tool names: a",
        ),
        ("qualified_outcome: {description: booked, tool: nope}\n", "not a declared tool"),
        (
            "tools:\n  - {name: a, description: d, endpoint: 'ftp://x', allowed_roles: [c]}\n",
            "endpoint must be",
        ),
        (
            "tools:\n  - name: a\n    description: d\n    endpoint: http://x\n"
            "    allowed_roles: [c]\n    parameters: {type: string}\n",
            "type: object",
        ),
        (
            "tools:\n  - name: a\n    description: d\n    endpoint: http://x\n"
            "    allowed_roles: [c]\n    parameters: {type: object, required: [q]}\n",
            "required must list",
        ),
        (
            "tools:\n  - {name: a, description: d, endpoint: 'http://x', allowed_roles: []}\n",
            "allowed_roles",
        ),
        ("token_budget: {prompt_tokens: 100}\n", "max_reply_tokens must be smaller"),
        (
            "tools:\n  - name: a\n    description: d\n    endpoint: http://x\n"
            "    allowed_roles: [c]\n    risk: medium\n    call_when_heard: true\n"
            "    parameters: {type: object, properties: {q: {type: string}}, required: [q]}\n",
            "call_when_heard is only for risk: low",
        ),
        (
            "tools:\n  - {name: a, description: d, endpoint: 'http://x', allowed_roles: [c],"
            " call_when_heard: true}\n",
            "call_when_heard needs required arguments",
        ),
        (
            "tools:\n  - {name: a, description: d, endpoint: 'http://x', allowed_roles: [c],"
            " answers: [{say: hi}]}\n",
            "answers are said for a call_when_heard tool only",
        ),
        (
            "tools:\n  - name: a\n    description: d\n    endpoint: http://x\n"
            "    allowed_roles: [c]\n    call_when_heard: true\n"
            "    parameters: {type: object, properties: {q: {type: string}}, required: [q]}\n"
            "    answers: [{say: '{balance:.2f} dollars'}]\n",
            "must be a plain result field name",
        ),
        ("turn_taking: {number_lengths: [6, 16]}\n", r"number_lengths must be 3\.\.15"),
        ("turn_taking: {number_lengths: [2]}\n", r"number_lengths must be 3\.\.15"),
    ],
)
def test_invalid_specs_are_rejected_clearly(extra: str, needle: str) -> None:
    with pytest.raises(AgentSpecError, match=needle):
        parse_agent_spec(MINIMAL + extra)


def test_not_yaml_and_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AgentSpecError, match="not valid YAML"):
        parse_agent_spec("a: [1,")
    with pytest.raises(AgentSpecError, match="mapping at the top level"):
        parse_agent_spec("- 1\n- 2\n")
    with pytest.raises(AgentSpecError, match="cannot read"):
        load_agent_spec(tmp_path / "missing.yaml")


def test_unknown_tool_lookup_names_the_agent() -> None:
    spec = AgentSpec.model_validate(
        {"name": "t", "version": "1", "system_prompt": "s", "greeting": "g"}
    )
    with pytest.raises(KeyError, match="t@1 has no tool 'x'"):
        spec.tool("x")


def test_sample_agent_declares_live_sources_for_set_algebra() -> None:
    retrieval = load_agent_spec(SAMPLE).retrieval
    assert retrieval.data_sources == ("acme-dental-faq", "acme-dental-prices")
    source = retrieval.live_source("appointments")
    assert source.url_template == "http://127.0.0.1:8090/accounts/{account_id}/appointments"
    assert source.entity_key == "appointment_id"
    assert [(o.op, o.source) for o in retrieval.set_operations] == [
        (SetOperator.UNION, "appointments")
    ]
    assert 0 < retrieval.min_confidence < retrieval.near_duplicate_threshold <= 1


def test_retrieval_defaults_keep_older_specs_valid() -> None:
    retrieval = parse_agent_spec(MINIMAL).retrieval
    assert (retrieval.candidates, retrieval.near_duplicate_threshold) == (20, 0.8)
    assert retrieval.min_confidence == 0.25
    assert retrieval.live_sources == ()
    assert retrieval.set_operations == ()
    with pytest.raises(KeyError, match="no live source 'crm'"):
        retrieval.live_source("crm")


LIVE = "retrieval:\n  live_sources:\n    - {name: crm, base_url: 'http://c', entity_key: id%s}\n"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            "retrieval:\n  set_operations: [{op: union, source: crm}]\n",
            "undeclared live sources: crm",
        ),
        (
            LIVE % "}\n    - {name: crm, base_url: 'http://d', entity_key: id",
            "duplicate live source",
        ),
        (LIVE % ", path: nope", "path must start with '/'"),
        (LIVE.replace("http://c", "ftp://c") % "", "base_url must be an http"),
        (LIVE % "" + "  set_operations: [{op: xor, source: crm}]\n", "set_operations.0.op"),
        (LIVE % "" + "  near_duplicate_threshold: 0\n", "near_duplicate_threshold"),
    ],
)
def test_invalid_retrieval_is_rejected_clearly(extra: str, needle: str) -> None:
    with pytest.raises(AgentSpecError, match=needle):
        parse_agent_spec(MINIMAL + extra)


def test_sample_agent_grounds_its_answers_and_names_its_intents() -> None:
    spec = load_agent_spec(SAMPLE)
    assert spec.grounding.guard
    assert spec.grounding.knowledge_answers == "extractive"
    assert spec.grounding.fallback == "best_passage"
    examples = spec.intents.examples()
    assert set(examples) == {"out_of_domain", "small_talk", "goodbye", "human", "in_domain"}
    assert "Thanks, that is all, goodbye." in examples["goodbye"]
    assert "My filling fell out." in examples["in_domain"]
    assert spec.intents.in_domain is not None
    assert "press 9" in spec.intents.in_domain.reply
    assert "Acme Dental" in spec.intents.out_of_domain.reply


def test_grounding_and_intent_settings_are_validated() -> None:
    with pytest.raises(AgentSpecError, match=r"grounding\.knowledge_answers"):
        parse_agent_spec(MINIMAL + "grounding:\n  knowledge_answers: guess\n")
    with pytest.raises(AgentSpecError, match=r"intents\.threshold"):
        parse_agent_spec(MINIMAL + "intents:\n  threshold: 1.5\n")
    with pytest.raises(AgentSpecError, match=r"intents\.goodbye\.reply"):
        parse_agent_spec(MINIMAL + "intents:\n  goodbye:\n    examples: [bye]\n")
    with pytest.raises(AgentSpecError, match=r"intents\.in_domain\.reply"):
        parse_agent_spec(MINIMAL + "intents:\n  in_domain:\n    examples: [my tooth hurts]\n")
    spec = parse_agent_spec(MINIMAL)
    assert spec.intents.goodbye.examples  # defaults: every agent detects a goodbye
    assert spec.intents.in_domain is None
    assert spec.intents.examples()["in_domain"] == ()
