"""The chart's LiveKit values: an external LiveKit URL and API key for the gateway, its secret
from an existing Secret, the egress to it (TCP and UDP) when network policies are on; nothing of
it without a URL; a key without its Secret refused; a URL that is not ws(s):// refused by the
schema; the browser caller page (URL in NOTES.txt, linked with the
console softphone both ways). Helm v4 in-process (``helm-python-sdk``), no cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "trunkline"
LIVEKIT = {
    "url": "wss://livekit.example.com",
    "apiKey": "gw-key",
    "apiSecret": {"name": "lk", "key": "secret"},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(str(CHART)) as loaded:
        yield loaded


def render(chart: helm_python.Chart, livekit: dict[str, Any] | None) -> list[dict[str, Any]]:
    values = {"services": {"gateway": {"livekit": livekit}}} if livekit is not None else {}
    rendered = chart.render(values, name="voice", namespace="calls")
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def gateway_env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (gateway,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def gateway_egress(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    return list(policy["spec"]["egress"])


def test_an_external_livekit_reaches_the_gateway_settings_and_egress(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, LIVEKIT)
    env = gateway_env(docs)
    assert env["GATEWAY_LIVEKIT_URL"]["value"] == "wss://livekit.example.com"
    assert env["GATEWAY_LIVEKIT_API_KEY"]["value"] == "gw-key"
    assert env["GATEWAY_LIVEKIT_API_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "lk",
        "key": "secret",
    }
    ports = [(p["port"], p["protocol"]) for rule in gateway_egress(docs) for p in rule["ports"]]
    assert (7880, "TCP") in ports
    assert (7882, "UDP") in ports


def test_without_a_url_there_is_no_livekit(chart: helm_python.Chart) -> None:
    docs = render(chart, None)
    assert not [name for name in gateway_env(docs) if "LIVEKIT" in name]
    ports = [p["port"] for rule in gateway_egress(docs) for p in rule["ports"]]
    assert 7882 not in ports


def test_a_key_without_its_secret_and_a_bad_url_are_refused(chart: helm_python.Chart) -> None:
    with pytest.raises(Exception, match=r"livekit.apiKey needs services.gateway.livekit.apiSecret"):
        render(chart, {**LIVEKIT, "apiSecret": {"name": "", "key": "secret"}})
    with pytest.raises(Exception, match=r"(?i)livekit|url|pattern"):
        render(chart, {**LIVEKIT, "url": "http://livekit.example.com"})


def notes(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    rendered = chart.render(values, name="voice", namespace="calls")
    (text,) = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    return text


def container_env(docs: list[dict[str, Any]], component: str) -> dict[str, dict[str, Any]]:
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for c in containers for e in c.get("env", [])}


def test_the_caller_page_is_served_linked_and_printed_behind_the_ingress(
    chart: helm_python.Chart,
) -> None:
    livekit = {
        **LIVEKIT,
        "publicUrl": "wss://rtc.example.com",
        "softphoneUrl": "https://console.example.com/softphone",
    }
    values = {
        "services": {
            "gateway": {"livekit": livekit, "ingress": {"enabled": True}},
        }
    }
    rendered = chart.render(values, name="voice", namespace="calls")
    docs = [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    env = gateway_env(docs)
    assert env["GATEWAY_LIVEKIT_PUBLIC_URL"]["value"] == "wss://rtc.example.com"
    assert env["GATEWAY_SOFTPHONE_URL"]["value"] == "https://console.example.com/softphone"
    hitl = container_env(docs, "hitl")
    assert hitl["HITL_CONSOLE_LIVEKIT_CALL_URL"]["value"] == (
        "https://voice.example.com/livekit/call"
    )
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "voice.example.com"
    assert [p["path"] for p in rule["http"]["paths"]] == ["/"]  # /livekit/call routed
    (service,) = [
        d
        for d in docs
        if d["kind"] == "Service"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    assert "http" in [p["name"] for p in service["spec"]["ports"]]
    text = notes(chart, values)
    assert "Browser caller page: https://voice.example.com/livekit/call?tenant=" in text
    assert "Console softphone (linked from the page): https://console.example.com/softphone" in text


def test_without_a_public_url_notes_print_the_port_forwarded_page(
    chart: helm_python.Chart,
) -> None:
    values = {"services": {"gateway": {"livekit": LIVEKIT}}}
    text = notes(chart, values)
    assert "http://127.0.0.1:8080/livekit/call?tenant=<tenant>&agent=<agent>" in text
    assert "Console softphone" not in text
    docs = render(chart, LIVEKIT)
    assert "HITL_CONSOLE_LIVEKIT_CALL_URL" not in container_env(docs, "hitl")
    assert "GATEWAY_LIVEKIT_PUBLIC_URL" not in gateway_env(docs)
    assert "LiveKit callers" not in notes(chart, {})


def test_a_public_livekit_url_that_is_not_websocket_is_refused(chart: helm_python.Chart) -> None:
    with pytest.raises(Exception, match=r"(?i)publicUrl|pattern"):
        render(chart, {**LIVEKIT, "publicUrl": "https://rtc.example.com"})
