"""The stack plan: ports, each service's environment, and the stack record."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from trunkline.cli.plan import PORT_NAMES, SERVICES, AppConfig, allocate_ports, service_env
from trunkline.cli.record import Component, StackRecord, load, save
from trunkline.cli.stack import format_table

pytestmark = pytest.mark.unit


def test_base_port_gives_consecutive_ports_skipping_the_standard_ones() -> None:
    ports = allocate_ports(["a", "b", "c", "d"], 4220, free_port=lambda: 0)
    assert ports == {"a": 4220, "b": 4221, "c": 4223, "d": 4224}


def test_free_ports_are_never_handed_out_twice() -> None:
    handed = itertools.chain([5000, 5000, 5001], itertools.count(6000))
    ports = allocate_ports(PORT_NAMES, None, free_port=lambda: next(handed))
    assert len(set(ports.values())) == len(PORT_NAMES)
    assert ports[PORT_NAMES[0]] == 5000
    assert ports[PORT_NAMES[1]] == 5001


def test_base_port_too_high_is_refused() -> None:
    with pytest.raises(ValueError, match="too few ports"):
        allocate_ports(["a", "b"], 65535, free_port=lambda: 0)


def test_gateway_env_points_at_every_peer_nats_redis_and_the_sink() -> None:
    ports = allocate_ports(PORT_NAMES, 20000, free_port=lambda: 0)
    gateway = next(spec for spec in SERVICES if spec.name == "gateway")
    env = service_env(
        gateway, ports, nats_url="nats://n", redis_url="redis://r", otlp_endpoint="127.0.0.1:9",
        drain_seconds=2.5,
    )  # fmt: skip
    assert env["GATEWAY_GRPC_PORT"] == str(ports["gateway"])
    assert env["GATEWAY_METRICS_PORT"] == str(ports["gateway-metrics"])
    assert env["GATEWAY_HITL_ADDR"] == f"127.0.0.1:{ports['hitl']}"
    assert {k for k in env if k.endswith("_ADDR")} == {
        "GATEWAY_STT_ADDR", "GATEWAY_CONTEXT_ADDR", "GATEWAY_LLM_ADDR", "GATEWAY_TTS_ADDR",
        "GATEWAY_HITL_ADDR",
    }  # fmt: skip
    assert env["GATEWAY_NATS_URL"] == "nats://n"
    assert env["GATEWAY_REDIS_URL"] == "redis://r"
    assert env["GATEWAY_OTLP_ENDPOINT"] == "127.0.0.1:9"
    assert env["GATEWAY_DRAIN_SECONDS"] == "2.5"
    stt = next(spec for spec in SERVICES if spec.name == "stt")
    assert not [k for k in service_env(stt, ports, nats_url="n", redis_url="r",
                otlp_endpoint="o", drain_seconds=1) if k.endswith(("_ADDR", "_URL"))]  # fmt: skip


def test_gateway_starts_after_the_peers_it_needs() -> None:
    order = [spec.name for spec in SERVICES]
    gateway = next(spec for spec in SERVICES if spec.name == "gateway")
    assert all(order.index(peer) < order.index("gateway") for peer in gateway.peers)


def test_record_round_trips_and_prints_a_table(tmp_path: Path) -> None:
    record = StackRecord(
        run_dir=str(tmp_path),
        components=[
            Component("redis", "redis", 7000, "redis://127.0.0.1:7000/0", owned=False),
            Component("hitl", "service", 7001, "127.0.0.1:7001", pid=42, match="trunkline.hitl"),
        ],
    )
    assert load(tmp_path) is None
    save(tmp_path, record)
    assert load(tmp_path) == record
    table = format_table(record, {"redis": "SERVING", "hitl": "NOT_SERVING"}).splitlines()
    assert table[0].split() == ["COMPONENT", "PID", "PORT", "HEALTH", "STARTED", "BY"]
    assert table[1].split() == ["redis", "-", "7000", "SERVING", "reused"]
    assert table[2].split() == ["hitl", "42", "7001", "NOT_SERVING", "stack"]


def test_the_hitl_console_gets_its_own_port_and_the_gateways_url(tmp_path: Path) -> None:
    ports = allocate_ports(PORT_NAMES, 30000, free_port=lambda: 0)
    hitl = next(spec for spec in SERVICES if spec.name == "hitl")
    app = AppConfig(agents_dir=tmp_path, tenants_file=tmp_path / "t.yaml", milvus_uri="x.db")
    env = service_env(
        hitl,
        ports,
        nats_url="nats://127.0.0.1:1",
        redis_url="redis://127.0.0.1:2",
        otlp_endpoint="127.0.0.1:3",
        drain_seconds=1.0,
        app=app,
    )
    assert env["HITL_CONSOLE_PORT"] == str(ports["hitl-console"])
    assert env["HITL_CONSOLE_GATEWAY_URL"] == f"http://127.0.0.1:{ports['gateway-http']}"
    assert ports["hitl-console"] not in {v for k, v in ports.items() if k != "hitl-console"}


def test_gateway_and_hitl_share_one_join_secret_per_stack(tmp_path: Path) -> None:
    ports = allocate_ports(PORT_NAMES, 20000, free_port=lambda: 0)
    app = AppConfig(tmp_path, tmp_path / "tenants.yaml", str(tmp_path / "k.db"))
    other = AppConfig(tmp_path, tmp_path / "tenants.yaml", str(tmp_path / "k.db"))
    by_name = {spec.name: spec for spec in SERVICES}
    common = {"nats_url": "n", "redis_url": "r", "otlp_endpoint": "o", "drain_seconds": 1}
    gateway = service_env(by_name["gateway"], ports, app=app, **common)  # type: ignore[arg-type]
    hitl = service_env(by_name["hitl"], ports, app=app, **common)  # type: ignore[arg-type]
    assert gateway["GATEWAY_JOIN_SECRET"] == hitl["HITL_JOIN_SECRET"] == app.join_secret
    assert len(app.join_secret) == 32
    assert other.join_secret != app.join_secret  # random per stack, never a fixed default
