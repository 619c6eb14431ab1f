"""The local stack's tenant: its stream secret and Twilio auth token, kept in the run dir.

``tenants.yaml`` (mode 0600) has the shape the gateway reads from ``GATEWAY_TENANTS_FILE``. It is
created with random secrets on the first ``stack up`` and reused afterwards, so a caller that
read it once (``trunkline call``, the demo, the tests) keeps working across restarts.

The local tenant's transcript policy (issue 13): an entry without one gets
``transcripts: {store_unredacted: true, retention_days: 7, key: <fresh 32-byte key>}``, so the
local stack keeps each turn as said, encrypted, in ``<run dir>/transcripts.db`` (``trunkline
calls list|show|purge``); a policy already in the file (e.g. ``store_unredacted: false``) is kept.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TENANTS_FILE = "tenants.yaml"
LOCAL_RETENTION_DAYS = 7


def transcript_policy() -> dict[str, Any]:
    """A fresh local transcript policy: stored unredacted, encrypted with a new key."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {"store_unredacted": True, "retention_days": LOCAL_RETENTION_DAYS, "key": key}


class TenantError(RuntimeError):
    """The tenants file or the agent folder cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class LocalTenant:
    name: str
    stream_secret: str
    twilio_auth_token: str
    agents: tuple[str, ...]


def agent_names(agents_dir: Path) -> tuple[str, ...]:
    """The ``name`` of every agent spec in ``agents_dir`` (``*.yaml``/``*.yml``), sorted."""
    if not agents_dir.is_dir():
        raise TenantError(f"agents dir {agents_dir} is not a folder")
    names = []
    for file in sorted([*agents_dir.glob("*.yaml"), *agents_dir.glob("*.yml")]):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise TenantError(f"{file}: an agent spec needs a 'name'")
        names.append(data["name"])
    if not names:
        raise TenantError(f"no agent spec (*.yaml) in {agents_dir}")
    return tuple(sorted(names))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise TenantError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TenantError(f"{path}: tenants must be a mapping")
    return data


def ensure_tenant(path: Path, name: str, agents: tuple[str, ...]) -> LocalTenant:
    """The tenant ``name`` in ``path`` serving ``agents``: secrets kept if it exists, new ones
    otherwise. Other tenants in the file are left as they are."""
    data = _read(path)
    found = data.get(name)
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    tenant = LocalTenant(
        name=name,
        stream_secret=str(entry.get("stream_secret") or secrets.token_hex(16)),
        twilio_auth_token=str(entry.get("twilio_auth_token") or secrets.token_hex(16)),
        agents=agents,
    )
    data[name] = {
        **entry,  # what else the entry says (its transcript policy, LiveKit keys) is kept
        "stream_secret": tenant.stream_secret,
        "twilio_auth_token": tenant.twilio_auth_token,
        "agents": list(agents),
        "transcripts": entry.get("transcripts") or transcript_policy(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out, sort_keys=True)
    tmp.replace(path)
    return tenant


def read_tenants(path: Path) -> dict[str, LocalTenant]:
    """Every tenant of the file as the stack wrote it (empty when there is no file)."""
    out = {}
    for name, entry in _read(path).items():
        if isinstance(entry, dict) and entry.get("stream_secret"):
            out[str(name)] = LocalTenant(
                name=str(name),
                stream_secret=str(entry["stream_secret"]),
                twilio_auth_token=str(entry.get("twilio_auth_token", "")),
                agents=tuple(str(a) for a in entry.get("agents", [])),
            )
    return out


def read_tenant(path: Path, name: str) -> LocalTenant:
    """The tenant ``name`` as the stack wrote it."""
    entry = _read(path).get(name)
    if not isinstance(entry, dict) or not entry.get("stream_secret"):
        raise TenantError(f"{path}: no tenant {name!r} (is the stack up?)")
    return LocalTenant(
        name=name,
        stream_secret=str(entry["stream_secret"]),
        twilio_auth_token=str(entry.get("twilio_auth_token", "")),
        agents=tuple(str(a) for a in entry.get("agents", [])),
    )
