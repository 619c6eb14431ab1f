"""The chart's in-cluster LiveKit (issue 14): ``livekit.server`` (livekit-server: Deployment,
Service, ConfigMap) and ``livekit.sip`` (LiveKit SIP: Deployment, Service, a hook Job making
``livekit.sip.routes``). Nothing of it by default; the server's keys come from an existing Secret
and never sit in its configuration; its webhook is the gateway's Service; the gateway joins rooms
on it unless ``services.gateway.livekit.url`` says otherwise; SIP without a server (or an external
URL) fails the render saying so; the route Job's arguments are what
``trunkline.gateway.livekit_sip`` parses; the network policies open what each side needs; the
schema refuses bad values. Rendered in-process (Helm v4, ``helm-python-sdk``), then: the rendered
configuration run by the real livekit-server and livekit-sip (``make tools``) with a password
Redis, the route Job's command making its route, the webhook signed with the Secret's key; lint
in strict mode; and ``helm install --dry-run=server`` against the envtest API server."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import helm_python
import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml
from livekit import api as livekit_api
from livekit.protocol import room as room_proto
from livekit.protocol import sip as sip_proto

from trunkline.devservers.gotools import LIVEKIT, LIVEKIT_SIP, ToolMissingError, find_tool
from trunkline.devservers.kube import KubeApiServer
from trunkline.devservers.livekit import livekit_ready
from trunkline.devservers.livekit_sip import free_udp_range, sip_ready
from trunkline.devservers.ports import LOOPBACK, free_port
from trunkline.devservers.process import ManagedServer
from trunkline.devservers.redis import RedisServer, redis_ping
from trunkline.gateway import livekit_sip
from trunkline.testing.charts import manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trunkline"
KUBE_VERSION = "1.30.0"
KEYS = {"name": "livekit-keys", "apiKey": "api-key", "apiSecret": "api-secret"}
SERVER_URL = "ws://voice-trunkline-livekit:7880"
WEBHOOK_URL = "http://voice-trunkline-gateway:8080/livekit/webhook"
ROUTES = [
    {
        "tenant": "acme",
        "agent": "acme-dental",
        "numbers": ["+15550100", "+15550101"],
        "allowedAddresses": ["203.0.113.0/24"],
    },
    {
        "tenant": "beta",
        "agent": "front_desk",
        "numbers": ["+15550200"],
        "auth": {"username": "carrier", "passwordSecret": {"name": "sip-trunk", "key": "pw"}},
    },
]
Manifest = dict[str, Any]


def server_values(**server: Any) -> dict[str, Any]:
    return {"livekit": {"keysSecret": KEYS, "server": {"enabled": True, **server}}}


def sip_values(**sip: Any) -> dict[str, Any]:
    values = server_values()
    values["livekit"]["sip"] = {"enabled": True, "routes": ROUTES, **sip}
    return values


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[Manifest]:
    return manifests(chart, values)


def notes(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    rendered = chart.render(values, name="voice", namespace="calls")
    (text,) = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    return str(text)


def of(docs: list[Manifest], kind: str, component: str) -> list[Manifest]:
    return [
        d
        for d in docs
        if d["kind"] == kind and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]


def one(docs: list[Manifest], kind: str, component: str) -> Manifest:
    (doc,) = of(docs, kind, component)
    return doc


def pod_spec(workload: Manifest) -> Manifest:
    return dict(workload["spec"]["template"]["spec"])


def only_container(workload: Manifest) -> Manifest:
    (container,) = pod_spec(workload)["containers"]
    return dict(container)


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(entry: Manifest) -> Manifest:
    assert "value" not in entry, f"{entry['name']} must come from a Secret"
    return dict(entry["valueFrom"]["secretKeyRef"])


def expand(container: Manifest, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's env as the kubelet gives it: Secret values, then $(VAR) expanded."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            env[entry["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                entry["value"],
            )
    return env


def ports(rule: Manifest) -> set[tuple[int | str | None, str]]:
    return {(p.get("port"), p["protocol"]) for p in rule.get("ports", [])}


def peer_components(rule: Manifest, key: str) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in rule.get(key, [])
        if "podSelector" in peer
    }


def policy(docs: list[Manifest], component: str) -> Manifest:
    return dict(one(docs, "NetworkPolicy", component)["spec"])


LIVEKIT_SERVER_PORTS = {(7880, "TCP"), (7881, "TCP"), (7882, "UDP")}


# -- off by default -------------------------------------------------------------------------------


def test_by_default_there_is_no_livekit_server_sip_or_route_job(chart: helm_python.Chart) -> None:
    docs = render(chart, {})
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs}
    assert not components & {"livekit", "livekit-sip", "livekit-routes"}
    assert not [d for d in docs if d["kind"] == "Job"]
    gateway = one(docs, "Deployment", "gateway")
    assert not [name for name in env_of(only_container(gateway)) if "LIVEKIT" in name]
    text = notes(chart, {})
    assert "LiveKit SIP" not in text
    assert "LiveKit callers" not in text
    # LiveKit off, nothing of its Redis is looked at (a password URL only matters to LiveKit)
    assert render(chart, {"externals": {"redis": {"url": "redis://:pw@redis:6379/0"}}})


# -- the server -----------------------------------------------------------------------------------


def test_the_server_renders_a_deployment_a_service_and_its_config(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, server_values())
    configmap = one(docs, "ConfigMap", "livekit")
    deployment = one(docs, "Deployment", "livekit")
    service = one(docs, "Service", "livekit")
    for doc in (configmap, deployment, service):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    (text,) = configmap["data"].values()
    config = yaml.safe_load(text)
    assert config["port"] == 7880
    assert config["rtc"] == {"tcp_port": 7881, "udp_port": 7882, "use_external_ip": False}
    assert config["webhook"] == {"urls": [WEBHOOK_URL]}  # the gateway's Service, in-cluster
    assert config["redis"] == {"address": "redis-master:6379", "db": 0}  # externals.redis.url
    assert config["prometheus"] == {"port": 9464}
    assert "keys" not in config
    assert "key_file" not in config
    assert "api_key" not in config["webhook"]  # from the Secret, below

    container = only_container(deployment)
    assert container["image"] == f"livekit/livekit-server:{LIVEKIT.version}"
    config_path = container["args"][container["args"].index("--config") + 1]
    (mount,) = [m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"])]
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert Path(config_path).name in configmap["data"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] == hashlib.sha256(text.encode()).hexdigest()

    env = env_of(container)
    assert secret_ref(env["LIVEKIT_API_KEY"]) == {"name": "livekit-keys", "key": "api-key"}
    assert secret_ref(env["LIVEKIT_API_SECRET"]) == {"name": "livekit-keys", "key": "api-secret"}
    secrets = {("livekit-keys", "api-key"): "trunkline", ("livekit-keys", "api-secret"): "s" * 40}
    expanded = expand(container, secrets)
    assert yaml.safe_load(expanded["LIVEKIT_KEYS"]) == {"trunkline": "s" * 40}
    assert expanded["LIVEKIT_WEBHOOK_API_KEY"] == "trunkline"  # signs the webhook
    assert "REDIS_PASSWORD" not in env

    container_ports = {(p["name"], p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert {("http", 7880, "TCP"), ("rtc-tcp", 7881, "TCP"), ("rtc-udp", 7882, "UDP")} <= (
        container_ports
    )
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "hostNetwork" not in pod_spec(deployment)

    assert service["metadata"]["name"] == "voice-trunkline-livekit"
    assert service["spec"]["type"] == "ClusterIP"
    assert {(p["port"], p["protocol"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (7880, "TCP", "http"),
        (7881, "TCP", "rtc-tcp"),
        (7882, "UDP", "rtc-udp"),
    }
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_server_service_type_node_ip_extra_config_and_redis_are_values(
    chart: helm_python.Chart,
) -> None:
    values = merge(
        server_values(
            service={"type": "LoadBalancer", "annotations": {"lb.example/udp": "true"}},
            rtc={"nodeIP": "198.51.100.7"},
            config={"room": {"empty_timeout": 300}},
        ),
        {
            "livekit": {"redis": {"passwordSecret": {"name": "redis-pw", "key": "pw"}}},
            "externals": {"redis": {"url": "rediss://redis.db:6380/3"}},
        },
    )
    docs = render(chart, values)
    service = one(docs, "Service", "livekit")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"lb.example/udp": "true"}
    config = yaml.safe_load(next(iter(one(docs, "ConfigMap", "livekit")["data"].values())))
    assert config["rtc"]["node_ip"] == "198.51.100.7"
    assert config["room"] == {"empty_timeout": 300, "departure_timeout": 10}
    assert config["redis"] == {"address": "redis.db:6380", "db": 3, "use_tls": True}
    env = env_of(only_container(one(docs, "Deployment", "livekit")))
    assert secret_ref(env["REDIS_PASSWORD"]) == {"name": "redis-pw", "key": "pw"}


def test_a_udp_port_range_needs_the_host_network(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"needs livekit\.server\.hostNetwork"):
        render(chart, server_values(rtc={"udpPort": 0}))
    docs = render(chart, server_values(rtc={"udpPort": 0}, hostNetwork=True))
    deployment = one(docs, "Deployment", "livekit")
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    assert pod_spec(deployment)["hostNetwork"] is True
    assert pod_spec(deployment)["dnsPolicy"] == "ClusterFirstWithHostNet"
    config = yaml.safe_load(next(iter(one(docs, "ConfigMap", "livekit")["data"].values())))
    assert (config["rtc"]["port_range_start"], config["rtc"]["port_range_end"]) == (50000, 60000)
    assert "udp_port" not in config["rtc"]
    udp = next(
        p for r in policy(docs, "livekit")["ingress"] for p in r["ports"] if p["protocol"] == "UDP"
    )
    assert (udp["port"], udp["endPort"]) == (50000, 60000)


# -- the gateway on the in-cluster server ---------------------------------------------------------


def gateway_env(docs: list[Manifest]) -> dict[str, Manifest]:
    return env_of(only_container(one(docs, "Deployment", "gateway")))


def test_the_gateway_joins_rooms_on_the_in_cluster_server_with_its_keys(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, server_values())
    env = gateway_env(docs)
    assert env["GATEWAY_LIVEKIT_URL"]["value"] == SERVER_URL
    assert secret_ref(env["GATEWAY_LIVEKIT_API_KEY"]) == {"name": "livekit-keys", "key": "api-key"}
    assert secret_ref(env["GATEWAY_LIVEKIT_API_SECRET"]) == {
        "name": "livekit-keys",
        "key": "api-secret",
    }
    # the URL names the server's Service and its signalling port
    service = one(docs, "Service", "livekit")
    host, port = SERVER_URL.removeprefix("ws://").split(":")
    assert service["metadata"]["name"] == host
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    text = notes(chart, server_values())
    assert f"the in-chart LiveKit server, {SERVER_URL}" in text


def test_an_explicit_gateway_url_wins_over_the_in_cluster_server(
    chart: helm_python.Chart,
) -> None:
    external = {
        "url": "wss://lk.example.com",
        "apiKey": "gw-key",
        "apiSecret": {"name": "lk", "key": "secret"},
    }
    docs = render(chart, merge(server_values(), {"services": {"gateway": {"livekit": external}}}))
    env = gateway_env(docs)
    assert env["GATEWAY_LIVEKIT_URL"]["value"] == "wss://lk.example.com"
    assert env["GATEWAY_LIVEKIT_API_KEY"]["value"] == "gw-key"
    assert secret_ref(env["GATEWAY_LIVEKIT_API_SECRET"]) == {"name": "lk", "key": "secret"}
    assert of(docs, "Deployment", "livekit")  # the server still runs (for LiveKit SIP, say)


def test_the_server_without_its_keys_secret_fails_saying_so(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"livekit\.keysSecret\.name"):
        render(chart, {"livekit": {"server": {"enabled": True}}})


# -- LiveKit SIP and its routes --------------------------------------------------------------------


def sip_body(docs: list[Manifest]) -> dict[str, Any]:
    env = env_of(only_container(one(docs, "Deployment", "livekit-sip")))
    body = yaml.safe_load(env["SIP_CONFIG_BODY"]["value"])
    assert isinstance(body, dict)
    return body


def test_sip_runs_against_the_in_cluster_server_and_the_shared_redis(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, sip_values())
    deployment = one(docs, "Deployment", "livekit-sip")
    service = one(docs, "Service", "livekit-sip")
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    container = only_container(deployment)
    assert container["image"] == f"livekit/sip:{LIVEKIT_SIP.version}"
    body = sip_body(docs)
    assert body["ws_url"] == SERVER_URL
    assert body["redis"] == {"address": "redis-master:6379", "db": 0}
    assert body["sip_port"] == 5060
    assert body["rtp_port"] == {"start": 10000, "end": 20000}
    assert "api_key" not in body
    assert "api_secret" not in body
    env = env_of(container)
    assert secret_ref(env["LIVEKIT_API_KEY"]) == {"name": "livekit-keys", "key": "api-key"}
    assert secret_ref(env["LIVEKIT_API_SECRET"]) == {"name": "livekit-keys", "key": "api-secret"}
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} >= {
        (5060, "UDP"),
        (5060, "TCP"),
    }
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (5060, "UDP"),
        (5060, "TCP"),
    }
    spec = pod_spec(deployment)
    assert spec["hostNetwork"] is True  # the RTP range: no Service forwards a range
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"  # ws_url is a cluster name
    assert spec["terminationGracePeriodSeconds"] == 630


def test_a_redis_password_reaches_sip_through_the_kubelet_never_the_values(
    chart: helm_python.Chart,
) -> None:
    values = merge(
        sip_values(natIP="198.51.100.9", hostname="sip.example.com"),
        {"livekit": {"redis": {"passwordSecret": {"name": "redis-pw", "key": "pw"}}}},
    )
    docs = render(chart, values)
    container = only_container(one(docs, "Deployment", "livekit-sip"))
    names = [e["name"] for e in container["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("SIP_CONFIG_BODY")  # expanded in order
    password = "p@ss: w#rd!"
    secrets = {("livekit-keys", "api-key"): "k", ("livekit-keys", "api-secret"): "s" * 40}
    body = yaml.safe_load(
        expand(container, {**secrets, ("redis-pw", "pw"): password})["SIP_CONFIG_BODY"]
    )
    assert body["redis"]["password"] == password
    assert body["nat_1_to_1_ip"] == "198.51.100.9"
    assert body["sip_hostname"] == "sip.example.com"


def test_sip_without_a_server_or_an_external_url_fails_saying_so(
    chart: helm_python.Chart,
) -> None:
    values = {"livekit": {"keysSecret": KEYS, "sip": {"enabled": True}}}
    with pytest.raises(
        helm_python.HelmRenderError,
        match=r"livekit\.sip\.enabled needs a LiveKit server: livekit\.server\.enabled=true .* "
        r"or services\.gateway\.livekit\.url",
    ):
        render(chart, values)


def test_sip_with_an_external_server_uses_its_url_and_the_gateways_pair(
    chart: helm_python.Chart,
) -> None:
    external = {
        "url": "wss://lk.example.com",
        "apiKey": "gw",
        "apiSecret": {"name": "lk", "key": "s"},
    }
    values = {
        "services": {"gateway": {"livekit": external}},
        "livekit": {"sip": {"enabled": True, "routes": ROUTES[:1]}},
    }
    docs = render(chart, values)
    assert of(docs, "Deployment", "livekit") == []
    assert sip_body(docs)["ws_url"] == "wss://lk.example.com"
    env = env_of(only_container(one(docs, "Deployment", "livekit-sip")))
    assert env["LIVEKIT_API_KEY"]["value"] == "gw"
    assert secret_ref(env["LIVEKIT_API_SECRET"]) == {"name": "lk", "key": "s"}
    (job,) = of(docs, "Job", "livekit-routes")
    (route,) = pod_spec(job)["containers"]
    assert env_of(route)["GATEWAY_LIVEKIT_URL"]["value"] == "wss://lk.example.com"
    egress = policy(docs, "livekit-routes")["egress"]
    assert {(443, "TCP"), (7880, "TCP")} <= {p for rule in egress for p in ports(rule)}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (
            {"externals": {"redis": {"existingSecret": "redis-url"}}},
            r"livekit\.sip\.enabled needs a Redis .*livekit\.redis\.address",
        ),
        (
            {"externals": {"redis": {"url": "redis://:hunter2@redis:6379/0"}}},
            r"externals\.redis\.url carries a password.*livekit\.redis\.passwordSecret",
        ),
        ({"livekit": {"sip": {"natIP": "198.51.100.9", "useExternalIP": True}}}, r"not both"),
    ],
    ids=["no-redis", "password-in-url", "nat-ip-and-stun"],
)
def test_sip_values_that_cannot_work_fail_the_render_with_the_fix(
    chart: helm_python.Chart, values: dict[str, Any], reason: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=reason):
        render(chart, merge(sip_values(), values))


def test_the_route_job_runs_the_gateways_route_module_with_its_flags(
    chart: helm_python.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, sip_values())
    job = one(docs, "Job", "livekit-routes")
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "OnFailure"  # until the server answers
    assert spec["automountServiceAccountToken"] is False
    containers = spec["containers"]
    assert len(containers) == len(ROUTES)
    gateway = only_container(one(docs, "Deployment", "gateway"))
    made: list[tuple[livekit_sip.SipRouteSettings, livekit_sip.SipRoute]] = []

    async def fake_make_route(
        settings: livekit_sip.SipRouteSettings, route: livekit_sip.SipRoute
    ) -> livekit_sip.SipRouteIds:
        made.append((settings, route))
        return livekit_sip.SipRouteIds("ST_x", "SDR_x")

    monkeypatch.setattr(livekit_sip, "make_route", fake_make_route)
    for container in containers:
        assert container["image"] == gateway["image"]
        command = container["command"]
        assert command[:3] == ["python", "-m", "trunkline.gateway.livekit_sip"]
        env = env_of(container)
        assert env["GATEWAY_LIVEKIT_URL"]["value"] == SERVER_URL
        assert secret_ref(env["GATEWAY_LIVEKIT_API_KEY"])["name"] == "livekit-keys"
        for name, entry in env.items():
            monkeypatch.setenv(name, entry.get("value", f"from-secret-{name}"))
        assert livekit_sip.main(command[3:]) == 0  # the module parses exactly these flags
    expected = [
        livekit_sip.SipRoute(
            "acme", "acme-dental", ("+15550100", "+15550101"), ("203.0.113.0/24",)
        ),
        livekit_sip.SipRoute(
            "beta",
            "front_desk",
            ("+15550200",),
            (),
            "carrier",
            "from-secret-GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD",  # the Secret's, never an argument
        ),
    ]
    assert [route for _, route in made] == expected
    password = env_of(containers[1])["GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD"]
    assert secret_ref(password) == {"name": "sip-trunk", "key": "pw"}
    assert "GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD" not in env_of(containers[0])
    bad = merge(sip_values(), {})
    no_secret = {"tenant": "beta", "agent": "b", "numbers": ["+1555"], "auth": {"username": "c"}}
    bad["livekit"]["sip"]["routes"] = [no_secret]
    with pytest.raises(helm_python.HelmValuesError, match="passwordSecret"):
        render(chart, bad)
    assert {settings.url for settings, _ in made} == {SERVER_URL}
    # no routes, no Job
    assert of(render(chart, sip_values(routes=[])), "Job", "livekit-routes") == []


def test_notes_print_the_sip_uris_to_point_a_carrier_at(chart: helm_python.Chart) -> None:
    text = notes(chart, sip_values(hostname="sip.example.com"))
    assert "point your carrier's SIP trunk" in text
    assert "sip:sip.example.com:5060 (UDP or TCP), RTP on UDP 10000-20000" in text
    assert "sip:+15550100@sip.example.com:5060 -> acme.acme-dental" in text
    assert "sip:+15550200@sip.example.com:5060 -> beta.front_desk" in text
    text = notes(chart, sip_values(routes=[]))
    assert "<the public IP of the node running voice-trunkline-livekit-sip>:5060" in text
    assert "LiveKit SIP refuses every call" in text


# -- network policies ----------------------------------------------------------------------------


def test_network_policies_let_gateway_server_sip_and_the_job_reach_each_other(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, sip_values())
    for component in ("gateway", "livekit", "livekit-sip", "livekit-routes"):
        kubernetes_validate.validate(
            one(docs, "NetworkPolicy", component), KUBE_VERSION, strict=True
        )

    # gateway -> server: signalling and RTC (a room participant); server -> gateway: the webhook
    gateway = policy(docs, "gateway")
    to_server = [r for r in gateway["egress"] if peer_components(r, "to") == {"livekit"}]
    assert len(to_server) == 1
    assert ports(to_server[0]) == LIVEKIT_SERVER_PORTS
    webhook_in = [r for r in gateway["ingress"] if peer_components(r, "from") == {"livekit"}]
    assert [ports(r) for r in webhook_in] == [{("http", "TCP")}]

    server = policy(docs, "livekit")
    to_gateway = [r for r in server["egress"] if peer_components(r, "to") == {"gateway"}]
    assert [ports(r) for r in to_gateway] == [{(8080, "TCP")}]
    assert {(6379, "TCP")} in [ports(r) for r in server["egress"]]  # Redis
    clients = [r for r in server["ingress"] if peer_components(r, "from")]
    assert len(clients) == 1
    assert peer_components(clients[0], "from") == {"gateway", "livekit-sip", "livekit-routes"}
    assert ports(clients[0]) == LIVEKIT_SERVER_PORTS
    callers = [r for r in server["ingress"] if "from" not in r and ports(r) != {("metrics", "TCP")}]
    assert [ports(r) for r in callers] == [LIVEKIT_SERVER_PORTS]  # livekitFrom [] = anyone

    sip = policy(docs, "livekit-sip")
    assert [ports(r) for r in sip["egress"] if peer_components(r, "to") == {"livekit"}] == [
        LIVEKIT_SERVER_PORTS
    ]
    assert {(6379, "TCP")} in [ports(r) for r in sip["egress"]]  # Redis
    carriers = [r for r in sip["ingress"] if (5060, "UDP") in ports(r)]
    assert len(carriers) == 1
    assert {(5060, "UDP"), (5060, "TCP"), (10000, "UDP")} == ports(carriers[0])
    assert [p.get("endPort") for p in carriers[0]["ports"] if p["port"] == 10000] == [20000]

    job = policy(docs, "livekit-routes")
    assert [ports(r) for r in job["egress"] if peer_components(r, "to") == {"livekit"}] == [
        {(7880, "TCP")}
    ]
    assert "ingress" not in job  # nothing reaches it


def test_carriers_and_callers_can_be_narrowed(chart: helm_python.Chart) -> None:
    carriers = [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    callers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}]
    values = merge(sip_values(), {"networkPolicy": {"sipFrom": carriers, "livekitFrom": callers}})
    docs = render(chart, values)
    sip = policy(docs, "livekit-sip")
    assert [r["from"] for r in sip["ingress"] if (5060, "UDP") in ports(r)] == [carriers]
    server = policy(docs, "livekit")
    assert callers in [r.get("from") for r in server["ingress"]]


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "path"),
    [
        (
            sip_values(routes=[{"tenant": "acme", "agent": "a", "numbers": ["+1 555 0100"]}]),
            r"numbers/0",
        ),
        (sip_values(routes=[{"tenant": "acme.x", "agent": "a", "numbers": ["+1"]}]), r"tenant"),
        (sip_values(routes=[{"tenant": "acme", "agent": "a", "numbers": []}]), r"numbers"),
        (sip_values(routes=[{"tenant": "acme", "agent": "a"}]), r"numbers"),
        (
            sip_values(
                routes=[
                    {"tenant": "a", "agent": "b", "numbers": ["1"], "allowedAddresses": ["any"]}
                ]
            ),
            r"allowedAddresses/0",
        ),
        (sip_values(natIP="sip.example.com"), r"/livekit/sip/natIP"),
        (sip_values(config={"api_secret": "x"}), r"/livekit/sip/config"),
        (server_values(config={"keys": {"k": "s"}}), r"/livekit/server/config"),
        (server_values(service={"type": "ExternalName"}), r"/livekit/server/service/type"),
        (server_values(rtc={"udpPort": 70000}), r"/livekit/server/rtc/udpPort"),
        (server_values(port=80), r"/livekit/server/port"),
        (server_values(image={"repository": "livekit/livekit-server", "tag": ""}), r"tag"),
        (server_values(apiSecret="inline"), r"/livekit/server'?: additional properties"),
        ({"livekit": {"keysSecret": {"name": "k", "secret": "s"}}}, r"/livekit/keysSecret"),
        ({"livekit": {"redis": {"address": "redis://r:6379"}}}, r"/livekit/redis/address"),
        ({"networkPolicy": {"sipFrom": "anyone"}}, r"/networkPolicy/sipFrom"),
    ],
    ids=[
        "number-with-spaces",
        "tenant-with-a-dot",
        "no-numbers",
        "numbers-missing",
        "allowed-address-not-an-address",
        "nat-ip-a-name",
        "sip-config-with-a-key",
        "server-config-with-keys",
        "service-type",
        "udp-port",
        "privileged-port",
        "empty-tag",
        "inline-secret",
        "keys-secret-typo",
        "redis-address-a-url",
        "sip-from-not-peers",
    ],
)
def test_the_schema_refuses_bad_livekit_values(
    chart: helm_python.Chart, values: dict[str, Any], path: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=path):
        chart.validate_schema(values)


def test_the_schema_accepts_the_documented_example(chart: helm_python.Chart) -> None:
    chart.validate_schema(sip_values())
    chart.validate_schema(
        sip_values(hostNetwork=False, service={"type": "LoadBalancer", "annotations": {}})
    )


def test_the_chart_lints_clean_with_livekit_in_strict_mode() -> None:
    values = merge(sip_values(), {"livekit": {"server": {"service": {"type": "LoadBalancer"}}}})
    report = helm_python.lint(
        str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace="calls"
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# -- against real binaries and a real API server ---------------------------------------------------


REDIS_PASSWORD = "p@ss: w#rd!"
SECRET = "0123456789abcdef0123456789abcdef-chart"


class PasswordRedis(RedisServer):
    """redis-server with requirepass, as a production Redis."""

    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", REDIS_PASSWORD]

    def healthy(self) -> bool:
        return redis_ping(f"redis://:{quote(REDIS_PASSWORD)}@{self.host}:{self.port}/0", 0.2)


class Rendered(ManagedServer):
    """A container of a rendered Deployment run as a local process: its command with the env
    the kubelet would give it (Secrets and $(VAR) expanded, passed with env(1))."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        super().__init__(
            name=name, host=LOOPBACK, port=port, run_dir=None, start_timeout=30, stop_timeout=10
        )
        self.argv = argv
        self.env = env

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return ["env", *(f"{k}={v}" for k, v in self.env.items()), *self.argv]

    def healthy(self) -> bool:
        if self.name == "livekit-sip":
            return sip_ready(self.host, self.port)
        return livekit_ready(self.url)


