"""LiveKit SIP's and the LiveKit server's configuration for SIP (pure): loopback addresses, the
ports they are given, one Redis shared for psrpc."""

from __future__ import annotations

import socket

import pytest

from trunkline.devservers.livekit import livekit_config
from trunkline.devservers.livekit_sip import (
    PortRange,
    free_udp_range,
    livekit_sip_config,
    redis_address,
)

pytestmark = pytest.mark.unit


def test_sip_announces_and_listens_on_loopback_with_its_own_ports() -> None:
    config = livekit_sip_config(
        host="127.0.0.1", sip_port=5099, rtp_ports=PortRange(30000, 30019),
        redis_url="redis://127.0.0.1:6400/2", livekit_url="ws://127.0.0.1:7880",
        api_key="k", api_secret="s" * 48,
    )  # fmt: skip
    assert (config["listen_ip"], config["nat_1_to_1_ip"]) == ("127.0.0.1", "127.0.0.1")
    assert config["sip_port"] == 5099
    assert config["rtp_port"] == {"start": 30000, "end": 30019}
    assert config["redis"] == {"address": "127.0.0.1:6400", "db": 2}
    assert config["ws_url"] == "ws://127.0.0.1:7880"
    assert "health_port" not in config  # it would listen on every interface
    assert "use_external_ip" not in config  # no STUN


def test_the_server_shares_the_redis_only_when_given_one() -> None:
    def config(redis_url: str = "") -> dict[str, object]:
        return livekit_config(
            host="127.0.0.1", port=1, rtc_tcp_port=2, rtc_udp_port=3, keys={"k": "s"},
            redis_url=redis_url,
        )  # fmt: skip

    assert "redis" not in config()
    with_redis = config("redis://127.0.0.1:6401")
    assert with_redis["redis"] == {"address": "127.0.0.1:6401", "db": 0}


def test_redis_urls_and_port_ranges_are_checked() -> None:
    assert redis_address("redis://localhost") == ("localhost:6379", 0)
    with pytest.raises(ValueError, match="not a redis:// URL"):
        redis_address("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="bad port range"):
        PortRange(5000, 4000)


def test_a_free_udp_range_is_even_and_free() -> None:
    ports = free_udp_range(6)
    assert ports.start % 2 == 0
    assert ports.end - ports.start == 5
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", ports.start))
