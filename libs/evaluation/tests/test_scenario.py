from pathlib import Path

import pytest

from trunkline.evaluation import (
    ActionKind,
    ScenarioError,
    check_references,
    load_agent_sources,
    load_scenarios,
    parse_scenarios,
    select,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
AGENTS = ROOT / "agents"

GOOD = """
agent: acme-dental
tenant: acme
latency_ms: 1500
tags: [acme]
scenarios:
  - name: hours
    tags: [smoke]
    turns:
      - say: When are you open on Saturday?
        must_contain: [9 am, [1 pm, one p.m.]]
        must_not_contain: [6 pm]
        not_actions: [deflection]
      - say: Look up account 441729.
        actions:
          - tool: lookup_account
            arguments: {account_id: 441729}
        latency_ms: 4000
      - say: Bye.
        actions: [hang_up, escalation, {reply_source: goodbye}]
  - name: other
    agent: volt-energy
    tenant: volt
    caller_role: operator
    turns:
      - Who won the Super Bowl?
"""


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(GOOD.splitlines(), 1) if text in line)


def test_a_scenario_file_parses_with_defaults_and_overrides() -> None:
    hours, other = parse_scenarios(GOOD, "good.yaml")
    assert (hours.name, hours.agent, hours.tenant, hours.caller_role) == (
        "hours", "acme-dental", "acme", "caller",
    )  # fmt: skip
    assert hours.tags == ("acme", "smoke")
    first, lookup, bye = hours.turns
    assert first.must_contain == (("9 am",), ("1 pm", "one p.m."))
    assert first.must_not_contain == ("6 pm",)
    assert [a.kind for a in first.not_actions] == [ActionKind.DEFLECTION]
    assert first.latency_ms == 1500
    assert str(first.where) == f"good.yaml:{line_of('When are you open')}"
    assert lookup.latency_ms == 4000
    assert lookup.actions[0].arguments == (("account_id", "441729"),)
    assert lookup.actions[0].status == "succeeded"
    assert [a.kind for a in bye.actions] == [
        ActionKind.HANG_UP, ActionKind.ESCALATION, ActionKind.REPLY_SOURCE,
    ]  # fmt: skip
    assert (other.agent, other.tenant, other.caller_role) == ("volt-energy", "volt", "operator")
    assert other.turns[0].text == "Who won the Super Bowl?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "scenarios:\n  - name: a\n    agent: x\n    turns:\n      - sya: hi\n",
            ["bad.yaml:5: unknown turn key 'sya'", "bad.yaml:5: a turn needs 'say'"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - say: hi\n"
            "        must_contain: [yes]\n",
            ["bad.yaml:6: must_contain item must be text, got True"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - say: hi\n"
            "        actions: [dance]\n",
            ["bad.yaml:6: unknown action 'dance'"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - say: hi\n        say: ho\n",
            ["bad.yaml:6: duplicate key 'say' (first on line 5)"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns: []\n",
            ["bad.yaml:4: a scenario needs a non-empty list 'turns'"],
        ),
        ("scenarios:\n  - name: a\n    turns: [hi]\n", ["bad.yaml:2: no agent"]),
        (
            "agent: x\nscenarios:\n  - name: Bad Name\n    turns: [hi]\n",
            ["bad.yaml:3: scenario name 'Bad Name'"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - wav: nowhere.wav\n",
            ["bad.yaml:5: no WAV file"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - say: hi\n"
            "        latency_ms: fast\n",
            ["bad.yaml:6: latency_ms must be a number >= 0, got 'fast'"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n      - say: hi\n"
            "        actions: [{reply_source: poetry}]\n",
            ["bad.yaml:6: unknown reply source 'poetry'"],
        ),
        (
            "agent: x\nscenarios:\n  - name: a\n    turns:\n   - say: [unclosed\n",
            ["bad.yaml:5: not valid YAML"],
        ),
        ("just text", ["bad.yaml:1: expected a mapping with a 'scenarios' list"]),
    ],
)
def test_each_problem_names_the_file_and_line(text: str, expected: list[str]) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenarios(text, "bad.yaml", Path("/nonexistent"))
    problems = caught.value.problems
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)


def test_every_problem_of_every_file_is_reported_and_names_are_unique(tmp_path: Path) -> None:
    one = "agent: x\nscenarios:\n  - name: same\n    turns: [hi]\n"
    (tmp_path / "a.yaml").write_text(one)
    (tmp_path / "b.yaml").write_text(one)
    (tmp_path / "c.yaml").write_text("agent: x\nscenarios:\n  - name: c\n    turns: 3\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenarios([tmp_path])
    a, b, c = (tmp_path / f"{n}.yaml" for n in "abc")
    assert caught.value.problems == (
        f"{c}:4: a scenario needs a non-empty list 'turns'",
        f"{b}:3: scenario name 'same' already used at {a}:3",
    )
    with pytest.raises(ScenarioError, match="no such file or folder"):
        load_scenarios([tmp_path / "missing.yaml"])


def test_a_folder_mounted_from_a_configmap_reads_each_file_once(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links into a hidden ``..<timestamp>`` folder."""
    stamp = tmp_path / "..2026_12_03_22_00_00.123"
    stamp.mkdir()
    (stamp / "replay.yaml").write_text("agent: x\nscenarios:\n  - name: one\n    turns: [hi]\n")
    (tmp_path / "..data").symlink_to(stamp.name)
    (tmp_path / "replay.yaml").symlink_to(Path("..data") / "replay.yaml")
    assert [s.name for s in load_scenarios([tmp_path])] == ["one"]


def test_unknown_agents_and_tenants_are_named() -> None:
    scenarios = parse_scenarios(GOOD, "good.yaml")
    with pytest.raises(ScenarioError) as caught:
        check_references(scenarios, {"acme-dental"})
    other = line_of("name: other")
    assert str(caught.value) == (
        f"good.yaml:{other}: scenario 'other': unknown agent 'volt-energy' (known: acme-dental)"
    )
    agents = {"acme-dental", "volt-energy"}
    with pytest.raises(ScenarioError) as caught:
        check_references(scenarios, agents, {"acme": ["acme-dental", "volt-energy"]})
    assert str(caught.value) == (
        f"good.yaml:{other}: scenario 'other': unknown tenant 'volt' (the stack has: acme)"
    )
    with pytest.raises(ScenarioError, match="tenant 'acme' does not serve agent 'acme-dental'"):
        check_references(scenarios, agents, {"acme": ["volt-energy"], "volt": ["volt-energy"]})
    check_references(scenarios, agents, {"acme": list(agents), "volt": ["volt-energy"]})


def test_select_filters_and_refuses_unknown_names() -> None:
    scenarios = parse_scenarios(GOOD, "good.yaml")
    assert [s.name for s in select(scenarios, tags=["smoke"])] == ["hours"]
    assert [s.name for s in select(scenarios, agents=["volt-energy"])] == ["other"]
    with pytest.raises(ScenarioError, match="no scenario named 'nope'"):
        select(scenarios, names=["nope"])


def test_the_sample_scenarios_cover_both_agents_and_their_references_hold() -> None:
    scenarios = load_scenarios(sorted(AGENTS.glob("*/eval")))
    sources = load_agent_sources(AGENTS)
    check_references(scenarios, sources, {"acme": list(sources)}, "acme")
    assert len(scenarios) >= 40
    agents = {s.agent for s in scenarios}
    assert agents == {"acme-dental", "volt-energy"}
    kinds = {a.kind for s in scenarios for t in s.turns for a in t.actions}
    assert kinds >= {ActionKind.TOOL, ActionKind.DEFLECTION, ActionKind.HANG_UP,
                     ActionKind.ESCALATION}  # fmt: skip
    smoke = select(scenarios, tags=["smoke"])
    assert 3 <= len(smoke) <= 5
