"""``trunkline eval`` up to the point where it needs a stack, the CRM serving several agents,
and how a finished call becomes what the eval scores (no servers)."""

import json
from pathlib import Path

import numpy as np
import pytest

from trunkline.agents import load_agent_spec
from trunkline.cli.caller import CallResult, TurnResult
from trunkline.cli.evalcall import CallEvents, StackDriver, reply_audio
from trunkline.cli.main import main
from trunkline.cli.plan import crm_argv, crm_files
from trunkline.cli.samplecrm import Crm
from trunkline.cli.tenants import ensure_tenant, read_tenants
from trunkline.evaluation import TurnEvent

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"


@pytest.fixture(autouse=True)
def _agents(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRUNKLINE_STACK_AGENTS_DIR", str(AGENTS))
    monkeypatch.setenv("TRUNKLINE_STACK_RUN_DIR", str(tmp_path / "run"))


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["eval", *args])
    return int(done.value.code or 0)


def test_list_shows_every_sample_scenario_without_a_stack(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run("--list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 40
    assert any(line.startswith("volt-join-fee ") for line in lines)
    assert not (tmp_path / "run" / "stack.json").exists()
    assert run("--list", "--tag", "smoke", "--agent", "volt-energy") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["volt-outage"]


def test_a_bad_scenario_file_is_refused_with_its_line_before_any_stack_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: acme-dental\nscenarios:\n  - name: a\n    turns:\n      - sya: hi\n")
    assert run(str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: unknown turn key 'sya'" in err
    assert not (tmp_path / "run" / "stack.json").exists()


def test_an_unknown_agent_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: acme-dentist\nscenarios:\n  - name: a\n    turns: [hi]\n")
    assert run(str(bad)) == 2
    assert (f"{bad}:3: scenario 'a': unknown agent 'acme-dentist' (known: acme-dental, "
            "volt-energy)") in capsys.readouterr().err  # fmt: skip


def test_the_second_sample_agent_validates_and_has_its_knowledge() -> None:
    spec = load_agent_spec(AGENTS / "volt-energy.yaml")
    assert [t.name for t in spec.tools_for_role("caller")] == ["lookup_account"]
    for kb in spec.retrieval.data_sources:
        assert list((AGENTS / "volt-energy" / "knowledge" / kb).glob("*.md")), kb


def test_one_crm_serves_every_agents_accounts(tmp_path: Path) -> None:
    files = crm_files(AGENTS)
    assert files == [AGENTS / "acme-dental" / "crm.json", AGENTS / "volt-energy" / "crm.json"]
    argv = crm_argv("python", 8090, files)
    assert argv[-4:] == ["--data", str(files[0]), "--data", str(files[1])]
    crm = Crm.load(*files)
    assert crm.lookup("441729")["name"] == "Dana Whitfield"
    assert crm.lookup("730514")["plan"] == "Volt Fixed 12, electricity and gas"
    clash = tmp_path / "crm.json"
    clash.write_text(json.dumps({"accounts": [{"account_id": "730514"}]}))
    with pytest.raises(ValueError, match="account 730514 is also in"):
        Crm.load(files[1], clash)


def test_every_tenant_of_the_stack_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    ensure_tenant(path, "acme", ("acme-dental", "volt-energy"))
    ensure_tenant(path, "other", ("volt-energy",))
    tenants = read_tenants(path)
    assert {n: t.agents for n, t in tenants.items()} == {
        "acme": ("acme-dental", "volt-energy"), "other": ("volt-energy",),
    }  # fmt: skip
    assert read_tenants(tmp_path / "none.yaml") == {}


def _turn(i: int, start: float, end: float, v2v: float | None) -> TurnResult:
    return TurnResult(
        index=i, source="tts", caller_text=f"turn {i}", caller_audio_ms=end - start,
        speech_start_ms=start, speech_end_ms=end, voice_to_voice_ms=v2v,
        reply_played_ms=None, reply_received_ms=0.0, barge_in_at_ms=None,
        agent_was_speaking=None, barge_in_clear_ms=None, barge_in_stop_ms=None,
        outcome="answered" if v2v is not None else "no reply",
    )  # fmt: skip


def test_a_finished_call_becomes_turns_with_their_events() -> None:
    result = CallResult(
        call_sid="CA1", stream_sid="MZ1", url="ws://x", started_at="", duration_ms=30_000.0,
        greeting=None, turns=[_turn(0, 5_000, 7_000, 450.0), _turn(1, 15_000, 16_000, None)],
        frames_sent=1500, max_send_late_ms=0.0, marks_received=0, marks_echoed=0, clears=0,
        ended_by="server closed the stream (code 1000)",
    )  # fmt: skip
    t0 = 1_000.0
    events = CallEvents(
        turns=[
            TurnEvent(1_003.0, "", "Hello", reply_source="greeting"),
            TurnEvent(1_009.0, "turn zero", "Reply zero"),
            TurnEvent(1_017.0, "turn one", "Goodbye!", reply_source="goodbye", hang_up=True),
        ],
        escalations=[1_016.0],
        end_reason="agent_hangup",
    )
    seen = StackDriver._seen(result, events, t0, ["reply zero", None])
    assert seen.greeting == "Hello"
    assert [t.reply for t in seen.turns] == ["Reply zero", "Goodbye!"]
    assert [t.escalated for t in seen.turns] == [False, True]
    assert [t.answered for t in seen.turns] == [True, False]
    assert seen.turns[0].reply_heard == "reply zero"
    assert (seen.end_reason, seen.call_id) == ("agent_hangup", "CA1")


def test_reply_audio_starts_at_the_first_sound_of_the_reply() -> None:
    agent = np.zeros(16_000 * 4, dtype=np.int16)
    agent[16_000 * 2 : 16_000 * 3] = 4000
    pcm = reply_audio(agent, 1_000.0, 3_500.0)
    assert len(pcm) == 2 * 24_000  # from 2.0 s (the first sound) to 3.5 s, 16-bit
    assert np.frombuffer(pcm, np.int16)[0] == 4000
    assert reply_audio(agent, 0.0, 1_000.0) == b""
