"""One source of defaults: the gateway's turn-taking knobs are the same in the services'
settings, the local stack and the Helm chart (``trunkline.config.defaults`` is their home)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from trunkline.cli.plan import SERVICES, AppConfig, allocate_ports, service_env
from trunkline.cli.settings import StackSettings
from trunkline.config import TURN_TAKING, TurnTaking
from trunkline.config.defaults import chart_key, env_value
from trunkline.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
FIELDS = [f.name for f in dataclasses.fields(TurnTaking)]


def chart_defaults() -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    turn_taking = values["services"]["gateway"]["turnTaking"]
    assert isinstance(turn_taking, dict)
    return turn_taking


def rendered_gateway_env() -> dict[str, str]:
    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render({}, name="voice", namespace="calls")
    for path, text in rendered.items():
        for doc in yaml.safe_load_all(text) if path.endswith(".yaml") else ():
            if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("-gateway"):
                env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
                return {e["name"]: e["value"] for e in env if "value" in e}
    raise AssertionError("no gateway Deployment rendered")


def stack_gateway_env() -> dict[str, str]:
    names = [*(s.name for s in SERVICES), "gateway-http", *(f"{s.name}-metrics" for s in SERVICES)]
    ports = allocate_ports(names, 20000, lambda: 0)
    settings = StackSettings()
    app = AppConfig(Path("/a"), Path("/t.yaml"), "kb.db", peer_timeout_s=settings.peer_timeout_s)
    gateway = next(s for s in SERVICES if s.name == "gateway")
    return service_env(
        gateway, ports, nats_url="nats://x:1", redis_url="redis://x:2", otlp_endpoint="x:3",
        drain_seconds=1, app=app,
    )  # fmt: skip


def test_the_settings_take_their_defaults_from_the_one_source() -> None:
    fields = GatewaySettings.model_fields
    drifted = {f: (fields[f].default, getattr(TURN_TAKING, f)) for f in FIELDS
               if fields[f].default != getattr(TURN_TAKING, f)}  # fmt: skip
    assert drifted == {}


def test_the_chart_values_agree_with_the_one_source() -> None:
    chart = chart_defaults()
    assert set(chart) == {chart_key(f) for f in FIELDS}, "a knob is missing from values.yaml"
    drifted = {f: (chart[chart_key(f)], getattr(TURN_TAKING, f)) for f in FIELDS
               if chart[chart_key(f)] != getattr(TURN_TAKING, f)}  # fmt: skip
    assert drifted == {}, "values.yaml services.gateway.turnTaking differs (chart, source)"


def test_the_rendered_pod_and_the_local_stack_run_the_same_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pod = rendered_gateway_env()
    stack = stack_gateway_env()
    for field in FIELDS:
        name = f"GATEWAY_{field.upper()}"
        assert name in pod, f"the chart does not set {name}"
        if name in stack:  # the stack sets the knobs it documents; the others stay defaults
            assert stack[name] == env_value(getattr(TURN_TAKING, field)), name
    for key in list(pod):
        monkeypatch.setenv(key, pod[key])
    for key in [k for k in stack if k.startswith("GATEWAY_") and k not in pod]:
        monkeypatch.delenv(key, raising=False)
    loaded = GatewaySettings.load()
    assert {f: getattr(loaded, f) for f in FIELDS} == TURN_TAKING.as_dict()
    assert {"GATEWAY_ENDPOINT_MS", "GATEWAY_PEER_TIMEOUT_S"} <= set(stack)  # the two that drifted
