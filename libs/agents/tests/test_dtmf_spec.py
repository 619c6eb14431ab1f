"""The agent spec's keypad menu (``dtmf``): digits as YAML writes them, every action form, and a
clear error naming the file, the line and the key for an unknown key or action."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.agents import AgentSpecError, load_agent_spec, parse_agent_spec
from trunkline.agents.dtmf import KeyAction, MenuItem, menu_items

pytestmark = pytest.mark.unit

BASE = "name: a\nversion: '1'\nsystem_prompt: You help.\ngreeting: Hi.\n"
SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"


def test_a_menu_reads_with_unquoted_digits_and_every_action() -> None:
    spec = parse_agent_spec(
        BASE + "dtmf:\n  0: person\n  '9': repeat\n  '1': 'say:  We open at eight.'\n"
        "  '#': hang_up\n  '*': ' repeat '\n"
    )
    assert spec.dtmf == {
        "0": "person",
        "9": "repeat",
        "1": "say: We open at eight.",
        "#": "hang_up",
        "*": "repeat",
    }
    items = menu_items(spec.dtmf)
    assert items["1"] == MenuItem(KeyAction.SAY, "We open at eight.")
    assert items["0"] == MenuItem(KeyAction.PERSON)
    assert parse_agent_spec(BASE).dtmf == {}  # no menu: keys do nothing


@pytest.mark.parametrize(
    ("menu", "message"),
    [
        ("  12: person\n", "unknown key 12; keys are one of 0-9, *, #, A-D"),
        ("  'x': person\n", "unknown key 'x'"),
        ("  '1': transfer\n", "dtmf key '1': unknown action 'transfer'; use person, repeat"),
        ("  '1': 'say:'\n", "dtmf key '1': 'say:' needs the text to say"),
        ("  '1': say\n", "dtmf key '1': 'say' needs its text"),
        ("  '1': 3\n", "dtmf key '1': the action must be a string"),
    ],
)
def test_a_bad_menu_names_file_line_and_key(menu: str, message: str) -> None:
    with pytest.raises(AgentSpecError) as error:
        parse_agent_spec(BASE + "dtmf:\n" + menu, source="agents/a.yaml")
    assert "agents/a.yaml:5: dtmf:" in str(error.value)
    assert message in str(error.value)


def test_the_sample_agent_offers_a_person_and_a_repeat() -> None:
    menu = menu_items(load_agent_spec(SAMPLE).dtmf)
    assert menu["0"].action is KeyAction.PERSON
    assert menu["9"].action is KeyAction.REPEAT
