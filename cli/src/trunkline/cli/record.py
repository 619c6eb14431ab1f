"""``stack.json``: what the local stack is made of and who started each part."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["nats", "redis", "sink", "jaeger", "crm", "livekit", "service"]

STACK_FILE = "stack.json"


@dataclass
class Component:
    """One part of the stack. ``owned``: started by this stack, so ``down`` stops it."""

    name: str
    kind: Kind
    port: int
    url: str
    pid: int | None = None
    owned: bool = True
    log: str | None = None
    match: str = ""
    """A piece of the process command line; ``down`` only signals a pid whose command has it."""
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """How it was started (the stack's own variables only): ``restart`` starts it the same way."""


@dataclass
class StackRecord:
    run_dir: str
    components: list[Component] = field(default_factory=list)
    media_url: str = ""
    """The gateway's Twilio media-stream WebSocket (``ws://127.0.0.1:P/twilio/stream``)."""
    tenants_file: str = ""
    """The tenants (stream secrets) the gateway admits; see :mod:`trunkline.cli.tenants`."""
    agents_dir: str = ""

    def get(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackRecord:
        data: dict[str, Any] = json.loads(text)
        return cls(
            run_dir=str(data["run_dir"]),
            components=[Component(**item) for item in data.get("components", [])],
            media_url=str(data.get("media_url", "")),
            tenants_file=str(data.get("tenants_file", "")),
            agents_dir=str(data.get("agents_dir", "")),
        )

    def replace(self, component: Component) -> None:
        """Put ``component`` in the place of the one with its name."""
        self.components = [component if c.name == component.name else c for c in self.components]


def stack_file(run_dir: Path) -> Path:
    return run_dir / STACK_FILE


def load(run_dir: Path) -> StackRecord | None:
    """The stack recorded in ``run_dir``, or None when there is none."""
    path = stack_file(run_dir)
    try:
        return StackRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None


def save(run_dir: Path, record: StackRecord) -> None:
    """Write ``stack.json`` atomically (it is rewritten after every component that starts)."""
    path = stack_file(run_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.to_json())
    tmp.replace(path)