@pytest.fixture
def webhooks() -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    received: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.path, self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def test_the_rendered_config_runs_the_real_server_sip_and_route_job(
    chart: helm_python.Chart, tmp_path: Path, webhooks: tuple[int, list[tuple[str, str, str]]]
) -> None:
    """What the kubelet would run, on loopback: the Service names resolve to 127.0.0.1."""
    try:
        server_bin, sip_bin = find_tool("livekit-server"), find_tool("livekit-sip")
    except ToolMissingError as exc:
        pytest.fail(str(exc))
    hook_port, received = webhooks
    port, tcp, udp, sip_port, health, metrics, sip_metrics = (free_port() for _ in range(7))
    rtp = free_udp_range(10)
    with PasswordRedis() as redis:
        values = merge(
            sip_values(
                sipPort=sip_port,
                healthPort=health,
                rtpPortStart=rtp.start,
                rtpPortEnd=rtp.end,
                routes=ROUTES[:1],
                config={"prometheus_port": sip_metrics},
            ),
            {
                "common": {"metricsPort": metrics},
                "services": {"gateway": {"httpPort": hook_port}},
                "livekit": {
                    "server": {"port": port, "rtc": {"tcpPort": tcp, "udpPort": udp}},
                    "redis": {
                        "address": f"{LOOPBACK}:{redis.port}",
                        "passwordSecret": {"name": "redis-pw", "key": "pw"},
                    },
                },
            },
        )
        docs = render(chart, values)
        secrets = {
            ("livekit-keys", "api-key"): "trunkline",
            ("livekit-keys", "api-secret"): SECRET,
            ("redis-pw", "pw"): REDIS_PASSWORD,
        }

        def resolve(text: str) -> str:
            return re.sub(r"voice-trunkline-(livekit|gateway):", f"{LOOPBACK}:", text)

        config = tmp_path / "livekit.yaml"
        config.write_text(resolve(next(iter(one(docs, "ConfigMap", "livekit")["data"].values()))))
        container = only_container(one(docs, "Deployment", "livekit"))
        args = [str(config) if a.endswith("livekit.yaml") else a for a in container["args"]]
        server = Rendered("livekit", [str(server_bin), *args], expand(container, secrets), port)
        container = only_container(one(docs, "Deployment", "livekit-sip"))
        sip_env = {k: resolve(v) for k, v in expand(container, secrets).items()}
        sip = Rendered("livekit-sip", [str(sip_bin)], sip_env, sip_port)
        with server, sip:
            (job_container,) = pod_spec(one(docs, "Job", "livekit-routes"))["containers"]
            job_env = {k: resolve(v) for k, v in expand(job_container, secrets).items()}
            argv = [sys.executable, *job_container["command"][1:]]
            done = subprocess.run(
                argv, env=job_env | {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["name"] == "trunkline:acme.acme-dental"

            async def check() -> list[sip_proto.SIPInboundTrunkInfo]:
                lk = livekit_api.LiveKitAPI(server.url, "trunkline", SECRET)
                try:
                    trunks = await lk.sip.list_inbound_trunk(sip_proto.ListSIPInboundTrunkRequest())
                    await lk.room.create_room(room_proto.CreateRoomRequest(name="acme.a.chart"))
                    for _ in range(100):
                        if received:
                            break
                        await asyncio.sleep(0.05)
                    return list(trunks.items)
                finally:
                    await lk.aclose()

            (trunk,) = asyncio.run(check())
            assert list(trunk.numbers) == ["+15550100", "+15550101"]
            assert list(trunk.allowed_addresses) == ["203.0.113.0/24"]
            assert received, "the server posted no webhook"
            path, authorization, body = received[0]
            assert path == "/livekit/webhook"
            receiver = livekit_api.WebhookReceiver(livekit_api.TokenVerifier("trunkline", SECRET))
            assert receiver.receive(body, authorization).event == "room_started"


def test_install_dry_run_against_a_real_api_server(
    kube_apiserver: KubeApiServer, tmp_path: Path
) -> None:
    """``helm install --dry-run=server``: the API server admits the LiveKit objects."""
    try:
        helm = find_tool("helm")
    except ToolMissingError as exc:
        pytest.fail(str(exc))
    values = merge(sip_values(), {"livekit": {"server": {"service": {"type": "LoadBalancer"}}}})
    values_file = tmp_path / "livekit-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    done = subprocess.run(
        [str(helm), "install", "voice-livekit", str(CHART), "--namespace", "calls-livekit",
         "--create-namespace", "--dry-run=server", "--kubeconfig", str(kube_apiserver.kubeconfig),
         "-f", str(values_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = done.stdout.split("MANIFEST:", 1)[1].split("\nNOTES:", 1)[0]
    kinds = {(d["kind"], d["metadata"]["labels"]["app.kubernetes.io/component"])
             for d in yaml.safe_load_all(manifest) if d}  # fmt: skip
    assert {("Deployment", "livekit"), ("Service", "livekit"), ("ConfigMap", "livekit"),
            ("Deployment", "livekit-sip"), ("NetworkPolicy", "livekit-sip")} <= kinds  # fmt: skip
    assert "voice-livekit-trunkline-livekit-routes" in done.stdout  # the hook, under HOOKS
