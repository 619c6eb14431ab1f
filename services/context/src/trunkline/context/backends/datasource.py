"""Live data sources for set algebra: the ``DataSource`` ABC and the HTTP JSON backend."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from trunkline.context.backends.guarded import CallPolicy, guarded
from trunkline.context.core.types import LiveRecord
from trunkline.context.errors import InvalidRequestError
from trunkline.context.spec import DataSourceSpec

_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class DataSource(ABC):
    def __init__(self, spec: DataSourceSpec, policy: CallPolicy | None = None) -> None:
        self.spec = spec
        self.policy = policy or CallPolicy(timeout_s=spec.timeout_s, retries=1)

    async def fetch(self, state: Mapping[str, str]) -> list[LiveRecord]:
        """The source's records for this call (``state`` fills the URL placeholders)."""
        return await guarded(self.policy, f"source.{self.spec.name}", lambda: self._impl(state))

    @abstractmethod
    async def _impl(self, state: Mapping[str, str]) -> list[LiveRecord]: ...


def render_url(template: str, state: Mapping[str, str]) -> str:
    missing = [m for m in _PLACEHOLDER.findall(template) if m not in state]
    if missing:
        raise InvalidRequestError(f"call state lacks {missing} needed by data source url")
    return _PLACEHOLDER.sub(lambda m: quote(state[m.group(1)], safe=""), template)


def records_from(payload: Any, spec: DataSourceSpec) -> list[LiveRecord]:
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
        if not isinstance(item, dict) or spec.key_field not in item:
            continue
        fields = spec.text_fields or tuple(k for k in item if k != spec.key_field)
        text = "; ".join(f"{f}: {item[f]}" for f in fields if f in item)
        records.append(LiveRecord(source=spec.name, key=str(item[spec.key_field]), text=text))
    return records


class HttpJsonSource(DataSource):
    def __init__(
        self,
        spec: DataSourceSpec,
        client: httpx.AsyncClient,
        policy: CallPolicy | None = None,
    ) -> None:
        super().__init__(spec, policy)
        self._client = client

    async def _impl(self, state: Mapping[str, str]) -> list[LiveRecord]:
        response = await self._client.get(render_url(self.spec.url, state))
        response.raise_for_status()
        return records_from(response.json(), self.spec)
