"""The gateway's agents: through the one loader, and swapped in place from the API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from trunkline.agents import AgentSpecError, parse_agent_spec
from trunkline.gateway.agent_source import swap
from trunkline.gateway.profile import AgentProfile, load_profiles, profile_of

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"


def spec_text(**changes: object) -> str:
    data = yaml.safe_load(SAMPLE.read_text())
    data.update(changes)
    return yaml.safe_dump(data)


def test_filler_and_apology_come_from_the_yaml(tmp_path: Path) -> None:
    file = tmp_path / "acme-dental.yaml"
    file.write_text(spec_text(filler_text="Hang on a sec.", apology_text="Oops, bear with me."))
    profile = load_profiles(tmp_path)["acme-dental"]
    assert (profile.filler_text, profile.apology_text) == ("Hang on a sec.", "Oops, bear with me.")


def test_a_bad_file_is_an_error_with_its_line(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "acme-dental.yaml")
    (tmp_path / "broken.yaml").write_text("name: acme\nversion: 1\ngreeting: 7\nfiller_text: ''\n")
    with pytest.raises(AgentSpecError, match=r"broken\.yaml:\d+: "):
        load_profiles(tmp_path)


def test_swap_changes_the_same_mapping_and_keeps_unchanged_versions() -> None:
    v1 = parse_agent_spec(spec_text(version="1.0.0"))
    v2 = parse_agent_spec(spec_text(version="1.1.0"))
    other = parse_agent_spec(spec_text(name="other", version="3.0.0"))
    profiles: dict[str, AgentProfile] = {}
    swap(profiles, {"acme-dental": v1, "other": other})
    kept = profiles["other"]
    same = profiles
    swap(profiles, {"acme-dental": v2, "other": other})
    assert profiles is same
    assert profiles["acme-dental"].version == "1.1.0"
    assert profiles["other"] is kept  # an unchanged version keeps its profile
    swap(profiles, {"other": other})
    assert set(profiles) == {"other"}
    assert profile_of(v2).version == "1.1.0"
