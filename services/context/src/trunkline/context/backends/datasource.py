"""Live data sources for set algebra: the ``DataSource`` ABC and the HTTP JSON backend.

A source is described by the agent spec (``trunkline.agents.LiveSource``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from trunkline.agents import LiveSource
from trunkline.context.backends.guarded import CallPolicy, guarded
from trunkline.context.core.types import LiveRecord
from trunkline.context.errors import InvalidRequestError

_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class DataSource(ABC):
    def __init__(self, spec: LiveSource, policy: CallPolicy | None = None) -> None:
        self.spec = spec
        self.policy = policy or CallPolicy(timeout_s=spec.timeout_s, retries=1)

    async def fetch(self, state: Mapping[str, str]) -> list[LiveRecord]:
        """The source's records for this call (``state`` fills the URL placeholders)."""
        return await guarded(self.policy, f"source.{self.spec.name}", lambda: self._impl(state))

    def missing(self, state: Mapping[str, str]) -> list[str]:
        """Call-state entities the source needs but ``state`` lacks (then it cannot be asked)."""
        return missing_entities(self.spec.url_template, state)

    @abstractmethod
    async def _impl(self, state: Mapping[str, str]) -> list[LiveRecord]: ...


def missing_entities(template: str, state: Mapping[str, str]) -> list[str]:
    return [m for m in _PLACEHOLDER.findall(template) if m not in state]


def render_url(template: str, state: Mapping[str, str]) -> str:
    missing = missing_entities(template, state)
    if missing:
        raise InvalidRequestError(f"call state lacks {missing} needed by data source url")
    return _PLACEHOLDER.sub(lambda m: quote(state[m.group(1)], safe=""), template)


def records_from(payload: Any, spec: LiveSource) -> list[LiveRecord]:
    """Turn a JSON payload into records, per the spec's path, key and text fields."""
    items = payload
    for part in filter(None, spec.records_path.split(".")):
        items = items.get(part, []) if isinstance(items, dict) else []
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ValueError(f"data source {spec.name} returned {type(items).__name__}, not a list")
    records: list[LiveRecord] = []
    for item in items[: spec.max_records]:
        if not isinstance(item, dict) or spec.entity_key not in item:
            continue
        fields = spec.text_fields or tuple(k for k in item if k != spec.entity_key)
        text = "; ".join(f"{f}: {item[f]}" for f in fields if f in item)
        records.append(LiveRecord(source=spec.name, key=str(item[spec.entity_key]), text=text))
    return records


class HttpJsonSource(DataSource):
    def __init__(
        self,
        spec: LiveSource,
        client: httpx.AsyncClient,
        policy: CallPolicy | None = None,
    ) -> None:
        super().__init__(spec, policy)
        self._client = client

    async def _impl(self, state: Mapping[str, str]) -> list[LiveRecord]:
        response = await self._client.get(render_url(self.spec.url_template, state))
        response.raise_for_status()
        return records_from(response.json(), self.spec)
