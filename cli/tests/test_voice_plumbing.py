"""The demo's plumbing: the local tenant file, the knowledge layout, the stack's app settings,
and the tables the demo prints."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from trunkline.cli.demo import conversation, stage_table
from trunkline.cli.knowledge import KnowledgeError, knowledge_files
from trunkline.cli.plan import (
    GATEWAY_HTTP,
    PORT_NAMES,
    SERVICES,
    AppConfig,
    allocate_ports,
    app_env,
    service_env,
)
from trunkline.cli.record import Component, StackRecord
from trunkline.cli.stack import library_dir
from trunkline.cli.tenants import TenantError, agent_names, ensure_tenant, read_tenant
from trunkline.cli.turns import HeardTurn

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_agents_are_found_by_name() -> None:
    assert "acme-dental" in agent_names(ROOT / "agents")


def test_an_empty_agents_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TenantError, match="no agent spec"):
        agent_names(tmp_path)


def test_tenant_secrets_are_created_once_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    first = ensure_tenant(path, "acme", ("acme-dental",))
    again = ensure_tenant(path, "acme", ("acme-dental", "other"))
    assert again.stream_secret == first.stream_secret
    assert len(first.stream_secret) == 32
    assert read_tenant(path, "acme").agents == ("acme-dental", "other")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(TenantError, match="no tenant 'nobody'"):
        read_tenant(path, "nobody")


def test_the_sample_knowledge_is_laid_out_by_knowledge_base() -> None:
    files = knowledge_files(ROOT / "agents" / "acme-dental" / "knowledge")
    assert {f.knowledge_base for f in files} == {"acme-dental-faq", "acme-dental-prices"}
    assert all(f.mime_type == "text/markdown" for f in files)


def test_a_knowledge_folder_without_documents_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "notes.xyz").write_text("x")
    with pytest.raises(KnowledgeError, match="no documents"):
        knowledge_files(tmp_path)


def test_the_stack_configures_agents_tenants_and_knowledge(tmp_path: Path) -> None:
    ports = allocate_ports(PORT_NAMES, 21000, free_port=lambda: 0)
    app = AppConfig(tmp_path / "agents", tmp_path / "tenants.yaml", str(tmp_path / "kb.db"))
    env = {
        spec.name: service_env(
            spec, ports, nats_url="n", redis_url="r", otlp_endpoint="o", drain_seconds=1, app=app
        )
        for spec in SERVICES
    }
    assert env["gateway"]["GATEWAY_HTTP_PORT"] == str(ports[GATEWAY_HTTP])
    assert env["gateway"]["GATEWAY_TENANTS_FILE"] == str(tmp_path / "tenants.yaml")
    assert env["gateway"]["GATEWAY_AGENTS_PATH"] == str(tmp_path / "agents")
    assert env["gateway"]["GATEWAY_ENDPOINT_MS"] == "380"
    assert env["gateway"]["GATEWAY_SPECULATIVE_START"] == "true"
    assert env["llm"]["LLM_AGENTS_DIR"] == str(tmp_path / "agents")
    assert env["context"]["CONTEXT_MILVUS_URI"] == str(tmp_path / "kb.db")
    assert not any(k.endswith(("AGENTS_DIR", "MILVUS_URI")) for k in env["tts"])
    assert "LLM_LIBRARY_DIR" not in env["llm"]  # no build for this CPU: the wheel's
    built = AppConfig(tmp_path, tmp_path / "t.yaml", "kb", llm_library_dir=tmp_path / "llama")
    llm = app_env(next(s for s in SERVICES if s.name == "llm"), ports, built)
    assert llm["LLM_LIBRARY_DIR"] == str(tmp_path / "llama")


def test_the_stack_passes_a_llama_build_only_where_make_install_made_one(tmp_path: Path) -> None:
    assert library_dir(tmp_path / "missing") is None
    (tmp_path / "llama").mkdir()
    assert library_dir(tmp_path / "llama") == (tmp_path / "llama").resolve()


def test_a_record_keeps_how_each_service_was_started() -> None:
    record = StackRecord(run_dir="/r", media_url="ws://x/twilio/stream", tenants_file="/r/t")
    record.components.append(Component("tts", "service", 1, "a", pid=5, argv=["p"], env={"A": "1"}))
    loaded = StackRecord.from_json(record.to_json())
    assert loaded == record
    tts = loaded.get("tts")
    assert tts is not None
    tts.pid = 6
    loaded.replace(tts)
    assert [c.pid for c in loaded.components] == [6]


def test_the_conversation_marks_a_cut_reply_and_shows_what_was_generated() -> None:
    turns = [
        HeardTurn("", "Hello, this is Ava.", "Hello, this is Ava.", False, {}),
        HeardTurn("how much", "Whitening costs", "Whitening costs 299 dollars.", True,
                  {"stt.final": 120.4, "turn.response": 610.0}),
    ]  # fmt: skip
    text = conversation(turns)
    assert "caller: how much" in text
    assert "agent : Whitening costs [cut off by the caller]" in text
    assert "(generated: Whitening costs 299 dollars.)" in text
    table = stage_table(turns).splitlines()
    assert table[0].split()[:3] == ["turn", "endpoint", "stt"]
    assert table[2].split()[:3] == ["0", "-", "120"]
    assert table[2].split()[-1] == "610"
