"""The chart's LiveKit values: an external LiveKit URL and API key for the gateway, its secret
from an existing Secret, the egress to it (TCP and UDP) when network policies are on; nothing of
it without a URL; a key without its Secret refused; a URL that is not ws(s):// refused by the
schema. Helm v4 in-process (``helm-python-sdk``), no cluster."""

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
