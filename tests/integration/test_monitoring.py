"""The Grafana dashboard, the Prometheus alert rules and the Prometheus adapter's rules ask for
metrics the services really serve, in valid PromQL, and the adapter serves the metrics the
chart's autoscalers ask for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider

from trunkline.gateway.metrics import GatewayMetrics
from trunkline.telemetry.prometheus import PrometheusReader, prometheus_name, registry_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "helm" / "trunkline" / "files" / "prometheus-rules.yaml"
ADAPTER = ROOT / "deploy" / "monitoring" / "prometheus-adapter-values.yaml"
CHART_VALUES = ROOT / "deploy" / "helm" / "trunkline" / "values.yaml"
SOURCES = [*ROOT.glob("services/*/src"), *ROOT.glob("libs/*/src")]
INSTRUMENT = re.compile(
    r"create_(counter|histogram|up_down_counter)\(\s*f?\"([a-z0-9_.{}]+)\"(?:,\s*unit=\"([^\"]*)\")?"
)
STANDARD = {"up"}
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def served_metric_names() -> set[str]:
    """Every series name the services' instruments produce on /metrics (the exposition adds
    _bucket/_sum/_count to histograms and _total to counters; rpc.{side} is server/client)."""
    names: set[str] = set()
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for kind, name, unit in INSTRUMENT.findall(path.read_text()):
                for side in ("server", "client"):
                    base = prometheus_name(name.replace("{side}", side), unit or "")
                    if kind == "histogram":
                        names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
                    elif kind == "counter":
                        names.add(f"{base}_total")
                    else:
                        names.add(base)
    return names


def selectors(expr: str) -> set[str]:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return _names(promql_parser.parse(expr))


def _names(node: Any) -> set[str]:
    if type(node).__name__ == "VectorSelector":
        return {node.name} if node.name else set()
    found: set[str] = set()
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, int | float | str):
            found |= _names(child)
    for child in getattr(node, "args", None) or []:
        found |= _names(child)
    return found


def test_the_naming_rule_matches_a_real_exposition() -> None:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = GatewayMetrics(provider.get_meter("test"))
    metrics.calls.add(1)
    metrics.voice_to_voice.record(0.4)
    metrics.fillers.add(1)
    text = "\n".join(
        f"{s.name} {s.value}" for family in registry_for(reader).collect() for s in family.samples
    )
    exposed = {line.split()[0] for line in text.splitlines()}
    assert {"gateway_calls_active", "gateway_voice_to_voice_duration_s_bucket",
            "gateway_fillers_total"} <= exposed  # fmt: skip
    assert exposed <= served_metric_names()


def test_the_dashboard_is_a_valid_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_query_is_promql_over_served_metrics() -> None:
    served = served_metric_names() | STANDARD
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = {f"dashboard: {p['title']}": t["expr"] for p in dashboard["panels"]
             for t in p["targets"]}  # fmt: skip
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            exprs[f"alert: {rule['alert']}"] = rule["expr"]
    asked: set[str] = set()
    for where, expr in exprs.items():
        names = selectors(expr)  # raises on invalid PromQL
        assert names, where
        unknown = names - served
        assert not unknown, f"{where} asks for metrics no service serves: {sorted(unknown)}"
        asked |= names
    panels = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("voice-to-voice", "stage", "live calls", "cache", "error", "escalation"):
        assert topic in panels, f"the dashboard has no {topic} panel"


def test_alert_rules_are_complete() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    names = [rule["alert"] for group in groups for rule in group["rules"]]
    assert len(names) == len(set(names))
    for group in groups:
        for rule in group["rules"]:
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "ticket", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
    assert "TrunklineVoiceToVoiceP95High" in names


def test_the_adapter_serves_what_the_autoscalers_ask_for() -> None:
    rules = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    served_as = {rule["name"]["as"]: rule for rule in rules}
    values = yaml.safe_load(CHART_VALUES.read_text())
    asked = {
        values["services"]["gateway"]["autoscaling"]["activeCallsMetric"],
        values["inference"]["vllm"]["autoscaling"]["queueMetric"],
        values["inference"]["riva"]["autoscaling"]["queueMetric"],
    }
    assert asked <= set(served_as)
    for rule in rules:
        series = selectors(rule["seriesQuery"])
        (name,) = series
        assert re.fullmatch(rule["name"]["matches"], name)
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    gateway_rule = served_as[values["services"]["gateway"]["autoscaling"]["activeCallsMetric"]]
    assert selectors(gateway_rule["seriesQuery"]) <= served_metric_names()
