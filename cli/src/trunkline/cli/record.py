"""``stack.json``: what the local stack is made of and who started each part."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["nats", "redis", "sink", "service"]

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


@dataclass
class StackRecord:
    run_dir: str
    components: list[Component] = field(default_factory=list)

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
        )


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
