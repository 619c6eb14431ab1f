"""The Go tools' pins, cache layout and lookup; the Jaeger configuration the stack runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trunkline.devservers.gotools import (
    HELM,
    JAEGER,
    LIVEKIT,
    LIVEKIT_SIP,
    TOOLS,
    ToolMissingError,
    find_tool,
    tool_path,
    tools_dir,
)
from trunkline.devservers.jaeger import jaeger_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_versions_are_pinned_to_the_approved_releases() -> None:
    assert JAEGER.version == "v1.75.0"  # the approved release; newer ones are not
    assert HELM.package.startswith("helm.sh/helm/v4/")
    assert HELM.version.startswith("v4.3.")
    assert set(TOOLS) == {"helm", "jaeger", "livekit-server", "livekit-sip"}


def test_livekit_module_requires_exactly_the_pinned_version() -> None:
    assert LIVEKIT.module is not None
    go_mod = (ROOT / LIVEKIT.module / "go.mod").read_text()
    assert f"github.com/livekit/livekit-server {LIVEKIT.version}" in go_mod
    assert f"tool {LIVEKIT.package}" in go_mod
    # From v1.13.6 on livekit-server replaces pion modules with forks the proxy refuses.
    assert not [line for line in go_mod.splitlines() if line.startswith("replace")]
    assert "github.com/livekit/livekit-server " in (ROOT / LIVEKIT.module / "go.sum").read_text()


def test_livekit_sip_module_requires_exactly_the_pinned_version() -> None:
    assert LIVEKIT_SIP.module is not None
    go_mod = (ROOT / LIVEKIT_SIP.module / "go.mod").read_text()
    assert f"github.com/livekit/sip {LIVEKIT_SIP.version}" in go_mod
    assert f"tool {LIVEKIT_SIP.package}" in go_mod
    assert not [line for line in go_mod.splitlines() if line.startswith("replace")]
    assert "github.com/livekit/sip " in (ROOT / LIVEKIT_SIP.module / "go.sum").read_text()
    # cgo codecs: the build needs their headers (make sip-deps installs the missing ones)
    assert LIVEKIT_SIP.cgo
    assert {"libopus-dev", "libopusfile-dev", "libsoxr-dev"} <= set(LIVEKIT_SIP.apt)
    assert f"version.Version={LIVEKIT_SIP.version}" in LIVEKIT_SIP.ldflags


def test_jaeger_module_requires_exactly_the_pinned_version() -> None:
    assert JAEGER.module is not None
    go_mod = (ROOT / JAEGER.module / "go.mod").read_text()
    assert f"github.com/jaegertracing/jaeger {JAEGER.version}" in go_mod
    assert f"tool {JAEGER.package}" in go_mod
    assert "github.com/jaegertracing/jaeger " in (ROOT / JAEGER.module / "go.sum").read_text()


def test_cache_is_keyed_by_name_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUNKLINE_TOOLS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tools_dir() == tmp_path / "xdg" / "trunkline" / "tools"
    assert tool_path(JAEGER) == tools_dir() / "jaeger-v1.75.0" / "jaeger"
    monkeypatch.setenv("TRUNKLINE_TOOLS_DIR", str(tmp_path / "own"))
    assert tool_path(HELM) == tmp_path / "own" / f"helm-{HELM.version}" / "helm"


def test_find_tool_says_how_to_build_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(ToolMissingError, match=r"jaeger v1\.75\.0 is not built.*make install"):
        find_tool("jaeger", tmp_path)
    with pytest.raises(ValueError, match="unknown tool 'kubectl'"):
        find_tool("kubectl", tmp_path)
    binary = tool_path(JAEGER, tmp_path)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    with pytest.raises(ToolMissingError):
        find_tool("jaeger", tmp_path)  # not executable
    os.chmod(binary, 0o755)
    assert find_tool("jaeger", tmp_path) == binary


def test_jaeger_listens_only_on_the_ports_it_is_given() -> None:
    config = jaeger_config(
        host="127.0.0.1", otlp_port=4101, query_port=4102, query_grpc_port=4103,
        forward_to="127.0.0.1:4104",
    )  # fmt: skip
    text = json.dumps(config)
    endpoints = {
        value
        for value in _strings(config)
        if value.startswith("127.0.0.1:") or value.startswith("0.0.0.0")
    }
    assert endpoints == {"127.0.0.1:4101", "127.0.0.1:4102", "127.0.0.1:4103", "127.0.0.1:4104"}
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"  # no :8888
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["exporters"] == ["jaeger_storage_exporter", "otlp/forward"]
    assert "zipkin" not in text
    assert "remote_sampling" not in text
    alone = jaeger_config(host="127.0.0.1", otlp_port=1, query_port=2, query_grpc_port=3)
    assert alone["service"]["pipelines"]["traces"]["exporters"] == ["jaeger_storage_exporter"]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
