"""The one agent loader: files and folders, VoiceAgent manifests, every problem with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.agents import AgentSpecError, parse_agent_spec
from trunkline.agents.loader import load_agent_file, load_agents, spec_from_resource

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"

MINIMAL = """name: tiny
version: "1"
system_prompt: Be brief.
greeting: Hi.
"""


def test_filler_and_apology_texts_come_from_yaml() -> None:
    spec = parse_agent_spec(MINIMAL + "filler_text: Hold on.\napology_text: So sorry.\n")
    assert spec.filler_text == "Hold on."
    assert spec.apology_text == "So sorry."
    defaults = parse_agent_spec(MINIMAL)
    assert defaults.filler_text == "One moment, please."
    assert defaults.apology_text.startswith("Sorry, I am having trouble")


def test_problems_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "model:\n  sampling:\n    temprature: 0.5\ntools:\n  - name: x\n")
    with pytest.raises(AgentSpecError) as info:
        load_agent_file(bad)
    message = str(info.value)
    assert f"{bad}:7: model.sampling.temprature: Extra inputs are not permitted" in message
    # a missing key points at its parent's line
    assert f"{bad}:9: tools.0.description: Field required" in message


def test_folder_loads_every_agent_and_reports_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yml").write_text(MINIMAL.replace("tiny", "other"))
    assert sorted(load_agents(tmp_path)) == ["other", "tiny"]
    (tmp_path / "c.yaml").write_text("name: [\n")
    (tmp_path / "d.yaml").write_text(MINIMAL.replace("Hi.", "''"))
    (tmp_path / "e.yaml").write_text(MINIMAL)
    with pytest.raises(AgentSpecError) as info:
        load_agents(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'c.yaml'}: not valid YAML" in message
    assert f"{tmp_path / 'd.yaml'}:4: greeting: String should have at least 1 character" in message
    assert (
        f"{tmp_path / 'e.yaml'}: agent 'tiny' is already defined in {tmp_path / 'a.yaml'}"
        in message
    )


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentSpecError, match="no such agent file or folder"):
        load_agents(tmp_path / "nope")


def test_voiceagent_manifest_file_loads_as_its_spec(tmp_path: Path) -> None:
    body = "\n".join("    " + line for line in MINIMAL.splitlines())
    manifest = tmp_path / "tiny.yaml"
    manifest.write_text(
        f"apiVersion: trunkline.dev/v1alpha1\nkind: VoiceAgent\nmetadata:\n  name: tiny-1\n"
        f"spec:\n{body}\n"
    )
    assert load_agent_file(manifest) == parse_agent_spec(MINIMAL)
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(AgentSpecError, match="must be kind VoiceAgent"):
        load_agent_file(manifest)


def test_resource_spec_and_its_errors() -> None:
    resource = {
        "metadata": {"name": "tiny-1", "namespace": "voice"},
        "spec": {"name": "tiny", "version": "1", "system_prompt": "x", "greeting": "y"},
    }
    assert spec_from_resource(resource).ref == "tiny@1"
    resource["spec"] = {**resource["spec"], "model": {"sampling": {"max_reply_tokens": 4000}}}
    with pytest.raises(AgentSpecError) as info:
        spec_from_resource(resource)
    assert str(info.value).startswith("VoiceAgent voice/tiny-1: invalid agent spec")
    assert "max_reply_tokens must be smaller than token_budget.prompt_tokens" in str(info.value)


def test_sample_agent_loads_through_the_loader() -> None:
    assert load_agents(SAMPLE)["acme-dental"].ref.startswith("acme-dental@")
