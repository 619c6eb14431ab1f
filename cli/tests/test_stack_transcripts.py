"""The transcript store in the local stack (issue 13): ``trunkline up`` gives the gateway a store
under the run dir and the local tenant a policy with its own key (kept in the 0600 tenants file,
accepted by the gateway's settings), keeps a policy already written there, and ``trunkline calls
show`` opens the stored turns with the key from that file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from trunkline.cli.plan import SERVICES, AppConfig, app_env
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack import _Starter
from trunkline.cli.tenants import ensure_tenant
from trunkline.gateway.app import transcript_policies
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.transcripts import TranscriptPolicy
from trunkline.redaction.cli import main as calls
from trunkline.redaction.transcripts import TranscriptStore

pytestmark = pytest.mark.unit

GATEWAY = next(spec for spec in SERVICES if spec.name == "gateway")


def policy_of(path: Path) -> TranscriptPolicy:
    """The local tenant's policy as the gateway reads the file."""
    return transcript_policies(GatewaySettings(tenants_file=path))["acme"]


def test_the_local_tenant_gets_a_transcript_policy_the_gateway_accepts(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    ensure_tenant(path, "acme", ("acme-dental",))
    first = yaml.safe_load(path.read_text())["acme"]["transcripts"]
    assert first["store_unredacted"] is True
    assert first["retention_days"] == 7
    ensure_tenant(path, "acme", ("acme-dental", "volt-energy"))  # the next `trunkline up`
    assert yaml.safe_load(path.read_text())["acme"]["transcripts"] == first  # same key
    assert oct(path.stat().st_mode)[-3:] == "600"
    policy = policy_of(path)
    assert policy.store_unredacted
    assert len(policy.key_bytes) == 32


def test_a_policy_and_other_keys_already_in_the_file_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    entry = {
        "stream_secret": "s" * 32,
        "twilio_auth_token": "t" * 32,
        "agents": ["old"],
        "transcripts": {"store_unredacted": False},
        "livekit_api_key": "lk-key",
    }
    path.write_text(yaml.safe_dump({"acme": entry}))
    ensure_tenant(path, "acme", ("acme-dental",))
    kept = yaml.safe_load(path.read_text())["acme"]
    assert kept["transcripts"] == {"store_unredacted": False}
    assert kept["livekit_api_key"] == "lk-key"
    assert (kept["stream_secret"], kept["agents"]) == ("s" * 32, ["acme-dental"])
    assert not policy_of(path).store_unredacted


def test_the_stack_gives_the_gateway_a_store_under_the_run_dir(tmp_path: Path) -> None:
    starter = _Starter(StackSettings(run_dir=tmp_path), io.StringIO())
    url = f"sqlite:///{tmp_path.resolve() / 'transcripts.db'}"
    assert starter.app.transcripts_url == url
    ports = {"gateway-http": 8080}
    assert app_env(GATEWAY, ports, starter.app)["GATEWAY_TRANSCRIPTS_URL"] == url
    none = AppConfig(tmp_path, tmp_path / "t.yaml", "x")
    assert "GATEWAY_TRANSCRIPTS_URL" not in app_env(GATEWAY, ports, none)


def test_calls_show_opens_the_stored_turns_with_the_key_in_the_tenants_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUNKLINE_TRANSCRIPT_KEY_ACME", raising=False)
    path = tmp_path / "tenants.yaml"
    ensure_tenant(path, "acme", ("acme-dental",))
    policy = policy_of(path)
    url = f"sqlite:///{tmp_path}/transcripts.db"
    store = TranscriptStore(url)
    store.append("acme", "CA1", 0, {"caller": "card 4111 1111 1111 1111"}, policy.key_bytes,
                 now=0.0, retention_s=60)  # fmt: skip
    store.close()
    show = ["show", "--url", url, "--tenant", "acme", "--call-id", "CA1"]
    assert calls([*show, "--tenants-file", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["caller"] == "card 4111 1111 1111 1111"
    assert calls([*show, "--tenants-file", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no transcript key configured" in err
    assert "TRUNKLINE_TRANSCRIPT_KEY_ACME" in err
