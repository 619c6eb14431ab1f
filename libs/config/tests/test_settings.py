from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from trunkline.config import PeerAddress, ServiceSettings

pytestmark = pytest.mark.unit


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", frozen=True, extra="ignore")

    stt_addr: PeerAddress = "127.0.0.1:50052"
    api_key: SecretStr = SecretStr("")


def test_env_prefix_and_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GRPC_PORT", "6001")
    monkeypatch.setenv("DEMO_STT_ADDR", "stt.internal:7000")
    monkeypatch.setenv("DEMO_API_KEY", "s3cret")
    monkeypatch.setenv("GRPC_PORT", "1")  # unprefixed: ignored
    settings = DemoSettings.load()
    assert settings.grpc_port == 6001
    assert settings.grpc_bind == "127.0.0.1:6001"
    assert settings.stt_addr == "stt.internal:7000"
    assert settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("bad", ["nohost", ":80", "host:0", "host:70000", "host:http"])
def test_bad_peer_address_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("DEMO_STT_ADDR", bad)
    with pytest.raises(ValidationError, match="stt_addr"):
        DemoSettings.load()


def test_settings_are_frozen() -> None:
    settings = DemoSettings()
    with pytest.raises(ValidationError):
        settings.grpc_port = 1  # type: ignore[misc]
